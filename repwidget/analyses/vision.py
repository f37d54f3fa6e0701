"""Attributions of an image classifier's class logit: to pixels (gradients, integrated gradients) and to a stage's
channels (activation x gradient)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.vision_pass import run_pass

METHODS = ("gradient", "integrated_gradients")
#: images interpolated in one batch by integrated gradients
IG_BATCH = 16


@dataclass(frozen=True)
class Saliency:
    """``attributions`` ``[C, H, W]`` of class ``target``'s logit to the input pixels (preprocessed), ``map``
    ``[H, W]`` their sum over channels. For integrated gradients, ``delta`` is ``logit(x) - logit(baseline)`` and
    ``completeness_error`` ``|sum(attributions) - delta| / |delta|`` (the method's own check)."""

    attributions: torch.Tensor
    method: str
    target: int
    delta: float | None = None
    completeness_error: float | None = None

    @property
    def map(self) -> torch.Tensor:
        return self.attributions.sum(0)


def _target(run, target: int | str | None) -> int:
    if target is None:
        return int(run.logits.argmax())
    return class_index(run.model, target)


def class_index(model, target: int | str) -> int:
    """The index of class ``target`` of an image classifier: an index, or a class name."""
    classes = model.classes
    if isinstance(target, str):
        if target not in classes:
            raise ValueError(f"unknown class {target!r:.40}; the classes are {', '.join(classes[:20])}")
        return classes.index(target)
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(classes):
        raise ValueError(f"target must be a class index in 0..{len(classes) - 1} or a class name, got {target!r:.40}")
    return target


def _edits(model, run) -> dict:
    edits: dict = {}
    for iv in run.interventions:
        model._check(iv)
        edits.setdefault(iv.hook, []).append(iv.edit(model, model.positions(iv.hook)))
    return edits


def saliency(
    run,
    target: int | str | None = None,
    method: str = "gradient",
    steps: int = 64,
    baseline: torch.Tensor | float | None = None,
) -> Saliency:
    """Per-pixel attributions of ``target``'s logit (default: the run's top class) for ``run``'s image, with its
    interventions. ``"gradient"``: the gradient times nothing (plain saliency). ``"integrated_gradients"``:
    ``(x - baseline) *`` the mean gradient at ``steps`` points on the straight path (midpoints), ``baseline``
    a tensor like the preprocessed image or a number (default 0: the preprocessed image's zero)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r:.40}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r:.40}")
    model = run.model
    c = _target(run, target)
    x = run.pixels
    edits = _edits(model, run)

    def grads(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.detach().requires_grad_(True)
        logits = run_pass(model.hf, model.arch, images, edits, grad=True).batch_logits[:, c]
        (grad,) = torch.autograd.grad(logits.sum(), [images])
        return grad.detach(), logits.detach()

    if method == "gradient":
        return Saliency(grads(x)[0][0], method, c)
    base = torch.zeros_like(x) if baseline is None else torch.as_tensor(baseline, dtype=x.dtype).to(x.device)
    base = base.expand_as(x) if base.dim() < 4 else base
    if base.shape != x.shape:
        raise ValueError(
            f"baseline must be a number or shaped like the image {tuple(x.shape)}, not {tuple(base.shape)}"
        )
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    total = torch.zeros_like(x[0])
    for start in range(0, steps, IG_BATCH):
        a = alphas[start : start + IG_BATCH].view(-1, 1, 1, 1)
        total += grads(base + a * (x - base))[0].sum(0)
    attributions = (x - base)[0] * total / steps
    ends = grads(torch.cat([x, base]))[1]
    delta = float(ends[0] - ends[1])
    error = abs(float(attributions.sum()) - delta) / max(abs(delta), 1e-12)
    return Saliency(attributions, method, c, delta, error)


def channel_attribution(run, layer: int, target: int | str | None = None) -> torch.Tensor:
    """``[channels]``: activation x gradient of ``target``'s logit at stage ``layer``'s output, summed over its
    pixels (a CNN; a ViT: over ``hook_resid_post``'s tokens, per dimension). A first-order estimate of what
    zeroing each channel would do to the logit (minus the estimate): rank channels by it."""
    model = run.model
    c = _target(run, target)
    hook = f"stages.{layer}.hook_out" if model.kind == "cnn" else f"blocks.{layer}.hook_resid_post"
    model.check_hook(hook)
    result = run_pass(model.hf, model.arch, run.pixels, _edits(model, run), [hook], grad=True)
    act = result.cache[hook]
    (grad,) = torch.autograd.grad(result.logits[c], [act])
    scores = (act * grad).detach()[0]
    return scores.flatten(1).sum(1) if model.kind == "cnn" else scores.sum(0)
