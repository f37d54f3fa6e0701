"""The interrupt-proof undo of a pass's changes to a model (hooks, replaced forwards, modes), as a stack.

Changes are undone in an order that cannot be half done: before anything is changed, the step that undoes it is
queued (:meth:`Changes.queue`; hooks are tagged and removed by tag, so a hook installed when an interrupt arrived is
removed too). :meth:`Changes.undo` runs the steps, newest first, and retries a step that an interrupt stopped;
the caller runs it in ``finally`` in a loop that also survives an interrupt landing on the call itself::

    changes = Changes()
    try:
        changes.queue(restore, before)
        change()
    finally:
        while changes.steps:
            try:
                changes.undo()
            except BaseException as e:  # the interrupt landed on the call: go round again (no call in here)
                changes.error = changes.error if changes.error is not None else e
        changes.reraise()

Every step must be idempotent (it may run twice when an interrupt lands after it and before its pop).
``tests/test_reliability.py`` interrupts every pass at sampled call points and checks the model bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

HOOKS = ("_forward_pre_hooks", "_forward_hooks")
KWARG_HOOKS = ("_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


class Changes:
    """The steps that undo a pass's changes, newest last, and the first error that interrupted one."""

    def __init__(self) -> None:
        self.steps: list[tuple[Callable, tuple]] = []
        self.error: BaseException | None = None
        self.tries = 0

    def queue(self, undo: Callable, *args: object) -> None:
        """Queue ``undo(*args)``: call it *before* making the change it undoes."""
        self.steps.append((undo, args))

    def undo(self) -> None:
        """Run every queued step, newest first; a step an interrupt stopped is noted and tried again (three times,
        then given up)."""
        while self.steps:
            fn, args = self.steps[-1]
            try:
                fn(*args)
                self.steps.pop()
            except BaseException as e:  # an interrupt stopped this step: note it, try again (then give up)
                self.error = self.error if self.error is not None else e
                self.tries += 1
                if self.tries > 3:
                    self.steps.pop()

    def reraise(self) -> None:
        """Raise the first error an interrupted step gave, once every step is done."""
        if self.error is not None:
            raise self.error


def remove_tagged(modules: list[nn.Module], token: object) -> None:
    """Remove every hook carrying ``token`` from ``modules`` (idempotent)."""
    for module in modules:
        for name in HOOKS:
            hooks = getattr(module, name)
            for key in [k for k, fn in hooks.items() if getattr(fn, "_repwidget", None) is token]:
                hooks.pop(key, None)
                for extra in KWARG_HOOKS:
                    getattr(module, extra, {}).pop(key, None)


def restore_forward(module: nn.Module, before: object, missing: object) -> None:
    """Put back ``module``'s own ``forward`` attribute (``missing``: it had none, its class's is used)."""
    if before is missing:
        module.__dict__.pop("forward", None)
    else:
        module.forward = before


def restore_training(modules: list[nn.Module]) -> None:
    """Turn dropout back on in the modules that were training."""
    for m in modules:
        m.training = True


def restore_attention(config, before) -> None:
    """Put back the model's attention implementation."""
    config._attn_implementation = before
