"""Checks for workshops 6-8 (attribution graphs, concepts at dataset scale, vision): like
:mod:`repwidget.demo.exercises`, each measures the answer on the model itself, on examples the notebook did not use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .exercises import Verdict, _head, _say, repeated_tokens, sentiment_examples, verdict_flips

#: re-exported: the notebooks import this module as ``exercises``
__all__ = [
    "ablation_drops",
    "check_key_side_head",
    "check_steering_budget",
    "check_tcav_concept",
    "key_side_heads",
    "repeated_tokens",
    "sentiment_examples",
]


# -- 6. attribution graphs ----------------------------------------------------------------------
def key_side_heads(model, transcoders, layer: int = 1, head: int = 0, prompts: int = 3) -> torch.Tensor:
    """``[prompts, layer, heads]``: each earlier head's share of head ``layer.head``'s key-side score for its top key
    at the last token of ``prompts`` fresh repeated sequences (seeds 100...)."""
    from ..graphs import qk_attribution

    rows = []
    for seed in range(100, 100 + prompts):
        text = repeated_tokens(seed=seed, length=8)
        qk = qk_attribution(model, text, transcoders, layer, head, keys=1, progress=False)
        rows.append(qk.keys[0].key_heads)
    return torch.stack(rows)


def check_key_side_head(model, transcoders, answer: Any, layer: int = 1, head: int = 0) -> Verdict:
    """Is ``answer`` the earlier head whose output writes most of induction head ``layer.head``'s key side?"""
    chosen = _head(answer, model)
    if isinstance(chosen, Verdict):
        return chosen
    if chosen[0] >= layer:
        return _say(False, "", f"the key side of head {layer}.{head} is written by heads of layers below {layer}")
    parts = key_side_heads(model, transcoders, layer, head)
    best = [divmod(int(p.argmax()), model.n_heads) for p in parts]
    share = parts[:, chosen[0], chosen[1]].mean().item()
    return _say(
        all(b == chosen for b in best),
        f"head {chosen[0]}.{chosen[1]} writes {share:.2f} of the key-side score on each of {len(best)} new prompts: "
        "the previous-token head, the K in K-composition",
        f"head {chosen[0]}.{chosen[1]} writes {share:.2f} of it on average; look at `key.key_heads` above",
    )


# -- 7. concepts at dataset scale ----------------------------------------------------------------
def check_steering_budget(model, steer: Any, texts: Any, nats: float = 0.5, share: float = 0.9) -> Verdict:
    """Does ``steer`` flip at least ``share`` of held-out positive reviews' verdicts to negative (the model's own
    answer) while the mean next-token loss over ``texts`` rises by less than ``nats``?"""
    from ..interventions import Steer
    from ..steering import evaluate

    if not isinstance(steer, Steer):
        return _say(False, "", f"answer with one rw.Steer, for example directions.steering(...); got {steer!r:.60}")
    flipped = verdict_flips(model, steer)
    result = evaluate(model, steer, texts)
    cost = result.loss - result.clean_loss
    if flipped < share:
        hint = f"only {flipped:.0%} of held-out verdicts flip (want {share:.0%}): push harder"
    else:
        hint = f"the loss rises by {cost:.2f} nats (want under {nats}): try other layers; which needs the least push?"
    return _say(
        flipped >= share and cost < nats,
        f"{flipped:.0%} of held-out verdicts flip and the loss rises by only {cost:.2f} nats",
        hint,
    )


# -- 8. vision -------------------------------------------------------------------------------------
def check_tcav_concept(model, answer: Any, target: int = 7, layer: int = 1, draws: int = 3) -> Verdict:
    """Is digit ``answer`` (not ``target`` itself), as a TCAV concept (20 of its held-out images), a significant
    positive concept for class ``target`` at ``layer`` in ``draws`` fresh draws of concept, inputs and random sets?"""
    from ..analyses.tcav import tcav
    from .digits import mnist_digits

    if isinstance(answer, bool) or not isinstance(answer, (int, np.integer)) or not 0 <= answer <= 9:
        return _say(False, "", f"answer with a digit 0-9 whose images make a concept; got {answer!r:.40}")
    if answer == target:
        return _say(False, "", f"the class {target} itself is too easy: find another digit that reads as {target}")
    images, labels = mnist_digits("test")
    results = []
    for seed in range(draws):
        rng = np.random.default_rng(1000 + seed)
        concept = list(images[rng.choice(np.flatnonzero(labels == answer), 20, replace=False)])
        inputs = list(images[rng.choice(np.flatnonzero(labels == target), 20, replace=False)])
        others = rng.permutation(np.flatnonzero((labels != answer) & (labels != target)))
        randoms = [list(images[others[i * 20 : (i + 1) * 20]]) for i in range(8)]
        results.append(tcav(model, concept, randoms, inputs, layer, target, seed=seed, progress=False))
    scores = ", ".join(f"{r.score:.2f}" for r in results)
    ok = all(r.significant and r.score > 0.5 for r in results)
    return _say(
        ok,
        f"digit {answer} as a concept scores {scores} for class {target}, significant in all {draws} draws",
        f"digit {answer} as a concept scores {scores} for class {target}; significant in "
        f"{sum(r.significant for r in results)} of {draws} draws (and a score above 0.5 is wanted)",
    )


def ablation_drops(model, images: Sequence[Any], layer: int = 1, seed: int = 0) -> tuple[list[float], list[float]]:
    """For each image: the drop of its predicted class's logit when the channel ``channel_attribution`` ranks first
    at ``layer`` is zeroed, and when a random channel is."""
    from ..analyses.vision import channel_attribution
    from ..interventions import Ablate

    generator = torch.Generator().manual_seed(seed)
    top, random = [], []
    for image in images:
        run = model.run(image)
        c = int(run.logits.argmax())
        first = int(channel_attribution(run, layer=layer).argmax())
        other = int(torch.randint(run[f"stages.{layer}.hook_out"].shape[0], (1,), generator=generator))
        top.append(float(run.logits[c] - run.rerun(Ablate(layer, channel=first)).logits[c]))
        random.append(float(run.logits[c] - run.rerun(Ablate(layer, channel=other)).logits[c]))
    return top, random
