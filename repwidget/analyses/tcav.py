"""TCAV (Kim et al. 2018, "Interpretability beyond feature attribution"): concept activation vectors and their
test against random concepts, for image classifiers and language models (one API).

A CAV is the normal of a linear classifier (the probes' logistic regression) separating a concept's activations at
a layer from a random set's. The TCAV score of a target (a class, or a next token) is the fraction of the inputs whose
target logit rises along the CAV: ``grad(logit) . cav > 0`` at the layer. Each random set gives one CAV and one
score; the same with a random set as the concept (against the next random set) gives the scores of chance. A
two-sided Student t-test of the concept's scores against chance's gives the p-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: the fraction of each concept-vs-random set held out to measure the CAV's accuracy (TCAV's own)
TEST_FRACTION = 0.33
#: images per batched pass of an image classifier
IMAGE_BATCH = 64


@dataclass(frozen=True)
class TCAVResult:
    """The TCAV test of one concept for one target at ``hook``. ``scores[i]``: the TCAV score with the CAV against
    random set ``i``; ``random_scores[i]``: random set ``i`` as the concept against set ``i + 1``. ``score`` is the
    mean of ``scores``; ``significant`` is ``p_value < alpha / comparisons`` (Bonferroni). ``cavs`` ``[sets, d]``
    are unit norm, in the layer's activation space as read (a CNN stage flattened ``C * H * W``, a ViT's CLS row,
    a language model's row at ``position``); ``cav`` is their mean direction; ``accuracies`` their held-out
    accuracies. ``derivatives`` ``[sets, inputs]``: each input's directional derivative of the target logit along
    each CAV."""

    hook: str
    target: int
    score: float
    scores: list[float]
    random_scores: list[float]
    p_value: float
    significant: bool
    cavs: torch.Tensor
    accuracies: list[float]
    derivatives: torch.Tensor
    alpha: float = 0.05

    @property
    def cav(self) -> torch.Tensor:
        mean = self.cavs.mean(0)
        return mean / mean.norm().clamp_min(1e-12)

    @property
    def accuracy(self) -> float:
        """The CAVs' mean held-out accuracy (near 0.5: the layer does not separate the concept from random)."""
        return sum(self.accuracies) / len(self.accuracies)

    def __repr__(self) -> str:
        mark = "significant" if self.significant else "not significant"
        random = sum(self.random_scores) / len(self.random_scores)
        return (
            f"<rw.TCAVResult at {self.hook}: score {self.score:.2f} vs random {random:.2f}, p = {self.p_value:.3g} "
            f"({mark}), CAV accuracy {self.accuracy:.2f} over {len(self.scores)} random sets>"
        )

    def chart(self):
        """The concept's scores and the random ones, one dot per random set (an altair chart)."""
        import altair as alt
        import pandas as pd

        rows = [{"set": "concept", "TCAV score": s} for s in self.scores]
        rows += [{"set": "random", "TCAV score": s} for s in self.random_scores]
        title = f"TCAV at {self.hook}: p = {self.p_value:.3g}"
        return (
            alt.Chart(pd.DataFrame(rows), title=title)
            .mark_circle(size=60, opacity=0.7)
            .encode(x=alt.X("TCAV score:Q", scale=alt.Scale(domain=[0, 1])), y="set:N", color="set:N")
        )


def tcav(
    model: Any,
    concept: Sequence[Any],
    random_sets: Sequence[Sequence[Any]],
    inputs: Sequence[Any],
    layer: int | str,
    target: int | str,
    position: int | str = -1,
    alpha: float = 0.05,
    comparisons: int = 1,
    l2: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> TCAVResult:
    """The TCAV score of ``concept`` (examples: images for an image classifier, texts for a language model) for
    ``target`` (a class index or name; a next token, id or string) over ``inputs``, at ``layer`` (an int: a CNN's
    ``stages.L.hook_out`` flattened, a ViT's ``blocks.L.hook_resid_post`` at CLS, a language model's
    ``blocks.L.hook_resid_post``; or a hook name), with its t-test against ``random_sets`` (at least two lists of
    random examples). A language model reads texts at ``position`` (a token index, or ``"mean"`` over the tokens
    after ``<bos>``) and its target logit at each input's last token. ``comparisons``: how many concepts are
    tested (the Bonferroni correction); ``l2``, ``seed``: the CAV fit's penalty and held-out split."""
    if len(random_sets) < 2 or any(len(r) < 2 for r in random_sets) or isinstance(random_sets[0], str):
        raise ValueError("random_sets must be at least two lists of at least two examples each (TCAV's chance level)")
    if len(concept) < 2 or isinstance(concept, str) or isinstance(inputs, str) or len(inputs) == 0:
        raise ValueError("concept must be a list of at least two examples and inputs a non-empty list of examples")
    if isinstance(comparisons, bool) or not isinstance(comparisons, int) or comparisons < 1:
        raise ValueError(f"comparisons must be a positive int (how many concepts are tested), got {comparisons!r:.40}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number between 0 and 1, got {alpha!r:.40}")
    reader = _ImageReader(model, layer) if _is_image_model(model) else _TextReader(model, layer, position)
    from tqdm.auto import tqdm

    sets = [list(concept), *[list(r) for r in random_sets]]
    bar = tqdm(total=len(sets) + 2 * len(random_sets) + 1, desc="TCAV", disable=not progress, leave=False)
    try:
        acts = []
        for examples in sets:
            acts.append(reader.activations(examples))
            bar.update()
        grads, target_id = reader.gradients(list(inputs), target)
        bar.update()
        concept_acts, randoms = acts[0], acts[1:]
        cavs, accuracies, scores, random_scores = [], [], [], []
        for i, random_acts in enumerate(randoms):
            cav, accuracy = concept_vector(concept_acts, random_acts, l2, seed)
            cavs.append(cav)
            accuracies.append(accuracy)
            scores.append(tcav_score(grads, cav))
            bar.update()
            chance = concept_vector(random_acts, randoms[(i + 1) % len(randoms)], l2, seed)[0]
            random_scores.append(tcav_score(grads, chance))
            bar.update()
    finally:
        bar.close()
    p = t_test(scores, random_scores)
    stacked = torch.stack(cavs)
    return TCAVResult(
        reader.hook, target_id, sum(scores) / len(scores), scores, random_scores, p, p < alpha / comparisons,
        stacked, accuracies, stacked.double() @ grads.T, alpha,
    )  # fmt: skip


def concept_vector(
    concept: torch.Tensor, random: torch.Tensor, l2: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """The CAV of ``concept`` ``[n, d]`` against ``random`` ``[m, d]``: the normal of a two-class logistic
    regression (the probes' fit, ``rw.probes.fit.logistic``, L2 ``l2``) toward the concept, unit norm, and its
    accuracy on a seeded held-out :data:`TEST_FRACTION`. The activations are centred and divided by one number
    (their RMS spread), not standardised per column: a CAV lives in the layer's own geometry, where a column
    that is almost always zero (a dead ReLU) must not weigh as much as a live one."""
    from ..datasets.split import held_out
    from ..probes import fit

    x = torch.cat([random, concept]).double()
    y = torch.cat([torch.zeros(len(random)), torch.ones(len(concept))]).long()
    test, train = held_out(len(y), TEST_FRACTION, seed, least=2)
    if y[train].unique().numel() < 2:
        raise ValueError("the CAV's training split holds one kind of example only: give more examples per set")
    mean = x[train].mean(0)
    scale = x[train].var(0).mean().sqrt().clamp_min(1e-12)
    w = fit.logistic((x[train] - mean) / scale, y[train], 2, l2=l2)
    predicted = (((x[test] - mean) / scale) @ w[:-1] + w[-1]).argmax(-1)
    direction = w[:-1, 1] - w[:-1, 0]
    return (direction / direction.norm().clamp_min(1e-300)).float(), float((predicted == y[test]).double().mean())


def tcav_score(gradients: torch.Tensor, cav: torch.Tensor) -> float:
    """The fraction of the inputs (rows of ``gradients`` ``[n, d]`` of the target logit) whose directional
    derivative along ``cav`` is positive."""
    return float((gradients.double() @ cav.double() > 0).double().mean())


def t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sided p-value of Student's t-test (equal variances) that ``a`` and ``b`` have the same mean
    (``scipy.stats.ttest_ind``). Both constant: 1.0 if the means are equal, else 0.0."""
    n, m = len(a), len(b)
    mean_a, mean_b = sum(a) / n, sum(b) / m
    pooled = (sum((x - mean_a) ** 2 for x in a) + sum((x - mean_b) ** 2 for x in b)) / (n + m - 2)
    if pooled <= 1e-300:
        return 1.0 if mean_a == mean_b else 0.0
    t = (mean_a - mean_b) / math.sqrt(pooled * (1 / n + 1 / m))
    df = n + m - 2
    return _incomplete_beta(df / 2, 0.5, df / (df + t * t))


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)`` by its continued fraction (Lentz's method)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            numerator = 1.0
        elif i % 2 == 0:
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-15:
            break
    return front * (f - 1.0)


def _is_image_model(model: Any) -> bool:
    from ..model.vision_model import VisionModel

    return isinstance(model, VisionModel)


class _ImageReader:
    """An image classifier's activations at a stage (a CNN's flattened, a ViT's CLS row) and class-logit gradients."""

    def __init__(self, model: Any, layer: int | str) -> None:
        self.model = model
        cnn = model.kind == "cnn"
        if isinstance(layer, int) and not isinstance(layer, bool):
            if not 0 <= layer < model.n_layers:
                raise ValueError(f"layer must be in 0..{model.n_layers - 1}, got {layer}")
            layer = f"stages.{layer}.hook_out" if cnn else f"blocks.{layer}.hook_resid_post"
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a layer index or a hook name, got {layer!r:.40}")
        model.check_hook(layer)
        self.hook = layer

    def _rows(self, act: torch.Tensor) -> torch.Tensor:
        return act.flatten(1) if self.model.kind == "cnn" else act[:, 0]

    def _pixels(self, images: list[Any]) -> torch.Tensor:
        return torch.cat([self.model.to_pixels(image) for image in images])

    def _passes(self, images: list[Any]):
        from ..model.vision_pass import run_pass

        for start in range(0, len(images), IMAGE_BATCH):
            pixels = self._pixels(images[start : start + IMAGE_BATCH])
            result = run_pass(self.model.hf, self.model.arch, pixels, {}, [self.hook], grad=True)
            yield result.cache[self.hook], result.batch_logits

    def activations(self, images: list[Any]) -> torch.Tensor:
        return torch.cat([self._rows(act).detach().float().cpu() for act, _ in self._passes(images)])

    def gradients(self, images: list[Any], target: int | str) -> tuple[torch.Tensor, int]:
        from .vision import class_index

        c = class_index(self.model, target)
        grads = []
        for act, logits in self._passes(images):  # each image's logit depends on its own activation only
            (grad,) = torch.autograd.grad(logits[:, c].sum(), [act])
            grads.append(self._rows(grad).double().cpu())
        return torch.cat(grads), c


class _TextReader:
    """A language model's residual rows at ``position`` and next-token-logit gradients at the last token."""

    def __init__(self, model: Any, layer: int | str, position: int | str) -> None:
        from ..hook_names import parse

        if isinstance(layer, int) and not isinstance(layer, bool):
            if not 0 <= layer < model.n_layers:
                raise ValueError(f"layer must be in 0..{model.n_layers - 1}, got {layer}")
            layer = f"blocks.{layer}.hook_resid_post"
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a layer index or a hook name, got {layer!r:.40}")
        parse(layer, model.n_layers)
        self.model, self.hook, self.position = model, layer, position

    def activations(self, texts: list[Any]) -> torch.Tensor:
        from ..probes.read import read_at_hooks

        return read_at_hooks(self.model, texts, [self.hook], self.position)[self.hook].float()

    def gradients(self, texts: list[Any], target: int | str) -> tuple[torch.Tensor, int]:
        from .attribution import resolve_token

        grads, first = [], None
        for text in texts:
            ids = self.model.to_ids(text)
            token = resolve_token(self.model, target, ids)
            first = token if first is None else first
            cache, logits = self.model.with_graph(ids, self.hook, position=len(ids) - 1)
            act = cache[self.hook]
            (grad,) = torch.autograd.grad(logits[token], [act])
            grad = grad.reshape(len(grad), -1).double().cpu()
            # the derivative of the logit as the row read at `position` moves: every averaged row moves with it
            if self.position == "mean":
                grads.append(grad[1:].sum(0) if len(grad) > 1 else grad[0])
            else:
                grads.append(grad[self.position])
        return torch.stack(grads), int(first)
