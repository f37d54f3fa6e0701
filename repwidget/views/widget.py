"""The anywidget behind every view: a run, the shared selection, and the request/reply loop with the browser."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..probes import Probes
from ..probes.probes import hook_for
from ..run import Run
from ..sae import SAE, feature_dashboard
from . import payloads, protocol

STATIC = Path(__file__).resolve().parent.parent / "static"
log = logging.getLogger(__name__)

#: every view the front end knows, in the order the explorer lays them out
VIEWS = ("interventions", "tokens", "attention", "neurons", "features", "probes", "lens", "predictions")


def needed_hooks(model, saes: Sequence[SAE] = (), probes: Sequence[Any] = ()) -> list[str]:
    """What the views read: every layer's pattern, residual stream after the block, MLP neurons, SAE and
    probe sites."""
    wanted = [
        f"blocks.{layer}.{site}"
        for layer in range(model.n_layers)
        for site in ("attn.hook_pattern", "hook_resid_post", "mlp.hook_post")
    ]
    available = set(model.hook_names())
    names = [name for name in wanted if name in available]
    extra = {sae.hook for sae in saes} | {hook_for(p.site, layer) for p in probes for layer in p.layers}
    return names + sorted(extra - set(names))


def check_saes(model, saes: Sequence[SAE]) -> list[SAE]:
    """The SAEs as a list, each checked to read a hook of ``model`` of its width."""
    saes = list(saes)
    for sae in saes:
        if not isinstance(sae, SAE):
            raise TypeError(f"saes must be rw.SAE values (rw.SAE.load(path)), got {type(sae).__name__}")
        sae.check_fits(model)
    return saes


def check_probes(model, probes: Sequence[Probes]) -> list[Probes]:
    """The probes as a list, each checked to read layers and a width this model has."""
    probes = list(probes)
    for p in probes:
        if not isinstance(p, Probes):
            raise TypeError(f"probes must be rw.Probes values (rw.train_probes(...)), got {type(p).__name__}")
        if max(p.layers) >= model.n_layers or p.d_model != model.hook_width(hook_for(p.site, p.layers[0])):
            raise ValueError(
                f"these probes read {p.d_model}-wide {p.site} at layers {p.layers}; this model has "
                f"{model.n_layers} layers of width {model.hook_width(hook_for(p.site, 0))}"
            )
    return probes


def with_captures(run: Run, saes: Sequence[SAE] = (), probes: Sequence[Probes] = ()) -> Run:
    """``run`` itself if it holds what the views read, else the same run re-run with those captures."""
    needed = needed_hooks(run.model, saes, probes)
    if all(name in run for name in needed):
        return run
    return run.rerun(run.interventions, capture=needed)


class RunWidget(anywidget.AnyWidget):
    """Shows one or more views of a :class:`repwidget.Run`; the front end fetches what it shows by request id."""

    _esm = STATIC / "widget.js"

    views = t.List(t.Unicode()).tag(sync=True)
    tokens = t.List(t.Unicode()).tag(sync=True)
    token_ids = t.List(t.Int()).tag(sync=True)
    shape = t.Dict().tag(sync=True)
    #: the shared selection: ``token`` (position), ``layer``, ``head``, ``neuron`` (index in ``layer`` or None)
    selection = t.Dict().tag(sync=True)
    #: bumped after every new run, so the front end refetches what it shows
    generation = t.Int(0).tag(sync=True)
    editable = t.Bool(False).tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    #: a note on the prompt shown above the tokens (e.g. most of it is words the model does not know)
    warning = t.Unicode("").tag(sync=True)
    intervention_list = t.List(t.Dict()).tag(sync=True)
    mode = t.Unicode("zero").tag(sync=True)
    #: the SAEs whose features the features view shows: ``name``, ``hook``, ``d_sae``
    saes = t.List(t.Dict()).tag(sync=True)
    #: the probes the probes view shows: ``kind``, ``site``, ``classes``, ``layers``
    probes = t.List(t.Dict()).tag(sync=True)
    #: answers saved with the widget by :meth:`embed` (the front end reads them before asking the kernel)
    snapshot = t.List(t.Dict()).tag(sync=True)

    def __init__(
        self,
        run: Run,
        clean: Run | None = None,
        views: tuple[str, ...] = VIEWS,
        saes: Sequence[SAE] = (),
        texts: Sequence[Any] | None = None,
        probes: Sequence[Probes] = (),
        **kwargs: Any,
    ) -> None:
        if not isinstance(run, Run):
            raise TypeError(f"expected a rw.Run (from model.run(text)), got {type(run).__name__}")
        model = run.model
        unknown = set(views) - set(VIEWS)
        if unknown:
            raise ValueError(f"unknown views {sorted(unknown)}; the views are {', '.join(VIEWS)}")
        if not model.has_unembed:  # no predictions without an unembedding
            views = tuple(v for v in views if v not in ("lens", "predictions"))
        self._saes = check_saes(model, saes)
        if not self._saes:
            views = tuple(v for v in views if v != "features")
        self._probes = check_probes(model, probes)
        if not self._probes:
            views = tuple(v for v in views if v != "probes")
        self._texts = list(texts) if texts is not None else None
        self._dashboards: dict[tuple[int, int], Any] = {}
        self._clean_logits: dict[int, Any] = {}  # the clean run's logits by position, reused across clicks
        self._run = with_captures(run, self._saes, self._probes)
        self._clean = with_captures(clean, self._saes, self._probes) if clean is not None else None
        n = len(run.token_ids)
        super().__init__(
            views=list(views),
            tokens=run.tokens,
            token_ids=run.token_ids,
            shape={
                "n_layers": model.n_layers,
                "n_heads": model.n_heads,
                "d_mlp": model.d_mlp,
                "n_tokens": n,
                "max_side": payloads.MAX_SIDE,
                "dashboards": texts is not None,
            },
            selection={"token": n - 1, "layer": 0, "head": 0, "neuron": None, "sae": 0, "feature": None},
            saes=[{"name": sae.name, "hook": sae.hook, "d_sae": sae.d_sae} for sae in self._saes],
            probes=[{"kind": p.kind, "site": p.site, "classes": p.classes, "layers": p.layers} for p in self._probes],
            **kwargs,
        )
        self.on_msg(self._on_message)

    # -- state ---------------------------------------------------------------------------
    @property
    def run(self) -> Run:
        """The run the views show (with the current interventions)."""
        return self._run

    @property
    def clean_run(self) -> Run:
        """The run without interventions, which the predictions view compares against."""
        if self._clean is None:
            if self._run.interventions:
                self._clean = with_captures(self._run.rerun(()), self._saes, self._probes)
            else:
                self._clean = self._run
        return self._clean

    def select(self, **changes: Any) -> None:
        """Change the shared selection from Python (``token``, ``layer``, ``head``, ``neuron``); the views follow."""
        unknown = set(changes) - {"token", "layer", "head", "neuron", "sae", "feature"}
        if unknown:
            raise ValueError(f"unknown selection keys {sorted(unknown)}; use token, layer, head, neuron, sae, feature")
        self.selection = {**self.selection, **changes}

    def embed(self, max_bytes: int = 2_000_000) -> None:
        """Save the views' data in the widget's own state, so that a notebook saved with widget state
        shows them when it is opened without a kernel (JupyterLab: Settings > Save Widget State
        Automatically). The selection's data is always saved, the rest while it fits in ``max_bytes``;
        the next re-run drops it (call again after changes).
        """
        from .export import snapshot

        self.snapshot = snapshot(self, max_bytes)

    @t.observe("generation")
    def _drop_snapshot(self, _change: Any) -> None:
        self.snapshot = []

    def save_html(self, path: str | Path, title: str | None = None, max_bytes: int = 8_000_000) -> Path:
        """Save the views as they are now in one self-contained HTML file (no CDN, no kernel).

        The saved page shows the current run and interventions (fixed: clicks select, nothing
        re-runs); the data for the current selection is always saved, and for the other heads,
        positions and layers while the file stays under about ``max_bytes``. Prints the size.
        """
        from .export import save_html

        path = save_html(self, path, title=title, max_bytes=max_bytes)
        print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
        return path

    # -- messages ------------------------------------------------------------------------
    def _limits(self) -> protocol.Limits:
        model = self._run.model
        d_saes = tuple(sae.d_sae for sae in self._saes)
        n = len(self._run.token_ids)
        return protocol.Limits(model.n_layers, model.n_heads, n, model.d_mlp, d_saes, len(self._probes))

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """Answer one message from the front end. Nothing raised here may reach the kernel."""
        request_id = protocol.message_id(content)
        try:
            if not isinstance(content, dict) or request_id is None:
                raise ValueError(f"a message must be a dict with an int id, got {content!r:.200}")
            if content.get("type") == "get":
                self._reply(request_id, *protocol.parse_get(content, self._limits()))
            elif content.get("type") == "set" and self.editable:
                self._on_set(request_id, content)
            elif content.get("type") == "steer_probe" and self.editable:
                classes = [p.classes for p in self._probes]
                self._on_steer_probe(request_id, protocol.parse_steer_probe(content, self._limits(), classes))
            elif content.get("type") == "project_probe" and self.editable:
                self._on_project_probe(request_id, protocol.parse_project_probe(content, self._limits()))
            else:
                raise ValueError(f"unknown message type {content.get('type')!r}")
        except Exception as error:  # shown in the widget; the kernel and the current run are untouched
            log.debug("repwidget message failed", exc_info=True)
            self.error = str(error)
            self.send({"type": "error", "id": request_id, "message": str(error)})

    def _reply(self, request_id: int, what: str, args: dict[str, Any]) -> None:
        data = self._payload(what, args)
        content, buffers = protocol.pack(data)
        self.send({"type": "reply", "id": request_id, "what": what, "gen": self.generation, "data": content}, buffers)

    def _payload(self, what: str, args: dict[str, Any]) -> dict[str, Any]:
        run = self._run
        if what == "overview":
            return payloads.overview(run)
        if what == "pattern":
            return payloads.pattern(run, args["layer"], args["head"], args.get("window"))
        if what == "lens":
            return payloads.lens(run, args["start"], args["stop"])
        if what == "predictions":
            return payloads.predictions(self.clean_run, run, args["position"], clean_logits=self._clean_logits)
        if what == "neurons":
            return payloads.neurons(run, args["layer"], args["position"])
        if what == "neuron":
            return payloads.neuron(run, args["layer"], args["index"])
        if what == "probe":
            return payloads.probe(run, self._probes[args["probe"]], args["layer"], self._saes)
        sae = self._saes[args["sae"]]
        if what == "features":
            return payloads.features(run, sae, args["position"])
        if what == "feature":
            return payloads.feature(run, sae, args["index"])
        return payloads.dashboard(self.dashboard(args["sae"], args["index"]))

    def dashboard(self, sae: int, feature: int):
        """The dashboard of ``feature`` of the ``sae``-th SAE over the explorer's ``texts`` (computed once)."""
        if self._texts is None:
            raise ValueError("no texts to find top contexts in; pass texts=[...] to rw.explore")
        key = (sae, feature)
        if key not in self._dashboards:
            self._dashboards[key] = feature_dashboard(self._run.model, self._saes[sae], feature, self._texts)
        return self._dashboards[key]

    def _on_set(self, request_id: int, content: dict[str, Any]) -> None:
        raise ValueError("this view does not take interventions; use rw.explore(model, text)")

    def _on_steer_probe(self, request_id: int, args: dict[str, Any]) -> None:
        raise ValueError("this view does not take interventions; use rw.explore(model, text)")

    _on_project_probe = _on_steer_probe


class TokensView(RunWidget):
    """The prompt's tokens (click one to select it) with the selected neuron's activation as colour."""

    def __init__(self, run: Run, **kwargs: Any) -> None:
        super().__init__(run, views=("tokens", "neurons"), **kwargs)


class AttentionView(RunWidget):
    """Every head as a thumbnail with its scores, and the selected head's full pattern."""

    def __init__(self, run: Run, **kwargs: Any) -> None:
        super().__init__(run, views=("tokens", "attention"), **kwargs)


class LogitLensView(RunWidget):
    """The top next token after every layer at every position."""

    def __init__(self, run: Run, **kwargs: Any) -> None:
        super().__init__(run, views=("tokens", "lens"), **kwargs)


class PredictionsView(RunWidget):
    """Top next tokens at the selected position; with ``clean`` given, clean and intervened side by side."""

    def __init__(self, run: Run, clean: Run | None = None, **kwargs: Any) -> None:
        super().__init__(run, clean=clean, views=("tokens", "predictions"), **kwargs)
