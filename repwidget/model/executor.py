"""Executors run planned passes. :class:`LocalExecutor` runs them on the wrapped model in this process
with hooks; another executor (nnsight, remote) implements the same methods."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from . import attention
from .architecture import Architecture
from .execute import execute
from .plan import Plan, Result, require
from .tokens import max_positions

attention.register()


class NestedPassError(RuntimeError):
    """A pass was started from inside another pass on the same model (from a hook, say)."""


#: what a backend may be able to do, named in ``Executor.capabilities`` (a pass needing one its executor lacks is
#: refused when it is planned, by ``plan.require``)
CAPABILITIES = {
    "knockout": "attention scores masked before the softmax (rw.Knockout)",
    "bypass": "a block's output replaced by its input (rw.Skip)",
    "prefix_cache": "a pass over positions after a prefix, on the prefix's KV cache (causal reruns)",
    "lens_in_pass": "the logit lens reduced inside the pass (Executor.lens)",
    "reduced_rows": "logits rows and predictions reduced in the pass (Executor.logits_rows, compare)",
    "generate": "generation, a step at a time on the KV cache",
    "weights": "the weights are here: unembed and readout run locally",
}


class Executor(Protocol):
    """Where passes run: every member the model and the planner use. ``capabilities`` names what this backend
    can do beyond running a plan (see :data:`CAPABILITIES`)."""

    #: its name in messages (``"local"``, ``"nnsight"``)
    name: str
    capabilities: frozenset[str]
    #: a plan may skip blocks (``Plan.start > 0``), reading the outputs of an earlier run's
    reuses_blocks: bool
    #: the attention goes through transformers' attention interface: sinks fed a block of rows at a time, knockouts
    interface: bool

    def execute(self, plan: Plan) -> list[Result]:
        """Run one pass under ``plan``, one result per sequence; the model is exactly as before afterwards."""
        ...

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of the final hidden state ``[..., d_model]`` (the unembedding's input)."""
        ...

    def unembed_in_graph(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of ``hidden`` with autograd on (what a metric's gradients go through)."""
        ...

    def readout(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits the model would give if ``resid`` ``[..., d_model]`` were its last block's output (the lens)."""
        ...

    def weights_version(self) -> int:
        """A number that changes whenever the model's weights do (runs of other weights are not reused)."""
        ...

    def lens(self, plan: Plan, positions: range, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The logit lens of ``plan``'s pass over ``positions``, top-``k`` ids and probabilities ``[layer, pos, k]``,
        reduced in the pass (capability ``lens_in_pass``)."""
        ...

    def logits_rows(self, plan: Plan, positions: list[int]) -> torch.Tensor:
        """``[len(positions), vocab]``: logits of ``plan``'s one sequence at ``positions``, computed in the pass."""
        ...

    def compare(self, plan: Plan, positions: list[int], k: int, following: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predictions of a clean and an intervened sequence at ``positions``, reduced in the pass."""
        ...


_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()
_IN_PASS = threading.local()


def without_grad(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with gradients off. Unlike ``with torch.no_grad()``, whose ``__exit__`` is Python an interrupt
    can land in (leaving gradients off for good), grad mode is switched by C calls only, restored in ``finally``."""
    previous = torch.is_grad_enabled()
    torch._C._set_grad_enabled(False)
    try:
        return fn(*args)
    finally:
        torch._C._set_grad_enabled(previous)


def model_lock(module: nn.Module) -> threading.RLock:
    """The lock every pass on ``module`` holds (shared by every rw.Model wrapping it)."""
    with _LOCKS_LOCK:
        lock = _LOCKS.get(module)
        if lock is None:
            lock = _LOCKS[module] = threading.RLock()
        return lock


def guarded(module: nn.Module, run, *args):
    """``run(*args)`` holding ``module``'s lock; a pass started from inside another on it is a NestedPassError."""
    owners: set[int] = getattr(_IN_PASS, "models", None) or set()
    _IN_PASS.models = owners
    if id(module) in owners:
        raise NestedPassError(
            "a repwidget pass was started from inside another pass on the same model (a hook calling the model?); "
            "start it after the first pass returns"
        )
    with model_lock(module):
        owners.add(id(module))
        try:
            return run(*args)
        finally:
            owners.discard(id(module))


class LocalExecutor:
    """Passes on the Hugging Face model in this process: hooks installed for the pass, removed in ``finally``.

    Passes on one model are serialised (two threads take turns); a pass started from inside another on the same
    model (a hook calling the model) is a :class:`NestedPassError`, not a deadlock or a corrupted pass.
    """

    name = "local"
    capabilities = frozenset({"knockout", "bypass", "prefix_cache", "generate", "weights"})
    reuses_blocks = True

    def __init__(self, hf: nn.Module, arch: Architecture, forward_kwargs: dict) -> None:
        self.hf, self.arch, self.forward_kwargs = hf, arch, forward_kwargs
        self.lock = model_lock(hf)
        #: the attention goes through transformers' interface: probabilities a block of rows at a time
        self.interface = self._check_interface()

    def _guarded(self, run, *args):
        return guarded(self.hf, run, *args)

    def execute(self, plan: Plan) -> list[Result]:
        return self._guarded(execute, self.hf, self.arch, plan, self.forward_kwargs, self.interface)

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._guarded(without_grad, self._unembed, hidden)

    def _unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.hf.get_submodule(self.arch.unembed)(hidden)

    def unembed_in_graph(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of ``hidden`` with autograd on (a pass with ``Plan.grad`` leaves its logits to this: only the
        rows a metric reads go through the unembedding, forward and backward)."""
        with torch.enable_grad():
            return self._guarded(self._unembed, hidden)

    def readout(self, resid: torch.Tensor) -> torch.Tensor:
        if self.arch.plain_readout:
            return self._guarded(without_grad, self._plain_readout, resid)
        return self._replay_head(resid)

    def _plain_readout(self, resid: torch.Tensor) -> torch.Tensor:
        if self.arch.final_norm is not None:
            resid = self.hf.get_submodule(self.arch.final_norm)(resid)
        return self.hf.get_submodule(self.arch.unembed)(resid)

    def _replay_head(self, resid: torch.Tensor) -> torch.Tensor:
        """Run the model with every block skipped and the last one returning ``resid``: the model's own final norm,
        unembedding and whatever it does to logits (soft-capping, scales) read it."""
        lead, d = resid.shape[:-1], resid.shape[-1]
        flat = resid.reshape(1, -1, d)
        limit = _max_positions(self.hf)
        parts = []
        for start in range(0, flat.shape[1], limit):
            piece = flat[:, start : start + limit]
            template = self.arch.block_output
            output = piece if template == 0 else (piece, *([None] * (template - 1)))
            ids = torch.zeros(
                (1, piece.shape[1]), dtype=torch.long, device=self.hf.get_input_embeddings().weight.device
            )
            plan = Plan(
                ids=ids, capture=[], start=self.arch.n_layers, reuse=[output] * self.arch.n_layers, record=False
            )
            result = self.execute(plan)[0]
            parts.append(result.logits if result.logits is not None else self.unembed(result.final_hidden))
        return torch.cat(parts, 0).reshape(*lead, -1)

    def weights_version(self) -> int:
        return weights_version(self.hf)

    def lens(self, plan: Plan, positions: range, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        require(self, "lens_in_pass", "the local backend reads the logit lens from captured residual streams")
        raise AssertionError  # pragma: no cover

    def logits_rows(self, plan: Plan, positions: list[int]) -> torch.Tensor:
        require(self, "reduced_rows", "the local backend reads logits from a run's final hidden state")
        raise AssertionError  # pragma: no cover

    def compare(self, plan: Plan, positions: list[int], k: int, following: torch.Tensor) -> dict[str, torch.Tensor]:
        require(self, "reduced_rows", "the local backend compares predictions from runs' logits")
        raise AssertionError  # pragma: no cover

    def _check_interface(self) -> bool:
        """Whether patterns fed to sinks a block of rows at a time equal the eager ones (and the outputs agree)."""
        arch = self.arch
        n = 7
        vocab = max(2, self.hf.get_input_embeddings().num_embeddings)
        ids = torch.arange(1, n + 1).remainder(vocab)[None].to(self.hf.get_input_embeddings().weight.device)
        names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(arch.n_layers)]
        names.append(f"blocks.{arch.n_layers - 1}.hook_resid_post")
        try:
            chunked = execute(self.hf, arch, Plan(ids, names, record=False), self.forward_kwargs, True)[0]
            eager = execute(self.hf, arch, Plan(ids, names, record=False), self.forward_kwargs, False)[0]
        except Exception:
            return False
        if any(name not in chunked.cache for name in names):
            return False
        return all(torch.allclose(chunked.cache[h].float(), eager.cache[h].float(), atol=1e-5) for h in names)


def weights_version(module: nn.Module) -> int:
    """A hash of every parameter's identity, storage and in-place version counter: it changes when weights are
    edited in place (``p.add_``, ``load_state_dict``, an optimizer step), replaced (``p.data = ...``) or moved.
    An edit through ``p.data`` (``p.data.mul_(2)``) bumps no counter: 8 of each parameter's values, spread over
    it, are hashed too (read in one copy per device). Parameters offloaded by accelerate (meta tensors, reloaded at
    every pass) count by name only. (Buffers are left out: some models rebuild their rotary
    tables during a forward pass.)"""
    named = list(module.named_parameters())
    # a parameter offloaded by accelerate is a meta tensor made anew at each pass: its name is all there is to hash
    identity = tuple((n, "meta") if p.is_meta else (id(p), p.data_ptr(), _version(p), p.device.type) for n, p in named)
    return hash((identity, _sampled(module, [p for _, p in named if not p.is_meta])))


#: per model: the storages its samples were taken from and the samples (views of them, by device and dtype)
_SAMPLES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, list[list[torch.Tensor]]]] = weakref.WeakKeyDictionary()


def _sampled(module: nn.Module, params: list[nn.Parameter]) -> tuple[float, ...]:
    """8 values of each parameter (views made once per set of storages; each call copies them in one go)."""
    storages = tuple((id(p), p.data_ptr()) for p in params)
    kept = _SAMPLES.get(module)
    if kept is None or kept[0] != storages:
        groups: dict[tuple, list[torch.Tensor]] = {}
        for p in params:
            if p.numel():
                flat = p.detach().reshape(-1)
                groups.setdefault((flat.device, flat.dtype), []).append(flat[:: max(1, flat.numel() // 8)][:8])
        kept = _SAMPLES[module] = (storages, list(groups.values()))
    return tuple(v for views in kept[1] for v in torch.cat(views).tolist())


def _version(p: torch.Tensor) -> int:
    """``p``'s in-place version counter (inference tensors, as accelerate's disk offload loads, have none: -1)."""
    return -1 if p.is_inference() else p._version


def _max_positions(model: nn.Module) -> int:
    """How many positions one head replay takes (the model's positions, at most 1024)."""
    return min(max_positions(model.config) or 1024, 1024)
