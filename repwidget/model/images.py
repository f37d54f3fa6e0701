"""Images into a vision model's input: a PIL image, a numpy array, a tensor or a path, through its preprocessing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ImageLike = Any  # PIL.Image.Image | np.ndarray | torch.Tensor | str | os.PathLike

_WHAT = "a PIL image, a numpy array (HxW or HxWxC), a tensor ([C, H, W] or [1, C, H, W]) or a path to an image file"


def open_image(image: ImageLike) -> Any:
    """A path read with PIL (one-line errors); anything else is returned as it is."""
    if not isinstance(image, (str, os.PathLike)):
        return image
    path = Path(image).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {str(path)!r}")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency of the test extra
        raise ImportError("reading image files needs pillow: pip install pillow") from None
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except OSError as error:
        raise ValueError(f"{str(path)!r} is not an image PIL can read: {error}") from None


def as_array(image: ImageLike) -> np.ndarray:
    """``HxWxC`` uint8 or float pixels of a PIL image or numpy array (``HxW`` becomes ``HxWx1``)."""
    if type(image).__module__.startswith("PIL."):
        image = np.asarray(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected {_WHAT}, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"an image array must be HxW or HxWxC with C 1, 3 or 4, got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"image pixels must be numbers, got dtype {image.dtype}")
    return image


def default_preprocess(n_channels: int) -> Callable[[Any], torch.Tensor]:
    """Pixels as ``[1, C, H, W]`` floats in 0..1 (uint8 divided by 255), grey or colour made ``n_channels``: the
    preprocessing of a model given none."""

    def preprocess(image: Any) -> torch.Tensor:
        array = as_array(image)
        x = torch.as_tensor(array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0))
        x = x.permute(2, 0, 1)[:3]
        if x.shape[0] != n_channels:
            x = x.mean(0, keepdim=True).expand(n_channels, -1, -1) if n_channels in (1, 3) else x
        return x[None].contiguous()

    return preprocess


def hf_preprocess(processor: Any) -> Callable[[Any], torch.Tensor]:
    """A Hugging Face image processor as a preprocessing function (its ``pixel_values``)."""

    def preprocess(image: Any) -> torch.Tensor:
        array = as_array(image)
        return torch.as_tensor(np.asarray(processor(images=array, return_tensors="np")["pixel_values"]))

    return preprocess


def to_pixels(image: ImageLike, preprocess: Callable[[Any], torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    """``image`` as the model's input ``[1, *shape]``: a tensor of that shape is taken as already preprocessed,
    anything else goes through ``preprocess``. Every error says what was wrong and what is valid."""
    if isinstance(image, torch.Tensor):
        x = image.detach()
        x = x[None] if x.dim() == len(shape) else x
    else:
        x = preprocess(open_image(image))
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"preprocess must return a tensor, got {type(x).__name__}")
        x = x[None] if x.dim() == len(shape) else x
    if x.dim() != len(shape) + 1 or x.shape[0] != 1 or x.shape[1] != shape[0]:
        raise ValueError(
            f"the model takes one image [1, {shape[0]}, H, W] (after preprocessing), got {tuple(x.shape)}; give {_WHAT}"
        )
    if not x.is_floating_point():
        raise TypeError(f"a tensor image must hold floats (preprocessed pixels), got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("the image holds NaN or infinite values")
    return x
