"""The explorer: every view of one prompt, linked by one selection; click selects, shift+click ablates."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from ..interventions import Intervention
from ..model.model import Model, TokensLike
from ..probes import Probes
from ..sae import SAE
from .catalog import OPTIONS, options_doc, options_list
from .image_session import ImageSession
from .session import Session
from .widget import RunWidget


class Explorer(RunWidget):
    """Linked views of ``model`` on one prompt (or, for an image classifier, one image: ``ImageSession``). Click
    selects; shift+click or the ablate button ablates.

    ``ex.interventions`` is the current list (settable from Python; the views follow),
    ``ex.run`` / ``ex.clean_run`` the intervened and clean runs, ``ex.code()`` the Python that
    reproduces what the views show, ``ex.session`` the kernel side of every view.
    """

    def __init__(
        self,
        model: Model,
        text: TokensLike | None = None,
        interventions: Intervention | Iterable[Intervention] = (),
        mode: str = "zero",
        saes: Sequence[SAE] = (),
        texts: Sequence[Any] | None = None,
        probes: Sequence[Probes] = (),
        capture: str | Iterable[str] = (),
        messages: Sequence[dict[str, Any]] | None = None,
        **options: Any,
    ) -> None:
        views = {name: options.pop(name) for name in list(options) if name in OPTIONS}
        unknown = [name for name in options if not self.class_traits().get(name)]
        if unknown:  # a widget's own traits (e.g. layout=) go to the widget
            raise TypeError(f"rw.explore got unknown options {unknown}; the views take {options_list()}")
        sessions = Session if getattr(model, "kind", "text") == "text" else ImageSession
        session = sessions.of(
            model, text, interventions, saes=saes, texts=texts, probes=probes, editable=True, capture=capture,
            messages=messages, **views,
        )  # fmt: skip
        super().__init__(session=session, mode=mode, **options)

    @property
    def interventions(self) -> list[Intervention]:
        """The interventions the views show; assign a list to change them (the model re-runs)."""
        return list(self.session.interventions)

    @interventions.setter
    def interventions(self, value: Intervention | Iterable[Intervention]) -> None:
        self.busy = True
        try:
            self.session.apply(value)
        finally:
            self.busy = False
        self._sync()

    def probe_chart(self, probe: int = 0):
        """The accuracy-by-layer chart of probe ``probe`` (altair, offline), linked both ways to the layer
        selected here: click a layer in the chart and every view follows, select one here and the chart rings it."""
        from .linked_chart import probe_chart

        return probe_chart(self, probe)

    def linked_chart(self, chart):
        """``chart`` (``rw.charts.similarity_heatmap``, ``rw.charts.layer_measures``, ``probe_accuracy``: any
        altair chart with a ``layer`` selection and a ``current`` parameter) as a widget linked both ways to the
        layer selected here."""
        from .linked_chart import linked

        return linked(self, chart)

    def code(self) -> str:
        """Python that rebuilds the current run (and so what the views show)."""
        return self.session.code()


def explore(
    model: Model,
    text: TokensLike | None = None,
    interventions: Intervention | Sequence[Intervention] = (),
    **options: Any,
) -> Explorer:
    """Explore ``model`` on ``text``: tokens, attention, neurons, logit lens and predictions, linked.

    ``messages=[{"role": "user", "content": ...}]`` instead of ``text`` explores a chat model on its
    chat template's text (with the generation prompt); the tokens view marks the template's special tokens.

    Click selects a head, neuron or feature; shift+click or the ablate button ablates it (in the mode picked
    in the widget: zero, mean, resample); the model re-runs from the earliest intervened layer and every view
    updates. ``saes=[sae]`` adds the features view (click a feature to select it, shift+click or its ablate
    button to ablate it, or steer with it);
    ``texts=[...]`` is the dataset its dashboards search for a feature's top contexts.
    ``probes=[rw.train_probes(...)]`` adds the probes view: accuracy by layer, each token's class
    probability at the selected layer, and steering along the probe's direction.
    ``capture=[...]`` keeps more hooks in ``ex.run`` (names or globs), counted in the budget.
    The attribution view ranks heads, layers, neurons and features by their direct share of a target token's
    logit.

    An image classifier (``rw.load`` / ``rw.Model`` of a CNN or ViT) is explored on an image instead of a text
    (a path, a PIL image, a numpy array or a tensor, as ``model.run`` takes): the input image, the top classes
    clean vs intervened and, for a CNN, every stage's feature maps (click one to enlarge it beside the image,
    shift+click one ablates that channel: ``rw.Ablate(stage, channel=c)``).

    The views' own options (each declared by its panel, ``views/panels/<name>.py``):

    """
    return Explorer(model, text, interventions, **options)


def _with_options(doc: str) -> str:
    """``doc`` followed by the views' options, one wrapped paragraph each."""
    wrap = {"width": 116, "initial_indent": "    ", "subsequent_indent": "    ", "break_on_hyphens": False}
    paragraphs = [textwrap.fill(p, **wrap) for p in options_doc().split("\n")]
    return doc.rstrip() + "\n\n" + "\n".join(paragraphs) + "\n    "


explore.__doc__ = _with_options(explore.__doc__ or "")
