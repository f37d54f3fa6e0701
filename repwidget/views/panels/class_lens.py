"""The class lens: after each block, the classes the CLS token's residual stream reads as through the final norm and
the classifier (``rw.analyses.logit_lens`` of a ViT), clean and intervened, as a layer x class table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..panel import Panel, Request
from ._vit_payloads import class_lens_table


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    return class_lens_table(session.clean_run, session.run)


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    yield {"what": "class_lens"}


PANEL = Panel(
    name="class_lens",
    place="side",
    order=40,
    kinds=("vit",),
    requests=(Request("class_lens", (), answer),),
    shown=lambda session: session.model.arch.classifier is not None,
    hooks=lambda session: [f"blocks.{layer}.hook_resid_post" for layer in range(session.model.n_layers)],
    code=lambda s: ["rw.analyses.logit_lens(run, k=3)  # the class lens: position 0 is CLS"],
    selected=_selected,
)
