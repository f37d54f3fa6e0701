"""Next-token losses of a run."""

from __future__ import annotations

import torch

from ..run import Run


def token_losses(run: Run) -> torch.Tensor:
    """``[pos - 1]`` cross-entropy (nats) of predicting token ``t + 1`` from position ``t``."""
    if run.logits is None:
        raise ValueError("this model has no unembedding, so a run has no next-token loss")
    logits = run.logits[:-1].float()
    targets = torch.tensor(run.token_ids[1:], device=logits.device)
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")
