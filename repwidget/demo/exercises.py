"""Checks for the workshop notebooks' exercises: each measures the answer on the model itself.

Nothing here is a stored answer key: every check computes what is true of the model it is given
(on held-out examples), so a retrained demo model keeps the exercises honest. A check prints a
one-line verdict (with a hint when the answer is not right yet) and returns True or False.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from . import tasks
from .evaluate import prompt

Head = tuple[int, int]


def _say(ok: bool, right: str, hint: str) -> bool:
    print(("\u2714 right: " + right) if ok else ("\u2718 not yet: " + hint))
    return ok


def _head(answer: Any, model) -> Head | None:
    """``answer`` as a ``(layer, head)`` of ``model``, or None (with a message) when it is not one."""
    ok = (
        isinstance(answer, (tuple, list))
        and len(answer) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in answer)
        and 0 <= answer[0] < model.n_layers
        and 0 <= answer[1] < model.n_heads
    )
    if not ok:
        print(
            f"\u2718 not yet: answer with (layer, head), layer in 0..{model.n_layers - 1} and head in "
            f"0..{model.n_heads - 1}; got {answer!r}"
        )
        return None
    return int(answer[0]), int(answer[1])


# -- 1. attention heads and induction -----------------------------------------------------
def repeated_tokens(seed: int = 0, length: int = 12) -> str:
    """``length`` random words of the induction task, then the same words again."""
    words = random.Random(seed).sample(tasks.FILLER, length)
    return " ".join(words + words)


def head_scores(model, n: int = 8) -> dict[str, torch.Tensor]:
    """``[layer, head]`` previous-token and induction scores, averaged over ``n`` repeated sequences."""
    from ..analyses import head_scores as scores_of

    runs = [model.run(repeated_tokens(seed)) for seed in range(n)]
    per_run = [scores_of(run) for run in runs]
    return {name: torch.stack([s[name] for s in per_run]).mean(0) for name in ("previous_token", "induction")}


def repeat_loss(model, interventions: Sequence[Any] = (), n: int = 8, length: int = 12) -> float:
    """Mean loss (nats) on the second half of ``n`` repeated sequences, under ``interventions``."""
    from ..analyses import token_losses

    losses = []
    for seed in range(n):
        run = model.run(repeated_tokens(seed, length), interventions=list(interventions))
        losses.append(token_losses(run)[length + 1 :].mean())  # the loss of predicting the second half
    return float(torch.stack(losses).mean())


def check_previous_token_head(model, answer: Any) -> bool:
    """Is ``answer`` the head that attends most to the previous token?"""
    head = _head(answer, model)
    if head is None:
        return False
    scores = head_scores(model)["previous_token"]
    best = divmod(int(scores.argmax()), model.n_heads)
    return _say(
        head == best,
        f"head {head[0]}.{head[1]} puts {scores[head].item():.0%} of its attention on the previous token",
        f"head {head[0]}.{head[1]} puts only {scores[head].item():.0%} there; look for the diagonal just below "
        "the main one in the attention thumbnails",
    )


def check_induction_head(model, answer: Any) -> bool:
    """Is ``answer`` the induction head whose ablation hurts copying most?"""
    head = _head(answer, model)
    if head is None:
        return False
    from ..interventions import Ablate

    scores = head_scores(model)["induction"]
    clean = repeat_loss(model)
    cost = {
        (layer, h): repeat_loss(model, [Ablate(layer, head=h)]) - clean
        for layer in range(model.n_layers)
        for h in range(model.n_heads)
        if scores[layer, h] >= 0.3
    }
    best = max(cost, key=cost.get)
    if head == best:
        return _say(
            True,
            f"head {head[0]}.{head[1]}: induction score {scores[head].item():.2f}; ablating it raises the loss on "
            f"the repeat by {cost[head]:.2f} nats",
            "",
        )
    if head in cost:
        return _say(
            False,
            "",
            f"head {head[0]}.{head[1]} is an induction head (score {scores[head].item():.2f}) but ablating it "
            f"costs only {cost[head]:.2f} nats; another one matters more",
        )
    return _say(
        False,
        "",
        f"head {head[0]}.{head[1]} has induction score {scores[head].item():.2f}: it does not look at the token "
        "after the earlier copy of the current one",
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


def logit_difference(model, interventions: Sequence[Any] = (), n: int = 40) -> float:
    """Mean logit(indirect object) - logit(subject) at the last position of ``n`` IOI prompts."""
    tok = model.tokenizer
    diffs = []
    for text, io, subject in ioi_examples(n):
        logits = model.run(text, interventions=list(interventions)).logits_at(-1).float()
        diffs.append(logits[tok.convert_tokens_to_ids(io)] - logits[tok.convert_tokens_to_ids(subject)])
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


def check_name_mover(model, answer: Any, effects: torch.Tensor | None = None) -> bool:
    """Is ``answer`` the head whose ablation lowers the IOI logit difference most?"""
    head = _head(answer, model)
    if head is None:
        return False
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

    tok = model.tokenizer
    hits = torch.zeros(model.n_layers)
    for text, io, _ in ioi_examples(n):
        run = model.run(text)
        last = len(run.token_ids) - 1
        lens = logit_lens(run, positions=range(last, last + 1))
        hits += (lens.ids[:, 0, 0] == tok.convert_tokens_to_ids(io)).float()
    return int(next((layer for layer in range(model.n_layers) if hits[layer] > n / 2), model.n_layers - 1))


def check_lens_layer(model, answer: Any) -> bool:
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


def check_probe_layer(probes, answer: Any, threshold: float = 0.95) -> bool:
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
    tok = model.tokenizer
    target = tok.convert_tokens_to_ids(toward)
    other = [(text, label) for text, label in sentiment_examples(n * 2, seed=5) if label != toward][:n]
    flipped = [model.run(text, [intervention]).logits_at(-1).argmax().item() == target for text, _ in other]
    return sum(flipped) / len(flipped)


def check_steering(model, intervention: Any, toward: str = "negative") -> bool:
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


def day_features(model, sae, k: int = 3) -> list[int]:
    """The ``k`` SAE features with the most activation on day-of-week tokens that are silent elsewhere."""
    prompts = [text for text, _ in cycle_prompts(tasks.DAYS, "day")]
    on_days, elsewhere = torch.zeros(sae.d_sae), torch.zeros(sae.d_sae)
    for text in prompts:
        run = model.run(text, capture=[sae.hook])
        acts = sae.encode(run[sae.hook].float())  # [pos, d_sae]
        day = [i for i, t in enumerate(run.tokens) if t in tasks.DAYS]
        mask = torch.zeros(len(run.tokens), dtype=torch.bool)
        mask[day] = True
        on_days += acts[mask].sum(0)
        elsewhere += acts[~mask].sum(0)
    selectivity = on_days / (on_days + elsewhere + 1e-6)
    score = on_days * (selectivity > 0.8)
    return score.topk(k).indices.tolist()


def check_day_feature(model, sae, answer: Any) -> bool:
    """Is ``answer`` a feature that fires on the days of the week, and (almost) nowhere else?"""
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < sae.d_sae:
        return _say(False, "", f"answer with a feature index 0..{sae.d_sae - 1}; got {answer!r}")
    best = day_features(model, sae)
    return _say(
        answer in best,
        f"feature {answer} is a day-of-week feature (the strongest: {best})",
        f"feature {answer} is not among the features most selective for day tokens; sort by activation on them",
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


def check_circle(points: Any, names: Sequence[str]) -> bool:
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
