"""An executor that runs planned passes as nnsight traces: in this process, or on NDIF (``remote=True``).

The plan is compiled into plain data (``nnsight_program.py``: module envoys, positions, tensors) and one trace
body that uses only torch (``nnsight_trace.py``), so the same body runs here and, serialised with nnsight's own
request format, on a server that has never seen repwidget. A kind it cannot run (attention knockouts, skipped
blocks) is missing from its ``capabilities``, so the planner refuses it before any pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from . import attention
from .architecture import Architecture
from .errors import UnsupportedOnBackendError
from .execute import NonFiniteError, forward_inputs
from .executor import guarded, weights_version, without_grad
from .modes import attention_implementation, eval_mode
from .nnsight_program import Program, build_program, compile_sink, fill_sink, reads_patterns
from .nnsight_remote import BoundedRemoteBackend, RemoteExecutionError
from .nnsight_results import check, expected, size
from .nnsight_trace import run_trace
from .plan import Plan, Result
from .twin import is_weightless


class NNsightExecutor:
    """Passes as nnsight traces of the wrapped model. Reruns are full passes (block outputs stay where the model
    runs), captures come back per hook, logits are computed when read from the final hidden state.

    A model without local weights (``weightless``: every parameter on ``meta``, NDIF holds the weights) brings no
    final hidden state back: the logits rows a caller reads (:meth:`logits_rows`) and the predictions the views show
    (:meth:`compare`) are computed in a pass, reduced where the model runs."""

    name = "nnsight"
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
        #: seconds a remote pass may take, every wait for NDIF together (the hub lookup of its id: 10 s at most)
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

    @property
    def capabilities(self) -> frozenset[str]:
        """Rows and predictions reduced in a pass always; generation and local unembedding with the weights here;
        the lens in the pass where the model's logits are its unembedding of its final norm. No knockouts, skips or
        prefix caches (see ``executor.CAPABILITIES``)."""
        local = set() if self.weightless else {"generate", "weights"}
        return frozenset({"reduced_rows", *local, *(["lens_in_pass"] if self.reduces_lens else [])})

    def envoy(self, path: str) -> Any:
        """The nnsight envoy of the module at ``path`` (a path in the Hugging Face model)."""
        return self.envoys[path]

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
        program = build_program(self, plan)
        return guarded(self.hf, self._execute, plan, program)

    def _execute(self, plan: Plan, program: Program) -> list[Result]:
        with self._modes(plan):
            saved = self._trace(plan, program)
        n = program["spans"][0][1] - program["spans"][0][0]
        for layer, reduced in saved["sinks"].items():
            fill_sink(plan.sinks[layer], reduced, n)
        return self._results(plan, program, saved)

    @contextlib.contextmanager
    def _modes(self, plan: Plan) -> Iterator[None]:
        eager = "eager" if reads_patterns(plan) else None
        with eval_mode(self.hf), torch.set_grad_enabled(plan.grad), attention_implementation(self.hf, eager):
            yield

    def _trace(self, plan: Plan, program: Program, backend: Any = None) -> dict:
        inputs = forward_inputs(self.hf, self.arch, plan, self.forward_kwargs, bool(plan.sinks))
        sinks = {layer: sink for layer, sink in plan.sinks.items() if program["reduce"].get(layer) is None}
        feed = attention.feed if sinks else None  # sinks the body cannot reduce are fed here (never remotely)
        if backend is not None:  # only serialised (``request``)
            return run_trace(self.lm, inputs, program, sinks, feed, {"backend": backend})
        if not self.remote:
            return run_trace(self.lm, inputs, program, sinks, feed, {"backend": self.backend} if self.backend else {})
        spec = expected(program, self.arch, program["vocab"], tuple(plan.ids.shape))
        if self.backend is not None:  # a stand-in for NDIF: its result is held to the plan all the same
            saved = run_trace(self.lm, inputs, program, sinks, feed, {"backend": self.backend})
            check(saved, spec)
            return saved
        from nnsight import CONFIG

        host = CONFIG.API.HOST
        if not CONFIG.API.APIKEY:
            raise RemoteExecutionError(
                "no NDIF API key: set NDIF_API_KEY or call nnsight.CONFIG.set_default_api_key(key) "
                "(keys from https://login.ndif.us)"
            )
        try:
            model_key = self._model_key()
        except Exception as error:
            raise RemoteExecutionError(
                f"could not name {self.lm.repo_id!r} for NDIF (its id is checked on the Hugging Face hub): "
                f"{_one_line(error)}"
            ) from None
        edits = sum(len(ops) for step in program["steps"] for *_, ops in step["hooks"]) * len(program["spans"])
        remote = BoundedRemoteBackend(model_key, host, self.timeout, size(spec, edits), ("out",))
        try:
            saved = run_trace(self.lm, inputs, program, sinks, feed, {"backend": remote})
        except RemoteExecutionError:
            raise
        except Exception as error:
            raise RemoteExecutionError(_remote_failure(error, host, self.timeout, str(self.lm.repo_id))) from None
        check(saved, spec)
        return saved

    def _model_key(self) -> str:
        """NDIF's name of the model; nnsight checks its id on the hub once (here within ``timeout``, 10 s at most:
        nnsight's own lookup has no timeout)."""
        from nnsight.modeling import huggingface

        repo = getattr(self.lm, "repo_id", None)
        if isinstance(repo, str) and repo not in huggingface._ID_CACHE:
            from huggingface_hub import HfApi

            huggingface._ID_CACHE[repo] = HfApi().model_info(repo, timeout=min(self.timeout, 10.0)).id
        return self.lm.to_model_key()

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
        program = build_program(self, plan, (positions.start, positions.stop, k))
        saved = guarded(self.hf, self._checked_trace, plan, program)
        ids = torch.stack([i for i, _ in saved["lens"]])
        return ids, torch.stack([p for _, p in saved["lens"]])

    def _checked_trace(self, plan: Plan, program: Program) -> dict:
        with self._modes(plan):
            saved = self._trace(plan, program)
        self._results(plan, program, saved)  # the same checks (non-finite edits) as any pass
        return saved

    def request(self, plan: Plan, lens: tuple[int, int, int] | None = None) -> bytes:
        """The payload a remote pass of ``plan`` sends (nnsight's own request format, compressed as nnsight's
        config says), built without sending anything."""
        capture = _RequestOnly()
        self._trace(plan, build_program(self, plan, lens), backend=capture)
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
        program = build_program(self, plan, rows=rows)
        return guarded(self.hf, self._checked_trace, plan, program)

    def _results(self, plan: Plan, program: Program, saved: dict) -> list[Result]:
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

    def unembed_in_graph(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of ``hidden`` with autograd on (a pass with ``Plan.grad`` computes its logits in the trace, so
        only a caller holding a final hidden state needs this)."""
        with torch.enable_grad():
            return guarded(self.hf, self._unembed, hidden)

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
