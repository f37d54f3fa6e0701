"""One forward pass of an image classifier with hooks: captures, edits, and reruns from a stage.

Every hook is removed, every replaced ``forward`` put back and every mode restored when the pass ends, even on an
interrupt (``Changes``). Edits are the intervention kinds' own (``interventions/edits.py``), applied to the activation
as ``[batch, positions, width]``: a ViT's tokens, a CNN's pixels ``y * w + x`` with the channels as the width.
A rerun from stage L replaces the calls of stages before L: each returns its input, and the last one the clean
run's output of stage L-1 (the model's own forward still runs around them).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from torch import nn

from .changes import Changes, remove_tagged, restore_forward
from .modes import eager_attention, eval_mode
from .vision import VisionArch, call_model, logits_of

Edit = Callable[[torch.Tensor], torch.Tensor]
_MISSING = object()


@dataclass
class VisionResult:
    """What one pass gives: the logits ``[classes]``, the captures by hook name (no batch axis), and each stage's
    raw output (what a rerun reuses)."""

    logits: torch.Tensor
    cache: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[int, object] = field(default_factory=dict)
    batch_logits: torch.Tensor | None = None  #: ``[batch, classes]`` when a batch of images ran (saliency)


def to_rows(x: torch.Tensor, cnn: bool) -> torch.Tensor:
    """An activation ``[batch, C, H, W]`` (CNN) as ``[batch, H*W, C]``; a ViT's ``[batch, tokens, d]`` as it is."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1]) if cnn else x


def from_rows(rows: torch.Tensor, like: torch.Tensor, cnn: bool) -> torch.Tensor:
    if not cnn:
        return rows
    b, c, h, w = like.shape
    return rows.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()


def tokens_to_map(tokens: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A Swin stage's tokens ``[batch, h*w, C]`` as its feature map ``[batch, C, h, w]`` (``shape`` is [C, h, w])."""
    return tokens.reshape(tokens.shape[0], shape[1], shape[2], shape[0]).permute(0, 3, 1, 2)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def _first(x: object) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else x[0]


def _replace_first(x: object, value: torch.Tensor) -> object:
    return value if isinstance(x, torch.Tensor) else (value, *x[1:])


def run_pass(
    model: nn.Module,
    arch: VisionArch,
    pixels: torch.Tensor,
    edits: dict[str, Sequence[Edit]] | None = None,
    capture: Sequence[str] = (),
    start: int = 0,
    base_outputs: dict[int, object] | None = None,
    grad: bool = False,
) -> VisionResult:
    """The pass. ``edits`` by hook name; ``capture`` hook names (with ``grad``: batched and in the graph); from
    stage ``start`` on, the stages before taken from ``base_outputs``."""
    edits = dict(edits or {})
    wanted = set(capture) | set(edits)
    cnn = arch.kind == "cnn"
    result = VisionResult(torch.empty(0))
    token = uuid.uuid4().hex
    modules: list[nn.Module] = []
    changes = Changes()
    keep = (lambda t: t) if grad else (lambda t: t.detach())

    def edited(name: str, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        if name in edits:
            rows = to_rows(x, cnn).clone() * scale
            for edit in edits[name]:
                rows = edit(rows)
            x = from_rows(rows / scale if scale != 1.0 else rows, x, cnn)
        if name in capture:  # with grad: the batched tensor the pass goes on with, so gradients reach it
            result.cache[name] = x if grad and scale == 1.0 else keep(x[0] * scale)
        return x

    def tag(fn):
        fn._repwidget = token
        return fn

    def add_hook(path: str, pre: bool, fn) -> None:
        module = model.get_submodule(path)
        modules.append(module)
        changes.queue(remove_tagged, [module], token)
        if pre:
            module.register_forward_pre_hook(tag(fn), with_kwargs=True)
        else:
            module.register_forward_hook(tag(fn), with_kwargs=True)

    calls: dict[str, int] = {}

    def stage_hook(layer: int, path: str, index: int):
        def hook(module, args, kwargs, output):
            if calls.get(path, 0) - 1 != index:
                return None
            result.outputs[layer] = output
            name = f"stages.{layer}.hook_out" if cnn else f"blocks.{layer}.hook_resid_post"
            if name not in wanted:
                return None
            if arch.token_stages:
                new = map_to_tokens(edited(name, tokens_to_map(_first(output), arch.shapes[layer])))
            else:
                new = edited(name, _first(output))
            output = _replace_first(output, new)
            result.outputs[layer] = output
            return output

        return hook

    def counter(path: str):
        def count(module, args, kwargs):
            calls[path] = calls.get(path, 0) + 1

        return count

    try:
        needs_eager = any(name.endswith("attn.hook_pattern") for name in wanted)
        with ExitStack() as stack:
            stack.enter_context(eval_mode(model))
            stack.enter_context(torch.enable_grad() if grad else torch.inference_mode())
            if needs_eager:
                stack.enter_context(eager_attention(model))
            paths = {path for path, _ in arch.ends} | {path for skip in arch.skips[:start] for path, _ in skip}
            for path in sorted(paths):
                add_hook(path, True, counter(path))
            for layer, (path, index) in enumerate(arch.ends):
                if layer >= start:
                    add_hook(path, False, stage_hook(layer, path, index))
            if not cnn:
                _block_hooks(arch, wanted, start, edited, add_hook)
            _skip_prefix(model, arch, start, base_outputs or {}, calls, changes)
            output = call_model(model, pixels)
        logits = keep(logits_of(output))
        result.logits, result.batch_logits = logits[0], logits
        if base_outputs:
            for layer in range(start):
                result.outputs.setdefault(layer, base_outputs[layer])
        return result
    finally:
        while changes.steps:
            try:
                changes.undo()
            except BaseException as e:  # an interrupt landed on the call: go round again
                changes.error = changes.error if changes.error is not None else e
        changes.reraise()


def _skip_prefix(model, arch: VisionArch, start: int, base_outputs, calls: dict[str, int], changes: Changes) -> None:
    """Replace the calls of stages ``< start``: each returns its input, a stage's last call its clean output."""
    if start == 0:
        return
    skipped = {call: None for skip in arch.skips[:start] for call in skip}
    for layer in range(start):  # a stage's whole output (a Swin stage's is a tuple its caller unpacks)
        skipped[arch.ends[layer]] = base_outputs[layer]
    for path in sorted({path for path, _ in skipped}):
        module = model.get_submodule(path)
        before = module.__dict__.get("forward", _MISSING)
        own = module.forward

        def forward(*args, _path=path, _own=own, **kwargs):
            index = calls.get(_path, 1) - 1
            if (_path, index) not in skipped:
                return _own(*args, **kwargs)
            out = skipped[(_path, index)]
            if out is not None:
                return out
            return args[0] if args else next(v for v in kwargs.values() if isinstance(v, torch.Tensor))

        changes.queue(restore_forward, module, before, _MISSING)
        module.forward = forward


def _block_hooks(arch: VisionArch, wanted: set[str], start: int, edited, add_hook) -> None:
    """A ViT's hooks inside blocks ``>= start`` (the stage hooks give ``hook_resid_post``)."""
    blocks = arch.blocks
    assert blocks is not None
    for layer in range(start, arch.n_layers):
        prefix = f"{blocks.blocks}.{layer}"

        def name(template: str, layer: int = layer) -> str:
            return f"blocks.{layer}.{template}"

        if name("hook_resid_pre") in wanted:
            add_hook(prefix, True, _pre(name("hook_resid_pre"), edited))
        if name("attn.hook_z") in wanted:
            add_hook(f"{prefix}.{blocks.attn_proj}", True, _pre(name("attn.hook_z"), edited, blocks.n_heads))
        if name("mlp.hook_post") in wanted and blocks.mlp_down is not None:
            add_hook(f"{prefix}.{blocks.mlp_down}", True, _pre(name("mlp.hook_post"), edited))
        if name("attn.hook_pattern") in wanted:
            pattern = _pattern(name("attn.hook_pattern"), blocks.pattern_index, edited)
            add_hook(f"{prefix}.{blocks.attn}", False, pattern)
        if name("hook_attn_out") in wanted:
            add_hook(f"{prefix}.{blocks.attn_end}", False, _post(name("hook_attn_out"), edited, blocks.attn_scale))
        if name("hook_mlp_out") in wanted:
            add_hook(f"{prefix}.{blocks.mlp_end}", False, _post(name("hook_mlp_out"), edited, blocks.mlp_scale))


def _pre(name: str, edited, heads: int = 0):
    def hook(module, args, kwargs):
        if args:
            x = edited(name, args[0])
            return (x, *args[1:]), kwargs
        key = next(k for k, v in kwargs.items() if isinstance(v, torch.Tensor))
        return args, {**kwargs, key: edited(name, kwargs[key])}

    return hook


def _post(name: str, edited, scale: float):
    def hook(module, args, kwargs, output):
        return _replace_first(output, edited(name, _first(output), scale))

    return hook


def _pattern(name: str, index: int, edited):
    def hook(module, args, kwargs, output):
        edited(name, output[index])  # read only: patterns are captured, never edited

    return hook
