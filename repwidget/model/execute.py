"""One forward pass with capture hooks and interventions; every hook removed in ``finally``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..hook_names import parse
from .architecture import Architecture
from .modes import eager_attention, eval_mode

Edit = Callable[[torch.Tensor], torch.Tensor]  # [batch, pos, width] -> same shape

#: hook template -> (part of the block, "pre" reads the part's input, "post" its output)
SITES: dict[str, tuple[str, str]] = {
    "hook_resid_pre": ("block", "pre"),
    "hook_resid_post": ("block", "post"),
    "attn.hook_pattern": ("attn", "post"),
    "attn.hook_z": ("attn_out", "pre"),
    "hook_attn_out": ("attn_out", "post"),
    "mlp.hook_post": ("mlp_out", "pre"),
    "hook_mlp_out": ("mlp_out", "post"),
}


@dataclass
class Plan:
    """What one pass computes: ids, hooks to capture, edits per hook, first block to run."""

    ids: torch.Tensor  # [1, pos]
    capture: list[str]
    edits: dict[str, list[Edit]] = field(default_factory=dict)
    start: int = 0  # blocks before it return ``reuse`` outputs instead of computing
    reuse: list[object] | None = None
    stop_early: bool = False  # end the pass as soon as everything in ``capture`` is captured


@dataclass
class Result:
    cache: dict[str, torch.Tensor]
    block_outputs: list[object | None]
    final_hidden: torch.Tensor | None  # [pos, d_model], the unembedding's input (lazy logits)
    logits: torch.Tensor | None  # [pos, vocab] when computed in the pass


def part(model: nn.Module, arch: Architecture, layer: int, name: str) -> nn.Module:
    block = model.get_submodule(arch.blocks)[layer]
    return block if name == "block" else block.get_submodule(getattr(arch, name))


def _shape(template: str, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
    """Drop the batch axis; split heads for hook_z."""
    x = x[0]
    if template == "attn.hook_z":
        return x.view(x.shape[0], arch.n_heads, arch.d_head)
    return x


class _Captured(Exception):  # control flow, not an error
    """Raised inside a hook to end a pass whose captures are all taken."""


def _first(output: object) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output[0]


def _replace_first(output: object, x: torch.Tensor) -> object:
    if isinstance(output, torch.Tensor):
        return x
    return (x, *output[1:]) if isinstance(output, tuple) else type(output)([x, *output[1:]])


def _apply(edits: list[Edit], x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    for edit in edits:
        x = edit(x)
    return x


@contextmanager
def _patched_forward(module: nn.Module, forward: Callable) -> Iterator[None]:
    """Replace ``module.forward`` on the instance (keeping any wrapper, e.g. accelerate's) and restore it."""
    missing = object()
    before = module.__dict__.get("forward", missing)
    module.forward = forward
    try:
        yield
    finally:
        if before is missing:
            del module.forward
        else:
            module.forward = before


def execute(model: nn.Module, arch: Architecture, plan: Plan, forward_kwargs: dict) -> Result:
    """Run ``model`` once under ``plan``. Hooks and patches never outlive this call."""
    by_site: dict[tuple[int, str, str], list[str]] = defaultdict(list)
    for name in {*plan.capture, *plan.edits}:
        layer, template = parse(name, arch.n_layers)
        if layer >= plan.start:
            where, when = SITES[template]
            by_site[(layer, where, when)].append(template)
    wanted = set(plan.capture)
    cache: dict[str, torch.Tensor] = {}
    block_outputs: list[object | None] = [None] * arch.n_layers
    final: dict[str, torch.Tensor] = {}

    def edit_and_capture(layer: int, templates: list[str], x: torch.Tensor) -> torch.Tensor:
        for template in templates:
            name = f"blocks.{layer}.{template}"
            if name in plan.edits:
                x = _apply(plan.edits[name], x)
            if name in wanted:
                cache[name] = _shape(template, x, arch)
                if plan.stop_early and wanted.issubset(cache):
                    raise _Captured
        return x

    def pre_hook(layer: int, templates: list[str]):
        def hook(module, args, kwargs):
            if args:
                x = edit_and_capture(layer, templates, args[0])
                return (x, *args[1:]), kwargs
            x = edit_and_capture(layer, templates, kwargs["hidden_states"])
            return args, {**kwargs, "hidden_states": x}

        return hook

    def post_hook(layer: int, where: str, templates: list[str]):
        def hook(module, args, output):
            if where == "attn":  # read-only: the attention probabilities
                cache[f"blocks.{layer}.attn.hook_pattern"] = output[arch.pattern_index][0]
                if plan.stop_early and wanted.issubset(cache):
                    raise _Captured
                return None
            x = edit_and_capture(layer, templates, _first(output))
            output = _replace_first(output, x) if x is not _first(output) else output
            if where == "block":
                block_outputs[layer] = output
            return output

        return hook

    blocks = model.get_submodule(arch.blocks)
    need_eager = any(parse(n, arch.n_layers)[1] == "attn.hook_pattern" for n in plan.capture)

    with ExitStack() as stack, torch.no_grad():
        if model.training:
            stack.enter_context(eval_mode(model))
        if need_eager:
            stack.enter_context(eager_attention(model))
        for (layer, where, when), templates in by_site.items():
            module = part(model, arch, layer, where)
            if when == "pre":
                handle = module.register_forward_pre_hook(pre_hook(layer, templates), with_kwargs=True)
            else:
                handle = module.register_forward_hook(post_hook(layer, where, templates))
            stack.callback(handle.remove)
        for layer in range(plan.start, arch.n_layers):
            if (layer, "block", "post") not in by_site:
                handle = blocks[layer].register_forward_hook(post_hook(layer, "block", []))
                stack.callback(handle.remove)
        for layer in range(plan.start):
            output = plan.reuse[layer]
            stack.enter_context(_patched_forward(blocks[layer], lambda *a, _o=output, **k: _o))
        if arch.plain_logits and arch.unembed is not None:
            unembed = model.get_submodule(arch.unembed)
            original = unembed.forward

            def lazy_unembed(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
                final["hidden"] = x[0]
                return original(x[:, :0], *args, **kwargs)  # an empty result of the right type: logits come later

            stack.enter_context(_patched_forward(unembed, lazy_unembed))
        try:
            output = model(input_ids=plan.ids, **forward_kwargs)
        except _Captured:  # every hook asked for is captured: the rest of the pass is not needed
            return Result(cache=cache, block_outputs=block_outputs, final_hidden=None, logits=None)

    logits = None
    if not arch.plain_logits:
        raw = getattr(output, "logits", None)
        logits = raw[0] if isinstance(raw, torch.Tensor) and arch.unembed is not None else None
    return Result(cache=cache, block_outputs=block_outputs, final_hidden=final.get("hidden"), logits=logits)
