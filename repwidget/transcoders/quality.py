"""How well transcoders stand in for a model's MLPs: explained variance, the loss with MLPs replaced, and the share
of the final logit that their error carries."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from ..interventions import Replace
from ..texts import token_ids
from .model import Transcoder, TranscoderSet


@dataclass(frozen=True)
class Quality:
    """Per-layer quality of a transcoder set on some texts (see :func:`quality` for each definition)."""

    layers: list[int]
    explained_variance: list[float]  #: of each layer's MLP output (``hook_mlp_out``), over every token
    loss_replaced: list[float]  #: the model's loss with that layer's MLP replaced by its transcoder
    error_fraction: list[float]  #: the error's share of that layer's direct effect on the final logit
    loss_clean: float  #: the model's own loss (mean next-token cross-entropy, nats)
    loss_all_replaced: float  #: the loss with every MLP replaced at once (errors compound)
    error_fraction_total: float  #: the error's share of every MLP's direct effect on the final logit
    tokens: int  #: predicted tokens the losses average over

    def rows(self) -> list[dict[str, float]]:
        """One dict per layer (for tables and charts)."""
        keys = ("explained_variance", "loss_replaced", "error_fraction")
        return [{"layer": layer, **{k: getattr(self, k)[i] for k in keys}} for i, layer in enumerate(self.layers)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def chart(self):
        """An altair chart of the per-layer quality (``rw.charts.transcoder_quality``)."""
        from ..views import charts

        return charts.transcoder_quality(self)

    def __str__(self) -> str:
        lines = [f"loss: clean {self.loss_clean:.4f}, every MLP replaced {self.loss_all_replaced:.4f} nats "
                 f"({self.tokens} tokens); error share of the final logit {self.error_fraction_total:.3f}",
                 "layer  explained variance  loss (this MLP replaced)  error share"]  # fmt: skip
        lines += [f"{r['layer']:>5}  {r['explained_variance']:>18.4f}  {r['loss_replaced']:>24.4f}  "
                  f"{r['error_fraction']:>11.3f}" for r in self.rows()]  # fmt: skip
        return "\n".join(lines)


def _loss(run: Any, ids: list[int]) -> float:
    """Summed next-token cross-entropy of ``run`` on its own ids."""
    logits = run.logits[:-1].float()
    return float(
        torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:], device=logits.device), reduction="sum")
    )


def quality(model: Any, transcoders: TranscoderSet | Sequence[Transcoder], texts: Iterable[Any]) -> Quality:
    """Measure ``transcoders`` (a set, one per layer of ``model``, or transcoders of some layers) on ``texts``.

    - ``explained_variance[L]``: ``1 - sum |y - t(x)|^2 / sum |y - mean y|^2`` over every token after the first,
      ``x`` the MLP input (``mlp.hook_in``) and ``y`` the MLP output (``hook_mlp_out``) of a clean run.
    - ``loss_replaced[L]``: the mean next-token loss with MLP ``L``'s output replaced by ``t_L(x_L)`` (a
      :class:`~repwidget.interventions.Replace` at ``hook_mlp_out``; the rest of the model runs as it is).
    - ``loss_all_replaced``: every MLP that has a transcoder replaced at once, each transcoder reading the MLP
      input of that replaced pass (one rerun per layer, each adding that layer's replacement).
    - ``error_fraction[L]``: at the last position of each text, for the clean run's top token, the direct effect
      on its logit (the final norm's scale frozen, as in ``rw.analyses.direct_logit_attribution``) of the error
      ``e_L = y_L - t_L(x_L)`` and of the reconstruction ``t_L(x_L)``; the error's share is
      ``sum |effect(e_L)| / sum (|effect(t_L(x_L))| + |effect(e_L)|)`` over texts, and ``error_fraction_total``
      the same summed over layers (1 minus the reconstruction's share). NaN on a post-norm model (BERT), whose
      final stream is not a sum of components.
    """
    from ..analyses.attribution import direct_logit_attribution

    transcoders = _checked(model, transcoders)
    n = len(transcoders)
    ins = [t.hook_in for t in transcoders]
    outs = [t.hook_out for t in transcoders]
    sse, sum_y, sum_y2, count = [0.0] * n, [None] * n, [0.0] * n, 0
    loss_clean, loss_one, loss_all, tokens = 0.0, [0.0] * n, 0.0, 0
    err_abs, rec_abs = [0.0] * n, [0.0] * n
    additive = model.arch.additive and model.has_unembed
    streams = [f"blocks.{model.n_layers - 1}.hook_resid_post", "blocks.0.hook_resid_pre"]  # what attribution reads
    for ids in tqdm(token_ids(model, texts), desc="transcoder quality"):
        if len(ids) < 2:
            continue
        clean = model.run(ids, capture=[*ins, *outs, *streams])
        loss_clean += _loss(clean, ids)
        tokens += len(ids) - 1
        attribution = None
        if additive:
            top = int(clean.logits_at(len(ids) - 1).argmax())
            attribution = direct_logit_attribution(clean, top, position=len(ids) - 1)
        for i, t in enumerate(transcoders):
            x, y = clean[ins[i]].float(), clean[outs[i]].float()
            recon = t(x).to(y.device)
            rows, target = recon[1:], y[1:]
            sse[i] += float((target - rows).pow(2).sum())
            sum_y[i] = target.sum(0) if sum_y[i] is None else sum_y[i] + target.sum(0)
            sum_y2[i] += float(target.pow(2).sum())
            loss_one[i] += _loss(clean.rerun([Replace(outs[i], recon)], capture=[]), ids)
            if attribution is not None:
                err_abs[i] += abs(float(attribution.of(y[-1] - recon[-1])))
                rec_abs[i] += abs(float(attribution.of(recon[-1])))
        count += len(ids) - 1
        loss_all += _loss(_all_replaced(model, transcoders, clean), ids)
    if tokens == 0:
        raise ValueError("no text of two tokens or more to measure transcoders on")
    ev = [1 - sse[i] / max(sum_y2[i] - float(sum_y[i].pow(2).sum()) / count, 1e-30) for i in range(n)]
    share = lambda e, r: e / (e + r) if e + r > 0 and additive else math.nan  # noqa: E731
    return Quality(
        layers=[t.layer for t in transcoders],
        explained_variance=ev,
        loss_replaced=[v / tokens for v in loss_one],
        error_fraction=[share(err_abs[i], rec_abs[i]) for i in range(n)],
        loss_clean=loss_clean / tokens,
        loss_all_replaced=loss_all / tokens,
        error_fraction_total=share(sum(err_abs), sum(rec_abs)),
        tokens=tokens,
    )


def _checked(model: Any, transcoders: Any) -> list[Transcoder]:
    """The transcoders by layer, each checked to fit ``model`` (one-line ValueError)."""
    if isinstance(transcoders, TranscoderSet):
        transcoders.check_fits(model)
        return list(transcoders)
    items = sorted(transcoders, key=lambda t: t.layer) if isinstance(transcoders, (list, tuple)) else None
    if not items or not all(isinstance(t, Transcoder) for t in items) or len({t.layer for t in items}) != len(items):
        raise TypeError("quality takes a TranscoderSet or a list of rw.Transcoder of distinct layers")
    for t in items:
        if t.d_model != model.d_model or t.layer >= model.n_layers:
            raise ValueError(f"{t!r} does not fit this model (d_model {model.d_model}, {model.n_layers} layers)")
        for hook in (t.hook_in, t.hook_out):
            model.check_hook(hook)
    return items


def _all_replaced(model: Any, transcoders: list[Transcoder], clean: Any) -> Any:
    """``clean``'s input with every MLP replaced by its transcoder: layer ``L``'s transcoder reads the MLP input of
    the pass in which MLPs ``0..L-1`` are already replaced."""
    replaced: list[Replace] = []
    run = clean
    for i, t in enumerate(transcoders):
        x = run[t.hook_in].float()
        replaced.append(Replace(t.hook_out, t(x)))
        following = [transcoders[i + 1].hook_in] if i + 1 < len(transcoders) else []
        run = clean.rerun(replaced, capture=following)
    return run
