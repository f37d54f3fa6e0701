"""Messages between the views and the kernel: requests checked field by field, tensors packed as buffers.

The front end sends ``{"type": "get", "id", "what", ...}`` for data, and commands such as ``{"type":
"set", "id", "view", "seq", "interventions"}`` to change the run. Ids are unique across views (random
strings, or ints). The kernel answers ``{"type": "reply"|"applied"|"error", "id", ...}`` with tensors
as ``{"dtype", "shape", "buffer": index}`` into the message's binary buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import codec

if TYPE_CHECKING:
    from .session import Session

#: an error message quotes at most this many characters of what it refuses
QUOTE = 200

#: what a payload is: field name -> tensor or JSON value
Payload = dict[str, Any]
#: the largest valid value + 1 of a request field, given the session and the fields parsed before it
Bound = Callable[["Session", dict[str, Any]], int]


@dataclass(frozen=True)
class Request:
    """What a view may ask for: its fields (each an int index, checked in order against its bound), how it is
    answered, and which of the answer's float tensors travel as float16 (where the eye cannot tell)."""

    what: str
    fields: tuple[tuple[str, Bound], ...]
    answer: Callable[[Session, dict[str, Any]], Payload]
    half: frozenset[str] = field(default_factory=frozenset)
    #: parses optional fields and cross-checks (raises ValueError); returns extra arguments
    extra: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None


def cut(text: str, limit: int = QUOTE) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def short(value: Any, limit: int = QUOTE) -> str:
    """``repr(value)`` cut to ``limit`` characters: errors never echo a whole bad input."""
    return cut(repr(value), limit)


def index(content: dict[str, Any], name: str, stop: int, what: str) -> int:
    """The int field ``name`` of a message, checked to lie in ``0..stop-1``."""
    value = content.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} request: {name} must be an int, got {short(value, 40)}")
    if not 0 <= value < stop:
        raise ValueError(f"{what} request: {name} {value} is out of range 0..{stop - 1}")
    return value


def parse_get(
    content: dict[str, Any], requests: Mapping[str, Request], session: Session
) -> tuple[Request, dict[str, Any]]:
    """The request and its arguments of a "get" message; anything malformed raises ValueError saying what."""
    what = content.get("what")
    if not isinstance(what, str) or what not in requests:
        raise ValueError(f"unknown request {short(what, 40)}; expected one of {', '.join(requests)}")
    request = requests[what]
    args: dict[str, Any] = {}
    for name, bound in request.fields:
        stop = bound(session, args)
        args[name] = index(content, name, stop, what)
    if request.extra is not None:
        args.update(request.extra(content, args))
    return request, args


def message_id(content: Any) -> int | str | None:
    """The request id of a message, if it has a usable one (an int, or a string of at most 64 characters)."""
    value = content.get("id") if isinstance(content, dict) else None
    if type(value) is int or (isinstance(value, str) and 0 < len(value) <= 64):
        return value
    return None


def pack(data: Payload, half: frozenset[str] = frozenset()) -> tuple[dict[str, Any], list[memoryview]]:
    """Replace every tensor in ``data`` (one level deep) by a codec header pointing into the returned buffers.

    Float tensors named in ``half`` travel as float16, the others as float32; integers as int32 (uint8 stays).
    """
    out: dict[str, Any] = {}
    buffers: list[memoryview] = []
    for key, value in data.items():
        if isinstance(value, (torch.Tensor, np.ndarray)):
            floating = value.is_floating_point() if isinstance(value, torch.Tensor) else value.dtype.kind == "f"
            if floating:
                dtype = "float16" if key in half else "float32"
            else:
                dtype = "uint8" if value.dtype in (torch.uint8, np.uint8) else "int32"
            encoded = codec.encode(value, dtype)
            buffers.append(encoded.pop("buffer"))
            out[key] = {**encoded, "buffer": len(buffers) - 1}
        else:
            out[key] = value
    return out, buffers
