"""The tuned lens (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with the Tuned Lens"):
each layer's residual stream moved by its own affine translator, ``h + A h + b``, before the model's final norm and
unembedding, the translators trained so that the lens's distribution matches the model's output (the last layer
needs none). Training is in :mod:`repwidget.analyses.tuned_lens_training`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from ..file_checks import FileFormatError, json_field, read_json, read_tensors, tensor_field

#: the files of a saved tuned lens, inside its directory
CONFIG, WEIGHTS = "tuned_lens.json", "tuned_lens.safetensors"
#: the token ids of the model's identity probe: its logits at the last of these, at :data:`PROBE_IDS` ids
PROBE_TOKENS, PROBE_IDS = 6, 8
#: a probe's logits may differ by this much (relative to their largest) and still be the same model's
PROBE_TOLERANCE = 2e-2


class TunedLens:
    """Affine translators for layers ``0 .. n_layers - 2``: ``weight`` ``[n_layers - 1, d, d]`` and ``bias``
    ``[n_layers - 1, d]``, so layer ``l``'s lens reads ``h + h @ weight[l].T + bias[l]`` (zeros: the logit lens).

    Make one with :meth:`train` (or :meth:`identity`), keep it with :meth:`save` and :meth:`load`; read through it
    with ``rw.analyses.logit_lens(run, lens=tuned)`` and ``rw.analyses.lens_kl(run, lens=tuned)``."""

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor, identity: dict[str, Any], training: dict[str, Any] | None = None
    ) -> None:
        if weight.dim() != 3 or weight.shape[1] != weight.shape[2] or bias.shape != weight.shape[:2]:
            raise ValueError(
                f"a tuned lens needs weight [layers - 1, d, d] and bias [layers - 1, d], got {tuple(weight.shape)} "
                f"and {tuple(bias.shape)}"
            )
        self.weight = weight.detach().float().cpu()
        self.bias = bias.detach().float().cpu()
        self.identity = dict(identity)
        self.training = dict(training or {})
        self._on: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}
        self._fits: set[tuple[int, int]] = set()  # (model id, weights version) already checked

    @property
    def n_layers(self) -> int:
        return self.weight.shape[0] + 1

    @property
    def d_model(self) -> int:
        return self.weight.shape[1]

    def __repr__(self) -> str:
        return f"TunedLens({self.n_layers} layers, d_model {self.d_model}, for {self.identity.get('name', '?')})"

    @classmethod
    def identity_of(cls, model: Any) -> TunedLens:
        """Translators that change nothing: it reads exactly the logit lens."""
        d, n = model.d_model, model.n_layers
        return cls(torch.zeros(n - 1, d, d), torch.zeros(n - 1, d), model_identity(model))

    @classmethod
    def train(cls, model: Any, texts: Any, **options: Any) -> TunedLens:
        """A tuned lens of ``model`` trained on ``texts``: see :func:`~repwidget.analyses.tuned_lens_training.train`
        for the options (``steps``, ``lr``, ``batch_tokens``, ``max_tokens``, ``init``, ``seed``, ``progress``)."""
        from .tuned_lens_training import train

        weight, bias, training = train(model, texts, **options)
        return cls(weight, bias, model_identity(model), training)

    # -- reading ------------------------------------------------------------------------
    def translate(self, layer: int, resid: torch.Tensor) -> torch.Tensor:
        """``resid`` ``[..., d_model]`` after block ``layer`` moved by that layer's translator (computed in float32;
        returned in ``resid``'s dtype and device). The last layer's is returned as it is."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer {layer} is out of range 0..{self.n_layers - 1} of this tuned lens")
        if resid.shape[-1] != self.d_model:
            raise ValueError(f"this tuned lens reads {self.d_model}-wide residual streams, got {resid.shape[-1]}")
        if layer == self.n_layers - 1:
            return resid
        key = (resid.device, torch.float32)
        if key not in self._on:
            self._on[key] = (self.weight.to(resid.device), self.bias.to(resid.device))
        weight, bias = self._on[key]
        x = resid.float()
        return (x + x @ weight[layer].T + bias[layer]).to(resid.dtype)

    def check_fits(self, model: Any) -> None:
        """Raise ValueError unless this lens was made for ``model``: the same sizes and, read through the model now,
        the same logits of the identity probe (weights changed since, or another model's, are refused). A model
        and weights version once checked are not probed again."""
        key = (id(model), model.weights_version())
        if key in self._fits:
            return
        mine = self.identity
        if (mine.get("n_layers"), mine.get("d_model"), mine.get("vocab_size")) != (
            model.n_layers,
            model.d_model,
            model.vocab_size,
        ):
            raise ValueError(
                f"this tuned lens is for a model of {mine.get('n_layers')} layers, d_model {mine.get('d_model')} and "
                f"{mine.get('vocab_size')} tokens ({mine.get('name', '?')}), not this one ({model.n_layers} layers, "
                f"d_model {model.d_model}, {model.vocab_size} tokens): train one for it with rw.TunedLens.train"
            )
        saved = torch.tensor(mine.get("probe_logits", []), dtype=torch.float32)
        now = probe_logits(model)
        if saved.shape != now.shape or (saved - now).abs().max() > PROBE_TOLERANCE * max(1.0, float(now.abs().max())):
            raise ValueError(
                f"this tuned lens was trained on other weights than this model's ({mine.get('name', '?')}: the "
                "model's logits on the identity probe differ): train one for these weights with rw.TunedLens.train"
            )
        self._fits.add(key)

    # -- files --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``tuned_lens.json`` (sizes, the model's identity, how it was trained) and ``tuned_lens.safetensors``
        into the directory ``path``; returns it."""
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": "repwidget-tuned-lens",
            "version": 1,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "model": self.identity,
            "training": self.training,
        }
        (out / CONFIG).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(out / WEIGHTS))
        return out

    @classmethod
    def load(cls, path: str | Path, model: Any) -> TunedLens:
        """The tuned lens saved in directory ``path``, every field checked, and checked to fit ``model``."""
        folder = Path(path)
        where = folder / CONFIG
        if not where.is_file():
            raise FileNotFoundError(f"no tuned lens at {folder}: {CONFIG} is missing (save one with lens.save(path))")
        meta = read_json(where)
        if meta.get("format") != "repwidget-tuned-lens":
            raise FileFormatError(f"{where}: format must be 'repwidget-tuned-lens', got {meta.get('format')!r:.60}")
        if json_field(meta, "version", "+int", where) != 1:
            raise FileFormatError(f"{where}: version {meta['version']} is newer than this repwidget reads (1)")
        n_layers = json_field(meta, "n_layers", "+int", where)
        d_model = json_field(meta, "d_model", "+int", where)
        if n_layers < 2:
            raise FileFormatError(f"{where}: n_layers must be 2 or more (the last layer has no translator)")
        identity = json_field(meta, "model", "dict", where)
        for key in ("n_layers", "d_model", "vocab_size"):
            json_field(identity, key, "+int", where)
        probe = json_field(identity, "probe_logits", "list", where)
        for i, value in enumerate(probe):
            json_field({f"probe_logits[{i}]": value}, f"probe_logits[{i}]", "number", where)
        if (identity["n_layers"], identity["d_model"]) != (n_layers, d_model):
            raise FileFormatError(f"{where}: model's n_layers and d_model must be the lens's {n_layers} and {d_model}")
        training = json_field(meta, "training", "dict", where, default={})
        file = folder / WEIGHTS
        tensors = read_tensors(file)
        weight = tensor_field(tensors, "weight", file, (n_layers - 1, d_model, d_model))
        bias = tensor_field(tensors, "bias", file, (n_layers - 1, d_model))
        lens = cls(weight, bias, identity, training)
        lens.check_fits(model)
        return lens


def probe_logits(model: Any) -> torch.Tensor:
    """``[PROBE_IDS]``: ``model``'s logits after a fixed sequence of :data:`PROBE_TOKENS` token ids, at
    :data:`PROBE_IDS` token ids spread over the vocabulary: a fingerprint of all its weights (one tiny pass)."""
    vocab = model.vocab_size
    ids = [(7919 * (i + 1)) % vocab for i in range(PROBE_TOKENS)]
    with warnings.catch_warnings():  # ids without <bos>: the same fixed probe every time, on purpose
        warnings.simplefilter("ignore")
        run = model.run(ids, capture=())
    logits = run.logits_at(len(ids) - 1).float().cpu().reshape(-1)
    return logits[torch.linspace(0, vocab - 1, PROBE_IDS).long()]


def model_identity(model: Any) -> dict[str, Any]:
    """What a tuned lens records of the model it is for: its name, sizes and :func:`probe_logits`."""
    name = getattr(model, "source", None) or str(getattr(model.hf.config, "_name_or_path", "") or "")
    return {
        "name": Path(name).name if name else type(model.hf).__name__,
        "n_layers": model.n_layers,
        "d_model": model.d_model,
        "vocab_size": model.vocab_size,
        "probe_logits": [round(float(x), 5) for x in probe_logits(model)],
    }
