"""Reference texts: the statistics behind ``mode="mean"`` and ``"resample"`` ablations."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import hook_names

if TYPE_CHECKING:
    from .model import Model


class Reference:
    """Reference texts for mean and resample ablation.

    Means are read once per hook template for every layer in one batched pass over the texts and kept as
    ``[width]`` sums (never every activation); a resampled text's activation is read when asked (a few kept).
    Both are kept for the model's weights version they were read with: after the weights change, read again.
    """

    def __init__(self, model: Model, token_ids: list[list[int]]) -> None:
        if not token_ids:
            raise ValueError("set_reference needs at least one text")
        self._model = model
        self._ids = token_ids
        self._means: dict[str, torch.Tensor] = {}
        self._resampled: OrderedDict[tuple[str, int], torch.Tensor] = OrderedDict()
        self._version = model.weights_version()

    def _current(self) -> None:
        """Forget what was read with other weights (a training step, ``load_state_dict``, an in-place edit)."""
        version = self._model.weights_version()
        if version != self._version:
            self._means.clear()
            self._resampled.clear()
            self._version = version

    def prepare(self, hooks: list[str]) -> None:
        """Read the reference texts once for every layer of each hook template not seen yet (with progress)."""
        model = self._model
        self._current()
        templates = sorted({hook_names.parse(h)[1] for h in hooks if h not in self._means})
        if not templates:
            return
        available = set(model.hook_names())
        wanted = [f"blocks.{layer}.{t}" for t in templates for layer in range(model.n_layers)]
        wanted = [h for h in wanted if h in available and h not in self._means]
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for i, cache in model.iter_capture(self._ids, wanted, progress=len(self._ids) >= 8):
            n = len(self._ids[i])
            for h in wanted:
                acts = cache[h].reshape(n, -1).double().sum(0).cpu()
                sums[h] = sums[h] + acts if h in sums else acts
            count += n
        self._means.update({h: (total / count).float() for h, total in sums.items()})

    def mean(self, hook: str) -> torch.Tensor:
        """``[width]``: the mean activation at ``hook`` over every position of every reference text."""
        self.prepare([hook])
        return self._means[hook]

    def resample(self, hook: str, n_tokens: int, seed: int) -> torch.Tensor:
        """``[n_tokens, width]``: one reference text picked by ``seed``, position p taken mod its length."""
        self._current()
        index = int(np.random.default_rng(seed).integers(len(self._ids)))
        key = (hook, index)
        if key not in self._resampled:
            ids = self._ids[index]
            self._resampled[key] = self._model.capture(ids, [hook])[hook].reshape(len(ids), -1).float().cpu()
            while len(self._resampled) > 16:
                self._resampled.popitem(last=False)
        chosen = self._resampled[key]
        return chosen[torch.arange(n_tokens) % chosen.shape[0]]
