"""The image explorer's kernel side: a :class:`Session` over an image classifier's runs (``ImageRun``).

Everything else is the text explorer's machinery, unchanged: the widget (``Explorer``), the interventions list and
its ``set`` command (shift+click ablates, undo, zero / mean modes), the selection, requests and ``then``, ``ex.run``
/ ``ex.clean_run`` / ``ex.interventions`` / ``ex.code()``. A session serves the panels of its model's kind
(``Panel.kinds``): ``"cnn"`` or ``"vit"`` (``model.kind``) here, ``"text"`` for a language model.

Adding an image view is adding a panel, as for text: ``views/panels/<name>.py`` with ``PANEL = Panel(...,
kinds=("vit",))`` (or ``("cnn", "vit")``) and ``js/src/views/<name>.ts``. What an image panel reads:

- ``session.run`` / ``session.clean_run``: ``ImageRun``s (``run.pixels`` ``[1, C, H, W]``, ``run.logits``
  ``[classes]``, ``run[hook]``: the hooks the panel lists in ``hooks`` are captured in both runs);
- ``session.model``: the ``VisionModel`` (``kind``, ``n_layers``, ``classes``, ``channels(L)``, ``arch.shapes``);
- the shared selection: ``layer`` (the selected stage / block) and ``token`` (always 0 here), plus the panels' own
  keys (the CNN overview's ``channel``);
- ``views/panels/_image_maps.py``: tensors as uint8 pictures (min..max to 0..255) for the front end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..interventions import Intervention, as_tuple
from ..model.vision_model import VisionModel
from .catalog import VIEWS
from .session import Session


class ImageSession(Session):
    """A session of an image classifier on one image: its clean run, the intervened run, and the image views."""

    @classmethod
    def of(  # type: ignore[override]
        cls,
        model: VisionModel,
        image: Any,
        interventions: Intervention | Iterable[Intervention] = (),
        views: Iterable[str] = VIEWS,
        saes: Sequence[Any] = (),
        texts: Sequence[Any] | None = None,
        probes: Sequence[Any] = (),
        editable: bool = True,
        capture: str | Iterable[str] = (),
        messages: Sequence[dict[str, Any]] | None = None,
        **options: Any,
    ) -> ImageSession:
        """A session of ``model`` on ``image`` (a path, PIL image, numpy array or tensor, as ``model.run`` takes):
        one clean pass capturing what the views read (and ``capture``), then the interventions re-run from the
        earliest intervened stage."""
        if not isinstance(model, VisionModel):
            raise TypeError(f"expected an image classifier (rw.Model of a CNN or ViT), got {type(model).__name__}")
        if saes or texts is not None or probes or messages is not None:
            raise ValueError(
                "saes=, texts=, probes= and messages= are for language models; an image explorer takes none"
            )
        if image is None:
            raise ValueError("rw.explore(model, image) needs an image: a path, a PIL image, a numpy array or a tensor")
        session = cls.__new__(cls)
        session._setup(model, views, (), None, (), editable, capture, options)
        session._clean = model.run(image, capture=session.capture)
        ivs = as_tuple(interventions)
        session.run = session._clean.rerun(ivs, capture=session.capture) if ivs else session._clean
        session.text = str(image) if isinstance(image, (str, Path)) else None
        session._check_prompt(session._clean.token_ids)
        return session

    def prompt_traits(self) -> dict[str, Any]:
        """No tokens: the image is what the views draw (the ``image`` view's request)."""
        return {"tokens": [], "token_ids": [], "token_kinds": []}

    def code(self) -> str:
        """Python that rebuilds the current run: the model, the image and the interventions, then each view's lines."""
        ivs = ", ".join(repr(iv) for iv in self.interventions)
        source = getattr(self.model, "source", "")
        if source == "demo-vision":
            model = "rw.demo.vision_model()"
        elif source:
            model = f"rw.load({source!r})"
        else:
            model = "rw.Model(net, preprocess=..., classes=..., input_shape=...)  # the model you passed to rw.explore"
        image = repr(self.text) if self.text is not None else "...  # the image you passed to rw.explore"
        lines = [f"image = {image}", f"run = model.run(image, interventions=[{ivs}])"]
        for p in self.panels:
            lines += p.code(self)
        body = "\n".join(lines)
        return f"import repwidget as rw\n\nmodel = {model}\n{body}\n"
