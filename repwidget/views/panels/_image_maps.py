"""Tensors as pictures for the image views: values mapped linearly from their min..max to 0..255 (uint8, sent as
binary buffers by the codec), the same bounds for every map of one stage so their brightness compares."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: thumbnails wider or taller than this are average-pooled down to it before they are scaled to 0..255
THUMBNAIL_SIDE = 32


def bounds(values: torch.Tensor) -> tuple[float, float]:
    """``(lo, hi)``: the min and max of ``values`` (what 0 and 255 stand for)."""
    values = values.detach().float()
    return float(values.min()), float(values.max())


def to_uint8(values: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``values`` mapped from ``lo..hi`` to ``round(255 * (v - lo) / (hi - lo))`` as uint8 (clamped; all 0 when
    ``hi == lo``)."""
    values = values.detach().float().cpu()
    if hi <= lo:
        return torch.zeros(values.shape, dtype=torch.uint8)
    return (255 * (values - lo) / (hi - lo)).round().clamp(0, 255).to(torch.uint8)


def thumbnails(maps: torch.Tensor, side: int = THUMBNAIL_SIDE) -> torch.Tensor:
    """``maps`` ``[n, h, w]`` with each side at most ``side`` (adaptive average pooling), as floats."""
    maps = maps.detach().float()
    h, w = maps.shape[-2:]
    if h <= side and w <= side:
        return maps
    return F.adaptive_avg_pool2d(maps[None], (min(h, side), min(w, side)))[0]


def picture(pixels: torch.Tensor) -> torch.Tensor:
    """A preprocessed image ``[C, H, W]`` as ``[H, W, 1 or 3]`` uint8 over its own min..max (grey for one
    channel, RGB for three, the mean over channels for any other number)."""
    pixels = pixels.detach().float().cpu()
    if pixels.shape[0] not in (1, 3):
        pixels = pixels.mean(0, keepdim=True)
    return to_uint8(pixels, *bounds(pixels)).permute(1, 2, 0).contiguous()
