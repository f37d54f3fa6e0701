"""The kernel side of a widget, with no traitlets: what every view shares (the runs it shows, its SAEs, probes and
texts, the caches behind its answers, the generation counter, the command table); each view's own part is its
panel. The widget, ``embed`` and ``save_html`` are thin layers over it."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from .. import hook_names
from ..interventions import Intervention, as_tuple, to_json
from ..model.model import Model, TokensLike
from ..model.tokens import kinds as token_kinds
from ..probes import Probes
from ..prompts import unknown_words_note
from ..run import Run
from ..sae import SAE, FeatureDashboard, feature_dashboard
from . import messages, protocol
from .catalog import OPTIONS, REQUESTS, VIEWS, keys_of, options_list, panels_of
from .code import rebuild
from .inputs import check_probes, check_saes
from .messages import Message
from .panel import Panel, Selection
from .panels import PANELS

log = logging.getLogger(__name__)

#: logits kept for answers (a chunk of positions is computed at once), at most this many bytes
LOGITS_BYTES = 64 << 20


class Session:
    """What a widget shows and how it answers: one prompt's clean run, the current (intervened) run, and
    everything the views ask for.

    Build one from a run (``Session(run)``) or from a prompt (``Session.of(model, text, ...)``). ``editable``
    sessions take commands that change the interventions. The views' own options (``corrupted=``, ``points=``...)
    go to the panels that declare them (:data:`~repwidget.views.catalog.OPTIONS`); each view's state is
    ``state[name]``.
    """

    def __init__(
        self,
        run: Run,
        clean: Run | None = None,
        views: Iterable[str] = VIEWS,
        saes: Sequence[SAE] = (),
        texts: Sequence[Any] | None = None,
        probes: Sequence[Probes] = (),
        editable: bool = False,
        **options: Any,
    ) -> None:
        if not isinstance(run, Run):
            raise TypeError(f"expected a rw.Run (from model.run(text)), got {type(run).__name__}")
        self._setup(run.model, views, saes, texts, probes, editable, options=options)
        self.run = self._with_captures(run)
        self._clean = self._with_captures(clean) if clean is not None else None
        self._check_prompt(self.run.token_ids)

    @classmethod
    def of(
        cls,
        model: Model,
        text: TokensLike,
        interventions: Intervention | Iterable[Intervention] = (),
        views: Iterable[str] = VIEWS,
        saes: Sequence[SAE] = (),
        texts: Sequence[Any] | None = None,
        probes: Sequence[Probes] = (),
        editable: bool = True,
        capture: str | Iterable[str] = (),
        messages: Sequence[dict[str, Any]] | None = None,
        **options: Any,
    ) -> Session:
        """A session of ``model`` on ``text``: one clean pass capturing what the views read (and ``capture``,
        hook names or globs the runs should keep besides), then the interventions re-run from the earliest
        intervened block. ``options`` go to the views that take them (:data:`OPTIONS`)."""
        if not isinstance(model, Model):
            raise TypeError(f"expected a rw.Model (from rw.load), got {type(model).__name__}")
        session = cls.__new__(cls)
        session._setup(model, views, saes, texts, probes, editable, capture, options)
        session._clean = model.run(text, capture=session.capture, summarize=session._summary(), messages=messages)
        ivs = as_tuple(interventions)
        session.run = session._clean.rerun(ivs, capture=session.capture) if ivs else session._clean
        session.text = text if isinstance(text, str) else session._clean.token_ids
        session.messages = None if messages is None else [dict(m) for m in messages]
        session.warning = unknown_words_note(model.tokenizer, text) if isinstance(text, str) else ""
        session._check_prompt(session._clean.token_ids)
        return session

    def _setup(self, model, views, saes, texts, probes, editable: bool, capture=(), options=None) -> None:
        self.model = model
        #: the kind of model (``"text"``, or a vision model's ``"cnn"`` / ``"vit"``): which panels serve the session
        self.kind: str = getattr(model, "kind", "text")
        self.kind_panels: dict[str, Panel] = panels_of(self.kind)
        self.keys = keys_of(self.kind)
        self.requests = {r.what: r for p in self.kind_panels.values() for r in p.requests}
        options = dict(options or {})
        unknown = [name for name in options if name not in OPTIONS]
        if unknown:
            raise TypeError(f"unknown options {unknown}; the views take {options_list()}")
        #: each view's state (``state[name]``), made from the options that view takes
        self.state: dict[str, Any] = {
            name: p.state(self, {key: options.get(key, option.default) for key, option in p.options.items()})
            for name, p in self.kind_panels.items()
        }
        self.saes: list[SAE] = check_saes(model, saes)
        self.probes: list[Probes] = check_probes(model, probes)
        self.texts: list[Any] | None = list(texts) if texts is not None else None
        views = list(views)
        unknown = [v for v in views if v not in PANELS]
        if unknown:
            raise ValueError(f"unknown views {unknown}; the views are {', '.join(VIEWS)}")
        self.panels: list[Panel] = [p for v, p in self.kind_panels.items() if v in views and p.shown(self)]
        wanted = {hook for p in self.panels for hook in p.hooks(self)} | set(model.expand(capture) if capture else ())
        if (
            self.kind == "text" and model.executor.reuses_blocks
        ):  # what run.rerun() captures by default (every residual stream, block l's
            # input being block l - 1's output): the runs' reruns reuse blocks (a remote model brings back no streams)
            wanted |= {"blocks.0.hook_resid_pre", *model.expand("blocks.*.hook_resid_post")}
        self.capture: list[str] = [h for h in model.hook_names() if h in wanted]
        self.editable = editable
        self.text: Any = None
        self.messages: list[dict[str, Any]] | None = None
        #: a note about the prompt the views show (most of its words unknown to the tokenizer), or ""
        self.warning = ""
        #: bumped after every new run, so views refetch what they show
        self.generation = 0
        #: the last error, shown by the views: a command's is cleared by the next change that works or a new mode,
        #: a request's (``error_from == "get"``) also by a new selection
        self.error = ""
        self.error_from = ""
        self._seqs: OrderedDict[str, int] = OrderedDict()
        self._logits: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()
        self._dashboards: OrderedDict[tuple[int, int, int], FeatureDashboard] = OrderedDict()
        self._cached: dict[str, tuple[int, Any]] = {}
        self._known: OrderedDict[str, Intervention] = OrderedDict()
        self._activations: OrderedDict[tuple[int, str], torch.Tensor] = OrderedDict()
        self._clean_memo: OrderedDict[tuple, Any] = OrderedDict()
        #: the selection the last command asked for (e.g. a generated token clicked); consumed by the widget
        self.select_after: Selection | None = None

    def _summary(self) -> int | None:
        """The side of the attention summary the panels read, reduced in each clean pass."""
        return max((p.summary for p in self.panels if p.summary), default=None)

    def _check_prompt(self, ids: list[int]) -> None:
        for p in self.kind_panels.values():
            p.check_prompt(self, list(ids))

    def _with_captures(self, run: Run) -> Run:
        """``run`` itself if it holds what the views read, else the same run re-run with those captures."""
        if all(name in run for name in self.capture):
            return run
        return run.rerun(run.interventions, capture=self.capture)

    # -- state ---------------------------------------------------------------------------
    @property
    def views(self) -> list[str]:
        return [p.name for p in self.panels]

    @property
    def n_tokens(self) -> int:
        return len(self.run.token_ids)

    @property
    def clean_run(self) -> Run:
        """The run without interventions, which the predictions compare against."""
        if self._clean is None:
            self._clean = self.run.rerun((), capture=self.capture) if self.run.interventions else self.run
        return self._clean

    @property
    def interventions(self) -> tuple[Intervention, ...]:
        return self.run.interventions

    def listed(self) -> list[dict[str, Any]]:
        """The interventions as the front end lists them: their JSON with the kernel's ``label`` and a ``key``
        the front end sends back (``{"ref": key}``) to keep one. Steering vectors and directions stay in the
        kernel: the browser never receives floats as JSON."""
        out = []
        for iv in self.interventions:
            data = to_json(iv, saes=self.saes)
            for name in iv.kernel_only:
                data[name] = None if data[name] else data[name]
            out.append({**data, "label": iv.label(), "key": self.key(iv)})
        return out

    def key(self, iv: Intervention) -> str:
        """A short name for ``iv``, the same for equal interventions, by which the front end refers to it."""
        key = hashlib.sha1(repr(iv).encode()).hexdigest()[:16]
        self._known[key] = iv
        self._known.move_to_end(key)
        while len(self._known) > 1024:
            self._known.popitem(last=False)
        return key

    def known(self, key: Any) -> Intervention:
        """The intervention listed under ``key`` (this run's, or one listed earlier)."""
        if isinstance(key, str) and key in self._known:
            return self._known[key]
        raise ValueError(f"ref {protocol.short(key, 40)} is not an intervention this view listed")

    def shape(self) -> dict[str, Any]:
        """Sizes and settings the front end needs (each panel adds its own)."""
        model = self.model
        shape = {"n_layers": model.n_layers, "n_heads": model.n_heads, "d_mlp": model.d_mlp, "n_tokens": self.n_tokens}
        shape["places"] = {p.name: p.place for p in self.panels}
        then = next((p.then for p in self.panels if p.then is not None), None)
        if then is not None:
            shape["then"] = then
        for p in self.panels:
            shape.update(p.shape(self))
        return shape

    def traits(self) -> dict[str, Any]:
        """The widget state the kernel owns (the browser may change only the selection and the mode)."""
        return {
            "views": self.views,
            **self.prompt_traits(),
            "shape": self.shape(),
            "editable": self.editable,
            "generation": self.generation,
            "intervention_list": self.listed(),
            "error": self.error,
            "warning": self.warning,
            "saes": [{"name": sae.name, "hook": sae.hook, "d_sae": sae.d_sae} for sae in self.saes],
            "probes": [{"kind": p.kind, "site": p.site, "classes": p.classes, "layers": p.layers} for p in self.probes],
        }

    def prompt_traits(self) -> dict[str, Any]:
        """The prompt's tokens, their ids and kinds, as the widget's traits."""
        ids = self.run.token_ids
        return {"tokens": self.run.tokens, "token_ids": ids, "token_kinds": token_kinds(self.model.tokenizer, ids)}

    def default_selection(self) -> Selection:
        return {name: key.default(self) for name, key in self.keys.items()}

    def check_selection(self, selection: Any) -> Selection:
        """``selection`` checked key by key, each by the panel that adds it (``keys``); missing keys get their
        defaults."""
        if not isinstance(selection, dict):
            raise ValueError(f"a selection is a dict, got {protocol.short(selection, 80)}")
        unknown = set(selection) - set(self.keys)
        if unknown:
            raise ValueError(f"unknown selection keys {sorted(map(str, unknown))[:6]}; use {', '.join(self.keys)}")
        out = {**self.default_selection(), **selection}
        for name, key in self.keys.items():
            out[name] = key.check(self, out, selection)
        return out

    def selection_json(self, selection: Selection) -> Selection:
        """A checked selection as it travels to the front end (e.g. the projector's lasso as a bitset)."""
        keys = self.keys
        return {k: keys[k].to_json(self, v) if k in keys and keys[k].to_json else v for k, v in selection.items()}

    # -- answers -------------------------------------------------------------------------
    def answer(self, what: str, args: dict[str, Any]) -> dict[str, Any]:
        """The payload of request ``what`` (arguments already checked), from the current run."""
        return REQUESTS[what].answer(self, args)

    def get(self, content: dict[str, Any]) -> tuple[protocol.Request, dict[str, Any]]:
        """The request and arguments of a "get" message, checked."""
        return protocol.parse_get(content, self.requests, self)

    def reply(self, request_id: Any, request: protocol.Request, args: dict[str, Any]) -> Message:
        """The reply message to one checked request."""
        content, buffers = protocol.pack(request.answer(self, args), request.half)
        reply = {"type": "reply", "id": request_id, "what": request.what, "gen": self.generation, "data": content}
        return reply, buffers

    def logits(self, run: Run, position: int) -> torch.Tensor:
        """``[vocab]`` logits of ``run`` (the clean or the current one) at ``position``, computed a chunk of
        positions at a time and kept within :data:`LOGITS_BYTES`."""
        key = (id(run), position)
        if key not in self._logits:
            vocab_bytes = max(1, self.model.vocab_size * 4)
            chunk = max(1, min(64, LOGITS_BYTES // (4 * vocab_bytes)))
            stop = min(self.n_tokens, position + chunk)
            for offset, row in enumerate(run.logits_at(range(position, stop)).float()):
                self._logits[(id(run), position + offset)] = row
            while len(self._logits) * vocab_bytes > LOGITS_BYTES and len(self._logits) > 1:
                self._logits.popitem(last=False)
        self._logits.move_to_end(key)
        return self._logits[key]

    @property
    def intervened(self) -> bool:
        """Whether the current run differs from the clean one (it has interventions)."""
        return self.run is not self.clean_run

    def activation(self, hook: str, run: Run | None = None) -> torch.Tensor:
        """The current run's (or ``run``'s) activation at ``hook``: captured, or read by running the input again
        from that hook's block (earlier blocks reused; the last few kept), so no view holds every layer's MLP."""
        run = self.run if run is None else run
        if hook in run:
            return run[hook]
        key = (id(run), hook)
        if key not in self._activations:
            layer = hook_names.parse(hook, self.model.n_layers)[0]
            self._activations[key] = self.model.replay(run, layer, {}, capture=[hook])[hook]
            while len(self._activations) > 4:
                self._activations.popitem(last=False)
        return self._activations[key]

    def dashboard(self, sae: int, feature: int) -> FeatureDashboard:
        """The dashboard of ``feature`` of the ``sae``-th SAE over the session's texts (the last 32 kept, each for
        the model's weights version it was read with)."""
        if self.texts is None:
            raise ValueError("no texts to find top contexts in; pass texts=[...] to rw.explore")
        key = (sae, feature, self.model.weights_version())
        if key not in self._dashboards:
            self._dashboards[key] = feature_dashboard(self.model, self.saes[sae], feature, self.texts)
            if len(self._dashboards) > 32:
                self._dashboards.popitem(last=False)
        return self._dashboards[key]

    def cache(self, name: str, value: Any) -> None:
        """Keep ``value`` for the current run (dropped at the next change)."""
        self._cached[name] = (self.generation, value)

    def cached(self, name: str) -> Any:
        """What :meth:`cache` kept for the current run, or None."""
        generation, value = self._cached.get(name, (None, None))
        return value if generation == self.generation else None

    def of_clean(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` for the clean run, kept while that run is (the last 16 keys): answers about the clean run
        do not change with the interventions."""
        if key not in self._clean_memo:
            self._clean_memo[key] = compute()
            while len(self._clean_memo) > 16:
                self._clean_memo.popitem(last=False)
        self._clean_memo.move_to_end(key)
        return self._clean_memo[key]

    # -- changes -------------------------------------------------------------------------
    def apply(self, interventions: Intervention | Iterable[Intervention]) -> None:
        """Make ``interventions`` current: re-run from the earliest intervened block (on any error the previous
        run stays). After the model's weights changed, the clean run is computed again first."""
        ivs = as_tuple(interventions)
        stale = self.model.weights_version() != self.clean_run.weights_version
        if ivs == self.run.interventions and not stale:
            return
        clean = self.model.rerun(self.clean_run, (), capture=self.capture) if stale else self.clean_run
        run = clean.rerun(ivs, capture=self.capture) if ivs else clean
        self._clean, self.run = clean, run  # both or neither (an interrupt above leaves the previous runs)
        if stale:
            self._clean_memo.clear()
            log.info("the model's weights changed since this view's runs: the clean run was computed again")
        live = {id(self.run), id(self._clean)}  # logits of runs no longer shown go (an id is unique while alive)
        for cache in (self._logits, self._activations):
            for key in [key for key in cache if key[0] not in live]:
                del cache[key]
        self.generation += 1
        self.error = "the model's weights changed since the last run: both runs were computed again" if stale else ""

    def show_prompt(self, ids: Sequence[int]) -> None:
        """Show ``ids`` in every view instead of the prompt, with the current interventions: the runs are made again
        and every cache dropped. A view whose state does not fit the new prompt refuses it first."""
        self._check_prompt(list(ids))
        clean = self.model.run(list(ids), capture=self.capture, summarize=self._summary())
        ivs = self.interventions
        run = clean.rerun(ivs, capture=self.capture) if ivs else clean
        self._clean, self.run = clean, run
        self.text, self.messages, self.warning = list(ids), None, ""
        for cache in (self._logits, self._activations, self._clean_memo, self._cached):
            cache.clear()
        self.generation += 1
        self.error = ""

    def handle(self, content: Any) -> list[Message]:
        """The kernel's answer to one message from the front end. Never raises: a bad message gets an error
        reply (quoting at most a short prefix of what was wrong) and changes nothing."""
        return messages.handle(self, content)

    def code(self) -> str:
        """Python that rebuilds the current run (and so what the views show). An SAE that was never saved
        (so cannot be loaded) appears as ``unsaved("name")``, which raises an error saying what to do."""
        return rebuild(self)
