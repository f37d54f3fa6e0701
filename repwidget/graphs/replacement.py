"""The replacement model of one prompt: every MLP replaced by its transcoder plus an error node per (layer, position),
attention patterns and norm scales frozen from the real run of the prompt (``freeze.py``), so the map from feature
activations, error vectors and token embeddings to the logits is affine. With nothing changed it gives the real
model's logits.

Each pass is one pass of the model through its executor (captures, edits, attention sinks: ``model/execute.py``);
the edits are the replacement itself: ``mlp.hook_in`` is read, ``hook_mlp_out`` becomes
``sum_f a_f W_dec[f] + b_dec + skip(mlp.hook_in) + error + c`` (``c``: what the graph leaves to no node, the
features and error of a BOS position, as circuit-tracer zeroes them). With a cross-layer transcoder the sum runs
over the active features of this layer and of every earlier one, each with its decoder row for this layer
(``coders.py``). Gradients flow only through
the frozen linear paths: the error and feature writes are constants, the MLP's own computation is not used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from ..model.plan import EditStep, plan_pass
from .coders import Coders
from .freeze import FrozenNorms, FrozenPattern

if TYPE_CHECKING:
    from ..model.model import Model
    from ..model.tokens import TokensLike

IN, OUT = "mlp.hook_in", "hook_mlp_out"


@dataclass
class ReplacementPass:
    """One pass of the replacement model: per layer the MLP input ``x_in`` and output ``mlp_out`` ``[pos, d]``,
    the first block's input ``resid_pre`` and the unembedding's input ``final`` (in the autograd graph when asked)."""

    x_in: list[torch.Tensor]
    mlp_out: list[torch.Tensor]
    resid_pre: torch.Tensor
    final: torch.Tensor
    #: the other hook points the pass was asked for (``extra``), by name
    extra: dict[str, torch.Tensor] | None = None


def check_transcoders(model: Model, transcoders: Any) -> None:
    """One transcoder per layer (an ``rw.TranscoderSet``, or a list following its contract) or one
    ``rw.CrossLayerTranscoder``, reading ``mlp.hook_in`` and writing ``hook_mlp_out`` at the model's width, or a
    one-line error."""
    from ..transcoders import CrossLayerTranscoder

    n = model.n_layers
    if isinstance(transcoders, CrossLayerTranscoder):
        if transcoders.n_layers != n:
            raise ValueError(f"this cross-layer transcoder has {transcoders.n_layers} layers, the model {n}")
        if (transcoders.input_hook, transcoders.output_hook) != (IN, OUT):
            raise ValueError(
                f"the replacement model replaces {IN} -> {OUT}; this cross-layer transcoder maps "
                f"{(transcoders.input_hook, transcoders.output_hook)}"
            )
        transcoders.check_fits(model)
        return
    if not hasattr(transcoders, "__getitem__") or not hasattr(transcoders, "__len__") or len(transcoders) != n:
        raise TypeError(
            f"transcoders must be a TranscoderSet with one transcoder for each of the model's {n} layers, or a "
            "CrossLayerTranscoder"
        )
    if hasattr(transcoders, "check_fits"):
        transcoders.check_fits(model)
    for layer in range(n):
        tc = transcoders[layer]
        hooks = (getattr(tc, "input_hook", IN), getattr(tc, "output_hook", OUT))
        if hooks != (IN, OUT):
            raise ValueError(
                f"the replacement model replaces {IN} -> {OUT}; the transcoder of layer {layer} maps {hooks}"
            )
        if tuple(tc.W_dec.shape[1:]) != (model.d_model,) or tuple(tc.W_enc.shape[1:]) != (model.d_model,):
            raise ValueError(
                f"the transcoder of layer {layer} is {tuple(tc.W_enc.shape)} (features x width); the model's residual "
                f"stream is {model.d_model} wide"
            )
        if getattr(tc, "layer", layer) != layer:
            raise ValueError(f"transcoders[{layer}] says it is layer {tc.layer}'s")


class ReplacementModel:
    """The replacement model of ``text`` (see the module): built from one real pass, then :meth:`run` with any
    feature activations, error vectors and token embeddings.

    ``features`` ``[n, 3]`` (layer, position, feature) are the active features, ``activations`` ``[n]`` their
    values; ``errors`` ``[layers, pos, d]``; ``tokens`` ``[pos, d]`` the token embeddings; ``logits`` the real pass's.
    """

    def __init__(self, model: Model, text: TokensLike, transcoders: Any) -> None:
        from ..model.executor import LocalExecutor

        if not isinstance(model.executor, LocalExecutor) or not model.executor.interface:
            raise ValueError(
                "the replacement model freezes attention in repwidget's attention implementation: it needs the "
                "local backend and a model whose attention goes through transformers' attention interface"
            )
        if not model.arch.plain_logits or model.arch.unembed is None:
            raise ValueError("the replacement model needs logits == unembedding(final hidden) (no soft-capping)")
        if not model.arch.additive or model.arch.parallel:
            raise ValueError(
                "the replacement model needs sequential pre-norm blocks (resid_post = resid_mid + mlp_out)"
            )
        check_transcoders(model, transcoders)
        self.model, self.transcoders = model, transcoders
        self.ids = special_first(model.tokenizer, model.to_ids(text))
        hf, n_layers = model.hf, model.n_layers
        self.patterns = {layer: FrozenPattern() for layer in range(n_layers)}
        self.norms = FrozenNorms(hf, model.arch)
        with self.norms.recording():
            real = self._pass({}, grad=False)
        self.logits = model.unembed(real.final).detach().float()
        #: positions whose features and errors are zeroed (left to the bias), as circuit-tracer: a special token at 0
        self.zeroed = 1 if self.ids[0] in _special_ids(model.tokenizer) else 0
        #: the transcoders' weights, float32 on the model's device, per-layer and cross-layer alike
        self.coders = Coders(transcoders, model.device)
        features, values = [], []
        for layer in range(n_layers):
            with torch.no_grad():
                acts = self.coders.encode(layer, real.x_in[layer].detach()).cpu()
            acts[: self.zeroed] = 0
            pos, feat = acts.nonzero(as_tuple=True)
            features.append(torch.stack([torch.full_like(pos, layer), pos, feat], 1))
            values.append(acts[pos, feat])
        self.features = torch.cat(features)
        self.activations = torch.cat(values)
        errors, corrections = [], []
        for layer in range(n_layers):  # error: the rest of the real output; c: what position 0's error leaves
            out = real.mlp_out[layer].detach().float()
            with torch.no_grad():
                rest = out - self.mlp_write(layer, self.activations, real.x_in[layer].detach())
            error = rest.clone()
            error[: self.zeroed] = 0
            errors.append(error)
            corrections.append(rest - error)
        self.errors = torch.stack(errors)
        self.corrections = torch.stack(corrections)
        self.tokens = _token_vectors(hf, self.ids, real.resid_pre.detach().float(), model.device)
        self.real_logits = self.logits
        self._clean: torch.Tensor | None = None

    @property
    def n_layers(self) -> int:
        return self.model.n_layers

    @property
    def cross_layer(self) -> bool:
        return self.coders.cross_layer

    def decoder_rows(self, index: torch.Tensor, target: int | None = None) -> torch.Tensor:
        """The decoder rows ``[len(index), d]`` (on the CPU) with which the active features ``index`` write to layer
        ``target``'s MLP output (default: each its own layer's; a per-layer transcoder's ``W_dec[f]``)."""
        feats = self.features[index]
        if target is not None:
            return self.coders.decoder_rows(feats, target).cpu()
        out = torch.zeros(len(feats), self.model.d_model)
        for source in feats[:, 0].unique().tolist():
            at = (feats[:, 0] == source).nonzero(as_tuple=True)[0]
            out[at] = self.coders.decoder_rows(feats[at], source).cpu()
        return out

    def encoder_rows(self, index: torch.Tensor) -> torch.Tensor:
        """``W_enc[f]`` ``[len(index), d]`` of the active features ``index``: what a feature's pre-activation reads."""
        return self.coders.encoder_rows(self.features[index])

    def feature_writes(self, i: int) -> list[tuple[int, torch.Tensor]]:
        """Active feature ``i``'s writes (activation x decoder row, CPU) as ``(layer, vector)``, one per MLP output
        it writes to: its own layer's for a per-layer transcoder, its own and every later one for a cross-layer one."""
        source = int(self.features[i, 0])
        index = torch.tensor([i])
        return [
            (t, self.decoder_rows(index, t)[0] * self.activations[i])
            for t in range(source, self.coders.reach(source) + 1)
        ]

    def mlp_write(self, layer: int, activations: torch.Tensor, x_in: torch.Tensor) -> torch.Tensor:
        """The transcoder's output at ``layer`` ``[pos, d]``: the active features' writes with ``activations`` (for
        a cross-layer transcoder, those of every layer up to ``layer``), its decoder bias and skip connection (on
        ``x_in``, in the graph)."""
        return self.coders.write(layer, self.features, activations, x_in)

    def run(
        self,
        activations: torch.Tensor | None = None,
        errors: torch.Tensor | None = None,
        tokens: torch.Tensor | None = None,
        grad: bool = False,
        extra: tuple[str, ...] = (),
    ) -> ReplacementPass:
        """A pass of the replacement model with these feature ``activations`` ``[n]``, ``errors`` and token embeddings
        ``tokens`` (each the real run's when None); ``grad``: every tensor returned is in the autograd graph;
        ``extra``: other hook points to return (``ReplacementPass.extra``)."""
        activations = self.activations if activations is None else activations
        errors = self.errors if errors is None else errors
        seen: dict[int, torch.Tensor] = {}
        edits: dict[str, list[EditStep]] = {}
        for layer in range(self.n_layers):

            def read(x: torch.Tensor, layer: int = layer) -> torch.Tensor:
                seen[layer] = x
                return x

            def write(y: torch.Tensor, layer: int = layer) -> torch.Tensor:
                out = self.mlp_write(layer, activations, seen[layer][0]) + errors[layer] + self.corrections[layer]
                out = out[None].to(y.dtype)
                # without a skip connection the output is a constant: a leaf, so gradients can be read at it
                return out.requires_grad_() if torch.is_grad_enabled() and not out.requires_grad else out

            edits[f"blocks.{layer}.{IN}"] = [EditStep("replacement model: MLP input", [read])]
            edits[f"blocks.{layer}.{OUT}"] = [EditStep("replacement model: transcoder + error", [write])]
        if tokens is not None:
            delta = (tokens - self.tokens)[None]
            edits["blocks.0.hook_resid_pre"] = [
                EditStep("replacement model: tokens", [lambda x: x + delta.to(x.dtype)])
            ]
        with self.norms.frozen():
            return self._pass(edits, grad, extra)

    def clean_logits(self) -> torch.Tensor:
        """The logits of the replacement model with nothing changed (the real ones, to rounding), computed once."""
        if self._clean is None:
            with torch.no_grad():
                self._clean = self.logits_of(self.run())
        return self._clean

    def logits_of(self, result: ReplacementPass) -> torch.Tensor:
        """The logits ``[pos, vocab]`` of a pass (in the graph if the pass is)."""
        return self.model.executor.unembed_in_graph(result.final).float()

    def _pass(self, edits: dict[str, list[EditStep]], grad: bool, extra: tuple[str, ...] = ()) -> ReplacementPass:
        n = self.n_layers
        names = [f"blocks.{layer}.{site}" for layer in range(n) for site in (IN, OUT)] + ["blocks.0.hook_resid_pre"]
        names += [name for name in extra if name not in names]
        plan = plan_pass(self.model, self.ids, (), names, None, grad=grad, record=False, sinks=dict(self.patterns))
        plan = replace(plan, edits=edits)
        with torch.set_grad_enabled(grad):
            result = self.model.executor.execute(plan)[0]
        cache = result.cache
        return ReplacementPass(
            x_in=[cache[f"blocks.{layer}.{IN}"] for layer in range(n)],
            mlp_out=[cache[f"blocks.{layer}.{OUT}"] for layer in range(n)],
            resid_pre=cache["blocks.0.hook_resid_pre"],
            final=result.final_hidden,
            extra={name: cache[name] for name in extra},
        )


def _token_vectors(hf, ids: list[int], resid_pre: torch.Tensor, device) -> torch.Tensor:
    """What each token's embedding adds to the first block's input ``[pos, d]``: the embedding module's output, or
    that times the scale the model applies after it (Gemma's sqrt(d_model)), found by fitting the block's input."""
    with torch.no_grad():
        emb = hf.get_input_embeddings()(torch.tensor([ids], device=device))[0].float()
    scale = float((resid_pre * emb).sum() / (emb * emb).sum().clamp(min=1e-30))
    if abs(scale - 1) > 1e-6 and torch.allclose(resid_pre, scale * emb, rtol=1e-4, atol=1e-6):
        return scale * emb
    return emb


def _special_ids(tokenizer) -> set[int]:
    return set(getattr(tokenizer, "all_special_ids", None) or ())


def special_first(tokenizer, ids: list[int]) -> list[int]:
    """``ids`` with a special token first, as circuit-tracer makes every prompt (position 0's unusual norms and
    features are then left out of the graph): unchanged when one is there, else the BOS (or pad, EOS, any special
    token) prepended. Without a tokenizer, or one with no special token, unchanged."""
    specials = _special_ids(tokenizer)
    if not specials or ids[0] in specials:
        return ids
    names = ("bos_token_id", "pad_token_id", "eos_token_id")
    first = next(t for t in [*(getattr(tokenizer, n, None) for n in names), *specials] if t is not None)
    return [first, *ids]
