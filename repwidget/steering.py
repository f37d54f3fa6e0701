"""Steering vectors from prompts, each a :class:`repwidget.Steer`: contrastive activation addition (the difference
of mean activations between two sets of prompts) and function vectors (the mean output of chosen heads over
in-context-learning prompts); and a steer judged over a dataset (:func:`evaluate`: loss and probe verdicts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .analyses.attribution import _weight
from .hook_names import hook_for
from .interventions import Steer, as_tuple
from .probes.read import reading

if TYPE_CHECKING:
    from .model.model import Model


def contrastive(
    model: Model,
    positive: Sequence[Any],
    negative: Sequence[Any],
    layer: int,
    position: int | str = -1,
    scale: float = 1.0,
) -> Steer:
    """Contrastive activation addition: the mean residual stream after block ``layer`` over ``positive`` prompts
    minus that over ``negative`` ones, as a steer at ``layer`` (every position). ``position``: the token each
    prompt is read at (default its last), or ``"mean"`` for the mean over its tokens."""
    hook = _hook(model, layer)
    vector = _mean(model, positive, hook, position) - _mean(model, negative, hook, position)
    name = f"contrastive ({len(positive)} vs {len(negative)} prompts)"
    return Steer(layer, vector, scale=scale, name=name)


def function_vector(
    model: Model,
    prompts: Sequence[Any],
    heads: Sequence[tuple[int, int]],
    layer: int,
    position: int = -1,
    scale: float = 1.0,
) -> Steer:
    """A function vector: the sum over ``heads`` (``(layer, head)`` pairs) of each head's mean output (what it adds
    to the residual stream, without the projection's bias) at ``position`` (default the last token) of
    in-context-learning ``prompts``, as a steer after block ``layer`` (every position; pass it on with
    ``dataclasses.replace(steer, positions=[...])`` for one)."""
    _hook(model, layer)
    pairs = [_head(model, h) for h in heads]
    if not pairs:
        raise ValueError("function_vector needs at least one (layer, head)")
    if len(set(pairs)) != len(pairs):
        raise ValueError("heads must be distinct")
    _check_prompts(prompts)
    if isinstance(position, bool) or not isinstance(position, int):
        raise ValueError(f"position must be a token position (an int), got {position!r:.20}")
    if getattr(model, "weightless", False):
        raise ValueError(
            "function_vector reads the attention output projections' weights, which are on NDIF only for this "
            "model; load the weights (remote=False), or steer with rw.steering.contrastive (activations only)"
        )
    arch = model.arch
    blocks = model.hf.get_submodule(arch.blocks)
    vector = torch.zeros(model.d_model, dtype=torch.float64)
    for at in sorted({a for a, _ in pairs}):
        z_hook, out_hook = f"blocks.{at}.attn.hook_z", f"blocks.{at}.hook_attn_out"
        projection = blocks[at].get_submodule(arch.attn_proj)
        w_o = _weight(projection, arch.n_heads * arch.d_head)  # [d_model, heads * d_head]
        bias = getattr(projection, "bias", None)
        for cache in model.capture_batch(list(prompts), [z_hook, out_hook], progress=False):
            z = cache[z_hook][_index(position, len(cache[z_hook]))].float()  # [heads, d_head]
            outputs = arch.attn_scale * torch.stack(
                [w_o[:, h * arch.d_head : (h + 1) * arch.d_head] @ z[h] for h in range(arch.n_heads)]
            )
            total = outputs.sum(0) + (arch.attn_scale * bias.detach().float() if bias is not None else 0)
            out = cache[out_hook][_index(position, len(cache[out_hook]))].float()
            if not torch.allclose(total, out, atol=1e-4 * (1 + float(out.abs().max())), rtol=1e-3):
                raise ValueError(
                    "this model's attention output is not the sum of its heads' outputs (a norm after the "
                    "projection?), so a head has no output of its own to average"
                )
            for h in (h for a, h in pairs if a == at):
                vector += outputs[h].double().cpu() / len(prompts)
    name = f"function vector of {len(pairs)} head{'s' if len(pairs) > 1 else ''} ({len(prompts)} prompts)"
    return Steer(layer, vector.float(), scale=scale, name=name)


def _hook(model: Model, layer: Any) -> str:
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < model.n_layers:
        raise ValueError(f"layer must be an int in 0..{model.n_layers - 1}, got {layer!r:.40}")
    return f"blocks.{layer}.hook_resid_post"


def _head(model: Model, pair: Any) -> tuple[int, int]:
    ok = isinstance(pair, (tuple, list)) and len(pair) == 2 and all(type(v) is int for v in pair)
    if not ok or not (0 <= pair[0] < model.n_layers and 0 <= pair[1] < model.n_heads):
        raise ValueError(
            f"heads must be (layer, head) pairs in 0..{model.n_layers - 1} x 0..{model.n_heads - 1}, got {pair!r:.40}"
        )
    return int(pair[0]), int(pair[1])


def _check_prompts(prompts: Any) -> None:
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence) or not prompts:
        raise ValueError("prompts must be a non-empty list of texts (or token ids)")


def _index(position: Any, n: int) -> Any:
    if position == "mean":
        return slice(None)
    if isinstance(position, bool) or not isinstance(position, int) or not -n <= position < n:
        raise ValueError(f"position {position!r:.20} is outside a prompt of {n} tokens (or use 'mean')")
    return position


def _mean(model: Model, prompts: Sequence[Any], hook: str, position: int | str) -> torch.Tensor:
    _check_prompts(prompts)
    total = torch.zeros(model.d_model, dtype=torch.float64)
    for cache in model.capture_batch(list(prompts), [hook], progress=False):
        acts = cache[hook][_index(position, len(cache[hook]))].double().cpu()
        total += acts.mean(0) if position == "mean" else acts
    return (total / len(prompts)).float()


# -- steering judged over a dataset ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextEffect:
    """One text's mean next-token loss and probe verdict without (``clean_*``) and with the steer."""

    clean_loss: float
    loss: float
    clean_verdict: str | None = None
    verdict: str | None = None
    label: str | None = None


@dataclass
class SteeringEvaluation:
    """What :func:`evaluate` measured: per text (``texts``) and over all of them."""

    texts: list[TextEffect]
    toward: str | None
    probe_layer: int | None

    @property
    def clean_loss(self) -> float:
        """The mean over texts of each text's mean next-token loss (nats) without the steer."""
        return sum(t.clean_loss for t in self.texts) / len(self.texts)

    @property
    def loss(self) -> float:
        """The same with the steer."""
        return sum(t.loss for t in self.texts) / len(self.texts)

    @property
    def flipped(self) -> float:
        """The fraction of texts whose probe verdict flips to the target class (not it without the steer, it with)."""
        self._need_probe()
        return sum(t.clean_verdict != self.toward and t.verdict == self.toward for t in self.texts) / len(self.texts)

    @property
    def target_rate(self) -> tuple[float, float]:
        """The fraction of texts the probe reads as the target class, without and with the steer."""
        self._need_probe()
        n = len(self.texts)
        return sum(t.clean_verdict == self.toward for t in self.texts) / n, sum(
            t.verdict == self.toward for t in self.texts
        ) / n

    @property
    def accuracy(self) -> tuple[float, float]:
        """The probe's accuracy against the labels, without and with the steer."""
        self._need_probe()
        if self.texts[0].label is None:
            raise ValueError("no labels were given: pass labels= to rw.steering.evaluate for the probe's accuracy")
        n = len(self.texts)
        return sum(t.clean_verdict == t.label for t in self.texts) / n, sum(
            t.verdict == t.label for t in self.texts
        ) / n

    def _need_probe(self) -> None:
        if self.toward is None:
            raise ValueError("no probe was given: pass probe= to rw.steering.evaluate for its verdicts")

    def __repr__(self) -> str:
        line = f"<SteeringEvaluation over {len(self.texts)} texts: loss {self.clean_loss:.3f} -> {self.loss:.3f} nats"
        if self.toward is not None:
            line += f"; reads {self.toward!r}: {self.target_rate[0]:.0%} -> {self.target_rate[1]:.0%}"
        return line + ">"


def evaluate(
    model: Model,
    steer: Any,
    texts: Any,
    probe: Any = None,
    labels: Sequence[Any] | None = None,
    toward: str | None = None,
    probe_layer: int | None = None,
    batch_size: int = 32,
) -> SteeringEvaluation:
    """The effect of ``steer`` (a ``rw.Steer``: a probe's, a contrastive vector, an SAE feature; or any interventions)
    over ``texts`` (a list, or a dataset with ``.texts`` and ``.labels``), each read without and with it in padded
    batches (``model.run_batch``): every text's mean next-token loss and, with ``probe`` (``rw.Probes``), the probe's
    verdict at ``probe_layer`` (default its last layer) against the target class ``toward`` (default the class the
    steer moved the most texts to) and, with ``labels``, its accuracy."""
    if labels is None and hasattr(texts, "texts"):
        labels = getattr(texts, "labels", None)
    texts = list(getattr(texts, "texts", texts))
    _check_prompts(texts)
    if labels is not None and len(labels) != len(texts):
        raise ValueError(f"labels must be one per text: got {len(labels)} labels for {len(texts)} texts")
    ivs = as_tuple(steer)
    capture: list[str] = []
    if probe is not None:
        probe_layer = probe.layers[-1] if probe_layer is None else probe_layer
        probe._check_layer(probe_layer)
        if toward is not None and toward not in probe.classes:
            raise ValueError(f"toward must be one of the probe's classes {probe.classes}, got {toward!r:.40}")
        capture = [hook_for(probe.site, probe_layer)]
    out: list[TextEffect] = []
    for start in range(0, len(texts), batch_size):
        part = texts[start : start + batch_size]
        clean = model.run_batch(part, capture=capture)
        steered = model.run_batch(part, ivs, capture=capture)
        for i, (a, b) in enumerate(zip(clean, steered, strict=True)):
            verdicts = [_verdict(probe, r, capture, probe_layer) for r in (a, b)] if probe is not None else [None, None]
            label = None if labels is None else str(labels[start + i])
            out.append(TextEffect(_mean_loss(a), _mean_loss(b), verdicts[0], verdicts[1], label))
    if probe is not None and toward is None:
        toward = _moved_toward(probe.classes, out)
    return SteeringEvaluation(out, toward, probe_layer if probe is not None else None)


def _moved_toward(classes: Sequence[str], effects: list[TextEffect]) -> str:
    """The class the steer moved the most texts to (its verdict count's largest rise); on a tie the probe's second
    class (the first one's opposite in a binary probe), e.g. when the steer changes no verdict."""
    rise = {c: sum(e.verdict == c for e in effects) - sum(e.clean_verdict == c for e in effects) for c in classes}
    default = classes[min(1, len(classes) - 1)]
    best = max(rise.values())
    return default if rise[default] == best else next(c for c in classes if rise[c] == best)


def _verdict(probe: Any, run: Any, capture: list[str], layer: int) -> str:
    return probe.predict(reading(run[capture[0]], probe.position)[None], layer)[0]


def _mean_loss(run: Any) -> float:
    from .analyses.losses import token_losses

    losses = token_losses(run)
    if not len(losses):
        raise ValueError("a text of one token has no next-token loss; give texts of two tokens or more")
    return float(losses.double().mean())
