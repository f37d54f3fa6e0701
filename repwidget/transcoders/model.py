"""Transcoders: a sparse layer of features that reads an MLP's input (``mlp.hook_in``) and writes its output
(``hook_mlp_out``): one layer's (:class:`Transcoder`) and one per layer (:class:`TranscoderSet`); cross-layer ones are
in :mod:`.cross_layer`.

Weights are laid out as circuit-tracer's: ``W_enc`` and ``W_dec`` are ``[d_tc, d_model]`` (a feature's encoder and
decoder vectors are rows), float32 unless asked otherwise, all on one device. Nothing here runs without gradients:
``encode`` and ``decode`` are differentiable in their inputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from ..file_checks import FileFormatError
from ..hook_names import HOOK_TEMPLATES, HookNameError
from ..sae.model import sparse_activation
from . import files

#: the hook templates a transcoder reads and writes, by default
INPUT_HOOK, OUTPUT_HOOK = "mlp.hook_in", "hook_mlp_out"


def _float(name: str, t: Any, shape: tuple[int, ...], dtype: torch.dtype | None, device) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"transcoder {name} must be a floating-point tensor, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(f"transcoder {name} has shape {tuple(t.shape)}, expected {shape}")
    return t.detach().to(device=device, dtype=dtype or torch.float32)


def activation_name(k: int | None, threshold: torch.Tensor | None) -> str:
    """The sparse activation a transcoder's ``k`` and ``threshold`` make: ``"topk"``, ``"jumprelu"`` or ``"relu"``."""
    return "topk" if k is not None else "jumprelu" if threshold is not None else "relu"


def _check_k(k: Any, d_tc: int, threshold: Any) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= d_tc:
        raise ValueError(f"transcoder k must be an int in 1..{d_tc} (TopK), got {k!r:.40}")
    if threshold is not None:
        raise ValueError("a transcoder takes k (TopK) or a threshold (JumpReLU), not both")
    return k


def _check_template(template: Any, what: str) -> str:
    """A hook template (``mlp.hook_in``), checked against repwidget's hook names."""
    if not isinstance(template, str) or template not in HOOK_TEMPLATES:
        raise ValueError(f"transcoder {what} must be one of {', '.join(HOOK_TEMPLATES)}, got {template!r:.60}")
    return template


class Transcoder:
    """One layer's transcoder: ``features = activation(x @ W_enc.T + b_enc)`` from the MLP's input ``x``, and
    ``out = features @ W_dec + b_dec (+ x @ W_skip.T)`` in place of the MLP's output.

    ``threshold`` makes it JumpReLU, ``k`` TopK (after ReLU), neither ReLU. ``input_hook`` / ``output_hook`` are
    repwidget hook templates (``blocks.{layer}.`` is prefixed: :attr:`hook_in`, :attr:`hook_out`)."""

    def __init__(
        self,
        layer: int,
        W_enc: torch.Tensor,
        b_enc: torch.Tensor,
        W_dec: torch.Tensor,
        b_dec: torch.Tensor,
        *,
        threshold: torch.Tensor | None = None,
        k: int | None = None,
        W_skip: torch.Tensor | None = None,
        input_hook: str = INPUT_HOOK,
        output_hook: str = OUTPUT_HOOK,
        dtype: torch.dtype | None = None,
    ) -> None:
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise ValueError(f"transcoder layer must be an int >= 0, got {layer!r:.40}")
        if not isinstance(W_enc, torch.Tensor) or W_enc.dim() != 2:
            raise ValueError("transcoder W_enc must be a matrix [d_tc, d_model]")
        d_tc, d_model = W_enc.shape
        device = W_enc.device
        self.layer = layer
        self.W_enc = _float("W_enc", W_enc, (d_tc, d_model), dtype, device)
        self.b_enc = _float("b_enc", b_enc, (d_tc,), dtype, device)
        self.W_dec = _float("W_dec", W_dec, (d_tc, d_model), dtype, device)
        self.b_dec = _float("b_dec", b_dec, (d_model,), dtype, device)
        self.threshold = None if threshold is None else _float("threshold", threshold, (d_tc,), dtype, device)
        self.W_skip = None if W_skip is None else _float("W_skip", W_skip, (d_model, d_model), dtype, device)
        self.k = _check_k(k, d_tc, threshold)
        self.input_hook = _check_template(input_hook, "input_hook")
        self.output_hook = _check_template(output_hook, "output_hook")
        #: quality measured on held-back tokens when trained (explained variance, l0, dead fraction)
        self.stats: dict[str, float] = {}
        self.metadata: dict[str, Any] = {}

    # -- shape ---------------------------------------------------------------------------
    @property
    def d_tc(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_model(self) -> int:
        return self.W_enc.shape[1]

    @property
    def activation_name(self) -> str:
        """``"topk"``, ``"jumprelu"`` or ``"relu"``."""
        return activation_name(self.k, self.threshold)

    @property
    def hook_in(self) -> str:
        return f"blocks.{self.layer}.{self.input_hook}"

    @property
    def hook_out(self) -> str:
        return f"blocks.{self.layer}.{self.output_hook}"

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    def tensors(self) -> dict[str, torch.Tensor]:
        """The weights by circuit-tracer's names (``activation_function.threshold``, ``W_skip`` when present)."""
        out = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}
        if self.threshold is not None:
            out["activation_function.threshold"] = self.threshold
        if self.W_skip is not None:
            out["W_skip"] = self.W_skip
        return out

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Transcoder:
        """This transcoder with its weights on ``device`` / of ``dtype`` (in place; returns itself)."""
        for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "W_skip"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device=device, dtype=dtype))
        return self

    # -- maths ---------------------------------------------------------------------------
    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.d_model:
            raise ValueError(f"transcoder of layer {self.layer} reads width {self.d_model}, got {x.shape[-1]}")
        return x.to(device=self.device, dtype=self.dtype)

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``x @ W_enc.T + b_enc``, ``[..., d_tc]``."""
        return self._input(x) @ self.W_enc.T + self.b_enc

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        """ReLU, JumpReLU or TopK of pre-activations."""
        return sparse_activation(pre, self.k, self.threshold)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations ``[..., d_tc]`` of MLP inputs ``x`` ``[..., d_model]``."""
        return self.activation(self.pre(x))

    def decode(self, acts: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """The MLP output ``acts @ W_dec + b_dec``, plus the skip ``x @ W_skip.T`` when there is one and ``x`` is
        given."""
        out = acts.to(device=self.device, dtype=self.dtype) @ self.W_dec + self.b_dec
        if self.W_skip is not None and x is not None:
            out = out + self._input(x) @ self.W_skip.T
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The transcoder's MLP output for MLP inputs ``x``."""
        return self.decode(self.encode(x), x)

    def __repr__(self) -> str:
        skip = " + skip" if self.W_skip is not None else ""
        k = f" k={self.k}" if self.k is not None else ""
        return f"<rw.Transcoder layer {self.layer}: {self.d_model} -> {self.d_tc} {self.activation_name}{k}{skip}>"


def _check_model(model: Any, n_layers: int, d_model: int, hooks: list[str], what: str) -> None:
    """One-line ValueError unless ``model`` has ``n_layers`` blocks of width ``d_model`` and every hook."""
    if model.n_layers != n_layers:
        raise ValueError(f"{what} has {n_layers} layers but the model has {model.n_layers}: is it for another model?")
    if model.d_model != d_model:
        raise ValueError(f"{what} reads width {d_model} but the model's d_model is {model.d_model}")
    for hook in hooks:
        try:
            model.check_hook(hook)
        except HookNameError as e:
            raise ValueError(f"{what}: {e}") from None


class TranscoderSet(Sequence):
    """One :class:`Transcoder` per layer, every layer present (``ts[L]``, ``len(ts)``, ``iter(ts)``).

    ``stats`` holds per-layer quality when trained or measured (``rw.transcoders.quality``); ``scan`` is
    circuit-tracer's identifier of the set; ``metadata`` is saved with it."""

    def __init__(
        self,
        transcoders: Sequence[Transcoder],
        *,
        scan: str | None = None,
        metadata: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        transcoders = list(transcoders)
        if not transcoders or not all(isinstance(t, Transcoder) for t in transcoders):
            raise TypeError("a TranscoderSet takes a non-empty list of rw.Transcoder, one per layer")
        layers = [t.layer for t in transcoders]
        if layers != list(range(len(transcoders))):
            raise ValueError(f"a TranscoderSet needs one transcoder for every layer 0..n-1 in order, got {layers}")
        first = transcoders[0]
        for t in transcoders[1:]:
            same = (t.d_model, t.d_tc, t.input_hook, t.output_hook, t.activation_name, t.W_skip is None)
            if same != (first.d_model, first.d_tc, first.input_hook, first.output_hook, first.activation_name,
                        first.W_skip is None):  # fmt: skip
                raise ValueError(f"transcoder {t!r} differs from layer 0's {first!r}: a set shares widths and hooks")
        self.transcoders = transcoders
        self.scan = scan
        self.metadata = dict(metadata or {})
        self.path = path
        #: per-layer quality: ``{"explained_variance": [...], ...}``, when trained or measured
        self.stats: dict[str, Any] = dict(self.metadata.get("stats", {}))

    def __getitem__(self, layer):  # type: ignore[override]
        return self.transcoders[layer]

    def __len__(self) -> int:
        return len(self.transcoders)

    def __iter__(self) -> Iterator[Transcoder]:
        return iter(self.transcoders)

    @property
    def n_layers(self) -> int:
        return len(self.transcoders)

    @property
    def d_model(self) -> int:
        return self.transcoders[0].d_model

    @property
    def d_tc(self) -> int:
        return self.transcoders[0].d_tc

    @property
    def input_hook(self) -> str:
        return self.transcoders[0].input_hook

    @property
    def activation_name(self) -> str:
        return self.transcoders[0].activation_name

    @property
    def k(self) -> int | None:
        return self.transcoders[0].k

    @property
    def output_hook(self) -> str:
        return self.transcoders[0].output_hook

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> TranscoderSet:
        for t in self.transcoders:
            t.to(device, dtype)
        return self

    def check_fits(self, model: Any) -> None:
        """Raise a one-line ValueError unless ``model`` has this set's layers, width and hooks."""
        hooks = [h for t in self.transcoders for h in (t.hook_in, t.hook_out)]
        _check_model(model, self.n_layers, self.d_model, hooks, f"this transcoder set ({self.d_tc} features)")

    def save(self, path: str | Path, format: str = "circuit-tracer", dtype: torch.dtype = torch.float32) -> Path:
        """Save as circuit-tracer's transcoder set (a directory of ``layer_{i}.safetensors`` + ``config.yaml``) or
        as SAELens directories (``layer_{i}/cfg.json`` + ``sae_weights.safetensors``), tensors as ``dtype`` (loading
        upcasts to float32). See :mod:`repwidget.transcoders.files`."""
        return files.save(self, path, format, dtype)

    @classmethod
    def load(cls, path: str | Path, model: Any = None) -> TranscoderSet:
        """Load either format (found from the files), checked field by field; with ``model``, checked to fit it."""
        kind, data = files.load(path)
        if kind != "transcoder_set":
            raise ValueError(f"{path} holds a {kind.replace('_', ' ')}: load it with rw.CrossLayerTranscoder.load")
        try:
            loaded = cls([Transcoder(**kw) for kw in data.pop("transcoders")], **data)
        except ValueError as e:
            raise FileFormatError(f"{data['path']}: {e}") from None
        if model is not None:
            loaded.check_fits(model)
        return loaded

    def __repr__(self) -> str:
        where = f" from {str(self.path)!r}" if self.path is not None else ""
        return f"<rw.TranscoderSet {self.n_layers} layers x {self.d_tc} features ({self[0].activation_name}){where}>"
