"""The input image: drawn from the preprocessed pixels the model read (``run.pixels``), each image over its own
min..max (``_image_maps.picture``). For a CNN the front end shows the selected channel's feature map (the
``feature_maps`` panel's ``channel_map`` request) enlarged beside it."""

from __future__ import annotations

from typing import Any

from ..panel import Panel, Request
from ._image_maps import picture


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    """``pixels``: ``[H, W, 1 or 3]`` uint8 of the image the model read."""
    return {"pixels": picture(session.run.pixels[0])}


PANEL = Panel(
    name="image",
    place="side",
    order=20,
    kinds=("cnn", "vit"),
    requests=(Request("image", (), answer),),
    shape=lambda session: {"kind": session.kind, "input_shape": list(session.model.arch.input_shape)},
    selected=lambda session, selection: iter([{"what": "image"}]),
)
