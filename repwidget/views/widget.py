"""The anywidget behind every view: traits and transport over a :class:`~repwidget.views.session.Session`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..interventions import MODES
from ..probes import Probes
from ..run import Run
from ..sae import SAE
from . import export
from .assets import BUNDLE
from .session import VIEWS, Session

log = logging.getLogger(__name__)

#: the traits the browser may change; every other trait is the kernel's and reverts if the browser writes it
BROWSER_OWNED = ("selection", "mode")


class RunWidget(anywidget.AnyWidget):
    """Shows one or more views of a :class:`repwidget.Run`; the front end fetches what it shows by request id."""

    _esm = BUNDLE

    views = t.List(t.Unicode()).tag(sync=True)
    tokens = t.List(t.Unicode()).tag(sync=True)
    token_ids = t.List(t.Int()).tag(sync=True)
    #: per token: "bos" (a BOS at position 0), "special" (a special token, e.g. a chat template's) or ""
    token_kinds = t.List(t.Unicode()).tag(sync=True)
    shape = t.Dict().tag(sync=True)
    #: the shared selection: ``token`` (position), ``layer``, ``head``, ``neuron`` (index in ``layer`` or None)
    selection = t.Dict().tag(
        sync=True,  # compact on the wire (a lasso's points as a bitset), checked when it comes back
        to_json=lambda value, widget: widget.session.selection_json(value),
        from_json=lambda value, widget: widget.session.check_selection(value),
    )
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
        run: Run | None = None,
        clean: Run | None = None,
        views: Sequence[str] = VIEWS,
        saes: Sequence[SAE] = (),
        texts: Sequence[Any] | None = None,
        probes: Sequence[Probes] = (),
        session: Session | None = None,
        **kwargs: Any,
    ) -> None:
        if session is None:
            session = Session(run, clean=clean, views=views, saes=saes, texts=texts, probes=probes)
        self._session = session
        mode = kwargs.pop("mode", "zero")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r:.40}")
        super().__init__(**session.traits(), selection=session.default_selection(), mode=mode, **kwargs)
        self.on_msg(self._on_message)

    # -- state ---------------------------------------------------------------------------
    @property
    def session(self) -> Session:
        """The kernel side of this widget: runs, SAEs, probes, caches and commands."""
        return self._session

    @property
    def run(self) -> Run:
        """The run the views show (with the current interventions)."""
        return self._session.run

    @property
    def clean_run(self) -> Run:
        """The run without interventions, which the predictions view compares against."""
        return self._session.clean_run

    @property
    def model(self):
        return self._session.model

    def select(self, **changes: Any) -> None:
        """Change the selection from Python; the views follow. Indices are checked against the model and the prompt.

        ``token`` (a position), ``layer`` (of the neurons, the logit lens and the probes), ``head`` (the attention
        head shown: ``head=(layer, head)``, or ``layer=..., head=...`` together), ``neuron`` (of ``layer``),
        ``sae`` and ``feature``. An image explorer's: ``layer`` (the stage) and, for a CNN, ``channel``.
        """
        head = changes.get("head")
        if isinstance(head, (tuple, list)):
            if len(head) != 2:
                raise ValueError(f"head=(layer, head) takes two ints, got {head!r:.60}")
            changes["head_layer"], changes["head"] = head
        elif head is not None and "layer" in changes and "head_layer" not in changes:
            changes["head_layer"] = changes["layer"]
        self.selection = self._session.check_selection({**self.selection, **changes})

    def _sync(self) -> None:
        """Copy what the session owns into the traits (after a command, or a change made in Python)."""
        session = self._session
        with self.hold_sync():  # one message: the front end sees new tokens and their selection together
            if self.token_ids != session.run.token_ids:  # a continuation shown in every view
                traits = session.traits()
                self.tokens, self.token_kinds = traits["tokens"], traits["token_kinds"]
                self.token_ids, self.warning = traits["token_ids"], traits["warning"]
            if self.generation != session.generation:
                self.intervention_list = session.listed()
                self.generation = session.generation
            self.shape = session.shape()  # e.g. mean ablation became available after model.set_reference(...)
            self.error = session.error
            if session.select_after is not None:
                self.selection = session.check_selection({**self.selection, **session.select_after})
                session.select_after = None

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """State from the browser: only the selection and the mode, each checked; a write to a trait the kernel
        owns is refused (the browser gets the kernel's value back)."""
        allowed: dict[str, Any] = {}
        for name, value in sync_data.items():
            try:
                if name == "selection":
                    allowed[name] = self._session.selection_json(self._session.check_selection(value))
                elif name == "mode" and value in MODES:
                    allowed[name] = value
                elif name == "mode":
                    raise ValueError(f"mode must be one of {', '.join(MODES)}, got {value!r:.40}")
                else:
                    raise ValueError(f"{name} belongs to the kernel; the browser cannot change it")
            except ValueError as error:
                log.debug("refused a state change from the browser: %s", error)
                self.send_state(name if name in self.keys else None)
        if allowed:
            super().set_state(allowed)

    def embed(self, max_bytes: int = 2_000_000) -> None:
        """Save the views' data in the widget's own state, so that a notebook saved with widget state
        shows them when it is opened without a kernel (JupyterLab: Settings > Save Widget State
        Automatically). The selection's data is always saved, the rest while it fits in ``max_bytes``;
        the next re-run drops it (call again after changes).
        """
        self.snapshot = export.snapshot(self._session, self.selection, max_bytes)

    @t.observe("generation")
    def _drop_snapshot(self, _change: Any) -> None:
        self.snapshot = []

    @t.observe("mode")
    def _clear_error(self, _change: Any) -> None:
        self.error = self._session.error = ""  # an error about the old mode no longer applies

    @t.observe("selection")
    def _clear_request_error(self, _change: Any) -> None:
        if self._session.error_from == "get":
            self.error = self._session.error = ""  # an answer the last selection could not get

    def save_html(self, path: str | Path, title: str | None = None, max_bytes: int = 8_000_000) -> Path:
        """Save the views as they are now in one self-contained HTML file (no CDN, no kernel).

        The saved page shows the current run and interventions (fixed: clicks select, nothing
        re-runs); the data for the current selection is always saved, and for the other heads,
        positions and layers while the file stays under about ``max_bytes``. Prints the size.
        """
        path = export.save_html(self._session, path, self.selection, title=title, max_bytes=max_bytes)
        print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
        return path

    # -- messages ------------------------------------------------------------------------
    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """Answer one message from the front end. Nothing raised here may reach the kernel."""
        changes = isinstance(content, dict) and content.get("type") not in ("get", None)
        if changes:
            self.busy = True
        try:
            replies = self._session.handle(content)
        finally:
            if changes:
                self.busy = False
        self._sync()
        for reply, buffers in replies:
            self.send(reply, buffers)


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
