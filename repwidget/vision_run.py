"""An ImageRun: one forward pass of an image classifier: its class logits and activations by hook name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import torch

from .hook_names import HookNameError

if TYPE_CHECKING:
    from .interventions import Intervention
    from .model.vision_model import VisionModel
    from .model.vision_pass import VisionResult


class ImageRun(Mapping[str, torch.Tensor]):
    """The result of ``model.run(image)`` for an image classifier. ``run.logits`` are the class logits ``[classes]``;
    index it by hook name: ``run["stages.1.hook_out"]`` ``[channels, h, w]`` (a CNN),
    ``run["blocks.2.hook_resid_post"]`` ``[tokens, d_model]`` or ``run["blocks.2.attn.hook_pattern"]``
    ``[head, query, key]`` over CLS + patches (a ViT; patterns are computed when first read)."""

    def __init__(
        self,
        model: VisionModel,
        key: int,
        pixels: torch.Tensor,
        interventions: tuple[Intervention, ...],
        result: VisionResult,
        names: list[str],
        weights_version: int | None = None,
    ) -> None:
        self._model = model
        #: the image's content key in ``model.images`` (what a Patch from this run names as its source)
        self.key = key
        self._pixels = pixels
        self._interventions = interventions
        self.result = result
        self._names = list(names)
        #: the model's weights version when this run was made (a rerun after the weights changed starts afresh)
        self.weights_version = model.weights_version() if weights_version is None else weights_version

    @property
    def model(self) -> VisionModel:
        return self._model

    @property
    def interventions(self) -> tuple[Intervention, ...]:
        return self._interventions

    @property
    def pixels(self) -> torch.Tensor:
        """The preprocessed image ``[1, C, H, W]``."""
        return self._pixels

    @property
    def token_ids(self) -> list[int]:
        """``[key]``: the image named as a patch source (``rw.Patch.from_run(run, hook)``)."""
        return [self.key]

    @property
    def logits(self) -> torch.Tensor:
        """``[classes]``: the class logits."""
        return self.result.logits

    @property
    def probs(self) -> torch.Tensor:
        return self.result.logits.float().softmax(-1)

    @property
    def classes(self) -> list[str]:
        return list(self._model.classes)

    def top_classes(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The ``k`` most probable classes as ``(index, name, probability)``, most probable first."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r:.40}")
        probs, ids = self.probs.topk(min(k, len(self.probs)))
        return [(int(i), self._model.classes[int(i)], float(p)) for p, i in zip(probs, ids, strict=True)]

    def rerun(self, interventions: Intervention | Iterable[Intervention] = (), capture=None) -> ImageRun:
        """This image again with ``interventions``, from the first stage they edit (see ``model.rerun``)."""
        return self._model.rerun(self, interventions, capture)

    def __getitem__(self, name: str) -> torch.Tensor:
        cache = self.result.cache
        if name in cache:
            return cache[name]
        layer, template = self._model.check_hook(name)
        if template != "attn.hook_pattern":
            raise HookNameError(f"{name} was not captured by this run; captured: {', '.join(cache) or 'nothing'}")
        start = 0 if self._interventions else layer
        outputs = self.result.outputs if start else None
        result = self._model._execute(self.pixels, self._interventions, [name], start, outputs)
        cache[name] = result.cache[name]
        return cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.result.cache)

    def __len__(self) -> int:
        return len(self.result.cache)

    def __contains__(self, name: object) -> bool:
        return name in self.result.cache

    def __repr__(self) -> str:
        (_, name, p), *_ = self.top_classes(1)
        ivs = f", {len(self._interventions)} intervention(s)" if self._interventions else ""
        return f"<rw.ImageRun: top class {name!r} ({p:.1%}){ivs}, {len(self.result.cache)} activations>"
