"""Tensors to and from the front end as raw bytes: ``{dtype, shape, buffer}``, never JSON floats."""

from __future__ import annotations

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
