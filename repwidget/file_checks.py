"""Reading saved files strictly: JSON fields and safetensors tensors checked like a schema.

Every failure is a :class:`FileFormatError` (a ``ValueError``) of one line that names the file and
the field, so a hand-edited config or a corrupt download says what is wrong instead of surfacing a
parser's traceback or, worse, loading something that silently means something else.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any, NamedTuple

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


# -- GGUF headers, read bounded before anything is built ---------------------------------------
#: GGUF metadata value types: struct formats of the scalars; 8 is a string, 9 an array
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
#: the longest metadata string accepted (real ones, chat templates included, are far shorter; transformers
#: parses strings byte by byte, about 1.3 s per MiB)
GGUF_MAX_STRING = 1 << 20
#: ggml's most dimensions of a tensor
_GGML_MAX_DIMS = 4


class _Reader:
    """Little-endian values at a moving offset of a memory-mapped file, every length checked against its size."""

    def __init__(self, data: Any, where: Path) -> None:
        self.data, self.pos, self.where = data, 0, where

    def need(self, n: int, what: str) -> None:
        if n > len(self.data) - self.pos:
            raise FileFormatError(
                f"{self.where.name}: {what} declares {n:,} bytes at offset {self.pos:,}, past the end of the "
                f"{len(self.data):,}-byte file (truncated or corrupt)"
            )

    def scalar(self, fmt: str, what: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size, what)
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self, what: str) -> bytes:
        n = self.scalar("<Q", what)
        if n > GGUF_MAX_STRING:
            raise FileFormatError(
                f"{self.where.name}: {what} declares a string of {n:,} bytes (at most {GGUF_MAX_STRING:,})"
            )
        self.need(n, what)
        self.pos += n
        return bytes(self.data[self.pos - n : self.pos])

    def value(self, kind: int, what: str) -> Any:
        if kind in _GGUF_SCALARS:
            return self.scalar(_GGUF_SCALARS[kind], what)
        if kind == _GGUF_STRING:
            return self.string(what).decode("utf-8", "replace")
        if kind != _GGUF_ARRAY:
            raise FileFormatError(f"{self.where.name}: {what} has unknown value type {kind}")
        item, count = self.scalar("<I", what), self.scalar("<Q", what)
        if item in _GGUF_SCALARS:
            self.need(count * struct.calcsize(_GGUF_SCALARS[item]), what)
            self.pos += count * struct.calcsize(_GGUF_SCALARS[item])
        elif item == _GGUF_STRING:
            self.need(count * 8, what)  # each string has at least its 8-byte length
            for _ in range(count):
                self.string(what)
        else:
            raise FileFormatError(f"{self.where.name}: {what} is an array of unsupported type {item}")
        return _GGUFArray(count)


class _GGUFArray(int):
    """A metadata array, kept as its length only."""


class GGUFHeader(NamedTuple):
    """A GGUF file's metadata (scalars and strings; an array as its length) and its tensors' shapes (ggml order)."""

    meta: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]


def check_gguf(path: Path) -> GGUFHeader:
    """A GGUF file's header, checked against the file's size: read memory-mapped, every declared count and length
    bounded by the bytes that remain, nothing else read. Refuses, with one line, counts, strings or arrays that
    overrun the file and tensors whose data lies past its end (:func:`check_gguf_metadata` checks the rest)."""
    import mmap

    import gguf

    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        r = _Reader(data, path)
        r.need(24, "the header")
        r.pos = 4  # after the magic
        version = r.scalar("<I", "the version")
        if version not in (2, 3):
            raise FileFormatError(f"{path.name}: GGUF version {version} is not supported (2 and 3 are)")
        n_tensors, n_kv = r.scalar("<Q", "the tensor count"), r.scalar("<Q", "the metadata count")
        r.need(n_kv * 13, f"its metadata count ({n_kv:,} entries)")  # a key, a type and a value: 13 bytes at least
        meta: dict[str, Any] = {}
        for i in range(n_kv):
            key = r.string(f"metadata entry {i}'s key").decode("utf-8", "replace")
            meta[key] = r.value(r.scalar("<I", f"metadata {key!r}"), f"metadata {key!r}")
        r.need(n_tensors * 24, f"its tensor count ({n_tensors:,} tensors)")  # name, dims, type, offset: 24 bytes
        tensors: dict[str, tuple[tuple[int, ...], int, int]] = {}
        for i in range(n_tensors):
            name = r.string(f"tensor {i}'s name").decode("utf-8", "replace")
            n_dims = r.scalar("<I", f"tensor {name!r}")
            if not 1 <= n_dims <= _GGML_MAX_DIMS:
                raise FileFormatError(f"{path.name}: tensor {name!r} has {n_dims} dimensions (1 to 4)")
            dims = tuple(r.scalar("<Q", f"tensor {name!r}") for _ in range(n_dims))
            kind, offset = r.scalar("<I", f"tensor {name!r}"), r.scalar("<Q", f"tensor {name!r}")
            tensors[name] = (dims, kind, offset)
        alignment = meta.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise FileFormatError(f"{path.name}: general.alignment must be a power of two, got {alignment!r}")
        start = -(-r.pos // alignment) * alignment
        for name, (dims, kind, offset) in tensors.items():
            try:
                block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(kind)]
            except (ValueError, KeyError):
                raise FileFormatError(f"{path.name}: tensor {name!r} has unknown type {kind}") from None
            if dims[0] % block:
                raise FileFormatError(f"{path.name}: tensor {name!r}'s rows ({dims[0]}) are not blocks of {block}")
            nbytes = math.prod(dims) // block * size
            if start + offset + nbytes > len(data):
                raise FileFormatError(
                    f"{path.name}: tensor {name!r} ({'x'.join(map(str, dims))}) declares {nbytes:,} bytes at offset "
                    f"{start + offset:,}, past the end of the {len(data):,}-byte file (truncated or corrupt)"
                )
    return GGUFHeader(meta, {name: dims for name, (dims, _, _) in tensors.items()})


def check_gguf_metadata(path: Path, header: GGUFHeader) -> None:
    """The sizes a model is built with (blocks, width, feed-forward width, vocabulary) against its tensors, so
    that a file declaring 100,000 blocks is refused before they are built."""
    meta, shapes = header
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        return  # transformers says which architectures it reads
    blocks = {int(m.group(1)) for name in shapes if (m := re.search(r"(?:^|\.)blk\.(\d+)\.", name))}  # T5: enc.blk.N
    held = max(blocks) + 1 if blocks else 0
    embed, up = shapes.get("token_embd.weight", ()), shapes.get("blk.0.ffn_up.weight", ())
    vocab_key = f"{arch}.vocab_size" if f"{arch}.vocab_size" in meta else "tokenizer.ggml.tokens"  # its length
    checks = [
        (f"{arch}.block_count", meta.get(f"{arch}.block_count"), held, "the number of tensor blocks (blk.N)"),
        (f"{arch}.embedding_length", meta.get(f"{arch}.embedding_length"), embed[:1], "token_embd's width"),
        (f"{arch}.feed_forward_length", meta.get(f"{arch}.feed_forward_length"), up[1:2] if len(up) == 2 else (),
         "blk.0.ffn_up's width"),
        (vocab_key, meta.get(vocab_key), embed[1:2] if len(embed) == 2 else (), "token_embd's number of rows"),
    ]  # fmt: skip
    for key, declared, actual, what in checks:
        actual = actual if isinstance(actual, int) else (actual[0] if actual else None)
        if not isinstance(declared, int) or isinstance(declared, bool) or actual is None:
            continue
        fused = key.endswith(".feed_forward_length") and actual == 2 * declared  # gate and up in ffn_up (Phi-3)
        if declared != actual and not fused:
            raise FileFormatError(
                f"{path.name}: its metadata says {key} = {declared:,} but {what} is {actual:,}: "
                "the tensors do not match the metadata (a corrupt or hand-edited file)"
            )
