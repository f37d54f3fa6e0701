"""Top classes: the most probable classes of the image, clean and intervened side by side, with the change of
each (names from ``model.classes``)."""

from __future__ import annotations

from typing import Any

import torch

from ..panel import Panel, Request

#: how many classes each column lists (fewer when the model has fewer)
TOP = 10


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    """``ids`` / ``probs`` / ``logits`` ``[2, k]``: the top-``k`` classes of the clean run (row 0) and of the
    intervened one (row 1); ``delta_prob`` / ``delta_logit`` ``[2, k]``: each listed class's change (intervened
    minus clean); ``names``: the listed classes' names per row."""
    logits = torch.stack([session.clean_run.logits.float().cpu(), session.run.logits.float().cpu()])
    probs = logits.softmax(-1)
    top = probs.topk(min(TOP, probs.shape[-1]), dim=-1)
    classes = session.model.classes
    return {
        "ids": top.indices.to(torch.int32),
        "probs": top.values,
        "logits": logits.gather(1, top.indices),
        "delta_prob": (probs[1] - probs[0])[top.indices],
        "delta_logit": (logits[1] - logits[0])[top.indices],
        "names": [[classes[i] for i in row] for row in top.indices.tolist()],
    }


PANEL = Panel(
    name="classes",
    place="side",
    order=30,
    kinds=("cnn", "vit"),
    then={"what": "classes"},
    requests=(Request("classes", (), answer),),
    code=lambda session: ["run.top_classes(5)  # (index, name, probability)"],
    selected=lambda session, selection: iter([{"what": "classes"}]),
)
