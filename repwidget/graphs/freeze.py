"""What the replacement model freezes from the real run of its prompt: attention patterns and norm scales.

Attention: a :class:`FrozenPattern` sink on every layer makes repwidget's attention implementation compute the
probabilities from the query and key it recorded on the first pass (``Sink.queries_keys``), detached, so a later
pass changes only the values the pattern mixes, and no gradient reaches the pattern.

Norms: every LayerNorm- or RMSNorm-like module of the blocks (those outside attention, whose outputs only make the
frozen pattern) and the final norm are recorded on the first pass; a later pass replaces each by the linear map
with its per-position scale frozen (:class:`~repwidget.analyses.attribution.Frozen` finds which kind it is), plus
the constant that makes it exactly the recorded output on the recorded input. Any other norm is a one-line error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..analyses.attribution import Frozen
from ..model import attention
from ..model.changes import Changes, remove_tagged


class FrozenPattern(attention.Sink):
    """One attention layer's query and key, recorded on the first pass and used by every later one."""

    def __init__(self) -> None:
        self.recorded: tuple[torch.Tensor, torch.Tensor] | None = None

    def queries_keys(self, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.recorded is None:
            self.recorded = (query.detach(), key.detach())
        elif self.recorded[0].shape != query.shape:
            raise ValueError(
                f"the frozen pattern is of {tuple(self.recorded[0].shape)} queries, not {tuple(query.shape)}"
            )
        return self.recorded

    def take(self, start: int, probs: torch.Tensor, n_keys: int | None = None) -> None:
        pass  # the probabilities are what the recorded query and key make; nothing to keep


def norm_modules(hf: nn.Module, arch) -> list[nn.Module]:
    """The norms the replacement model freezes: every module of a block named like a norm, outside the attention
    module (its norms act on the query and key, which are frozen whole), and the final norm."""
    found: list[nn.Module] = []
    for block in hf.get_submodule(arch.blocks):
        inside = {id(m) for m in block.get_submodule(arch.attn).modules()}
        found += [m for m in block.modules() if _is_norm(m) and id(m) not in inside]
    if arch.final_norm is not None:
        found.append(hf.get_submodule(arch.final_norm))
    return found


def _is_norm(module: nn.Module) -> bool:
    return "norm" in type(module).__name__.lower() and not any(True for _ in module.children())


class _FrozenCall:
    """One call of a norm with its scale frozen: ``weight * P(x) / scale + bias + correction``."""

    def __init__(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        try:
            self.kind = Frozen(module, x.reshape(-1, x.shape[-1])[0])
        except ValueError:
            raise ValueError(
                f"{type(module).__name__} is neither a LayerNorm nor an RMSNorm: the replacement model freezes the "
                "scale of such norms only"
            ) from None
        self.scale = self.kind.scales(x)
        self.correction = (y.float() - self.linear(x)).detach()

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kind
        c = x.float() - x.float().mean(-1, keepdim=True) if k.center else x.float()
        return k.weight.to(x.device) * c / self.scale + k.offset(x.shape[-1]).to(x.device)

    def __call__(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return (self.linear(x) + self.correction).to(like.dtype)


class FrozenNorms:
    """Records the norms' inputs and outputs on the first pass (:meth:`recording`), then freezes them in every pass
    run inside :meth:`frozen`. Hooks are removed in ``finally``, whatever happens (``model/changes.py``)."""

    def __init__(self, hf: nn.Module, arch) -> None:
        self.modules = norm_modules(hf, arch)
        self.calls: dict[int, list[_FrozenCall]] = {}

    @contextmanager
    def recording(self) -> Iterator[None]:
        seen: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {id(m): [] for m in self.modules}

        def record(module, args, output):
            seen[id(module)].append((args[0].detach(), output.detach()))

        with self._hooked(record):
            yield
        self.calls = {
            id(m): [_FrozenCall(m, x, y) for x, y in seen[id(m)]] for m in self.modules
        }  # after the hooks are gone: Frozen calls the module itself

    @contextmanager
    def frozen(self) -> Iterator[None]:
        count: dict[int, int] = {id(m): 0 for m in self.modules}

        def replace(module, args, output):
            calls, i = self.calls[id(module)], count[id(module)]
            if i >= len(calls):
                raise RuntimeError(f"{type(module).__name__} ran more often than in the recorded pass")
            count[id(module)] = i + 1
            return calls[i](args[0], output)

        with self._hooked(replace):
            yield

    @contextmanager
    def _hooked(self, fn) -> Iterator[None]:
        token = object()
        fn._repwidget = token
        changes = Changes()
        try:
            changes.queue(remove_tagged, self.modules, token)
            for m in self.modules:
                m.register_forward_hook(fn)
            yield
        finally:
            while changes.steps:  # every hook removed, even when an interrupt lands on this call (changes.py)
                try:
                    changes.undo()
                except BaseException as e:
                    changes.error = changes.error if changes.error is not None else e
            changes.reraise()
