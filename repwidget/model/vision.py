"""Find the stages of an image classifier once, by tracing one forward pass: no per-architecture tables.

A vision transformer (one ``ModuleList`` of identical encoder blocks reading ``[batch, tokens, d_model]``) is read by
the language discovery (``architecture.discover`` on pixel inputs): its blocks are the stages, patches + CLS the
positions. Any other network is read as a CNN: the forward pass is cut, from the pixels, into the longest chain of
module calls where each call reads exactly what the one before returned (a module is opened into its children only
when they form such a chain from its input to its output, so a residual block stays whole). The chain's calls that
return feature maps ``[batch, channels, h, w]`` are grouped into stages, each starting at a call that holds a
convolution; a stage's output is ``stages.L.hook_out``. A Swin (windowed attention) is read as a CNN whose stages are
its encoder's stages (patch merging between them): a stage's tokens ``[batch, h*w, C]`` are its feature map.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn

from .architecture import Architecture, UnsupportedModelError, _Call, _Trace, discover, find_blocks
from .modes import eval_mode


@dataclass(frozen=True)
class VisionArch:
    """Where an image classifier's stages are. A stage's output is read where call ``index`` of module ``path``
    returns (``ends``); a rerun from stage L skips the calls of ``skips[:L]``."""

    kind: str  #: "cnn" or "vit"
    ends: tuple[tuple[str, int], ...]  #: each stage's last call: (module path, its call index in a pass)
    skips: tuple[tuple[tuple[str, int], ...], ...]  #: each stage's calls
    shapes: tuple[tuple[int, ...], ...]  #: each stage's output without the batch: [C, H, W] or [tokens, d_model]
    input_shape: tuple[int, ...]  #: [C, H, W]
    n_classes: int
    blocks: Architecture | None = None  #: a ViT's blocks, as the language discovery reads them
    final_norm: str | None = None  #: a ViT's norm after its last block (the class lens reads through it)
    classifier: str | None = None  #: a ViT's head on the CLS token (None when the logits are not just that)
    token_stages: bool = False  #: stage outputs are tokens ``[batch, h*w, C]`` (a Swin), read as maps ``[C, h, w]``

    @property
    def n_layers(self) -> int:
        return len(self.ends)


def is_image_model(model: nn.Module) -> bool:
    """Whether ``model`` is read as an image classifier: a Hugging Face model taking ``pixel_values``, or any torch
    module without a Hugging Face config."""
    config = getattr(model, "config", None)
    return config is None or getattr(model, "main_input_name", None) == "pixel_values"


def call_model(model: nn.Module, pixels: torch.Tensor):
    """The model's logits-bearing output for ``pixels`` (Hugging Face models take ``pixel_values=``)."""
    return model(pixel_values=pixels) if hasattr(model, "config") else model(pixels)


def logits_of(output: object) -> torch.Tensor:
    logits = getattr(output, "logits", output)
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise UnsupportedModelError("the model must return class logits [batch, classes] (or an output with .logits)")
    return logits


def hf_input_shape(model: nn.Module) -> tuple[int, int, int] | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    size = getattr(config, "image_size", 64)
    size = size if isinstance(size, int) else int(size[0])
    return int(getattr(config, "num_channels", 3)), size, size


def discover_vision(model: nn.Module, input_shape: tuple[int, ...]) -> VisionArch:
    """Trace one pass of a random image of ``input_shape`` and read off the stages."""
    config = getattr(model, "config", None)
    generator = torch.Generator().manual_seed(0)
    param = next(model.parameters())
    x = torch.randn((1, *input_shape), generator=generator).to(param.device, param.dtype)
    if config is not None and getattr(config, "window_size", None) is not None:
        return _discover_swin(model, x)
    if config is not None and _has_blocks(model):
        return _discover_vit(model, x)
    return _discover_cnn(model, x)


def _has_blocks(model: nn.Module) -> bool:
    n = getattr(model.config, "num_hidden_layers", None)
    if not isinstance(n, int) or not getattr(model.config, "num_attention_heads", None):
        return False
    try:
        find_blocks(model, n)
    except UnsupportedModelError:
        return False
    return True


def _discover_vit(model: nn.Module, x: torch.Tensor) -> VisionArch:
    arch = discover(model, 0, inputs={"pixel_values": x})
    trace = _trace(model, x)
    logits = logits_of(trace.out)
    last = f"{arch.blocks}.{arch.n_layers - 1}"
    last_call = next(c for c in trace.calls if c.path == last)
    after = [c for c in trace.calls if c.enter > last_call.exit]
    norm = next((c for c in after if "norm" in type(c.module).__name__.lower()), None)
    heads = [c for c in after if isinstance(c.module, nn.Linear) and c.module.out_features == logits.shape[-1]]
    classifier = heads[-1].path if len(heads) == 1 else None
    if classifier is not None:  # the class lens is the head on the CLS token only where the logits are exactly that
        with torch.inference_mode():
            resid = _first(last_call.output)
            hidden = model.get_submodule(norm.path)(resid) if norm is not None else resid
            read = model.get_submodule(classifier)(hidden[:, 0])
        if not torch.allclose(read, logits, atol=1e-5, rtol=1e-4):
            classifier = None
    ends = tuple((f"{arch.blocks}.{i}", 0) for i in range(arch.n_layers))
    shape = tuple(_first(last_call.output).shape[1:])
    return VisionArch(
        kind="vit", ends=ends, skips=tuple((e,) for e in ends), shapes=(shape,) * arch.n_layers,
        input_shape=tuple(x.shape[1:]), n_classes=int(logits.shape[-1]), blocks=arch,
        final_norm=norm.path if norm is not None else None, classifier=classifier,
    )  # fmt: skip


def _discover_swin(model: nn.Module, x: torch.Tensor) -> VisionArch:
    """A Swin's stages (``*.encoder.layers``, windowed attention inside, patch merging at the end of all but the
    last): each returns its tokens ``[batch, h*w, C]`` on the patch grid, halved after each merging."""
    lists = (n for n, m in model.named_modules() if n.endswith("encoder.layers") and isinstance(m, nn.ModuleList))
    layers = next(lists, None)
    refused = f"{type(model).__name__} attends within windows but "
    if layers is None:
        raise UnsupportedModelError(refused + "has no encoder.layers (Swin stages): use a Swin, a ViT / DeiT or a CNN")
    trace = _trace(model, x)
    logits = logits_of(trace.out)
    patch = model.config.patch_size
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    h, w = -(-x.shape[2] // ph), -(-x.shape[3] // pw)
    ends, shapes = [], []
    for i, stage in enumerate(model.get_submodule(layers)):
        calls = [c for c in trace.calls if c.path == f"{layers}.{i}"]
        if getattr(stage, "downsample", None) is not None:
            h, w = (h + 1) // 2, (w + 1) // 2
        out = _first(calls[0].output) if len(calls) == 1 else None
        if out is None or out.dim() != 3 or out.shape[1] != h * w:
            raise UnsupportedModelError(
                refused + f"its stage {layers}.{i} does not return tokens [batch, {h}*{w}, channels] once per pass"
            )
        ends.append((f"{layers}.{i}", 0))
        shapes.append((int(out.shape[2]), h, w))
    return VisionArch(
        kind="cnn", ends=tuple(ends), skips=tuple((e,) for e in ends), shapes=tuple(shapes),
        input_shape=tuple(x.shape[1:]), n_classes=int(logits.shape[-1]), token_stages=True,
    )  # fmt: skip


class _Traced(_Trace):
    out: object = None


def _trace(model: nn.Module, x: torch.Tensor) -> _Traced:
    trace = _Traced(model)
    with ExitStack() as stack, torch.inference_mode():
        stack.enter_context(eval_mode(model))
        for module in model.modules():
            stack.callback(module.register_forward_pre_hook(trace.enter, with_kwargs=True).remove)
            stack.callback(module.register_forward_hook(trace.leave, with_kwargs=True).remove)
        trace.out = call_model(model, x)
    return trace


def _first(x: object) -> torch.Tensor | None:
    if isinstance(x, Mapping):  # a Hugging Face ModelOutput
        x = next(iter(x.values()), None)
    if isinstance(x, (tuple, list)) and x:
        x = x[0]
    return x if isinstance(x, torch.Tensor) else None


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return a is not None and b is not None and a.shape == b.shape and torch.equal(a, b)


def _chain(parent: _Call, kids: list[_Call], is_root: bool) -> list[_Call] | None:
    """The children of ``parent`` that pass its input along one to the next and end at its output (from its input
    as far as they go, for the root), or None."""
    cur, chain, whole = parent.input, [], 0
    for kid in kids:
        if _same(kid.input, cur):
            chain.append(kid)
            cur = _first(kid.output)
            if _same(cur, _first(parent.output)):
                whole = len(chain)
    if whole:
        return chain[:whole]
    return chain if is_root and chain else None


def _atoms(call: _Call, children: dict[int, list[_Call]], is_root: bool = False) -> list[_Call]:
    chain = _chain(call, children.get(id(call), []), is_root)
    if chain is None:
        return [call]
    return [atom for kid in chain for atom in _atoms(kid, children)]


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def _discover_cnn(model: nn.Module, x: torch.Tensor) -> VisionArch:
    trace = _trace(model, x)
    logits = logits_of(trace.out)
    calls = sorted(trace.calls, key=lambda c: c.enter)
    index: dict[int, int] = {}
    seen: dict[str, int] = {}
    for c in calls:
        index[id(c)] = seen.get(c.path, 0)
        seen[c.path] = index[id(c)] + 1
    children: dict[int, list[_Call]] = {}
    open_calls: list[_Call] = []
    for c in calls:  # each call's direct children: the calls made while it is the innermost open one
        while open_calls and open_calls[-1].exit < c.enter:
            open_calls.pop()
        if open_calls:
            children.setdefault(id(open_calls[-1]), []).append(c)
        open_calls.append(c)
    atoms = _atoms(calls[0], children, is_root=True)
    maps = []
    for atom in atoms:
        out = _first(atom.output)
        if out is None or out.dim() != 4 or not isinstance(atom.output, torch.Tensor):
            break
        maps.append(atom)
    groups: list[list[_Call]] = []
    for atom in maps:
        if _has_conv(atom.module) or not groups:
            if groups and not any(_has_conv(a.module) for a in groups[-1]):
                groups[-1].append(atom)  # what came before the first convolution joins its stage
                continue
            groups.append([atom])
        else:
            groups[-1].append(atom)
    groups = [g for g in groups if any(_has_conv(a.module) for a in g)]
    if not groups:
        raise UnsupportedModelError(
            f"found no convolution stages in {type(model).__name__}: repwidget reads CNNs (convolutions returning "
            "[batch, channels, h, w] feature maps in a chain from the pixels) and vision transformers"
        )
    return VisionArch(
        kind="cnn",
        ends=tuple((g[-1].path, index[id(g[-1])]) for g in groups),
        skips=tuple(tuple((a.path, index[id(a)]) for a in g) for g in groups),
        shapes=tuple(tuple(_first(g[-1].output).shape[1:]) for g in groups),
        input_shape=tuple(x.shape[1:]),
        n_classes=int(logits.shape[-1]),
    )
