"""What a remote pass must send back, from its plan: every value's shape, kind and size (:func:`expected`), and
:func:`check`, which refuses anything else in one line naming what was wrong.

A result from NDIF is outside data: a wrong-shaped tensor (a scalar for ``logits_at(-1)``), a missing key or a
string where a tensor belongs would otherwise surface as a raw ``TypeError`` far from its cause, or as a wrong
number. The same table bounds the bytes a pass may read (:func:`size`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .nnsight_remote import RemoteExecutionError


@dataclass(frozen=True)
class T:
    """A tensor of ``shape`` (``None``: any length there) and ``kind``: ``"float"``, ``"int"`` or ``"bool"``."""

    shape: tuple[int | None, ...]
    kind: str = "float"


@dataclass(frozen=True)
class Maybe:
    """``spec``, or None."""

    spec: Any


#: ``(label, hook name, dtype)`` per edit that made an activation non-finite (strings only)
BAD = "bad"
_KINDS = {"float": torch.Tensor.is_floating_point, "bool": lambda t: t.dtype == torch.bool,
          "int": lambda t: not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool}  # fmt: skip


def expected(program: dict, arch: Any, vocab: int, ids_shape: tuple[int, int]) -> dict:
    """The ``out`` dict ``run_trace`` fills for ``program`` on a model of ``arch`` (see ``nnsight_trace.py``)."""
    batch, width = ids_shape
    d, heads = arch.d_model, arch.n_heads
    widths = {"attn.hook_z": (heads, arch.d_head), "mlp.hook_post": (arch.d_mlp,)}
    caches = []
    for s0, s1 in program["spans"]:
        n = s1 - s0
        cache = {}
        for step in program["steps"]:
            for name, template, keep, _ops in step["hooks"]:
                if keep:
                    shape = (heads, n, n) if template == "attn.hook_pattern" else (n, *widths.get(template, (d,)))
                    cache[name] = T(shape)
        caches.append(cache)
    sinks = {}
    for layer, reductions in program["reduce"].items():
        if reductions is None:
            continue
        parts = []
        for spec in reductions:
            if spec[0] == "pool":
                chosen, rows, cols, side = spec[1:]
                (q0, q1), (k0, k1) = rows or (0, width), cols or (0, width)
                q1, k1 = width if q1 is None else q1, width if k1 is None else k1
                pooled = (min(q1 - q0, side), min(k1 - k0, side))
                if isinstance(chosen, int):  # one head: no head dimension
                    parts.append(T(pooled))
                else:
                    parts.append(T((len(range(heads)[chosen]) if isinstance(chosen, slice) else None, *pooled)))
            else:
                parts.append({name: T((heads,)) for name in ("previous_token", "first_token", *spec[1])})
        sinks[layer] = parts
    lens = []
    if program["lens"] is not None:
        first, last, k = program["lens"]
        top = (len(range(width)[first:last]), min(k, vocab))
        lens = [(T(top, "int"), T(top)) for _ in range(arch.n_layers)]
    final = logits = finite = None
    out: dict[str, Any] = {"caches": caches, "bad": BAD, "lens": lens, "sinks": sinks}
    rows = program["rows"]
    if rows is not None:
        finite, p = T((), "bool"), len(rows[1])
        if rows[0] == "logits":
            out["rows"] = T((p, vocab))
        else:
            k = min(rows[2], vocab)
            both, one = {n: T((2, p, k)) for n in ("probs", "delta_prob", "delta_logit")}, ("clean_p", "p", "loss")
            out["compare"] = {"ids": T((2, p, k), "int"), "top": T((p,), "int"), **both,
                              **{n: T((p,)) for n in (*one, "clean_loss")}}  # fmt: skip
    elif program["lazy"]:
        if program["weightless"]:
            finite = T((), "bool")
        else:
            final = T((batch, width, d))
    elif program["unembed"] is not None:
        logits = T((batch, width, vocab))
    out.update(final=Maybe(final), logits=Maybe(logits), finite=Maybe(finite))
    if program["stop_early"]:  # the rest of the pass did not run: those may be missing
        out = {k: v if k in ("caches", "bad", "lens", "sinks") else Maybe(v) for k, v in out.items()}
    return out


def size(spec: Any, bad: int = 0) -> int:
    """The most bytes a result of ``spec`` takes (8 bytes an element, 1 KiB of overhead a tensor; ``bad``: how
    many non-finite reports it may carry) plus 64 KiB: a bound on what a pass may read from the host."""
    if isinstance(spec, T):
        n = 1
        for length in spec.shape:
            n *= length if length is not None else 1 << 16
        return 8 * n + 1024
    if isinstance(spec, Maybe):
        return size(spec.spec) if spec.spec is not None else 0
    if isinstance(spec, dict):
        return sum(size(v) for v in spec.values()) + (65536 + 1024 * bad if "caches" in spec else 64 * len(spec))
    if isinstance(spec, (list, tuple)):
        return sum(size(v) for v in spec) + 64
    return 0


def check(value: Any, spec: Any, where: str = "result") -> None:
    """Refuse ``value`` unless it is what ``spec`` (from :func:`expected`) describes: one line naming the first
    value that is missing, of another type, kind or shape."""
    if isinstance(spec, Maybe):
        if value is not None and spec.spec is not None:
            check(value, spec.spec, where)
        elif value is not None:
            _wrong(where, "a value", "nothing")
    elif isinstance(spec, T):
        if not isinstance(value, torch.Tensor):
            _wrong(where, _what(value), f"a tensor {list(spec.shape)}")
        if not _KINDS[spec.kind](value):
            _wrong(where, f"a {value.dtype} tensor", f"a {spec.kind} tensor")
        shape = value.shape
        if len(shape) != len(spec.shape) or any(w not in (None, s) for w, s in zip(spec.shape, shape, strict=True)):
            _wrong(where, f"shaped {list(shape)}", f"{['?' if w is None else w for w in spec.shape]}")
    elif spec is BAD:
        if (
            not isinstance(value, (list, tuple))
            or len(value) > 10_000
            or not all(
                isinstance(v, (list, tuple)) and len(v) == 3 and all(isinstance(s, str) for s in v) for v in value
            )
        ):
            _wrong(where, _what(value), "a list of (label, hook, dtype) strings")
    elif isinstance(spec, dict):
        if not isinstance(value, dict):
            _wrong(where, _what(value), "a dict")
        missing = [k for k, v in spec.items() if k not in value and not isinstance(v, Maybe)]
        extra = [k for k in value if k not in spec]
        if missing or extra:
            _wrong(where, f"missing {missing}" if missing else f"has unexpected {extra}"[:120], f"keys {list(spec)}")
        for key, inner in spec.items():
            check(value.get(key), inner, f"{where}[{key!r}]")
    elif isinstance(spec, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(spec):
            _wrong(where, _what(value), f"{len(spec)} values")
        for i, (v, inner) in enumerate(zip(value, spec, strict=True)):
            check(v, inner, f"{where}[{i}]")


def _what(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value)}"
    return "missing" if value is None else f"a {type(value).__name__}"


def _wrong(where: str, got: str, want: str) -> None:
    raise RemoteExecutionError(f"NDIF's result does not fit the pass: {where[:120]} is {got}, expected {want}")
