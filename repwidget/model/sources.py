"""The activations patches read (:class:`repwidget.Patch` takes its values from a run on other ids): one pass per
source, kept for the patches that follow (a sweep of many patches reads one pass)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..interventions import as_tuple
from ..options import options

if TYPE_CHECKING:
    from ..run import Run
    from .model import Model


#: remembered sources hold at most this share of ``rw.options.max_capture_bytes``
SHARE = 0.25


class Sources:
    """The activations patches of ``model`` read, by ``(source ids, hook, the source's interventions)`` and the
    weights version they were computed with (after the weights change, a source is read again). At most
    :attr:`limit` are kept and at most :data:`SHARE` of ``rw.options.max_capture_bytes`` (:attr:`nbytes`), the
    least recently used dropped first."""

    limit = 256

    def __init__(self, model: Model) -> None:
        self.model = model
        self._kept: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.nbytes = 0  #: what the kept activations hold (their storages)

    def _key(self, source: Sequence[int], hook: str, ivs: tuple) -> tuple:
        return (tuple(source), hook, ivs, self.model.weights_version())

    def remember(self, source: Sequence[int], run: Run) -> None:
        """Keep ``run``'s captures as what patches from ``source`` (with ``run``'s interventions) read."""
        ivs = as_tuple(run.interventions)
        for hook in run:
            self._keep((tuple(source), hook, ivs, run.weights_version), run[hook])
        self._trim()

    def activation(self, source: Sequence[int], hook: str, interventions=()) -> torch.Tensor:
        """The activation at ``hook`` on ``source`` ids, with ``interventions`` applied (read once, then kept)."""
        ivs = as_tuple(interventions)
        key = self._key(source, hook, ivs)
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        model, ids = self.model, list(source)
        value = model.run(ids, ivs, capture=[hook])[hook] if ivs else model.capture(ids, [hook])[hook]
        self._keep(key, value)
        self._trim()
        return value

    def _keep(self, key: tuple, value: torch.Tensor) -> None:
        if key in self._kept:
            self.nbytes -= _held(self._kept.pop(key))
        self._kept[key] = value
        self.nbytes += _held(value)

    def _trim(self) -> None:
        version = self.model.weights_version()
        for key in [key for key in self._kept if key[3] != version]:  # read with other weights: never read again
            self.nbytes -= _held(self._kept.pop(key))
        budget = SHARE * options.max_capture_bytes
        while self._kept and (len(self._kept) > self.limit or self.nbytes > budget):
            self.nbytes -= _held(self._kept.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._kept)


def _held(tensor: torch.Tensor) -> int:
    """The bytes ``tensor`` keeps alive (its whole storage: a capture may be a view of a larger tensor)."""
    return tensor.untyped_storage().nbytes()
