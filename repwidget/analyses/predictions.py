"""Next-token predictions of a run."""

from __future__ import annotations

from ..run import Run


def top_tokens(run: Run, position: int = -1, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most likely next tokens at ``position`` as ``(token, probability)``, most likely first."""
    logits = run.logits_at(position)
    if logits is None:
        raise ValueError("this model has no unembedding, so a run makes no next-token predictions")
    top = logits.float().softmax(-1).topk(k)
    tokens = run.model.to_str_tokens(top.indices.tolist())
    return [(t, float(p)) for t, p in zip(tokens, top.values.tolist(), strict=True)]
