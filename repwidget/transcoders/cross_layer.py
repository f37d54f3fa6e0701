"""Cross-layer transcoders: each layer's features read that layer's MLP input and write to its own and every later
layer's MLP output (circuit-tracer's CLT layout)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..file_checks import FileFormatError
from ..sae.model import sparse_activation
from . import files
from .model import INPUT_HOOK, OUTPUT_HOOK, _check_k, _check_model, _check_template, _float, activation_name


class CrossLayerTranscoder:
    """A cross-layer transcoder: layer ``l``'s features read ``mlp.hook_in`` of layer ``l`` and write to the MLP
    output of ``l`` and of every later layer.

    ``W_enc`` ``[n_layers, d_tc, d_model]``, ``b_enc`` ``[n_layers, d_tc]``, ``W_dec[l]`` ``[d_tc, n_layers - l,
    d_model]`` (circuit-tracer's ``W_dec_{l}``: ``W_dec[l][:, j]`` writes to layer ``l + j``), ``b_dec``
    ``[n_layers, d_model]``, ``threshold`` ``[n_layers, d_tc]`` (JumpReLU) or ``k`` (TopK), ``W_skip``
    ``[n_layers, d_model, d_model]`` (``out[l] += x[l] @ W_skip[l]``, circuit-tracer's orientation for CLTs)."""

    def __init__(
        self,
        W_enc: torch.Tensor,
        b_enc: torch.Tensor,
        W_dec: Sequence[torch.Tensor],
        b_dec: torch.Tensor,
        *,
        threshold: torch.Tensor | None = None,
        k: int | None = None,
        W_skip: torch.Tensor | None = None,
        input_hook: str = INPUT_HOOK,
        output_hook: str = OUTPUT_HOOK,
        scan: str | None = None,
        metadata: dict[str, Any] | None = None,
        dtype: torch.dtype | None = None,
        path: Path | None = None,
    ) -> None:
        if not isinstance(W_enc, torch.Tensor) or W_enc.dim() != 3:
            raise ValueError("cross-layer transcoder W_enc must be [n_layers, d_tc, d_model]")
        n, d_tc, d_model = W_enc.shape
        device = W_enc.device
        self.W_enc = _float("W_enc", W_enc, (n, d_tc, d_model), dtype, device)
        self.b_enc = _float("b_enc", b_enc, (n, d_tc), dtype, device)
        if len(W_dec) != n:
            raise ValueError(f"cross-layer transcoder W_dec needs {n} matrices (one per layer), got {len(W_dec)}")
        self.W_dec = [_float(f"W_dec[{i}]", w, (d_tc, n - i, d_model), dtype, device) for i, w in enumerate(W_dec)]
        self.b_dec = _float("b_dec", b_dec, (n, d_model), dtype, device)
        self.threshold = None if threshold is None else _float("threshold", threshold, (n, d_tc), dtype, device)
        self.W_skip = None if W_skip is None else _float("W_skip", W_skip, (n, d_model, d_model), dtype, device)
        self.k = _check_k(k, d_tc, threshold)
        self.input_hook = _check_template(input_hook, "input_hook")
        self.output_hook = _check_template(output_hook, "output_hook")
        self.scan, self.path = scan, path
        self.metadata = dict(metadata or {})
        self.stats: dict[str, Any] = dict(self.metadata.get("stats", {}))

    @property
    def n_layers(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_tc(self) -> int:
        return self.W_enc.shape[1]

    @property
    def d_model(self) -> int:
        return self.W_enc.shape[2]

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    @property
    def activation_name(self) -> str:
        return activation_name(self.k, self.threshold)

    def __len__(self) -> int:
        return self.n_layers

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> CrossLayerTranscoder:
        for name in ("W_enc", "b_enc", "b_dec", "threshold", "W_skip"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device=device, dtype=dtype))
        self.W_dec = [w.to(device=device, dtype=dtype) for w in self.W_dec]
        return self

    def _input(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in 0..{self.n_layers - 1}, got {layer}")
        if x.shape[-1] != self.d_model:
            raise ValueError(f"cross-layer transcoder reads width {self.d_model}, got {x.shape[-1]}")
        return x.to(device=self.device, dtype=self.dtype)

    def pre(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s pre-activations of its MLP inputs ``x``."""
        return self._input(layer, x) @ self.W_enc[layer].T + self.b_enc[layer]

    def activation(self, layer: int, pre: torch.Tensor) -> torch.Tensor:
        return sparse_activation(pre, self.k, None if self.threshold is None else self.threshold[layer])

    def encode(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s feature activations ``[..., d_tc]`` of its MLP inputs ``x`` ``[..., d_model]``."""
        return self.activation(layer, self.pre(layer, x))

    def decode_to(
        self, layer_out: int, acts_by_layer: Sequence[torch.Tensor], x: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The MLP output of ``layer_out`` from the features of layers ``0..layer_out`` (``acts_by_layer[l]``,
        ``[..., d_tc]``; later entries are ignored), plus ``x @ W_skip[layer_out]`` when there is a skip and the
        layer's MLP input ``x`` is given."""
        if not 0 <= layer_out < self.n_layers or len(acts_by_layer) <= layer_out:
            raise ValueError(f"decode_to({layer_out}) needs features of layers 0..{layer_out}")
        out = self.b_dec[layer_out]
        for source in range(layer_out + 1):
            acts = acts_by_layer[source].to(device=self.device, dtype=self.dtype)
            out = out + acts @ self.W_dec[source][:, layer_out - source]
        if self.W_skip is not None and x is not None:
            out = out + self._input(layer_out, x) @ self.W_skip[layer_out]
        return out

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Every layer's MLP output from every layer's MLP input ``xs[l]``."""
        acts = [self.encode(layer, x) for layer, x in enumerate(xs)]
        return [self.decode_to(layer, acts, xs[layer]) for layer in range(self.n_layers)]

    def check_fits(self, model: Any) -> None:
        """Raise a one-line ValueError unless ``model`` has this transcoder's layers, width and hooks."""
        hooks = [f"blocks.{layer}.{t}" for layer in range(self.n_layers) for t in (self.input_hook, self.output_hook)]
        _check_model(model, self.n_layers, self.d_model, hooks, f"this cross-layer transcoder ({self.d_tc} features)")

    def save(self, path: str | Path, format: str = "circuit-tracer", dtype: torch.dtype = torch.float32) -> Path:
        """Save in circuit-tracer's CLT layout (``W_enc_{l}.safetensors``, ``W_dec_{l}.safetensors``, config)."""
        return files.save(self, path, format, dtype)

    @classmethod
    def load(cls, path: str | Path, model: Any = None) -> CrossLayerTranscoder:
        kind, data = files.load(path)
        if kind != "cross_layer_transcoder":
            raise ValueError(f"{path} holds a {kind.replace('_', ' ')}: load it with rw.TranscoderSet.load")
        try:
            loaded = cls(**data)
        except ValueError as e:
            raise FileFormatError(f"{data['path']}: {e}") from None
        if model is not None:
            loaded.check_fits(model)
        return loaded

    def __repr__(self) -> str:
        return f"<rw.CrossLayerTranscoder {self.n_layers} layers x {self.d_tc} features ({self.activation_name})>"
