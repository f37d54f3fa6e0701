"""The explorer: every view of one prompt, linked by one selection, with click-to-ablate."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..interventions import Intervention, Steer, as_tuple, from_json, to_json
from ..model.model import Model, TokensLike
from ..probes import Probes
from ..prompts import unknown_words_note
from ..sae import SAE
from .widget import RunWidget, check_probes, check_saes, needed_hooks


class Explorer(RunWidget):
    """Linked views of ``model`` on one prompt. Clicking a head or a neuron toggles its ablation.

    ``ex.interventions`` is the current list (settable from Python; the views follow),
    ``ex.run`` / ``ex.clean_run`` the intervened and clean runs, ``ex.code()`` the Python that
    reproduces what the views show.
    """

    def __init__(
        self,
        model: Model,
        text: TokensLike,
        interventions: Intervention | Iterable[Intervention] = (),
        mode: str = "zero",
        saes: Sequence[SAE] = (),
        texts: Sequence[Any] | None = None,
        probes: Sequence[Probes] = (),
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"expected a rw.Model (from rw.load), got {type(model).__name__}")
        self._text = text if isinstance(text, str) else model.to_ids(text)
        saes = check_saes(model, saes)
        probes = check_probes(model, probes)
        self._capture = needed_hooks(model, saes, probes)
        clean = model.run(text, capture=self._capture)
        ivs = as_tuple(interventions)
        run = clean.rerun(ivs, capture=self._capture) if ivs else clean
        super().__init__(run, clean=clean, editable=True, mode=mode, saes=saes, texts=texts, probes=probes, **kwargs)
        self.intervention_list = self._listed(ivs)
        self.warning = unknown_words_note(model.tokenizer, text)
        self._seq = -1

    @property
    def model(self) -> Model:
        return self._run.model

    @property
    def interventions(self) -> list[Intervention]:
        """The interventions the views show; assign a list to change them (the model re-runs)."""
        return list(self._run.interventions)

    @interventions.setter
    def interventions(self, value: Intervention | Iterable[Intervention]) -> None:
        self._apply(as_tuple(value))

    def _apply(self, ivs: tuple[Intervention, ...]) -> None:
        """Re-run from the earliest intervened layer; on any error the previous run stays."""
        if ivs == self._run.interventions:
            return
        self.busy = True
        try:
            self._run = self.clean_run.rerun(ivs, capture=self._capture)
        finally:
            self.busy = False
        self.intervention_list = self._listed(ivs)
        self.error = ""
        self.generation += 1

    @staticmethod
    def _listed(ivs: tuple[Intervention, ...]) -> list[dict[str, Any]]:
        """The interventions as the front end lists them: a steering vector stays in the kernel (the
        browser never receives floats as JSON) and comes back as ``ref``, its index in the list."""
        out = []
        for i, iv in enumerate(ivs):
            data = to_json(iv)
            for name in ("vector", "direction"):
                if data.get(name):
                    data.update({name: None, "ref": i})
            out.append(data)
        return out

    def _from_front(self, item: Any) -> Intervention:
        if isinstance(item, dict) and "ref" in item:
            ref, current = item["ref"], self._run.interventions
            if type(ref) is not int or not 0 <= ref < len(current):
                raise ValueError(f"ref {ref!r} is not an intervention of the current run")
            return current[ref]
        return from_json(item)

    def _on_set(self, request_id: int, content: dict[str, Any]) -> None:
        seq, items = content.get("seq"), content.get("interventions")
        if type(seq) is not int or not isinstance(items, list):
            raise ValueError("a set message needs an int seq and a list of interventions")
        if seq <= self._seq:  # an older click that arrived late: the newer one already won
            return
        self._seq = seq
        ivs = tuple(self._from_front(item) for item in items)
        try:
            self._apply(ivs)
        finally:  # tell the front end which state is current, even when this one was refused
            self.send({"type": "applied", "id": request_id, "seq": seq, "gen": self.generation})
        self._reply_predictions(request_id)

    def _reply_predictions(self, request_id: int) -> None:
        """After a change the front end asked for, its predictions go out first, in the same handler."""
        position = self.selection.get("token")
        if self.model.has_unembed and type(position) is int and 0 <= position < len(self._run.token_ids):
            self._reply(request_id, "predictions", {"position": position})

    def _on_steer_probe(self, request_id: int, args: dict[str, Any]) -> None:
        """Steer along a probe's direction, replacing an earlier vector steer at that layer."""
        steer = self._probes[args["probe"]].steering(args["layer"], args["toward"], args["strength"])
        kept = [
            iv
            for iv in self._run.interventions
            if not (isinstance(iv, Steer) and iv.sae is None and iv.layer == steer.layer)
        ]
        self._apply((*kept, steer))
        self._applied(request_id)

    def _on_project_probe(self, request_id: int, args: dict[str, Any]) -> None:
        """Toggle projecting a probe's direction out of the residual stream at a layer."""
        projection = self._probes[args["probe"]].projection(args["layer"])
        current = self._run.interventions
        if projection in current:
            self._apply(tuple(iv for iv in current if iv != projection))
        else:
            self._apply((*current, projection))
        self._applied(request_id)

    def _applied(self, request_id: int) -> None:
        """Confirm a change made by a command, with the fresh predictions."""
        self.send({"type": "applied", "id": request_id, "seq": self._seq, "gen": self.generation})
        self._reply_predictions(request_id)

    def probe_chart(self, probe: int = 0):
        """The accuracy-by-layer chart of probe ``probe`` (altair, offline), linked both ways to the layer
        selected here: click a layer in the chart and every view follows, select one here and the chart rings it."""
        from .linked_chart import probe_chart

        return probe_chart(self, probe)

    def code(self) -> str:
        """Python that rebuilds the current run (and so what the views show)."""
        ivs = ", ".join(repr(iv) for iv in self.interventions)
        return (
            "import repwidget as rw\n\n"
            f"model = {_model_source(self.model)}\n"
            f"run = model.run({self._text!r}, interventions=[{ivs}])\n"
        )


def _model_source(model: Model) -> str:
    from ..demo import MODEL_DIR

    name = str(getattr(model.hf, "name_or_path", "") or "")
    if name and Path(name).resolve() == Path(MODEL_DIR).resolve():
        return "rw.demo_model()"
    if name:
        return f"rw.load({name!r})"
    return "rw.Model(hf_model, tokenizer)  # the model you passed to rw.explore"


def explore(
    model: Model, text: TokensLike, interventions: Intervention | Sequence[Intervention] = (), **options: Any
) -> Explorer:
    """Explore ``model`` on ``text``: tokens, attention, neurons, logit lens and predictions, linked.

    Click a head or a neuron to toggle its ablation (in the mode picked in the widget: zero, mean,
    resample); the model re-runs from the earliest intervened layer and every view updates.
    ``saes=[sae]`` adds the features view (click a feature to ablate it, or steer with it);
    ``texts=[...]`` is the dataset its dashboards search for a feature's top contexts.
    ``probes=[rw.train_probes(...)]`` adds the probes view: accuracy by layer, each token's class
    probability at the selected layer, and steering along the probe's direction.
    """
    return Explorer(model, text, interventions, **options)
