"""Model: an adapter over any Hugging Face transformer, and the one place that plans forward passes."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .. import hook_names
from ..interventions import Intervention, as_tuple
from ..placement import input_device
from ..run import Run
from ..texts import token_ids
from . import attention, readings
from . import tokens as tokens_mod
from .architecture import Architecture, discover
from .backends import make_executor
from .errors import check_materialised
from .executor import Executor
from .hooks import hook_width, why_missing
from .plan import batches, first_edited_layer, plan_batch, plan_pass, stitch
from .reference import Reference
from .reruns import iter_reruns, reusable
from .sources import Sources
from .tokens import TokensLike
from .twin import discover_weightless, is_weightless

Messages = Sequence[Mapping[str, Any]]


class Model:
    """A Hugging Face model and tokenizer, with its architecture discovered once.

    Build one with :func:`repwidget.load`. ``model.hf`` is the wrapped model, left as it was:
    every hook repwidget installs is removed when the run that needed it ends.

    The model plans each pass (checks, budget, edits, which blocks a rerun reuses) and hands the plan to
    its ``executor``, which runs it: :class:`~repwidget.model.executor.LocalExecutor` by default, an
    nnsight trace with ``backend="nnsight"`` (on NDIF with ``remote=True``).
    """

    def __new__(cls, hf_model: nn.Module | None = None, *args: Any, **kwargs: Any):
        """An image classifier is a ``VisionModel``: ``rw.Model(net, preprocess=f, classes=[...], input_shape=...)``."""
        from .vision import is_image_model
        from .vision_model import VisionModel

        if cls is Model and isinstance(hf_model, nn.Module) and is_image_model(hf_model):
            return VisionModel(hf_model, *args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        hf_model: nn.Module,
        tokenizer: Any = None,
        executor: Executor | None = None,
        backend: str = "local",
        remote: bool = False,
        nnsight_model: Any = None,
    ) -> None:
        if not isinstance(hf_model, nn.Module) or not hasattr(hf_model, "config"):
            raise TypeError(f"expected a Hugging Face PreTrainedModel, got {type(hf_model).__name__}")

        #: the weights are not here (the module tree is on ``meta``): passes run on NDIF, logits are read in them
        self.weightless = remote and backend == "nnsight" and is_weightless(hf_model)
        if not self.weightless:
            check_materialised(hf_model)
        self.hf = hf_model
        self.tokenizer = tokenizer
        embeddings = hf_model.get_input_embeddings()
        self.vocab_size: int = int(embeddings.num_embeddings)
        weightless = self.weightless
        self.arch: Architecture = discover_weightless(hf_model) if weightless else discover(hf_model, self.vocab_size)
        self.reference: Reference | None = None
        #: the activations patches read (a run on other ids), kept for the patches that follow
        self.patch_sources = Sources(self)
        params = inspect.signature(hf_model.forward).parameters
        forward_kwargs = {"use_cache": False} if "use_cache" in params else {}
        #: the forward's name for its KV cache (``cache`` in transformers 5.2x, ``past_key_values`` before)
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self.executor: Executor = executor or make_executor(
            backend, hf_model, self.arch, forward_kwargs, remote, tokenizer, nnsight_model
        )

    # -- shape ---------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.arch.n_layers

    @property
    def n_heads(self) -> int:
        return self.arch.n_heads

    @property
    def d_model(self) -> int:
        return self.arch.d_model

    @property
    def d_head(self) -> int:
        return self.arch.d_head

    @property
    def d_mlp(self) -> int:
        return self.arch.d_mlp

    has_unembed = property(lambda self: self.arch.unembed is not None)

    @property
    def max_tokens(self) -> int | None:
        """The longest input the model takes (its position embeddings' length), if it says."""
        return tokens_mod.max_positions(self.hf.config)

    @property
    def device(self) -> torch.device:
        return input_device(self.hf)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's weights (and so of its activations)."""
        return next(self.hf.parameters()).dtype

    @property
    def pad_id(self) -> int:
        """The id that pads a batch (the tokenizer's pad token, else the config's, else 0): never attended to."""
        return tokens_mod.pad_id(self.tokenizer, self.hf.config, self.vocab_size)

    @property
    def source(self) -> str:
        """Where the model was loaded from (its ``name_or_path``; ``"demo"`` for ``rw.demo_model()``), or ``""``."""
        return getattr(self, "_source", "") or str(getattr(self.hf, "name_or_path", "") or "")

    @source.setter
    def source(self, value: str) -> None:
        self._source = value

    def hook_names(self) -> list[str]:
        """Every hook name this model's runs can capture (no ``hook_resid_mid`` where attention and MLP read the
        same stream, no ``mlp.hook_post`` in a mixture-of-experts MLP)."""
        return [name for name in hook_names.all_names(self.n_layers) if why_missing(self.arch, name) is None]

    def check_hook(self, name: str) -> tuple[int, str]:
        """``(layer, template)`` of a hook this model has, or a HookNameError saying why not."""
        layer, template = hook_names.parse(name, self.n_layers)
        reason = why_missing(self.arch, name)
        if reason is not None:
            raise hook_names.HookNameError(f"{name}: {reason}")
        return layer, template

    def expand(self, capture: str | Iterable[str] | None) -> list[str]:
        """Hook names and globs (``None``: the default capture) as this model's hook names, in execution order."""
        patterns = [capture] if isinstance(capture, str) else capture
        for pattern in patterns or ():
            if isinstance(pattern, str) and not any(c in pattern for c in "*?["):
                self.check_hook(pattern)
        return hook_names.expand(capture, self.n_layers, names=self.hook_names())

    def __repr__(self) -> str:
        return (
            f"<rw.Model {type(self.hf).__name__}: {self.n_layers} layers, {self.n_heads} heads, "
            f"d_model {self.d_model}, d_mlp {self.d_mlp}, on {self.device}>"
        )

    # -- tokens --------------------------------------------------------------------------
    def to_ids(self, text_or_ids: TokensLike | None = None, *, messages: Messages | None = None) -> list[int]:
        """Token ids for a text (tokenizer defaults: its BOS, never a second one), token ids, a tokenizer's
        output (``input_ids``), or chat ``messages`` (the tokenizer's chat template and generation prompt)."""
        return tokens_mod.checked_ids(
            tokens_mod.to_ids(self.tokenizer, text_or_ids, messages), self.vocab_size, self.max_tokens
        )

    def to_str_tokens(self, ids: Iterable[int]) -> list[str]:
        """Each token as text (decoded alone; a piece of a character as its bytes, ``<0xF0><0x9F>``),
        or its id as a string without a tokenizer."""
        return tokens_mod.str_tokens(self.tokenizer, list(ids))

    # -- runs ----------------------------------------------------------------------------
    def run(
        self,
        text_or_ids: TokensLike | None = None,
        interventions: Intervention | Iterable[Intervention] = (),
        capture: str | Iterable[str] | None = None,
        summarize: int | None = None,
        *,
        messages: Messages | None = None,
    ) -> Run:
        """One forward pass. ``capture`` takes hook names or globs (default: every residual stream; attention
        patterns are computed when first read). ``summarize=side`` also reduces every layer's attention during
        the pass to :meth:`Run.summary` (thumbnails ``side`` a side and head scores), never holding a pattern.
        ``messages=[{"role": "user", "content": ...}]`` runs the chat template's text instead."""
        ids = self.to_ids(text_or_ids, messages=messages)
        sinks = {layer: attention.Summary(summarize, ids) for layer in range(self.n_layers)} if summarize else {}
        run = self._pass(ids, as_tuple(interventions), capture, base=None, sinks=sinks)
        run._take_summaries(sinks, summarize)
        return run

    def rerun(self, base: Run, interventions: Intervention | Iterable[Intervention] = (), capture=None) -> Run:
        """``base``'s input re-run with ``interventions``, recomputing only from the earliest intervened block.

        Blocks are reused only from a run of this model with the same weights: after the weights changed,
        the rerun is a full pass.
        """
        if base.model is not self:
            raise ValueError("rerun takes a run of this model")
        reuse = base if reusable(self, base) else None
        return self._pass(base.token_ids, as_tuple(interventions), capture, base=reuse)

    def run_batch(
        self,
        texts_or_ids: Sequence[TokensLike],
        interventions: Intervention | Iterable[Intervention] = (),
        capture: str | Iterable[str] | None = None,
        batch_size: int | None = None,
        padding: str = "right",
    ) -> list[Run]:
        """Many inputs, a padded batch at a time (with attention masks; ``padding`` on the ``"right"`` or the
        ``"left"``), each :class:`Run` equal to ``model.run`` of that input alone. Interventions apply to every
        input, those naming positions at the input's own positions. ``batch_size`` defaults to what fits
        ``rw.options.max_capture_bytes``. Runs of a batch hold no block outputs: their reruns are full passes."""
        if padding not in ("right", "left"):
            raise ValueError(f"padding must be 'right' or 'left', got {padding!r:.40}")
        ids = self._all_ids(texts_or_ids)
        ivs = as_tuple(interventions)
        names = self.expand(capture)
        version = self.weights_version()
        runs: list[Run | None] = [None] * len(ids)
        for batch in batches(self, ids, names, batch_size, desc="runs"):
            plan = plan_batch(self, [ids[i] for i in batch], ivs, names, left=padding == "left")
            for i, result in zip(batch, self.executor.execute(plan), strict=True):
                runs[i] = Run(self, ids[i], ivs, result, 0, version)
        return runs

    def rerun_batch(
        self,
        base: Run,
        interventions: Sequence[Intervention | Iterable[Intervention]],
        capture: str | Iterable[str] | None = (),
        batch_size: int | None = None,
    ) -> list[Run]:
        """``base``'s input re-run once per set of ``interventions``, in batches, each from the earliest block its
        batch edits (the blocks before reused, shared by the batch): what sweeps over heads, positions or patches
        do. Each run equals ``base.rerun(that set)`` (up to rounding); runs hold no block outputs.

        On a causal model, a set that changes nothing before some position (edits of later positions only, a patch
        from a prompt sharing the first tokens: ``Intervention.first_changed``) re-runs only the positions from
        there, on the KV cache of ``base``'s prefix (a clean ``base`` on the local executor, no captures)."""
        sets = [as_tuple(ivs) for ivs in interventions]
        names = self.expand(capture)
        runs: list[Run | None] = [None] * len(sets)
        for indices, batch in iter_reruns(self, base, sets, names, batch_size):
            for i, run in zip(indices, batch, strict=True):
                runs[i] = run
        return runs

    def capture(self, text_or_ids: TokensLike, hooks: str | Iterable[str]) -> dict[str, torch.Tensor]:
        """Only the activations at ``hooks`` (names or globs), ending the pass once they are all taken.

        What harvesting loops want: capturing ``blocks.2.hook_resid_pre`` runs blocks 0-1 and stops.
        """
        return self.capture_batch([text_or_ids], hooks, batch_size=1, progress=False)[0]

    def capture_batch(
        self,
        texts_or_ids: Sequence[TokensLike],
        hooks: str | Iterable[str],
        batch_size: int | None = None,
        progress: bool = True,
    ) -> list[dict[str, torch.Tensor]]:
        """:meth:`capture` of many inputs, a padded batch at a time, each equal to capturing it alone."""
        out: list[dict[str, torch.Tensor]] = []
        for i, cache in self.iter_capture(texts_or_ids, hooks, batch_size, progress):
            out.extend({} for _ in range(i + 1 - len(out)))
            out[i] = cache
        return out

    def iter_capture(
        self,
        texts_or_ids: Sequence[TokensLike],
        hooks: str | Iterable[str],
        batch_size: int | None = None,
        progress: bool = True,
    ):
        """Yield ``(index, {hook: activation})`` for every input, a batch at a time (shortest inputs first;
        memory: one batch), each pass ending once its hooks are read."""
        yield from readings.captures(self, self._all_ids(texts_or_ids), self.expand(hooks), batch_size, progress)

    def _all_ids(self, texts_or_ids: Sequence[TokensLike]) -> list[list[int]]:
        """Token ids of every input, all checked before any work (an error names the input)."""
        out = token_ids(self, texts_or_ids)
        if not out:
            raise ValueError("no inputs: give at least one text")
        return out

    def set_reference(self, texts: Iterable[TokensLike]) -> None:
        """Texts whose activations give the statistics for ``mode="mean"`` and ``"resample"`` ablations."""
        if isinstance(texts, str):
            texts = [texts]
        self.reference = Reference(self, self._all_ids(list(texts)))

    def weights_version(self) -> int:
        """Changes whenever the model's weights do (edited in place, replaced or moved)."""
        return self.executor.weights_version()

    def _pass(self, ids: Sequence[int], ivs: tuple[Intervention, ...], capture, base: Run | None, sinks=None) -> Run:
        names = self.expand(capture)
        version = self.weights_version()
        plan = plan_pass(self, ids, ivs, names, base, sinks=dict(sinks or {}))
        result = stitch(plan, self.executor.execute(plan)[0], base, self.n_layers)
        run = Run(self, list(ids), ivs, result, first_edited_layer(ivs, self.n_layers), version)
        if base is not None and plan.start:
            run._inherit_summaries(base, plan.start)
        return run

    def generate(
        self,
        text_or_ids: TokensLike,
        interventions: Intervention | Iterable[Intervention] = (),
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop=None,
        **kwargs,
    ):
        """Continue ``text_or_ids`` with ``interventions`` applied at every step (the KV cache reused): a
        :class:`repwidget.Generation`. See :func:`repwidget.generation.generate`."""
        if "generate" not in self.executor.capabilities:
            raise ValueError(
                "generation is not supported for a model whose weights are on NDIF only (each step would be a "
                "round trip); run the prompt (model.run) and read its predictions, or load the weights"
            )
        from ..generation import generate

        return generate(self, text_or_ids, interventions, max_new_tokens, temperature, top_p, seed, stop, **kwargs)

    # -- attention, lens and predictions read in a pass ------------------------------------
    def replay(self, run: Run, layer: int, sinks: dict[int, attention.Sink], capture=()) -> dict[str, torch.Tensor]:
        """Run ``run``'s input again from block ``layer`` (the blocks before reused) until every sink and capture
        is filled; what the captures took. How attention patterns are read without holding them."""
        return readings.replay(self, run, layer, sinks, capture)

    @property
    def lens_in_pass(self) -> bool:
        """Whether the executor reduces the logit lens where the model runs (see :meth:`lens_in_pass_of`)."""
        return "lens_in_pass" in self.executor.capabilities

    def lens_in_pass_of(self, run: Run, positions: range, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``run``'s logit lens over ``positions`` as top-``k`` ids and probabilities ``[layer, pos, k]``, read in
        one pass of ``run``'s input and interventions that brings back only those (the nnsight backend)."""
        return self.executor.lens(readings.plan_of(self, run), positions, k)

    def logits_in_pass_of(self, run: Run, positions: Sequence[int]) -> torch.Tensor:
        """``[len(positions), vocab]``: ``run``'s logits at ``positions``, computed in a pass of its input and
        interventions where the model runs (a model without local weights: no local unembedding)."""
        return self.executor.logits_rows(readings.plan_of(self, run), list(positions))

    def compare_in_pass(self, clean: Run, run: Run, positions: Sequence[int], k: int) -> dict[str, torch.Tensor]:
        """Top-``k`` predictions of ``clean`` and ``run`` (the same input) at ``positions``, what changed between
        them and the loss of each next token, reduced in one pass of both where the model runs (see
        ``NNsightExecutor.compare``); only those small tensors come back."""
        return readings.compare_in_pass(self, clean, run, positions, k)

    def hook_width(self, name: str, n_tokens: int = 1) -> int:
        """Values per token at hook ``name`` (``attn.hook_z`` flattened over heads; patterns ``heads * n_tokens``)."""
        return hook_width(self.arch, hook_names.parse(name, self.n_layers)[1], n_tokens)

    def unembed(self, final_hidden: torch.Tensor) -> torch.Tensor:
        """Logits of the unembedding's input ``[..., d_model]`` (after the final norm)."""
        if self.arch.unembed is None:
            raise ValueError("this model has no unembedding")
        return self.executor.unembed(final_hidden)

    def unembedding(self) -> torch.Tensor:
        """``[vocab, d_model]``: the unembedding's weight (what a direction in the last hidden state does to logits)."""
        if self.arch.unembed is None:
            raise ValueError("this model has no unembedding")
        if self.weightless:
            raise ValueError(
                "this model's weights are on NDIF only, so its unembedding cannot be read here (direct logit "
                "attribution and directions need it); load the weights to use them (remote=False)"
            )
        return self.hf.get_submodule(self.arch.unembed).weight.detach()

    def logits_from_resid(self, resid: torch.Tensor) -> torch.Tensor:
        """The logits the model would give if ``resid`` ``[..., d_model]`` were its last block's output: the
        final norm, the unembedding and whatever the model does to logits (soft-capping, scales). The logit lens."""
        if self.arch.unembed is None:
            raise ValueError("this model has no unembedding, so its residual stream has no logit lens")
        return self.executor.readout(resid.to(self.device))

    def with_graph(
        self, text_or_ids: TokensLike, hooks: str | Iterable[str], position: int | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One pass with autograd on: ``({hook: activation}, logits)``, both in the graph, so that
        ``torch.autograd.grad(f(logits), [activations])`` gives gradients (no ``.grad`` is left on the weights).
        ``logits`` is ``[pos, vocab]``, or ``[vocab]`` at ``position`` alone (only that row is unembedded, forward
        and backward: what a metric at one position needs)."""
        return readings.with_graph(self, text_or_ids, hooks, position)
