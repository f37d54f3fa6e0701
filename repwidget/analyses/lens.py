"""The logit lens: each layer's residual stream read through the final norm and the unembedding; with a
:class:`~repwidget.analyses.tuned_lens.TunedLens`, through its translator first (the tuned lens)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..run import Run

if TYPE_CHECKING:
    from .tuned_lens import TunedLens

CHUNK = 256  # positions unembedded at once, so a long text never holds [pos, vocab] for every layer


@dataclass(frozen=True)
class Lens:
    """``ids`` and ``probs`` are ``[layer, position, k]``: the top-``k`` tokens after each block."""

    ids: torch.Tensor
    probs: torch.Tensor
    positions: range


def logit_lens(run: Run, positions: range | None = None, k: int = 1, lens: TunedLens | None = None) -> Lens:
    """Top-``k`` next tokens and probabilities read from every ``hook_resid_post`` of ``run``.

    The last layer's row is the model's own prediction. Needs ``blocks.*.hook_resid_post`` captured
    (the default capture) and a model with an unembedding; on the nnsight backend, a run without them is
    read again in one pass that brings back only the top tokens. ``lens=tuned`` (a :class:`repwidget.TunedLens`
    for this model) reads each layer through its translator first: the tuned lens.
    """
    n = len(run.token_ids)
    positions = range(n) if positions is None else positions
    if positions.step != 1 or not (0 <= positions.start <= positions.stop <= n):
        raise ValueError(f"positions must be a contiguous range inside 0..{n}, got {positions}")
    captured = all(f"blocks.{layer}.hook_resid_post" in run for layer in range(run.model.n_layers))
    weightless = getattr(run.model, "weightless", False)  # no local weights: never read here
    if lens is not None:
        _check_lens(run.model, lens)
        if weightless or not captured:
            raise ValueError(
                "the tuned lens reads captured residual streams with the model's weights here: run with "
                "the default capture (blocks.*.hook_resid_post) and local weights"
            )
    elif (not captured or weightless) and run.model.lens_in_pass:  # read where the model runs, the top tokens back
        ids, probs = run.model.lens_in_pass_of(run, positions, k)
        return Lens(ids.cpu(), probs.cpu(), positions)
    ids, probs = [], []
    for layer in range(run.model.n_layers):
        resid = run[f"blocks.{layer}.hook_resid_post"]
        layer_ids, layer_probs = [], []
        for start in range(positions.start, positions.stop, CHUNK):
            stop = min(start + CHUNK, positions.stop)
            top = _readout(run.model, lens, layer, resid[start:stop]).float().softmax(-1).topk(k)
            layer_ids.append(top.indices.cpu())
            layer_probs.append(top.values.cpu())
        ids.append(torch.cat(layer_ids) if layer_ids else torch.zeros(0, k, dtype=torch.long))
        probs.append(torch.cat(layer_probs) if layer_probs else torch.zeros(0, k))
    return Lens(torch.stack(ids), torch.stack(probs), positions)


def lens_kl(source: Run | Any, texts: Sequence[Any] | None = None, lens: TunedLens | None = None) -> torch.Tensor:
    """``[n_layers]``: the mean KL(output || lens) in nats of each layer's lens distribution from the model's own
    (the last layer's: 0), over every position after the first (``<bos>``). ``source`` is a run (its captured
    residual streams), or a model with ``texts`` (read in padded batches). ``lens=None``: the logit lens;
    ``lens=tuned``: the tuned lens."""
    if isinstance(source, Run):
        if texts is not None:
            raise ValueError("lens_kl(run) reads the run's own tokens; pass texts with a model: lens_kl(model, texts)")
        model = source.model
        hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(model.n_layers)]
        if any(h not in source for h in hooks):
            raise ValueError("lens_kl needs every blocks.*.hook_resid_post of the run: run with the default capture")
        if len(source.token_ids) < 2:
            raise ValueError("lens_kl needs a run of two tokens or more (the first, <bos>, is left out)")
        if lens is not None:
            _check_lens(model, lens)
        return kl_to_final(model, [source[h][1:] for h in hooks], lens).mean(1)
    if texts is None:
        raise TypeError("lens_kl takes a Run, or a model and texts: lens_kl(model, texts, lens=...)")
    model = source
    if lens is not None:
        _check_lens(model, lens)
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(model.n_layers)]
    total, tokens = torch.zeros(model.n_layers, dtype=torch.float64), 0
    for _, cache in model.iter_capture(_ids(model, texts), hooks):
        resids = [cache[h][1:] for h in hooks]
        total += kl_to_final(model, resids, lens).double().sum(1)
        tokens += len(resids[0])
    if tokens == 0:
        raise ValueError("lens_kl needs a text of two tokens or more (the first, <bos>, is left out)")
    return (total / tokens).float()


def kl_to_final(model: Any, resids: list[torch.Tensor], lens: TunedLens | None = None) -> torch.Tensor:
    """``[layer, position]``: KL(final || lens) in nats, of each layer's lens distribution (``resids[l]``,
    ``[pos, d_model]``, read through the model's head, after ``lens``'s translator if given) from the last one's
    (the model's own prediction)."""
    out = torch.empty(len(resids), len(resids[-1]))
    for start in range(0, len(resids[-1]), CHUNK):
        stop = min(start + CHUNK, len(resids[-1]))
        final = model.logits_from_resid(resids[-1][start:stop]).float().log_softmax(-1)
        for layer, resid in enumerate(resids):
            read = _readout(model, lens, layer, resid[start:stop]).float().log_softmax(-1)
            out[layer, start:stop] = (final.exp() * (final - read)).sum(-1).cpu()
    return out


def _readout(model: Any, lens: TunedLens | None, layer: int, resid: torch.Tensor) -> torch.Tensor:
    """Logits of ``resid`` after block ``layer``: through ``lens``'s translator first, if given."""
    return model.logits_from_resid(resid if lens is None else lens.translate(layer, resid))


def _check_lens(model: Any, lens: Any) -> None:
    """Refuse a ``lens`` that is not a tuned lens of ``model`` (see ``TunedLens.check_fits``)."""
    if not callable(getattr(lens, "check_fits", None)) or not callable(getattr(lens, "translate", None)):
        raise TypeError(f"lens must be a rw.TunedLens or None (the logit lens), got {type(lens).__name__}")
    lens.check_fits(model)


def _ids(model: Any, texts: Sequence[Any]) -> list[list[int]]:
    from ..texts import token_ids

    return token_ids(model, texts)
