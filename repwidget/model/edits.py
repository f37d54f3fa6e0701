"""Turn interventions into edits of activations, checked against the model first."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..hook_names import parse
from ..interventions import Ablate, Intervention, Patch, Steer
from ..placement import like
from .execute import Edit

if TYPE_CHECKING:
    from .model import Model


def check(model: Model, iv: Intervention, n_tokens: int) -> None:
    """Raise ValueError naming the valid range when ``iv`` does not fit ``model``."""
    layer = iv.layer
    if getattr(iv, "sae", None) is not None:
        iv.sae.check_fits(model)
    if not 0 <= layer < model.n_layers:
        raise ValueError(f"{_short(iv)}: layer {layer} is out of range; this model has layers 0..{model.n_layers - 1}")
    if isinstance(iv, Ablate):
        if iv.head is not None and not 0 <= iv.head < model.n_heads:
            raise ValueError(f"{iv!r}: head {iv.head} is out of range; this model has heads 0..{model.n_heads - 1}")
        if iv.neuron is not None and not 0 <= iv.neuron < model.d_mlp:
            raise ValueError(f"{iv!r}: neuron {iv.neuron} is out of range; the MLP has neurons 0..{model.d_mlp - 1}")
        if iv.mode != "zero" and model.reference is None:
            raise ValueError(
                f"{_short(iv)}: mode={iv.mode!r} uses statistics of reference texts; "
                "call model.set_reference([...texts...]) first, or use mode='zero'"
            )
        if iv.direction and len(iv.direction) != model.d_model:
            width = len(iv.direction)
            raise ValueError(f"{_short(iv)}: the direction has width {width}, the residual stream {model.d_model}")
    elif isinstance(iv, Steer) and iv.sae is None:
        if len(iv.vector) != model.d_model:
            raise ValueError(
                f"{_short(iv)}: the steering vector has width {len(iv.vector)}, the residual stream {model.d_model}"
            )
    elif isinstance(iv, Patch):
        parse(iv.hook, model.n_layers)
        if iv.head is not None and not 0 <= iv.head < model.n_heads:
            raise ValueError(f"{_short(iv)}: head {iv.head} is out of range 0..{model.n_heads - 1}")
        n_source = len(iv.source)
        if iv.positions is None and n_source != n_tokens:
            raise ValueError(
                f"{_short(iv)}: the source has {n_source} tokens and this run {n_tokens}; "
                "patch runs of the same length or pass positions=[...]"
            )
        for p in iv.positions or ():
            if not 0 <= p < min(n_source, n_tokens):
                raise ValueError(f"{_short(iv)}: position {p} is out of range 0..{min(n_source, n_tokens) - 1}")


def _short(iv: Intervention) -> str:
    text = repr(iv)
    return text if len(text) < 120 else text[:100] + "...)"


def build(model: Model, iv: Intervention, n_tokens: int) -> tuple[str, Edit]:
    """``(hook name, edit)`` for one intervention; reference statistics and patch sources are read here."""
    if getattr(iv, "sae", None) is not None:
        return iv.hook, _sae_edit(iv)
    if isinstance(iv, Steer):
        delta = torch.tensor(iv.vector, dtype=torch.float32) * iv.scale
        return iv.hook, lambda x: x + like(delta, x)
    if isinstance(iv, Patch):
        source = model._source_activation(iv.source, iv.hook)  # [src_pos, ...] as captured
        source = source.reshape(source.shape[0], -1)
        positions = list(iv.positions) if iv.positions is not None else list(range(n_tokens))
        cols = slice(None) if iv.head is None else slice(iv.head * model.d_head, (iv.head + 1) * model.d_head)
        values = source[positions][:, cols]

        def patch(x: torch.Tensor) -> torch.Tensor:
            x[:, positions, cols] = like(values, x)
            return x

        return iv.hook, patch
    # Ablate
    if iv.direction:
        return iv.hook, _direction_edit(model, iv, n_tokens)
    if iv.head is not None:
        cols = slice(iv.head * model.d_head, (iv.head + 1) * model.d_head)
    elif iv.neuron is not None:
        cols = slice(iv.neuron, iv.neuron + 1)
    else:
        cols = slice(None)
    if iv.mode == "zero":

        def zero(x: torch.Tensor) -> torch.Tensor:
            x[..., cols] = 0
            return x

        return iv.hook, zero
    if iv.mode == "mean":
        value = model.reference.mean(iv.hook)[cols]  # [width]
    else:
        value = model.reference.resample(iv.hook, n_tokens, iv.seed)[:, cols]  # [pos, width]

    def replace(x: torch.Tensor) -> torch.Tensor:
        x[..., cols] = like(value, x)
        return x

    return iv.hook, replace


def _direction_edit(model: Model, iv: Ablate, n_tokens: int) -> Edit:
    """Set the component of the activation along ``iv.direction`` to zero or to the reference texts'."""
    unit = torch.tensor(iv.direction, dtype=torch.float32)
    unit = unit / unit.norm()
    if iv.mode == "zero":
        target = torch.zeros(())
    elif iv.mode == "mean":
        target = model.reference.mean(iv.hook).float() @ unit  # a number
    else:
        target = model.reference.resample(iv.hook, n_tokens, iv.seed).float() @ unit  # [pos]

    def project(x: torch.Tensor) -> torch.Tensor:
        u = like(unit, x)
        shift = like(target, x) - x @ u  # [batch, pos]
        return x + shift[..., None] * u

    return project


def _sae_edit(iv: Ablate | Steer) -> Edit:
    """Steer along a feature's decoder vector, or splice the SAE in (with its error term) minus a feature."""
    sae, feature = iv.sae, iv.feature
    if isinstance(iv, Steer):
        delta = sae.decoder_vectors()[feature] * iv.scale

        def steer(x: torch.Tensor) -> torch.Tensor:
            return x + like(delta, x)

        return steer

    def splice(x: torch.Tensor) -> torch.Tensor:
        feats = sae.encode(x)
        error = x.float() - sae.decode(feats)
        feats[..., feature] = 0
        return (sae.decode(feats) + error).to(x.dtype)

    return splice


class Reference:
    """Activations of reference texts, for mean and resample ablation; computed per hook on demand."""

    def __init__(self, model: Model, token_ids: list[list[int]]) -> None:
        if not token_ids:
            raise ValueError("set_reference needs at least one text")
        self._model = model
        self._ids = token_ids
        self._acts: dict[str, list[torch.Tensor]] = {}

    def prepare(self, hooks: list[str]) -> None:
        """Run the reference texts once for all ``hooks`` not seen yet (with a progress bar)."""
        from tqdm.auto import tqdm

        missing = sorted({h for h in hooks if h not in self._acts})
        if not missing:
            return
        acts: dict[str, list[torch.Tensor]] = {h: [] for h in missing}
        for ids in tqdm(self._ids, desc="reference activations", disable=len(self._ids) < 8, leave=False):
            run = self._model.run(ids, capture=missing)
            for h in missing:
                acts[h].append(run[h].reshape(len(ids), -1).float().cpu())
        self._acts.update(acts)

    def mean(self, hook: str) -> torch.Tensor:
        self.prepare([hook])
        return torch.cat(self._acts[hook]).mean(0)

    def resample(self, hook: str, n_tokens: int, seed: int) -> torch.Tensor:
        """``[n_tokens, width]``: one reference text picked by ``seed``, position p taken mod its length."""
        self.prepare([hook])
        acts = self._acts[hook]
        chosen = acts[int(np.random.default_rng(seed).integers(len(acts)))]
        return chosen[torch.arange(n_tokens) % chosen.shape[0]]
