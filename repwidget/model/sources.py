"""The activations patches read (:class:`repwidget.Patch` takes its values from a run on other ids): one pass per
source, kept for the patches that follow (a sweep of many patches reads one pass)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..interventions import as_tuple

if TYPE_CHECKING:
    from ..run import Run
    from .model import Model


class Sources:
    """The activations patches of ``model`` read, by ``(source ids, hook, the source's interventions)`` and the
    weights version they were computed with (after the weights change, a source is read again). At most
    :attr:`limit` are kept, the oldest dropped first."""

    limit = 256

    def __init__(self, model: Model) -> None:
        self.model = model
        self._kept: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def _key(self, source: Sequence[int], hook: str, ivs: tuple) -> tuple:
        return (tuple(source), hook, ivs, self.model.weights_version())

    def remember(self, source: Sequence[int], run: Run) -> None:
        """Keep ``run``'s captures as what patches from ``source`` (with ``run``'s interventions) read."""
        ivs = as_tuple(run.interventions)
        for hook in run:
            self._kept[(tuple(source), hook, ivs, run.weights_version)] = run[hook]
        self._trim()

    def activation(self, source: Sequence[int], hook: str, interventions=()) -> torch.Tensor:
        """The activation at ``hook`` on ``source`` ids, with ``interventions`` applied (read once, then kept)."""
        ivs = as_tuple(interventions)
        key = self._key(source, hook, ivs)
        if key not in self._kept:
            model = self.model
            if ivs:
                self._kept[key] = model.run(list(source), ivs, capture=[hook])[hook]
            else:
                self._kept[key] = model.capture(list(source), [hook])[hook]
            self._trim()
        return self._kept[key]

    def _trim(self) -> None:
        while len(self._kept) > self.limit:
            self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)
