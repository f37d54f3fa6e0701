"""Tensors to and from the front end as raw bytes: ``{dtype, shape, buffer}``, never JSON floats."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import torch

from ..placement import to_host

DTYPES = ("float32", "float16", "int32", "uint8")


def encode(tensor: torch.Tensor | np.ndarray, dtype: str = "float32") -> dict[str, Any]:
    """Encode a tensor (on any device, any strides) as ``{"dtype", "shape", "buffer"}``.

    ``buffer`` is little-endian C-order bytes, ready to send as an anywidget binary buffer.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if isinstance(tensor, torch.Tensor):
        host = to_host(tensor)
        array = (host.float() if host.dtype == torch.bfloat16 else host).numpy()
    elif isinstance(tensor, np.ndarray):
        array = tensor
    else:
        raise TypeError(f"expected a torch.Tensor or numpy array, got {type(tensor).__name__}")
    array = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"dtype": dtype, "shape": list(array.shape), "buffer": memoryview(array.tobytes())}


def decode(message: dict[str, Any]) -> np.ndarray:
    """Decode ``{"dtype", "shape", "buffer"}`` back into a numpy array (a copy)."""
    try:
        dtype, shape, buffer = message["dtype"], message["shape"], message["buffer"]
    except (KeyError, TypeError):
        raise ValueError("a tensor message needs dtype, shape and buffer") from None
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    shape = tuple(int(s) for s in shape)
    array = np.frombuffer(bytes(buffer), dtype=np.dtype(dtype).newbyteorder("<"))
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"buffer holds {array.size} {dtype} values, shape {shape} needs {int(np.prod(shape))}")
    return array.reshape(shape).copy()


def encode_rows(rows: np.ndarray | list[int], n: int) -> dict[str, Any]:
    """A set of row indices in ``0..n-1`` as ``{"n", "bits"}``: a bitset (row ``r`` is bit ``r % 8`` of byte
    ``r // 8``) in base64, ``ceil(n / 8)`` bytes whatever the set (a lasso of thousands of points in a few KB
    of JSON instead of a list of pairs)."""
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(rows, dtype=np.int64)] = True
    return {"n": n, "bits": base64.b64encode(np.packbits(mask, bitorder="little").tobytes()).decode("ascii")}


def decode_rows(message: Any, n: int, what: str = "rows") -> np.ndarray:
    """The sorted row indices of ``{"n", "bits"}`` (:func:`encode_rows`) over ``n`` rows; anything malformed (not
    that dict, another ``n``, bad base64, the wrong length, bits set past ``n``) raises ValueError saying what."""
    if not (isinstance(message, dict) and set(message) == {"n", "bits"} and isinstance(message["bits"], str)):
        raise ValueError(f'{what} must be {{"n": rows, "bits": base64 bitset}}, got a {type(message).__name__}')
    if message["n"] != n or type(message["n"]) is not int:
        raise ValueError(f"{what} were chosen among {message['n']!r:.20} rows; there are {n} (stale? choose again)")
    try:
        raw = base64.b64decode(message["bits"], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError(f"{what}: bits is not valid base64") from None
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"{what}: {len(raw)} bytes of bits for {n} rows; expected {(n + 7) // 8}")
    mask = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if mask[n:].any():
        raise ValueError(f"{what}: bits set past row {n - 1}")
    return np.flatnonzero(mask[:n])
