"""The numerical fits discovery reads a block's branches with: equality up to a dtype's rounding, the scale ``c``
with ``target == c * y``, and a fitted scale as the short decimal a config sets."""

from __future__ import annotations

import torch


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
