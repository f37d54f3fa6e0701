"""Reading saved files strictly: JSON fields and safetensors tensors checked like a schema.

Every failure is a :class:`FileFormatError` (a ``ValueError``) of one line that names the file and
the field, so a hand-edited config or a corrupt download says what is wrong instead of surfacing a
parser's traceback or, worse, loading something that silently means something else.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch


class FileFormatError(ValueError):
    """A saved file that cannot be read as what it claims to be; the message names the file and field."""


_MISSING = object()


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise FileFormatError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (nothing is unpickled); a corrupt file is a one-line error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileFormatError(f"{path} is not a readable safetensors file ({detail})") from None


def json_field(data: dict[str, Any], key: str, kind: str, where: Path, default: Any = _MISSING) -> Any:
    """``data[key]`` checked to be of ``kind``: ``bool``, ``int`` (not a bool), ``+int`` (positive),
    ``number`` (finite), ``fraction`` (in 0..1), ``str``, ``dict`` or ``list``; ``default`` if absent."""
    if key not in data or (data[key] is None and default is not _MISSING):
        if default is _MISSING:
            raise FileFormatError(f"{where}: {key} is missing")
        return default
    value = data[key]
    checks = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "+int": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "number": _is_number,
        "fraction": lambda v: _is_number(v) and 0 <= v <= 1,
        "str": lambda v: isinstance(v, str),
        "dict": lambda v: isinstance(v, dict),
        "list": lambda v: isinstance(v, list),
    }
    if not checks[kind](value):
        wanted = {
            "bool": "true or false (a JSON boolean, not a string)",
            "+int": "a positive integer",
            "int": "an integer",
            "number": "a finite number",
            "fraction": "a number between 0 and 1",
            "str": "a string",
            "dict": "an object",
            "list": "a list",
        }[kind]
        raise FileFormatError(f"{where}: {key} must be {wanted}, got {json.dumps(value)[:60]}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def tensor_field(
    tensors: dict[str, torch.Tensor],
    key: str,
    where: Path,
    shape: tuple[int | None, ...] | None = None,
    integer: bool = False,
) -> torch.Tensor:
    """``tensors[key]``, checked: floating point and finite (or ``integer``), of ``shape`` (``None``: any size)."""
    if key not in tensors:
        raise FileFormatError(f"{where}: tensor {key} is missing (the file holds {_names(tensors)})")
    t = tensors[key]
    if integer:
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise FileFormatError(f"{where}: tensor {key} must hold integers, got {t.dtype}")
    else:
        if not t.dtype.is_floating_point:
            raise FileFormatError(f"{where}: tensor {key} must be floating point, got {t.dtype}")
        if not bool(torch.isfinite(t).all()):
            raise FileFormatError(f"{where}: tensor {key} holds NaN or infinite values")
    if shape is not None and (
        t.dim() != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape, strict=True))
    ):
        wanted = "x".join("?" if s is None else str(s) for s in shape) or "a scalar"
        raise FileFormatError(f"{where}: tensor {key} has shape {tuple(t.shape)}, expected {wanted}")
    return t


def _names(tensors: dict[str, torch.Tensor]) -> str:
    names = sorted(tensors)
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "") if names else "nothing"
