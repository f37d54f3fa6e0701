"""Per-layer and cross-layer transcoders behind one interface for the replacement model: a feature of layer ``s``
reads ``mlp.hook_in`` of ``s`` and writes to the MLP output of every layer ``t`` in ``s..reach(s)`` (``s`` alone for a
:class:`~repwidget.transcoders.TranscoderSet`, ``s..n_layers - 1`` for a
:class:`~repwidget.transcoders.CrossLayerTranscoder`). Weights are float32 copies on the model's device."""

from __future__ import annotations

from typing import Any

import torch


class Coders:
    """The transcoders of a replacement model: ``encode``, the encoder and decoder rows of active features, and
    each layer's whole write (features + decoder bias + skip)."""

    def __init__(self, transcoders: Any, device: torch.device) -> None:
        from ..transcoders import CrossLayerTranscoder

        def f32(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach().float().to(device)

        self.transcoders = transcoders
        self.cross_layer = isinstance(transcoders, CrossLayerTranscoder)
        n = len(transcoders)
        if self.cross_layer:
            clt = transcoders
            self.enc = [f32(clt.W_enc[layer]) for layer in range(n)]
            self.dec = [f32(w) for w in clt.W_dec]  # [d_tc, n - s, d]: dec[s][:, t - s] writes to layer t
            self.b_dec = [f32(clt.b_dec[layer]) for layer in range(n)]
            self.skip = [None if clt.W_skip is None else f32(clt.W_skip[layer]) for layer in range(n)]  # x @ skip
        else:
            self.enc = [f32(tc.W_enc) for tc in transcoders]
            self.dec = [f32(tc.W_dec)[:, None] for tc in transcoders]  # [d_tc, 1, d]
            self.b_dec = [f32(tc.b_dec) for tc in transcoders]
            self.skip = [None if tc.W_skip is None else f32(tc.W_skip).T for tc in transcoders]
        self.n_layers = n

    def reach(self, source: int) -> int:
        """The last layer a feature of layer ``source`` writes to."""
        return self.n_layers - 1 if self.cross_layer else source

    def encode(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s feature activations ``[pos, d_tc]`` (float32) of its MLP inputs ``x``, computed by the
        transcoder itself (its dtype, its activation)."""
        if self.cross_layer:
            return self.transcoders.encode(layer, x.to(self.transcoders.dtype)).float()
        tc = self.transcoders[layer]
        return tc.encode(x.to(tc.W_enc.dtype)).float()

    def encoder_rows(self, features: torch.Tensor) -> torch.Tensor:
        """``W_enc`` rows ``[n, d]`` (CPU) of ``features`` ``[n, 3]`` (layer, position, feature)."""
        rows = [self.enc[s][f] for s, _, f in features.tolist()]
        return torch.stack(rows).cpu() if rows else torch.zeros(0, self.enc[0].shape[1])

    def writers(self, features: torch.Tensor, target: int) -> torch.Tensor:
        """Indices into ``features`` of those that write to layer ``target``'s MLP output."""
        source = features[:, 0]
        mask = source <= target if self.cross_layer else source == target
        return mask.nonzero(as_tuple=True)[0]

    def decoder_rows(self, features: torch.Tensor, target: int) -> torch.Tensor:
        """The decoder rows ``[n, d]`` (on the weights' device) with which ``features`` (each writing to ``target``)
        write to layer ``target``'s MLP output."""
        out = torch.zeros(len(features), self.enc[0].shape[1], device=self.enc[0].device)
        for s in features[:, 0].unique().tolist():
            at = (features[:, 0] == s).nonzero(as_tuple=True)[0]
            out[at.to(out.device)] = self.dec[s][features[at, 2].to(out.device), target - s]
        return out

    def write(self, target: int, features: torch.Tensor, activations: torch.Tensor, x_in: torch.Tensor) -> torch.Tensor:
        """Layer ``target``'s transcoder output ``[pos, d]``: the writes of ``features`` ``[n, 3]`` with
        ``activations`` ``[n]``, the decoder bias, and the skip connection on ``x_in`` (in the autograd graph)."""
        dev = x_in.device
        out = torch.zeros(x_in.shape[0], self.enc[0].shape[1], device=dev)
        at = self.writers(features, target)
        if len(at):
            rows = self.decoder_rows(features[at], target).to(dev) * activations[at, None].to(dev)
            out = out.index_add(0, features[at, 1].to(dev), rows)
        out = out + self.b_dec[target].to(dev)
        if self.skip[target] is not None:
            out = out + x_in.float() @ self.skip[target].to(dev)
        return out
