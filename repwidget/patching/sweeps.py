"""Activation patching: each site of a clean run patched into a corrupted one (or the other way), exactly or by
attribution patching's first-order estimate, with the metrics the sweeps read.

Direction as in TransformerLens's ``patching`` functions: the clean run's activation is patched into the
corrupted run, one site at a time. Exact sweeps re-run the corrupted input only from the patched block (the
blocks before reused), many patches per batch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..analyses.attribution import check_position, resolve_token, token_label
from ..interventions import Patch
from ..model.model import Model, TokensLike
from ..model.reruns import iter_reruns
from ..options import options
from ..run import Run

#: what a sweep patches: the hook it reads, and the axes of its result
SWEEP_SITES: dict[str, tuple[str, tuple[str, ...]]] = {
    "resid_pre": ("hook_resid_pre", ("layer", "position")),
    "attn_out": ("hook_attn_out", ("layer", "position")),
    "mlp_out": ("hook_mlp_out", ("layer", "position")),
    "heads": ("attn.hook_z", ("layer", "head")),
    "heads_by_pos": ("attn.hook_z", ("layer", "head", "position")),
}
METHODS = ("exact", "attribution")
#: the patches of a sweep's cells held at once take at most this share of ``rw.options.max_capture_bytes``
PATCHES_SHARE = 0.05


@dataclass(frozen=True)
class Metric:
    """A number read off a run's logits at ``position``, differentiable in them (so attribution patching can
    take its gradient). ``normalized``: sweeps report ``(m - m_corrupted) / (m_clean - m_corrupted)``, so the
    clean run scores 1 and the corrupted 0. ``resolve``: for a metric of string tokens, the metric with their ids
    resolved after a prompt (``for_prompt``); calling the metric on a run resolves them after its prompt."""

    name: str
    of_logits: Callable[[torch.Tensor], torch.Tensor]
    position: int = -1
    normalized: bool = True
    resolve: Callable[[tuple[int, ...]], Metric] | None = field(default=None, repr=False, compare=False)

    def for_prompt(self, ids: Sequence[int]) -> Metric:
        """This metric on prompt ``ids``: its string tokens resolved as what follows the prompt up to ``position``
        (itself when it has none); a position outside the prompt is a one-line error."""
        position = check_position(self.position, len(ids))
        return self if self.resolve is None else self.resolve(tuple(ids[: position + 1]))

    def __call__(self, run: Run) -> float:
        metric = self.for_prompt(run.token_ids)
        return float(metric.of_logits(run.logits_at(self.position).float()))


def logit_diff(model: Model, target: int | str, foil: int | str, position: int = -1) -> Metric:
    """The logit of ``target`` minus that of ``foil`` at ``position`` (normalised: clean 1, corrupted 0).

    A token id, or a string: the one token that would follow the prompt (``"Mary"`` after ``"... to"`` is
    ``" Mary"`` on a byte-level BPE tokenizer; :func:`rw.analyses.resolve_token`), resolved on each prompt and
    refused when it is several tokens. The name says the ids used: ``logit_diff(' Mary'#5329 - ' John'#3117)``.
    """

    def of(t: int, f: int) -> Metric:
        name = f"logit_diff({token_label(model, t)} - {token_label(model, f)})"
        return Metric(name, lambda logits: logits[t] - logits[f], position)

    if not isinstance(target, str) and not isinstance(foil, str):
        return of(resolve_token(model, target, ()), resolve_token(model, foil, ()))
    for token in (target, foil):
        if isinstance(token, str) and (model.tokenizer is None or not token):
            resolve_token(model, token, ())  # its one-line error, now rather than at the first prompt
    resolved: dict[tuple[int, ...], Metric] = {}

    def resolve(prompt: tuple[int, ...]) -> Metric:
        if prompt not in resolved:
            if len(resolved) >= 64:
                resolved.clear()
            resolved[prompt] = of(resolve_token(model, target, prompt), resolve_token(model, foil, prompt))
        return resolved[prompt]

    def unresolved(logits: torch.Tensor) -> torch.Tensor:
        raise ValueError("this metric's tokens are strings, read after a prompt: use metric.for_prompt(ids)")

    return Metric(f"logit_diff({target!r} - {foil!r})", unresolved, position, resolve=resolve)


def _on_prompts(metric: Metric | Callable[[Run], float], prompts: Sequence[Sequence[int]]) -> Any:
    """``metric`` resolved on every prompt of a sweep: the same tokens on each, or a one-line error."""
    if not isinstance(metric, Metric):
        return metric
    found = {m.name: m for m in (metric.for_prompt(ids) for ids in prompts)}
    if len(found) > 1:
        raise ValueError(f"{metric.name} names different tokens on these prompts ({', '.join(found)}): give token ids")
    return next(iter(found.values()))


@dataclass
class Sweep:
    """The metric after each patch: ``values`` (mean over prompt pairs) and ``spread`` (their standard deviation,
    0 for one pair), with ``axes`` naming its dimensions."""

    site: str
    method: str
    metric: str
    values: torch.Tensor
    spread: torch.Tensor
    axes: tuple[str, ...]
    clean: float  #: the metric of the clean runs (mean), before normalising
    corrupted: float  #: of the corrupted runs
    patches: Mapping[tuple[int, ...], Patch] = field(default_factory=dict, repr=False)

    def top(self, k: int = 5) -> list[tuple[tuple[int, ...], float]]:
        """The ``k`` cells with the largest absolute values, as ``(index, value)``."""
        flat = self.values.reshape(-1)
        order = flat.abs().argsort(descending=True)[:k]
        return [(tuple(int(i) for i in torch.unravel_index(o, self.values.shape)), float(flat[o])) for o in order]

    def patch(self, *index: int) -> Patch:
        """The intervention that cell applies (to the corrupted input of the first pair)."""
        return self.patches[tuple(index)]

    def chart(self):
        """A heatmap of the values (altair; ``rw.charts.offline()`` draws it with no network)."""
        from ..views.charts import sweep_heatmap

        return sweep_heatmap(self)

    def __repr__(self) -> str:
        best = ", ".join(f"{i}: {v:+.2f}" for i, v in self.top(3))
        shape = tuple(self.values.shape)
        return f"<rw.patching.Sweep {self.site} ({self.method}) of {self.metric}: shape {shape}; top {best}>"


def measure(metric: Metric | Callable[[Run], float], runs: Sequence[Run], chunk: int = 256) -> list[float]:
    """``metric`` of each run; a :class:`Metric`'s logits unembedded ``chunk`` runs at a time."""
    if not isinstance(metric, Metric) or type(metric).__call__ is not Metric.__call__:
        return [float(metric(r)) for r in runs]
    values = []
    for i in range(0, len(runs), chunk):
        on = [metric.for_prompt(run.token_ids) for run in runs[i : i + chunk]]  # its tokens after each prompt
        logits = Run.logits_of(runs[i : i + chunk], metric.position)
        values += [float(m.of_logits(row.float())) for m, row in zip(on, logits, strict=True)]
    return values


def measured(model: Model, base: Run, sets: list[tuple], metric: Metric | Callable[[Run], float], batch_size) -> list:
    """``metric`` of ``base`` re-run with each set of interventions, read a batch at a time (one batch of runs held;
    the batches' size fits ``rw.options.max_capture_bytes``)."""
    values: list[float] = [0.0] * len(sets)
    for indices, runs in iter_reruns(model, base, sets, [], batch_size):
        for i, value in zip(indices, measure(metric, runs), strict=True):
            values[i] = value
    return values


def _pairs(clean: Any, corrupted: Any) -> list[tuple[TokensLike, TokensLike]]:
    many = isinstance(clean, (list, tuple)) and clean and not isinstance(clean[0], int)
    pairs = list(zip(clean, corrupted, strict=True)) if many else [(clean, corrupted)]
    if not pairs:
        raise ValueError("no prompt pairs")
    return pairs


def _metric(model: Model, metric: Metric | Callable[[Run], float]) -> Metric:
    if isinstance(metric, Metric):
        return metric
    if not callable(metric):
        raise TypeError(f"metric must be rw.patching.logit_diff(...) or a function of a Run, got {metric!r:.60}")
    raise TypeError(
        "attribution patching needs a metric of the logits (rw.patching.Metric); a function of a Run works with "
        "method='exact'"
    )


def sweep(
    model: Model,
    clean: TokensLike | Sequence[TokensLike],
    corrupted: TokensLike | Sequence[TokensLike],
    metric: Metric | Callable[[Run], float],
    site: str = "resid_pre",
    method: str = "exact",
    batch_size: int | None = None,
    direction: str = "denoise",
) -> Sweep:
    """Patch each ``site`` of the clean run into the corrupted one and read ``metric``: ``resid_pre``,
    ``attn_out``, ``mlp_out`` (layer x position), ``heads`` (layer x head, every position) or ``heads_by_pos``.

    ``clean`` and ``corrupted`` are one prompt each or lists of prompt pairs (of equal length within a pair):
    the result is the mean over pairs, with their spread. ``method="exact"`` re-runs each patch (only from the
    patched block, in batches); ``"attribution"`` estimates every site at once from one clean pass and one
    corrupted pass with gradients: ``(clean - corrupted) . d metric / d activation``.
    ``direction="noise"`` patches the corrupted run's activations into the clean run instead (which sites break
    the clean behaviour): each cell's patch then applies to the clean prompt (what the explorer shows).
    """
    if direction not in ("denoise", "noise"):
        raise ValueError(f"direction must be 'denoise' (clean into corrupted) or 'noise', got {direction!r:.40}")
    if site not in SWEEP_SITES:
        raise ValueError(f"site must be one of {', '.join(SWEEP_SITES)}, got {site!r:.40}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r:.40}")
    if method == "attribution":
        metric = _metric(model, metric)
    pairs = [(model.to_ids(a), model.to_ids(b)) for a, b in _pairs(clean, corrupted)]
    for i, (a, b) in enumerate(pairs):
        if len(a) != len(b):
            raise ValueError(
                f"pair {i}: the clean prompt has {len(a)} tokens and the corrupted {len(b)}; patch equal lengths"
            )
    metric = _on_prompts(metric, [ids for pair in pairs for ids in pair])
    template, axes = SWEEP_SITES[site]
    results, cleans, corrupts, patches = [], [], [], {}
    for number, (clean_ids, corrupted_ids) in enumerate(pairs):
        run = exact if method == "exact" else attribution
        source, target = (clean_ids, corrupted_ids) if direction == "denoise" else (corrupted_ids, clean_ids)
        values, m_source, m_target, cells = run(model, source, target, metric, site, template, batch_size)
        m_clean, m_corrupted = (m_source, m_target) if direction == "denoise" else (m_target, m_source)
        if getattr(metric, "normalized", False):
            gap = m_clean - m_corrupted
            values = (values - m_corrupted) / (gap if abs(gap) > 1e-12 else 1.0)
        results.append(values)
        cleans.append(m_clean)
        corrupts.append(m_corrupted)
        if number == 0:
            patches = cells
    stacked = torch.stack(results)
    name = getattr(metric, "name", getattr(metric, "__name__", "metric"))
    spread = stacked.std(0, unbiased=False) if len(results) > 1 else torch.zeros_like(stacked[0])
    return Sweep(
        site,
        method,
        name,
        stacked.mean(0),
        spread,
        axes,
        sum(cleans) / len(cleans),
        sum(corrupts) / len(corrupts),
        patches,
    )


class Cells(Mapping[tuple[int, ...], Patch]):
    """Each cell's :class:`~repwidget.interventions.Patch` from ``source`` ids, made when asked: a sweep holds no
    patch per cell (each holding the prompt's ids, that was layers x heads x positions copies of them)."""

    def __init__(self, template: str, site: str, shape: tuple[int, ...], source: Sequence[int]) -> None:
        self.template, self.site, self.shape, self.source = template, site, shape, tuple(source)

    def __getitem__(self, cell: tuple[int, ...]) -> Patch:
        if cell not in self:
            raise KeyError(cell)
        return _patch(self.template, self.site, tuple(cell), self.source)

    def __contains__(self, cell: object) -> bool:
        return (
            isinstance(cell, tuple)
            and len(cell) == len(self.shape)
            and all(type(i) is int and 0 <= i < size for i, size in zip(cell, self.shape, strict=True))
        )

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        return itertools.product(*(range(size) for size in self.shape))

    def __len__(self) -> int:
        return math.prod(self.shape)


def _patch(template: str, site: str, cell: tuple[int, ...], source: Sequence[int]) -> Patch:
    hook = f"blocks.{cell[0]}.{template}"
    if site == "heads":
        return Patch(hook, source, head=cell[1])
    if site == "heads_by_pos":
        return Patch(hook, source, head=cell[1], positions=[cell[2]])
    return Patch(hook, source, positions=[cell[1]])


def held_patches(n: int) -> int:
    """How many cells' patches of an ``n``-token prompt a sweep holds at once (:data:`PATCHES_SHARE` of the
    budget: each holds its own copy of the ids, about ``8 n`` bytes, and a few hundred more)."""
    return max(64, int(PATCHES_SHARE * options.max_capture_bytes) // (8 * n + 512))


def exact(model, clean_ids, corrupted_ids, metric, site, template, batch_size):
    """Every patch re-run: ``(values, m_clean, m_corrupted, patches by cell)``.

    On a causal model both prompts compute the same activations up to the first token where they differ, so a
    patch at a position before it changes nothing (its cell is the corrupted run's metric, with no rerun), and the
    reruns compute only the positions from there on (``Model.rerun_batch``). Memory: the patches of
    :func:`held_patches` cells and one batch of reruns at a time (each batch's metric read before the next)."""
    hooks = [f"blocks.{layer}.{template}" for layer in range(model.n_layers)]
    clean_run = model.run(clean_ids, capture=hooks)
    model.patch_sources.remember(clean_ids, clean_run)  # every patch reads the clean activations of this one pass
    corrupted_run = model.run(corrupted_ids, capture=[])
    m_corrupted = metric(corrupted_run)
    n = len(corrupted_ids)
    shared = 0
    if model.arch.causal:  # in an encoder every position sees the tokens after it
        shared = next((i for i, (a, b) in enumerate(zip(clean_ids, corrupted_ids, strict=True)) if a != b), n)
    patches = Cells(template, site, _shape(model, site, n), clean_ids)
    changing = [c for c in patches if (c[-1] >= shared if site != "heads" else shared < n)]
    if site != "heads":
        changing.sort(key=lambda c: (c[-1], c[0]))  # by position: the cells of one prefix re-run together
    found: dict[tuple[int, ...], float] = {}
    step = held_patches(n)
    for start in range(0, len(changing), step):
        part = changing[start : start + step]
        values = measured(model, corrupted_run, [(patches[c],) for c in part], metric, batch_size)
        found.update(zip(part, values, strict=True))
    values = torch.tensor([found.get(c, m_corrupted) for c in patches]).reshape(patches.shape)
    return values, metric(clean_run), m_corrupted, patches


def attribution(model, clean_ids, corrupted_ids, metric: Metric, site, template, batch_size):
    """First order: the metric of the patched run estimated as ``m_corrupted + (clean - corrupted) . grad`` at every
    site, from one clean and one corrupted pass (``clean`` is the patch's source, ``corrupted`` its target)."""
    hooks = [f"blocks.{layer}.{template}" for layer in range(model.n_layers)]
    clean_run = model.run(clean_ids, capture=hooks)
    cache, logits = model.with_graph(corrupted_ids, hooks, position=metric.position)
    with torch.enable_grad():  # the metric joins the graph even where the caller turned gradients off
        value = metric.of_logits(logits.float())
        if not isinstance(value, torch.Tensor) or value.numel() != 1 or not value.requires_grad:
            raise ValueError(
                f"attribution patching takes the gradient of the metric ({metric.name}) in the logits, and it does not "
                "depend on them (a constant, or computed outside torch): return a tensor of the logits, or use "
                "method='exact'"
            )
        grads = torch.autograd.grad(value, [cache[h] for h in hooks])
    n = len(corrupted_ids)
    values = []
    for hook, grad in zip(hooks, grads, strict=True):
        delta = (clean_run[hook].float() - cache[hook].detach().float()) * grad.float()
        if site == "heads":
            values.append(delta.sum((0, 2)))  # [heads]
        elif site == "heads_by_pos":
            values.append(delta.sum(2).T)  # [heads, pos]
        else:
            values.append(delta.sum(-1))  # [pos]
    m_corrupted = float(value.detach())
    patches = Cells(template, site, _shape(model, site, n), clean_ids)
    estimate = m_corrupted + torch.stack(values).reshape(_shape(model, site, n))
    return estimate, metric(clean_run), m_corrupted, patches


def _shape(model: Model, site: str, n: int) -> tuple[int, ...]:
    return {
        "heads": (model.n_layers, model.n_heads),
        "heads_by_pos": (model.n_layers, model.n_heads, n),
    }.get(site, (model.n_layers, n))
