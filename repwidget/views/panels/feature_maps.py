"""The CNN Explainer overview: every stage's feature maps as thumbnails (``stages.L.hook_out`` of the current run,
each channel a picture), at most :data:`MAX_CHANNELS` per request (the view asks for more on demand). Every map of
a stage is scaled over that stage's min..max to 0..255 (``_image_maps``), so brightness compares within a stage.
Click a thumbnail to select it (``layer``, ``channel``) and see it enlarged beside the image; shift+click ablates
that channel (``rw.Ablate(layer, channel=c)``, the interventions' ``set`` command)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .. import panel
from ..panel import Key, Panel, Request
from ..protocol import index
from ._image_maps import bounds, thumbnails, to_uint8

#: thumbnails of one stage sent per request (the view's "more" button asks for the next ones)
MAX_CHANNELS = 64


def _hook(layer: int) -> str:
    return f"stages.{layer}.hook_out"


def channels(session, args: dict[str, Any]) -> int:
    """Channels of the stage chosen by the ``layer`` field (parsed before)."""
    return session.model.channels(args["layer"])


def stage(session, layer: int) -> tuple[torch.Tensor, float, float]:
    """The current run's ``[channels, h, w]`` at stage ``layer`` and its ``(lo, hi)`` bounds."""
    maps = session.run[_hook(layer)]
    return maps, *bounds(maps)


def overview(session, args: dict[str, Any]) -> dict[str, Any]:
    """``maps``: uint8 ``[n, h, w]`` thumbnails of channels ``start..start + n - 1`` of stage ``layer`` (pooled to
    at most 32 pixels a side), over the stage's ``lo..hi``; ``total``: the stage's channels."""
    maps, lo, hi = stage(session, args["layer"])
    start = args["start"]
    shown = maps[start : start + MAX_CHANNELS]
    return {
        "maps": to_uint8(thumbnails(shown), lo, hi),
        "layer": args["layer"],
        "start": start,
        "total": int(maps.shape[0]),
        "lo": lo,
        "hi": hi,
    }


def channel_map(session, args: dict[str, Any]) -> dict[str, Any]:
    """``map``: uint8 ``[h, w]``, channel ``channel`` of stage ``layer`` at full size, over the stage's bounds."""
    maps, lo, hi = stage(session, args["layer"])
    one = maps[args["channel"]]
    return {"map": to_uint8(one, lo, hi), "layer": args["layer"], "channel": args["channel"], "lo": lo, "hi": hi,
            "min": float(one.min()), "max": float(one.max())}  # fmt: skip


def _channel(session, out: dict[str, Any], given: dict[str, Any]) -> int | None:
    """The selected channel of stage ``layer``, or None. One left from another stage (not given now) is dropped."""
    if out.get("channel") is None:
        return None
    n = session.model.channels(out["layer"])
    if "channel" not in given and not (isinstance(out["channel"], int) and 0 <= out["channel"] < n):
        return None
    return index(out, "channel", n, "selection")


def selected(session, selection: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """What a saved page always holds: every stage's first thumbnails and the selected channel enlarged."""
    for layer in range(session.model.n_layers):
        yield {"what": "feature_maps", "layer": layer, "start": 0}
    if selection.get("channel") is not None:
        yield {"what": "channel_map", "layer": selection["layer"], "channel": selection["channel"]}


def around(session, selection: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Then, while they fit: every stage's further thumbnails, then every channel enlarged, stage by stage."""
    for layer in range(session.model.n_layers):
        for start in range(MAX_CHANNELS, session.model.channels(layer), MAX_CHANNELS):
            yield {"what": "feature_maps", "layer": layer, "start": start}
    for layer in range(session.model.n_layers):
        for channel in range(session.model.channels(layer)):
            yield {"what": "channel_map", "layer": layer, "channel": channel}


PANEL = Panel(
    name="feature_maps",
    place="main",
    order=40,
    kinds=("cnn",),
    selection={"channel": Key(lambda s: None, _channel)},
    hooks=lambda session: [_hook(layer) for layer in range(session.model.n_layers)],
    requests=(
        Request("feature_maps", (("layer", panel.layers), ("start", channels)), overview),
        Request("channel_map", (("layer", panel.layers), ("channel", channels)), channel_map),
    ),
    shape=lambda session: {
        "stages": [list(s) for s in session.model.arch.shapes],
        "max_channels": MAX_CHANNELS,
    },
    code=lambda session: [f'run["{_hook(0)}"]  # [channels, h, w]: stage 0\'s feature maps'],
    selected=selected,
    around=around,
)
