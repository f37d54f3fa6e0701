"""Attention head scores from a run's patterns: previous-token, induction, duplicate-token, first-token."""

from __future__ import annotations

import torch

from ..model.attention import SCORES
from ..run import Run

__all__ = ["SCORES", "head_scores"]


def head_scores(run: Run) -> dict[str, torch.Tensor]:
    """Each score as a ``[layer, head]`` tensor in [0, 1].

    - ``previous_token``: mean attention from position q to q-1.
    - ``induction``: for tokens seen before, attention to the token right after an earlier
      occurrence (the ``A B ... A -> B`` move); mean over such queries.
    - ``duplicate_token``: for tokens seen before, attention to their earlier occurrences.
    - ``first_token``: mean attention to position 0 (the "attention sink").

    A score with no query to average over (no repeated token) is 0. Computed a block of query rows at
    a time (:meth:`repwidget.Run.summary`): no layer's pattern is ever held whole.
    """
    return run.summary()[1]
