"""The nnsight executor's compiler: a :class:`~repwidget.model.plan.Plan` as plain data (module envoys, positions,
tensors) that :func:`repwidget.model.nnsight_trace.run_trace` reads with torch alone, here or on a server.

Each intervention's edit (``SetRows``, ``AddRows``, ``Project``, ``Splice``) becomes an op tuple; sinks become
reductions the trace computes. :class:`Program` names every key of the compiled pass in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

import torch
from torch import nn

from ..hook_names import SITE_OF, parse
from ..interventions import AddRows, Project, SetRows, Splice
from . import attention
from .errors import UnsupportedOnBackendError
from .plan import Plan

if TYPE_CHECKING:
    from .nnsight_executor import NNsightExecutor


class Step(TypedDict):
    """One site of one block the trace visits, in execution order."""

    layer: int
    envoy: Any  #: the nnsight envoy of the module read (the block, or one of its parts)
    when: str  #: ``"pre"`` (its input), ``"post"`` (its output) or ``"pattern"`` (the attention's probabilities)
    is_block: bool  #: the site is the block itself (its input or output is the residual stream)
    scale: float  #: the branch's scale (``attn_scale``, ``mlp_scale``; 1.0 elsewhere): hook_attn_out is ``scale * y``
    #: ``(hook name, template, captured?, ops)`` per hook read there; ``ops``: ``(label, [op tuple or None per
    #: sequence])`` per edit step, op tuples as :func:`compile_edit` makes them
    hooks: list[tuple[str, str, bool, list]]


class Program(TypedDict):
    """A compiled pass: plain data (and envoys) only, so the trace body runs the same here and on a server."""

    steps: list[Step]
    spans: list[tuple[int, int]]  #: each sequence's real tokens in its padded row
    whole: bool  #: one sequence, no padding: edits and captures see the activation itself
    pattern_at: int  #: where the attention's output holds its probabilities
    lazy: bool  #: logits are not computed in the pass: the final hidden state comes back (or is checked)
    vocab: int
    heads: tuple[int, int]  #: ``(n_heads, d_head)``: how ``attn.hook_z`` captures are shaped
    stop_early: bool  #: end the pass once everything asked for is read
    grad: bool  #: build the autograd graph from the embeddings
    embed: Any  #: the input embedding's envoy (where the graph starts)
    lens: tuple[int, int, int] | None  #: ``(first, last, k)``: the logit lens reduced in the pass
    rows: tuple | None  #: ``("logits", positions)`` or ``("compare", positions, k, following)``
    weightless: bool  #: the weights are on NDIF only: no final hidden state comes back
    eager: bool  #: the pass reads attention probabilities: eager attention, switched where the model runs
    reduce: dict[int, list[tuple] | None]  #: per layer with a sink, its reductions (:func:`compile_sink`)
    norm: Any  #: the final norm's envoy (None: none)
    unembed: Any  #: the unembedding's envoy (None: none)


def compile_edit(edit: Any) -> tuple:
    """An edit as an op tuple of plain data (positions, slices, tensors) the trace body applies with torch."""
    if isinstance(edit, SetRows):
        return ("set", edit.at, edit.cols, edit.value)
    if isinstance(edit, AddRows):
        return ("add", edit.at, edit.delta)
    if isinstance(edit, Project):
        return ("project", edit.at, edit.unit, edit.target)
    if isinstance(edit, Splice):
        sae = edit.sae
        norms = sae.W_dec.norm(dim=-1) if sae.rescale_acts_by_decoder_norm else None
        sae_data = (sae.W_enc, sae.b_enc, sae.b_dec, sae.decoder_vectors(), sae.apply_b_dec_to_input, norms)
        return ("splice", edit.at, edit.feature, sae_data, sae.architecture, sae.k, sae.threshold)
    raise UnsupportedOnBackendError(f"the nnsight backend cannot compile the edit {type(edit).__name__}")


def compile_sink(sink: attention.Sink) -> list[tuple] | None:
    """A sink as reductions the trace body computes with torch (None: it must be fed the whole layer here).

    ``("pool", heads, rows, cols, side)``: ``F.adaptive_max_pool2d`` of that window of the first sequence's
    pattern (what :class:`attention.Pooled` computes); ``("scores", pairs)``: the sums behind the head scores.
    """
    if isinstance(sink, attention.Summary):
        if sink.stride != 1:
            return None
        return [*compile_sink(sink.pooled), *compile_sink(sink.scores)]
    if isinstance(sink, attention.Pooled):
        return [("pool", sink.heads, sink.rows, sink.cols, sink.side)]
    if isinstance(sink, attention.Scores):
        return [("scores", dict(sink.pairs))]
    if isinstance(sink, attention.Sinks):
        parts = [compile_sink(s) for s in sink.sinks]
        return None if any(p is None for p in parts) else [x for p in parts for x in p]
    return None


def _leaves(sink: attention.Sink) -> list[attention.Sink]:
    """The Pooled and Scores sinks a compiled sink's reductions fill, in the order :func:`compile_sink` gives."""
    if isinstance(sink, attention.Summary):
        return [sink.pooled, sink.scores]
    if isinstance(sink, attention.Sinks):
        return [leaf for s in sink.sinks for leaf in _leaves(s)]
    return [sink]


def fill_sink(sink: attention.Sink, reduced: list, n: int) -> None:
    """Give ``sink`` what the trace reduced for it, as if it had been fed the layer's rows."""
    for leaf, value in zip(_leaves(sink), reduced, strict=True):
        if isinstance(leaf, attention.Pooled):
            leaf.result = value.float().cpu()
        else:
            leaf.sums = {name: v.cpu() for name, v in value.items()}
            leaf.counts = {"previous_token": n - 1, "first_token": n}
            leaf.counts.update({name: len(torch.unique_consecutive(q)) for name, (q, _) in leaf.pairs.items()})
        leaf.filled = True
    sink.filled = True


def build_program(
    executor: NNsightExecutor, plan: Plan, lens: tuple[int, int, int] | None = None, rows: tuple | None = None
) -> Program:
    """``plan`` as plain data for :func:`run_trace` (see :class:`Program`): per layer, the sites to visit in
    execution order, and the ops of each hook.

    ``rows``: what the pass reduces from the model's logits, ``("logits", positions)`` (those rows of the first
    sequence) or ``("compare", positions, k, following)`` (see ``NNsightExecutor.compare``)."""
    arch = executor.arch
    sites: dict[tuple[int, str, str], dict] = {}
    names = {*plan.capture, *plan.edits}
    for name in names:
        layer, template = parse(name, arch.n_layers)
        where, when, rank = SITE_OF[template].part, SITE_OF[template].when, SITE_OF[template].rank
        path = arch.blocks + f".{layer}" + ("" if where == "block" else "." + getattr(arch, where))
        site = sites.setdefault((layer, where, when), {"path": path, "when": when, "rank": rank, "hooks": []})
        site["hooks"].append(template)
    for layer in {parse(h, arch.n_layers)[0] for h in names if h.endswith("hook_resid_mid")}:
        path = arch.blocks + f".{layer}"
        sites.setdefault(
            (layer, "block", "pre"), {"path": path, "when": "pre", "rank": SITE_OF["hook_resid_pre"].rank, "hooks": []}
        )
    for layer in plan.sinks:
        path = arch.blocks + f".{layer}." + arch.attn
        sites.setdefault(
            (layer, "attn", "pattern"),
            {"path": path, "when": "pattern", "rank": SITE_OF["attn.hook_pattern"].rank, "hooks": []},
        )
    if lens is not None:  # every block's output, reduced to the lens's top tokens where it is computed
        for layer in range(arch.n_layers):
            path = arch.blocks + f".{layer}"
            rank = SITE_OF["hook_resid_post"].rank
            sites.setdefault((layer, "block", "post"), {"path": path, "when": "post", "rank": rank, "hooks": []})
    if not arch.attn_proj.startswith(arch.attn + "."):  # the projection runs after the attention returns (BERT)
        for (_, where, _), site in sites.items():
            if where == "attn":
                site["rank"] = 0.5
    steps = []
    for (layer, where, _), site in sorted(sites.items(), key=lambda kv: (kv[0][0], kv[1]["rank"])):
        scale = arch.attn_scale if where == "attn_end" else arch.mlp_scale if where == "mlp_end" else 1.0
        hooks = []
        for template in sorted(site["hooks"], key=lambda t: t != "hook_attn_out"):
            name = f"blocks.{layer}.{template}"
            ops = [
                (step.label, [None if e is None else compile_edit(e) for e in step.edits])
                for step in plan.edits.get(name, [])
            ]
            hooks.append((name, template, name in plan.capture, ops))
        envoy = executor.envoy(site["path"])
        steps.append(
            Step(layer=layer, envoy=envoy, when=site["when"], is_block=where == "block", scale=scale, hooks=hooks)
        )
    pattern_at = arch.pattern_index
    spans = [(plan.span(i).start, plan.span(i).stop) for i in range(plan.batch)]
    lazy = arch.plain_logits and arch.unembed is not None and not plan.grad
    program: Program = {
        "steps": steps, "spans": spans, "whole": plan.batch == 1 and plan.lengths is None,
        "pattern_at": pattern_at, "lazy": lazy, "vocab": executor.hf.config.vocab_size,
        "heads": (arch.n_heads, arch.d_head), "stop_early": plan.stop_early,
        "grad": plan.grad, "embed": executor.envoy(_embedding_path(executor.hf)), "lens": lens,
        "rows": rows, "weightless": executor.weightless, "eager": reads_patterns(plan),
        "reduce": {layer: compile_sink(sink) for layer, sink in plan.sinks.items()},
        "norm": executor.envoy(arch.final_norm) if arch.final_norm is not None else None,
        "unembed": executor.envoy(arch.unembed) if arch.unembed is not None else None,
    }  # fmt: skip
    return program


def reads_patterns(plan: Plan) -> bool:
    """Whether ``plan``'s pass reads attention probabilities (sinks, captured patterns): eager attention."""
    return bool(plan.sinks) or any(h.endswith("attn.hook_pattern") for h in plan.capture)


def _embedding_path(hf: nn.Module) -> str:
    embeddings = hf.get_input_embeddings()
    return next(name for name, module in hf.named_modules() if module is embeddings)
