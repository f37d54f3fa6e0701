"""Which heads matter when they are taken out: each head ablated in turn with a random-head control, and the
Hydra view of each head's direct effect against its total effect (how much the rest of the model repairs)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..analyses.attribution import direct_logit_attribution
from ..interventions import Ablate, Intervention
from ..model.model import Model, TokensLike
from ..run import Run
from .sweeps import Metric, logit_diff, measured


@dataclass
class Ablations:
    """Each head's effect on a metric when it is ablated (``values``: ablated minus clean, mean over prompts;
    ``spread`` over prompts), with a random-head control: over a sweep of every head, the effects of heads drawn
    at random (``control_mean``, ``control_std``) say how much ablating *any* head moves the metric; ``z`` is each
    head's effect in those units (zero ablation of early heads breaks a model generally: mean ablation is the
    default)."""

    mode: str
    metric: str
    values: torch.Tensor  # [layer, head]
    spread: torch.Tensor
    clean: float
    control_mean: float
    control_std: float

    @property
    def z(self) -> torch.Tensor:
        return (self.values - self.control_mean) / (self.control_std if self.control_std > 1e-12 else 1.0)

    def top(self, k: int = 5) -> list[tuple[tuple[int, int], float]]:
        flat = self.values.reshape(-1)
        order = flat.abs().argsort(descending=True)[:k]
        return [(tuple(int(i) for i in torch.unravel_index(o, self.values.shape)), float(flat[o])) for o in order]


def ablation_sweep(
    model: Model,
    prompts: TokensLike | Sequence[TokensLike],
    metric: Metric | Callable[[Run], float],
    mode: str = "mean",
    batch_size: int | None = None,
    seed: int = 0,
) -> Ablations:
    """Ablate every head in turn (``mode``: ``"mean"`` over the prompts themselves unless the model has
    reference texts, ``"zero"``, ``"resample"``) and read ``metric`` on each prompt."""
    many = isinstance(prompts, (list, tuple)) and prompts and not isinstance(prompts[0], int)
    texts = list(prompts) if many else [prompts]
    ids = [model.to_ids(t) for t in texts]
    saved = model.reference
    try:
        if mode != "zero" and model.reference is None:
            model.set_reference(ids)  # for this sweep only
        heads = [(layer, head) for layer in range(model.n_layers) for head in range(model.n_heads)]
        effects, cleans = [], []
        for prompt in ids:
            clean = model.run(prompt, capture=[])
            base = metric(clean)
            sets = [(Ablate(la, head=he, mode=mode, seed=seed),) for la, he in heads]
            effect = torch.tensor([v - base for v in measured(model, clean, sets, metric, batch_size)])
            effects.append(effect.reshape(model.n_layers, model.n_heads))
            cleans.append(base)
    finally:
        model.reference = saved
    stacked = torch.stack(effects)
    values = stacked.mean(0)
    rng = random.Random(seed)
    draws = torch.tensor([float(values.reshape(-1)[rng.randrange(values.numel())]) for _ in range(1000)])
    name = getattr(metric, "name", getattr(metric, "__name__", "metric"))
    spread = stacked.std(0, unbiased=False) if len(ids) > 1 else torch.zeros_like(values)
    return Ablations(mode, name, values, spread, sum(cleans) / len(cleans), float(draws.mean()), float(draws.std()))


@dataclass
class Hydra:
    """Each head's direct effect on a logit difference (the change of its direct logit attribution when it is
    ablated, everything downstream frozen) against its total effect (the re-run): ``compensation = total -
    direct`` is how much the rest of the model makes up for it (negative: repair)."""

    direct: torch.Tensor  # [layer, head]
    total: torch.Tensor
    mode: str

    @property
    def compensation(self) -> torch.Tensor:
        return self.total - self.direct

    def chart(self):
        """Direct against total effect, one point per head (altair)."""
        from ..views.charts import hydra_scatter

        return hydra_scatter(self)


def hydra(
    model: Model,
    prompts: TokensLike | Sequence[TokensLike],
    target: int | str,
    foil: int | str,
    mode: str = "mean",
    position: int = -1,
    batch_size: int | None = None,
) -> Hydra:
    """The Hydra view over ``prompts``: for every head, its direct effect on ``logit(target) - logit(foil)``
    against its total effect when ablated (``mode``), averaged over prompts."""
    many = isinstance(prompts, (list, tuple)) and prompts and not isinstance(prompts[0], int)
    ids = [model.to_ids(t) for t in (list(prompts) if many else [prompts])]
    metric = logit_diff(model, target, foil, position)
    saved = model.reference
    try:
        if mode != "zero" and model.reference is None:
            model.set_reference(ids)
        directs, totals = [], []
        heads = [(layer, head) for layer in range(model.n_layers) for head in range(model.n_heads)]
        for prompt in ids:
            clean = model.run(prompt, capture=[])
            dla = direct_logit_attribution(clean, target, foil, position)
            ablations: list[Intervention] = [Ablate(la, head=he, mode=mode) for la, he in heads]
            m_clean = metric(clean)
            effects = measured(model, clean, [(a,) for a in ablations], metric, batch_size)
            total = torch.tensor([v - m_clean for v in effects]).reshape(model.n_layers, model.n_heads)
            direct = torch.zeros_like(total)
            n = len(prompt)
            for (layer, head), ablation in zip(heads, ablations, strict=True):
                z = _ablated_z(model, ablation, n, dla.position)
                direct[layer, head] = dla.head_share(layer, head, z) - dla.heads[layer, head]
            directs.append(direct)
            totals.append(total)
    finally:
        model.reference = saved
    return Hydra(torch.stack(directs).mean(0), torch.stack(totals).mean(0), mode)


def _ablated_z(model: Model, ablation: Ablate, n: int, position: int) -> torch.Tensor:
    """The ``[d_head]`` value an ablation gives its head's ``z`` at ``position``."""
    d = model.d_head
    cols = slice(ablation.head * d, (ablation.head + 1) * d)
    if ablation.mode == "zero":
        return torch.zeros(d)
    if ablation.mode == "mean":
        return model.reference.mean(ablation.hook)[cols]
    return model.reference.resample(ablation.hook, n, ablation.seed)[position, cols]
