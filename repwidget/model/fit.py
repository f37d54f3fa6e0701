"""The numerical fits discovery reads a block's branches with: equality up to a dtype's rounding, the scale ``c``
with ``target == c * y``, a fitted scale as the short decimal a config sets, and the MLP's input."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def rounding_equal(a: torch.Tensor, b: torch.Tensor, eps: float) -> bool:
    """Equal up to the rounding of a sum computed in a dtype of machine epsilon ``eps``."""
    scale = 1 + float(torch.maximum(a.abs().max(), b.abs().max()))
    return torch.allclose(a, b, atol=max(1e-5, 8 * eps) * scale, rtol=max(1e-4, 8 * eps))


def branch_scale(target: torch.Tensor, y: torch.Tensor, eps: float) -> float | None:
    """``c`` with ``target == c * y`` (to the rounding of the activations' dtype), or None."""
    norm = float(y.pow(2).sum())
    if norm < 1e-12:
        return None
    c = float((target * y).sum()) / norm
    if abs(c - 1) < 16 * eps:
        c = 1.0  # a plain residual add, read in half precision
    return c if abs(c) > 1e-6 and rounding_equal(target, c * y, eps) else None


def short_decimal(scale: float) -> float:
    """A fitted branch scale as the short decimal a config sets (Granite's 0.22), when it is one to float32
    precision: the fit is exact only to that (and its last digits follow torch's thread count)."""
    short = float(f"{scale:.6g}")
    return short if abs(short - scale) <= 1e-6 * abs(scale) else scale


def mlp_input(calls: Sequence[Any], flat: Callable[[Any], torch.Tensor | None]) -> Any | None:
    """The call whose input is the MLP's input (``mlp.hook_in``), among the MLP branch's module ``calls`` (each with
    ``module``, ``enter``, ``exit``; ``flat(call)``: its input as ``[tokens, d_model]``, or None). The branch's first
    weight matrix (its up projection, or a mixture's router) reads a value ``v``; the outermost call reading ``v`` is
    the MLP, if it holds every weight matrix reading ``v`` (the MLP module; OPT's ``fc1``); else None."""
    inputs = [(c, flat(c)) for c in sorted(calls, key=lambda c: c.enter)]
    v = next((x for c, x in inputs if x is not None and _has_matrix(c.module)), None)
    if v is None:
        return None
    same = [c for c, x in inputs if x is not None and torch.equal(x, v)]
    outer = same[0]
    held = all(outer.enter <= c.enter and c.exit <= outer.exit for c in same if _has_matrix(c.module))
    return outer if held else None


def _has_matrix(module: nn.Module) -> bool:
    """Whether a module has a weight matrix of its own (a linear layer, GPT-2's Conv1D, a router)."""
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.dim() == 2 and not isinstance(module, nn.Embedding)


def is_linear(module: nn.Module) -> bool:
    """Whether a module is a linear layer (a weight matrix; GPT-2's Conv1D counts)."""
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, torch.Tensor)
        and weight.dim() == 2
        and not isinstance(module, nn.Embedding)
        and ("linear" in type(module).__name__.lower() or type(module).__name__ == "Conv1D")
    )


def has_experts(module: nn.Module) -> bool:
    """Whether a module is or holds experts of a mixture (a router picks some for each token)."""
    return "expert" in type(module).__name__.lower() or any(
        isinstance(m, nn.ModuleList) and len(m) > 1 and "expert" in name for name, m in module.named_children()
    )


def is_pattern(x: object, n_heads: int, n_tokens: int) -> bool:
    """Whether ``x`` is attention probabilities ``[batch, heads, q, k]`` (rows summing to one)."""
    if not (isinstance(x, torch.Tensor) and x.dim() == 4 and tuple(x.shape[1:]) == (n_heads, n_tokens, n_tokens)):
        return False
    atol = 1e-3 if x.dtype in (torch.float32, torch.float64) else 3e-2  # rows of half-precision probabilities
    return torch.allclose(x.float().sum(-1), torch.ones((), device=x.device), atol=atol)
