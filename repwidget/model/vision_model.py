"""VisionModel: an image classifier (a Hugging Face ViT / DeiT, or any torch CNN) with its stages discovered once;
``model.run(image)`` gives an :class:`ImageRun`. ``rw.load`` and ``rw.Model`` return one for an image classifier."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .. import hook_names
from ..interventions import Intervention, Patch, as_tuple
from ..interventions.base import _check_index, _short
from .images import ImageLike, default_preprocess, hf_preprocess, to_pixels
from .vision import VisionArch, discover_vision, hf_input_shape
from .vision_pass import VisionResult, run_pass, to_rows

#: how many images a model keeps for patches to name (the oldest forgotten first)
KEPT_IMAGES = 64
#: the hook templates a vision transformer's runs have (no hook_resid_mid: read hook_resid_pre + hook_attn_out)
VIT_TEMPLATES = tuple(t for t in hook_names.HOOK_TEMPLATES if t != "hook_resid_mid")


class VisionModel:
    """An image classifier and its discovered stages. ``n_layers`` is the number of stages: a CNN's conv blocks
    (``stages.L.hook_out`` ``[channels, h, w]``) or a ViT's encoder blocks (``blocks.L.*`` over CLS + patches)."""

    def __init__(
        self,
        net: nn.Module,
        preprocess: Callable[[Any], torch.Tensor] | None = None,
        classes: Sequence[str] | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(net, nn.Module):
            raise TypeError(f"expected a torch nn.Module image classifier, got {type(net).__name__}")
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess must be a function of an image returning a tensor, got {preprocess!r:.60}")
        if preprocess is not None and hasattr(preprocess, "model_input_names") and hasattr(preprocess, "preprocess"):
            preprocess = hf_preprocess(preprocess)  # a Hugging Face image processor
        shape = tuple(input_shape) if input_shape is not None else hf_input_shape(net)
        if shape is None or len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(
                "a torch CNN needs the shape of its input: rw.Model(net, input_shape=(channels, height, width)), "
                f"got {input_shape!r:.60}"
            )
        self.hf = net
        self.arch: VisionArch = discover_vision(net, shape)
        self.preprocess = preprocess or default_preprocess(shape[0])
        labels = getattr(getattr(net, "config", None), "id2label", None)
        n = self.arch.n_classes
        self.classes = [str(c) for c in classes] if classes is not None else None
        if self.classes is None and labels and len(labels) == n:
            self.classes = [str(labels[i]) for i in range(n)]
        if self.classes is not None and len(self.classes) != n:
            raise ValueError(f"classes has {len(self.classes)} names; the model has {n} classes")
        self.classes = self.classes or [str(i) for i in range(n)]
        #: the last :data:`KEPT_IMAGES` images this model ran, by content key (what ``rw.Patch.from_run(image_run,
        #: hook)`` names as its source); a run keeps its own image
        self.images: dict[int, torch.Tensor] = {}
        self.reference: ImageReference | None = None
        self.patch_sources = _ImageSources(self)
        self.source = str(getattr(net, "name_or_path", "") or "")

    # -- shape ---------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"cnn"`` or ``"vit"``."""
        return self.arch.kind

    @property
    def n_layers(self) -> int:
        return self.arch.n_layers

    @property
    def n_heads(self) -> int:
        return self.arch.blocks.n_heads if self.arch.blocks else 0

    @property
    def d_head(self) -> int:
        return self.arch.blocks.d_head if self.arch.blocks else 0

    @property
    def d_mlp(self) -> int:
        return self.arch.blocks.d_mlp if self.arch.blocks else 0

    @property
    def d_model(self) -> int:
        return self.arch.blocks.d_model if self.arch.blocks else 0

    def channels(self, layer: int) -> int:
        """Channels of stage ``layer``'s output (a CNN; 0 for a ViT)."""
        return self.arch.shapes[layer][0] if self.kind == "cnn" else 0

    def weights_version(self) -> int:
        """A number that changes whenever the network's weights do (a run of other weights is not reused)."""
        from .executor import weights_version

        return weights_version(self.hf)

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    def __repr__(self) -> str:
        shapes = ", ".join("x".join(map(str, s)) for s in self.arch.shapes[:6])
        more = ", ..." if self.n_layers > 6 else ""
        return f"<rw.Model {type(self.hf).__name__} ({self.kind}): {self.n_layers} stages [{shapes}{more}]>"

    # -- hooks ---------------------------------------------------------------------------
    def hook_names(self) -> list[str]:
        """Every hook name this model's runs can capture, in execution order."""
        if self.kind == "cnn":
            return hook_names.stage_names(self.n_layers)
        names = [f"blocks.{layer}.{t}" for layer in range(self.n_layers) for t in VIT_TEMPLATES]
        return [n for n in names if self.arch.blocks.mlp_down is not None or not n.endswith("mlp.hook_post")]

    def check_hook(self, name: str) -> tuple[int, str]:
        """``(layer, template)`` of a hook this model has, or a HookNameError listing the valid names."""
        if self.kind == "cnn":
            return hook_names.parse_stage(name, self.n_layers), "hook_out"
        layer, template = hook_names.parse(name, self.n_layers)
        if name not in self.hook_names():
            raise hook_names.HookNameError(f"{name}: this model has no such hook; it has {', '.join(VIT_TEMPLATES)}")
        return layer, template

    def expand(self, capture: str | Iterable[str] | None) -> list[str]:
        """Hook names and globs (``None``: every stage's output) as this model's hook names."""
        default = ["stages.*.hook_out"] if self.kind == "cnn" else list(hook_names.DEFAULT_CAPTURE)
        patterns = default if capture is None else [capture] if isinstance(capture, str) else list(capture)
        for pattern in patterns:
            if isinstance(pattern, str) and not any(c in pattern for c in "*?["):
                self.check_hook(pattern)
        return hook_names.expand(patterns, self.n_layers, names=self.hook_names())

    def positions(self, hook: str) -> int:
        """Positions of the activation at ``hook``: a CNN stage's pixels ``h * w``, a ViT's tokens."""
        layer = self.check_hook(hook)[0]
        shape = self.arch.shapes[layer]
        return shape[1] * shape[2] if self.kind == "cnn" else shape[0]

    # -- runs ----------------------------------------------------------------------------
    def to_pixels(self, image: ImageLike) -> torch.Tensor:
        """``image`` preprocessed as the model's input ``[1, C, H, W]`` (a tensor of that shape is taken as is)."""
        x = to_pixels(image, self.preprocess, self.arch.input_shape)
        return x.to(self.device, next(self.hf.parameters()).dtype)

    def run(
        self,
        image: ImageLike,
        interventions: Intervention | Iterable[Intervention] = (),
        capture: str | Iterable[str] | None = None,
    ):
        """One forward pass of ``image`` (a PIL image, numpy array, tensor or path) with ``interventions``."""
        from ..vision_run import ImageRun

        pixels = self.to_pixels(image)
        ivs = as_tuple(interventions)
        names = self.expand(capture)
        key = self._remember(pixels)
        return ImageRun(self, key, pixels, ivs, self._execute(pixels, ivs, names, 0, None), names)

    def rerun(self, base, interventions: Intervention | Iterable[Intervention] = (), capture=None):
        """``base``'s image re-run with ``interventions``, from the first stage they edit (the stages before reused
        from ``base``, a clean run); equal to a full pass."""
        from ..vision_run import ImageRun

        if getattr(base, "model", None) is not self:
            raise ValueError("rerun takes a run of this model")
        ivs = as_tuple(interventions)
        names = self.expand(capture)
        version = self.weights_version()
        fresh = not base.interventions and base.weights_version == version
        start = min((iv.layer for iv in ivs), default=self.n_layers) if fresh else 0
        start = min([start] + [self.check_hook(n)[0] for n in names if n not in base.result.cache])
        start = min(start, self.n_layers - 1)
        reused = [n for n in names if self.check_hook(n)[0] < start]
        later = [n for n in names if n not in reused]
        result = self._execute(base.pixels, ivs, later, start, base.result.outputs if start else None)
        result.cache = {n: base.result.cache[n] if n in reused else result.cache[n] for n in names}
        self._remember(base.pixels)
        return ImageRun(self, base.key, base.pixels, ivs, result, names, version)

    def _execute(self, pixels, ivs, names, start: int, base_outputs, grad: bool = False) -> VisionResult:
        edits: dict[str, list] = {}
        for iv in ivs:
            self._check(iv)
            edits.setdefault(iv.hook, []).append(iv.edit(self, self.positions(iv.hook)))
        result = run_pass(self.hf, self.arch, pixels, edits, names, start, base_outputs, grad)
        for name in names:
            if name.endswith("attn.hook_z") and not grad:
                result.cache[name] = result.cache[name].reshape(-1, self.n_heads, self.d_head)
        return result

    def _check(self, iv: Intervention) -> None:
        if not isinstance(iv, Patch):
            iv.check(self, self.positions(iv.hook))
            return
        try:
            self.check_hook(iv.hook)
        except hook_names.HookNameError as error:
            raise ValueError(f"{_short(iv)}: {error}") from None
        if len(iv.source) != 1 or iv.source[0] not in self.images:
            raise ValueError(
                f"{_short(iv)}: its source is not one of the last {KEPT_IMAGES} images this model ran; run the source "
                "image again and use rw.Patch.from_run(that_run, hook)"
            )
        _check_index(iv, "head", iv.head, self.n_heads, "this model has heads")
        n = self.positions(iv.hook)
        for p in iv.positions or ():
            if not 0 <= p < n:
                raise ValueError(f"{_short(iv)}: position {p} is out of range 0..{n - 1}")

    def _remember(self, pixels: torch.Tensor) -> int:
        digest = hashlib.sha1(pixels.detach().float().cpu().contiguous().numpy().tobytes()).digest()
        key = int.from_bytes(digest[:7], "big")
        self.images.pop(key, None)  # newest last
        self.images[key] = pixels.detach()
        while len(self.images) > KEPT_IMAGES:
            self.images.pop(next(iter(self.images)))
        return key

    def with_graph(self, image: ImageLike | torch.Tensor, hooks: Sequence[str] = (), interventions=()):
        """One pass with autograd on: ``(pixels, {hook: activation [1, ...]}, logits)``, all in the graph (pixels
        require grad), for gradients of a class logit (saliency, channel attribution)."""
        pixels = self.to_pixels(image).detach().requires_grad_(True)
        result = self._execute(pixels, as_tuple(interventions), list(hooks), 0, None, grad=True)
        return pixels, result.cache, result.logits

    #: the class lens is read here from captured residual streams (``rw.analyses.logit_lens``)
    lens_in_pass = False

    def logits_from_resid(self, resid: torch.Tensor) -> torch.Tensor:
        """A ViT's class logits if ``resid`` ``[..., d_model]``, CLS rows, were its last block's output there: the
        final norm and the classifier. The class lens (``rw.analyses.logit_lens(run)``: position 0 is CLS)."""
        if self.arch.classifier is None:
            raise ValueError("this model's logits are not its classifier on the CLS token, so it has no class lens")
        with torch.inference_mode():
            x = resid.to(self.device)
            if self.arch.final_norm is not None:
                x = self.hf.get_submodule(self.arch.final_norm)(x)
            return self.hf.get_submodule(self.arch.classifier)(x)

    def set_reference(self, images: Iterable[ImageLike]) -> None:
        """Images whose activations give the statistics of ``mode="mean"`` and ``"resample"`` ablations."""
        self.reference = ImageReference(self, [self.to_pixels(image) for image in images])


class ImageReference:
    """Reference images' activations at each hook as ``[positions, width]`` rows, read once per hook."""

    def __init__(self, model: VisionModel, pixels: list[torch.Tensor]) -> None:
        if not pixels:
            raise ValueError("set_reference needs at least one image")
        self.model, self.pixels = model, pixels
        self._rows: dict[str, list[torch.Tensor]] = {}

    def rows(self, hook: str) -> list[torch.Tensor]:
        if hook not in self._rows:
            cnn = self.model.kind == "cnn"
            runs = [run_pass(self.model.hf, self.model.arch, x, capture=[hook]) for x in self.pixels]
            self._rows[hook] = [to_rows(r.cache[hook][None], cnn)[0] for r in runs]
        return self._rows[hook]

    def mean(self, hook: str) -> torch.Tensor:
        """``[width]``: the mean over the reference images and positions."""
        return torch.cat(self.rows(hook)).float().mean(0)

    def resample(self, hook: str, n_positions: int, seed: int) -> torch.Tensor:
        """``[positions, width]``: reference image ``seed`` (modulo their number)'s activation."""
        return self.rows(hook)[seed % len(self.pixels)]


class _ImageSources:
    """The activations a :class:`~repwidget.Patch` reads: its source image's, at its hook (as rows)."""

    def __init__(self, model: VisionModel) -> None:
        self.model = model

    def activation(self, source: Sequence[int], hook: str, interventions: tuple) -> torch.Tensor:
        model = self.model
        result = model._execute(model.images[source[0]], interventions, [hook], 0, None)
        activation = result.cache[hook]
        if model.kind == "cnn":
            return to_rows(activation[None], True)[0]
        return activation.reshape(activation.shape[0], -1)
