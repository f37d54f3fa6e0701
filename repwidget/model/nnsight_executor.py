"""An executor that runs planned passes as nnsight traces: in this process, or on NDIF (``remote=True``).

The plan is compiled into plain data (module paths, positions, tensors) and one trace body that uses only
torch, so the same body runs here and, serialised with nnsight's own request format, on a server that has
never seen repwidget. Each intervention's edit (``SetRows``, ``AddRows``, ``Project``, ``Splice``) becomes
an op tuple; a kind that cannot (attention knockouts) is refused when the pass is planned, before it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..hook_names import parse
from ..interventions import AddRows, Intervention, Project, SetRows, Splice
from . import attention
from .architecture import Architecture
from .execute import NonFiniteError, forward_inputs
from .executor import guarded, weights_version, without_grad
from .modes import eval_mode
from .plan import Plan, Result
from .twin import is_weightless

#: where each hook is read, in the order a block computes them: (part of the block, "pre"/"post", rank)
SITES: dict[str, tuple[str, str, int]] = {
    "hook_resid_pre": ("block", "pre", 0),
    "attn.hook_z": ("attn_proj", "pre", 1),
    "attn.hook_pattern": ("attn", "pattern", 2),
    "hook_attn_out": ("attn_end", "post", 3),
    "hook_resid_mid": ("attn_end", "post", 3),
    "mlp.hook_post": ("mlp_down", "pre", 4),
    "hook_mlp_out": ("mlp_end", "post", 5),
    "hook_resid_post": ("block", "post", 6),
}


class RemoteExecutionError(RuntimeError):
    """A remote pass failed (no API key, NDIF unreachable, a model it does not serve, a timeout): one line says
    which."""


class UnsupportedOnBackendError(ValueError):
    """An intervention or request this backend cannot run; raised when the pass is planned, before it runs."""


def compile_edit(edit: Any) -> tuple:
    """An edit as an op tuple of plain data (positions, slices, tensors) the trace body applies with torch."""
    if isinstance(edit, SetRows):
        return ("set", edit.at, edit.cols, edit.value)
    if isinstance(edit, AddRows):
        return ("add", edit.at, edit.delta)
    if isinstance(edit, Project):
        return ("project", edit.at, edit.unit, edit.target)
    if isinstance(edit, Splice):
        sae = edit.sae
        norms = sae.W_dec.norm(dim=-1) if sae.rescale_acts_by_decoder_norm else None
        sae_data = (sae.W_enc, sae.b_enc, sae.b_dec, sae.decoder_vectors(), sae.apply_b_dec_to_input, norms)
        return ("splice", edit.at, edit.feature, sae_data, sae.architecture, sae.k, sae.threshold)
    raise UnsupportedOnBackendError(f"the nnsight backend cannot compile the edit {type(edit).__name__}")


def compile_sink(sink: attention.Sink) -> list[tuple] | None:
    """A sink as reductions the trace body computes with torch (None: it must be fed the whole layer here).

    ``("pool", heads, rows, cols, side)``: ``F.adaptive_max_pool2d`` of that window of the first sequence's
    pattern (what :class:`attention.Pooled` computes); ``("scores", pairs)``: the sums behind the head scores.
    """
    if isinstance(sink, attention.Summary):
        if sink.stride != 1:
            return None
        return [*compile_sink(sink.pooled), *compile_sink(sink.scores)]
    if isinstance(sink, attention.Pooled):
        return [("pool", sink.heads, sink.rows, sink.cols, sink.side)]
    if isinstance(sink, attention.Scores):
        return [("scores", dict(sink.pairs))]
    if isinstance(sink, attention.Sinks):
        parts = [compile_sink(s) for s in sink.sinks]
        return None if any(p is None for p in parts) else [x for p in parts for x in p]
    return None


def _leaves(sink: attention.Sink) -> list[attention.Sink]:
    """The Pooled and Scores sinks a compiled sink's reductions fill, in the order :func:`compile_sink` gives."""
    if isinstance(sink, attention.Summary):
        return [sink.pooled, sink.scores]
    if isinstance(sink, attention.Sinks):
        return [leaf for s in sink.sinks for leaf in _leaves(s)]
    return [sink]


def _fill(sink: attention.Sink, reduced: list, n: int) -> None:
    """Give ``sink`` what the trace reduced for it, as if it had been fed the layer's rows."""
    for leaf, value in zip(_leaves(sink), reduced, strict=True):
        if isinstance(leaf, attention.Pooled):
            leaf.result = value.float().cpu()
        else:
            leaf.sums = {name: v.cpu() for name, v in value.items()}
            leaf.counts = {"previous_token": n - 1, "first_token": n}
            leaf.counts.update({name: len(torch.unique_consecutive(q)) for name, (q, _) in leaf.pairs.items()})
        leaf.filled = True
    sink.filled = True


class NNsightExecutor:
    """Passes as nnsight traces of the wrapped model. Reruns are full passes (block outputs stay where the model
    runs), captures come back per hook, logits are computed when read from the final hidden state.

    A model without local weights (``weightless``: every parameter on ``meta``, NDIF holds the weights) brings no
    final hidden state back: the logits rows a caller reads (:meth:`logits_rows`) and the predictions the views show
    (:meth:`compare`) are computed in a pass, reduced where the model runs."""

    reuses_blocks = False
    interface = False  # patterns come from eager attention, a whole layer at a time

    def __init__(
        self,
        hf: nn.Module,
        arch: Architecture,
        forward_kwargs: dict,
        remote: bool = False,
        tokenizer: Any = None,
        timeout: float = 120.0,
        lm: Any = None,
    ) -> None:
        import nnsight

        self.hf, self.arch, self.forward_kwargs, self.remote = hf, arch, forward_kwargs, remote
        #: seconds a remote pass may wait for NDIF to answer
        self.timeout = timeout
        #: an nnsight backend to run traces on instead (e.g. nnsight's LocalSimulationBackend); None: the default
        self.backend: Any = None
        #: the weights are on NDIF only (the module tree here is on ``meta``)
        self.weightless = is_weightless(hf)
        if self.weightless and not remote:
            raise ValueError("a model without local weights (on the meta device) runs only remotely: remote=True")
        if lm is not None:  # an nnsight model already built (its meta module tree is ``hf``)
            self.lm = lm
        elif self.weightless:
            raise ValueError(
                "a model without local weights needs nnsight's model of it: rw.load('org/name', backend='nnsight', "
                "remote=True) or rw.load(nnsight.TransformersModel('org/name'), backend='nnsight', remote=True)"
            )
        elif remote:  # NDIF names a model by its hub id: nnsight's TransformersModel carries it (and the tokenizer)
            if tokenizer is None:
                raise ValueError("remote=True needs the model's tokenizer: rw.load(model, tokenizer, ...)")
            self.lm = nnsight.TransformersModel(hf, tokenizer=tokenizer)
        else:
            self.lm = nnsight.NNsight(hf)
        #: each module's envoy by its path in the model (nnsight's own names differ where a submodule is called
        #: ``output`` or ``input``, as in BERT)
        self.envoys = {e.path.split(".", 1)[1]: e for e in self.lm.modules() if "." in e.path}

    def envoy(self, path: str) -> Any:
        """The nnsight envoy of the module at ``path`` (a path in the Hugging Face model)."""
        return self.envoys[path]

    # -- planning checks -----------------------------------------------------------------
    def refuse(self, intervention: Intervention) -> None:
        """Raise :class:`UnsupportedOnBackendError` for a kind this backend cannot run (before any pass)."""
        if hasattr(intervention, "knock"):
            raise UnsupportedOnBackendError(
                f"{intervention.label()}: attention knockouts act inside the attention function, which the nnsight "
                "backend does not reach; use the local backend (rw.load(model)) or ablate the head (rw.Ablate)"
            )
        if hasattr(intervention, "bypass"):
            raise UnsupportedOnBackendError(
                f"{intervention.label()}: skipping a block is not compiled for the nnsight backend yet; "
                "use the local backend (rw.load(model))"
            )

    # -- passes ------------------------------------------------------------------------------
    def execute(self, plan: Plan) -> list[Result]:
        if plan.knockouts:
            raise UnsupportedOnBackendError("attention knockouts are not supported on the nnsight backend")
        if getattr(plan, "skips", None):
            raise UnsupportedOnBackendError("skipped blocks (rw.Skip) are not supported on the nnsight backend")
        reducible = all(compile_sink(sink) is not None for sink in plan.sinks.values())
        if self.remote and (not reducible or any(h.endswith("attn.hook_pattern") for h in plan.capture)):
            raise UnsupportedOnBackendError(
                "whole attention patterns are not brought back from NDIF; the explorer's thumbnails, head scores "
                "and one head's pattern are (reduced there), or use the local backend"
            )
        program = self._program(plan)
        return guarded(self.hf, self._execute, plan, program)

    def _execute(self, plan: Plan, program: dict) -> list[Result]:
        with self._modes(plan):
            saved = self._trace(plan, program)
        n = program["spans"][0][1] - program["spans"][0][0]
        for layer, reduced in saved["sinks"].items():
            _fill(plan.sinks[layer], reduced, n)
        return self._results(plan, program, saved)

    @contextlib.contextmanager
    def _modes(self, plan: Plan) -> Iterator[None]:
        config = self.hf.config
        before = getattr(config, "_attn_implementation", None)
        patterns = _patterns(plan)
        with eval_mode(self.hf), torch.set_grad_enabled(plan.grad):
            if patterns:
                config._attn_implementation = "eager"
            try:
                yield
            finally:
                if patterns:
                    config._attn_implementation = before

    def _program(self, plan: Plan, lens: tuple[int, int, int] | None = None, rows: tuple | None = None) -> dict:
        """The plan as plain data: per layer, the sites to visit in execution order, and the ops of each hook.

        ``rows``: what the pass reduces from the model's logits, ``("logits", positions)`` (those rows of the first
        sequence) or ``("compare", positions, k, following)`` (see :meth:`compare`)."""
        arch = self.arch
        sites: dict[tuple[int, str, str], dict] = {}
        names = {*plan.capture, *plan.edits}
        for name in names:
            layer, template = parse(name, arch.n_layers)
            where, when, rank = SITES[template]
            path = arch.blocks + f".{layer}" + ("" if where == "block" else "." + getattr(arch, where))
            site = sites.setdefault((layer, where, when), {"path": path, "when": when, "rank": rank, "hooks": []})
            site["hooks"].append(template)
        for layer in {parse(h, arch.n_layers)[0] for h in names if h.endswith("hook_resid_mid")}:
            path = arch.blocks + f".{layer}"
            sites.setdefault((layer, "block", "pre"), {"path": path, "when": "pre", "rank": 0, "hooks": []})
        for layer in plan.sinks:
            path = arch.blocks + f".{layer}." + arch.attn
            sites.setdefault((layer, "attn", "pattern"), {"path": path, "when": "pattern", "rank": 2, "hooks": []})
        if lens is not None:  # every block's output, reduced to the lens's top tokens where it is computed
            for layer in range(arch.n_layers):
                path = arch.blocks + f".{layer}"
                sites.setdefault((layer, "block", "post"), {"path": path, "when": "post", "rank": 6, "hooks": []})
        if not arch.attn_proj.startswith(arch.attn + "."):  # the projection runs after the attention returns (BERT)
            for (_, where, _), site in sites.items():
                if where == "attn":
                    site["rank"] = 0.5
        steps = []
        for (layer, where, _), site in sorted(sites.items(), key=lambda kv: (kv[0][0], kv[1]["rank"])):
            scale = arch.attn_scale if where == "attn_end" else arch.mlp_scale if where == "mlp_end" else 1.0
            hooks = []
            for template in sorted(site["hooks"], key=lambda t: t != "hook_attn_out"):
                name = f"blocks.{layer}.{template}"
                ops = [
                    (step.label, [None if e is None else compile_edit(e) for e in step.edits])
                    for step in plan.edits.get(name, [])
                ]
                hooks.append((name, template, name in plan.capture, ops))
            steps.append((layer, self.envoy(site["path"]), site["when"], where == "block", scale, hooks))
        pattern_at = arch.pattern_index
        spans = [(plan.span(i).start, plan.span(i).stop) for i in range(plan.batch)]
        lazy = arch.plain_logits and arch.unembed is not None and not plan.grad
        return {
            "steps": steps, "spans": spans, "whole": plan.batch == 1 and plan.lengths is None,
            "pattern_at": pattern_at, "lazy": lazy, "vocab": self.hf.config.vocab_size,
            "heads": (arch.n_heads, arch.d_head), "stop_early": plan.stop_early,
            "grad": plan.grad, "embed": self.envoy(_embedding_path(self.hf)), "lens": lens,
            "rows": rows, "weightless": self.weightless, "eager": _patterns(plan),
            "reduce": {layer: compile_sink(sink) for layer, sink in plan.sinks.items()},
            "norm": self.envoy(arch.final_norm) if arch.final_norm is not None else None,
            "unembed": self.envoy(arch.unembed) if arch.unembed is not None else None,
        }  # fmt: skip

    def _trace(self, plan: Plan, program: dict, backend: Any = None) -> dict:
        inputs = forward_inputs(self.hf, self.arch, plan, self.forward_kwargs, bool(plan.sinks))
        sinks = {layer: sink for layer, sink in plan.sinks.items() if program["reduce"].get(layer) is None}
        feed = attention.feed if sinks else None  # sinks the body cannot reduce are fed here (never remotely)
        backend = backend if backend is not None else self.backend
        if backend is not None:
            return run_trace(self.lm, inputs, program, sinks, feed, {"backend": backend})
        if not self.remote:
            return run_trace(self.lm, inputs, program, sinks, feed, {})
        from nnsight import CONFIG

        host = CONFIG.API.HOST
        if not CONFIG.API.APIKEY:
            raise RemoteExecutionError(
                "no NDIF API key: set NDIF_API_KEY or call nnsight.CONFIG.set_default_api_key(key) "
                "(keys from https://login.ndif.us)"
            )
        try:
            model_key = self.lm.to_model_key()
        except Exception as error:
            raise RemoteExecutionError(
                f"could not name {self.lm.repo_id!r} for NDIF (its id is checked on the Hugging Face hub): "
                f"{_one_line(error)}"
            ) from None
        from nnsight.intervention.backends.remote import RemoteBackend

        remote = RemoteBackend(model_key, host=host)
        with _socket_timeout(self.timeout):
            try:
                return run_trace(self.lm, inputs, program, sinks, feed, {"backend": remote})
            except Exception as error:
                failure = _remote_failure(error, host, self.timeout, str(self.lm.repo_id))
                raise RemoteExecutionError(failure) from None

    @property
    def reduces_lens(self) -> bool:
        """Whether :meth:`lens` can read the logit lens inside the pass (the model's logits are its unembedding
        of its final norm)."""
        return self.arch.plain_readout and self.arch.unembed is not None

    def lens(self, plan: Plan, positions: range, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``plan``'s pass with the logit lens over ``positions`` reduced where the model runs: top-``k`` token
        ids and probabilities ``[layer, pos, k]``; only those travel back, never a residual stream."""
        if not self.reduces_lens or plan.batch != 1:
            raise UnsupportedOnBackendError("the lens is reduced in the pass only for one sequence of a model whose "
                                            "logits are its unembedding of its final norm")  # fmt: skip
        program = self._program(plan, (positions.start, positions.stop, k))
        saved = guarded(self.hf, self._checked_trace, plan, program)
        ids = torch.stack([i for i, _ in saved["lens"]])
        return ids, torch.stack([p for _, p in saved["lens"]])

    def _checked_trace(self, plan: Plan, program: dict) -> dict:
        with self._modes(plan):
            saved = self._trace(plan, program)
        self._results(plan, program, saved)  # the same checks (non-finite edits) as any pass
        return saved

    def request(self, plan: Plan, lens: tuple[int, int, int] | None = None) -> bytes:
        """The payload a remote pass of ``plan`` sends (nnsight's own request format, compressed as nnsight's
        config says), built without sending anything."""
        capture = _RequestOnly()
        self._trace(plan, self._program(plan, lens), backend=capture)
        return capture.payload

    def logits_rows(self, plan: Plan, positions: list[int]) -> torch.Tensor:
        """``[len(positions), vocab]``: the model's logits at ``positions`` of ``plan``'s one sequence, computed in
        the pass where the model runs (no local unembedding); only those rows travel back."""
        saved = self._reduced(plan, ("logits", list(positions)))
        return saved["rows"].float()

    def compare(self, plan: Plan, positions: list[int], k: int, following: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predictions of a clean and an intervened sequence (``plan``'s batch of two, or one when they are the
        same) at ``positions``, reduced where the model runs; only these come back, never a logits row:

        ``ids``/``probs`` ``[2, P, k]`` (top-``k`` of each), ``delta_prob``/``delta_logit`` ``[2, P, k]``
        (intervened minus clean at those tokens), ``top`` ``[P]`` (the clean top token), ``clean_p``/``p`` ``[P]``
        (its probability in each), ``clean_loss``/``loss`` ``[P]`` (minus the log-probability of ``following``)."""
        saved = self._reduced(plan, ("compare", list(positions), k, following))
        return {name: value.cpu() for name, value in saved["compare"].items()}

    def _reduced(self, plan: Plan, rows: tuple) -> dict:
        if plan.knockouts or getattr(plan, "skips", None):
            raise UnsupportedOnBackendError("knockouts and skipped blocks are not supported on the nnsight backend")
        program = self._program(plan, rows=rows)
        return guarded(self.hf, self._checked_trace, plan, program)

    def _results(self, plan: Plan, program: dict, saved: dict) -> list[Result]:
        for label, name, dtype in saved["bad"]:
            raise NonFiniteError(
                f"{label}: the edited activation at {name} holds NaN or infinite values (too large for {dtype}); "
                "use a smaller scale or vector"
            )
        caches = saved["caches"]
        results = []
        for i, (s0, s1) in enumerate(program["spans"]):
            final = saved["final"][i, s0:s1] if saved.get("final") is not None else None
            logits = saved["logits"][i, s0:s1] if saved.get("logits") is not None else None
            if plan.edits:
                check = logits if logits is not None else final
                finite = saved.get("finite")
                bad = check is not None and not bool(torch.isfinite(check).all())
                if bad or (finite is not None and not bool(finite)):
                    labels = sorted({s.label for steps in plan.edits.values() for s in steps})
                    raise NonFiniteError(
                        f"the interventions ({', '.join(labels)[:200]}) made the model's output NaN or infinite"
                    )
            cache = {h: caches[i][h] for h in plan.capture if h in caches[i]}
            results.append(Result(cache, [None] * self.arch.n_layers, final, logits))
        return results

    # -- logits ------------------------------------------------------------------------------
    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        return guarded(self.hf, without_grad, self._unembed, hidden)

    def _unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        self._need_weights("unembedding a hidden state here")
        return self.hf.get_submodule(self.arch.unembed)(hidden)

    def _need_weights(self, what: str) -> None:
        if self.weightless:
            raise UnsupportedOnBackendError(
                f"{what} needs the model's weights, which are on NDIF only: read logits from a run (run.logits_at, "
                "analyses.logit_lens, the explorer), which computes them in a pass, or load the weights (remote=False)"
            )

    def readout(self, resid: torch.Tensor) -> torch.Tensor:
        self._need_weights("reading a residual stream through the final norm and unembedding here")
        if not self.arch.plain_readout:
            raise UnsupportedOnBackendError(
                "this model changes its logits after the unembedding (soft-capping, scales); its logit lens needs "
                "the local backend"
            )
        return guarded(self.hf, without_grad, self._readout, resid)

    def _readout(self, resid: torch.Tensor) -> torch.Tensor:
        if self.arch.final_norm is not None:
            resid = self.hf.get_submodule(self.arch.final_norm)(resid)
        return self.hf.get_submodule(self.arch.unembed)(resid)

    def weights_version(self) -> int:
        return weights_version(self.hf)


class _RequestOnly:
    """An nnsight backend that serialises the trace as a remote request would and runs nothing."""

    def __call__(self, tracer: Any) -> None:
        from nnsight import CONFIG
        from nnsight.ndif import pull_env
        from nnsight.schema.request import RequestModel

        pull_env()
        self.payload = RequestModel.serialize(tracer, compress=CONFIG.API.COMPRESS)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """A default timeout for the websocket nnsight opens to NDIF (it has none of its own), restored after."""
    import websocket

    before = websocket.getdefaulttimeout()
    websocket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        websocket.setdefaulttimeout(before)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def _remote_failure(error: BaseException, host: str, timeout: float, model: str) -> str:
    """One line saying why a remote pass failed."""
    import socket

    from nnsight.intervention.backends.remote import RemoteError

    chain, cause = [], error
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(e, (TimeoutError, socket.timeout)) or "timed out" in str(e).lower() for e in chain):
        return f"NDIF at {host} did not answer within {timeout:g} s; try again later (or raise executor.timeout)"
    if any(isinstance(e, ConnectionError) or "connection refused" in str(e).lower() for e in chain):
        return f"NDIF at {host} is unreachable (connection refused); check the network and nnsight.CONFIG.API.HOST"
    if isinstance(error, RemoteError):  # NDIF answered: a model it does not serve, a job it refused or that failed
        detail = _one_line(error).removeprefix("Failed to send request: ")
        return f"NDIF could not run the pass on {model!r}: {detail}"
    return f"the remote pass failed: {type(error).__name__}: {_one_line(error)}"


def _patterns(plan: Plan) -> bool:
    """Whether ``plan``'s pass reads attention probabilities (sinks, captured patterns): eager attention."""
    return bool(plan.sinks) or any(h.endswith("attn.hook_pattern") for h in plan.capture)


def _embedding_path(hf: nn.Module) -> str:
    embeddings = hf.get_input_embeddings()
    return next(name for name, module in hf.named_modules() if module is embeddings)


def run_trace(lm, inputs: dict, program: dict, sinks: dict, feed, kwargs: dict) -> dict:
    """One nnsight trace of ``program``: the body below uses only torch and the program's data, so it runs the
    same here and on a server (nnsight ships its source and the locals it reads)."""
    import nnsight

    out = None  # what the body fills (stays None when a backend only serialises the trace)
    with lm.trace(**inputs, **kwargs) as tracer:
        out = {"caches": [{} for _ in program["spans"]], "bad": [], "final": None, "logits": None}
        out = nnsight.save({**out, "lens": [], "sinks": {}, "finite": None})
        spans, whole = program["spans"], program["whole"]
        if program["eager"]:  # the attention returns probabilities for this pass, on whichever machine runs it
            config = lm._module.config
            attention_before = config._attn_implementation
            config._attn_implementation = "eager"
        if program["grad"]:
            embed = program["embed"]
            e = embed.output
            if not e.requires_grad:
                embed.output = e.detach().requires_grad_()
        block_in = {}
        for layer, envoy, when, is_block, scale, hooks in program["steps"]:
            if when == "pattern":
                probs = envoy.output[program["pattern_at"]]
                if probs is None:
                    raise ValueError("the attention returned no probabilities (not eager attention), so thumbnails, "
                                     "head scores and patterns cannot be read from it")  # fmt: skip
                if layer in sinks:
                    feed(sinks[layer], probs[:1])
                reductions = program["reduce"].get(layer)
                if reductions is not None:  # thumbnails, one head's window, head scores: reduced here
                    p = probs[0]  # the first sequence: [heads, q, k]
                    n = p.shape[-1]
                    reduced = []
                    for spec in reductions:
                        if spec[0] == "pool":
                            heads, rows, cols, side = spec[1:]
                            q0, q1 = rows or (0, n)
                            k0, k1 = cols or (0, n)
                            q1, k1 = n if q1 is None else q1, n if k1 is None else k1
                            window = p[heads, q0:q1, k0:k1].float()
                            size = (min(q1 - q0, side), min(k1 - k0, side))
                            reduced.append(torch.nn.functional.adaptive_max_pool2d(window, size))
                        else:
                            q = torch.arange(1, n, device=p.device)
                            sums = {"previous_token": p[:, q, q - 1].double().sum(-1),
                                    "first_token": p[..., 0].double().sum(1)}  # fmt: skip
                            for name, (qs, ks) in spec[1].items():
                                sums[name] = p[:, qs.to(p.device), ks.to(p.device)].double().sum(-1)
                            reduced.append(sums)
                    out["sinks"][layer] = reduced
                for name, _template, keep, _ops in hooks:
                    if keep:
                        for i, (s0, s1) in enumerate(spans):
                            out["caches"][i][name] = probs[i, :, s0:s1, s0:s1]
                continue
            raw = envoy.input if when == "pre" else envoy.output
            single = isinstance(raw, torch.Tensor)
            y = raw if single else raw[0]
            shape = y.shape
            if y.dim() == 2:  # flattened [batch * pos, width] inside some MLPs (OPT)
                y = y.reshape(len(spans) if not whole else 1, -1, y.shape[-1])
            changed = False
            for name, template, keep, ops in hooks:
                mid = template == "hook_resid_mid"
                value = y if is_block or when == "pre" else (block_in[layer] + scale * y if mid else scale * y)
                if ops or program["grad"]:
                    value = value.clone()
                    for i, (s0, s1) in enumerate(spans):
                        seg = value if whole else value[i : i + 1, s0:s1]
                        for label, per_sequence in ops:
                            op = per_sequence[i]
                            if op is None:
                                continue
                            kind, at = op[0], op[1]
                            if kind == "set":
                                seg[:, at, op[2]] = 0 if op[3] is None else op[3].to(seg.device, seg.dtype)
                            elif kind == "add":
                                seg[:, at] = seg[:, at] + op[2].to(seg.device, seg.dtype)
                            elif kind == "project":
                                u = op[2].to(seg.device, seg.dtype)
                                rows = seg[:, at]
                                shift = op[3].to(seg.device, seg.dtype) - rows @ u
                                seg[:, at] = rows + shift[..., None] * u
                            else:  # splice an SAE in minus one feature: remove that feature's decoder contribution
                                feature, (w_enc, b_enc, b_dec, dec, sub_b_dec, norms), kind_sae, k, threshold = op[2:]
                                rows = seg[:, at]
                                x = rows.reshape(-1, rows.shape[-1]).float()
                                w_enc, b_enc, b_dec, dec = (t.to(x.device) for t in (w_enc, b_enc, b_dec, dec))
                                pre = (x - b_dec if sub_b_dec else x) @ w_enc + b_enc
                                if norms is not None:
                                    pre = pre * norms.to(x.device)
                                if kind_sae == "topk":
                                    top = pre.topk(k, dim=-1, sorted=False)
                                    acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
                                else:
                                    acts = pre.relu()
                                    if kind_sae == "jumprelu":
                                        acts = acts * (pre > threshold.to(pre.device))
                                spliced = x - acts[:, feature : feature + 1] * dec[feature]
                                seg[:, at] = spliced.reshape(rows.shape).to(seg.dtype)
                            if not bool(torch.isfinite(seg).all()):
                                out["bad"].append((label, name, str(seg.dtype)))
                edited = value
                if keep:
                    for i, (s0, s1) in enumerate(spans):
                        v = edited[0] if whole else edited[i, s0:s1]
                        if template == "attn.hook_z":
                            v = v.reshape(v.shape[0], program["heads"][0], program["heads"][1])
                        out["caches"][i][name] = v if program["grad"] else v.detach()
                    if program["grad"] and whole:  # the pass goes on from what was captured: gradients reach it
                        edited = out["caches"][0][name].reshape(value.shape)
                if ops or program["grad"]:
                    y = edited if is_block or when == "pre" else ((edited - block_in[layer]) if mid else edited) / scale
                    changed = True
            if is_block and when == "pre":
                block_in[layer] = y
            if is_block and when == "post" and program["lens"] is not None:  # the logit lens, reduced here
                first, last, k = program["lens"]
                h = y[:, first:last]
                h = program["norm"](h) if program["norm"] is not None else h
                top = program["unembed"](h).float().softmax(-1).topk(k)
                out["lens"].append((top.indices[0], top.values[0]))
            if changed:
                y = y.reshape(shape)
                new = y if single else (y, *raw[1:])
                if when == "pre":
                    envoy.input = y
                else:
                    envoy.output = new
        if program["eager"]:  # every pattern is read (here the executor also restores it, in finally)
            config._attn_implementation = attention_before
        if program["stop_early"]:  # everything asked for is read: the rest of the pass is not needed
            tracer.stop()
        if program["rows"] is not None:  # predictions reduced here: only what the views show comes back
            spec = program["rows"]
            logits = lm.output["logits"]
            out["finite"] = torch.isfinite(logits).all()
            if spec[0] == "logits":
                out["rows"] = logits[0, spec[1]].detach()
            else:
                positions, k, following = spec[1], spec[2], spec[3]
                both = logits[:, positions].detach().float()
                if both.shape[0] == 1:  # the clean sequence is the intervened one
                    both = torch.cat([both, both])
                logp = both.log_softmax(-1)
                probs = logp.exp()
                top = probs.topk(k, dim=-1)
                d_prob, d_logit = probs[1] - probs[0], both[1] - both[0]
                first = logp[0].argmax(-1)
                nxt = following.to(logp.device)[:, None]
                out["compare"] = {
                    "ids": top.indices.int(), "probs": top.values,
                    "delta_prob": torch.stack([d_prob.gather(-1, top.indices[0]), d_prob.gather(-1, top.indices[1])]),
                    "delta_logit": torch.stack([d_logit.gather(-1, top.indices[0]),
                                                d_logit.gather(-1, top.indices[1])]),
                    "top": first.int(), "clean_p": logp[0].gather(-1, first[:, None])[:, 0].exp(),
                    "p": logp[1].gather(-1, first[:, None])[:, 0].exp(),
                    "clean_loss": -logp[0].gather(-1, nxt)[:, 0], "loss": -logp[1].gather(-1, nxt)[:, 0],
                }  # fmt: skip
        elif program["lazy"]:
            head = program["unembed"]
            hidden = head.input
            if program["weightless"]:  # no final hidden state back: logits are read in a pass (logits_rows)
                out["finite"] = torch.isfinite(hidden).all()
            else:
                out["final"] = hidden.detach()
            head.skip(hidden.new_zeros((hidden.shape[0], 0, program["vocab"])))
        else:
            out["logits"] = lm.output["logits"] if program["unembed"] else None
    return out
