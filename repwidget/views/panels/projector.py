"""Projector: token representations (``hook_resid_post``) at the selected layer in 2-D by PCA (or UMAP): the
prompt's tokens and the tokens of the session's ``points`` texts, coloured by a label, a probe's score or an SAE
feature's activation; a click on a prompt token's point selects it, a lasso selects many (the selection's
``tokens`` and ``points``).

The texts' tokens (at most ``_projector_lasso.MAX_POINTS``) are read once, in padded batches: each layer's mean
and covariance, then every token's coordinates on that layer's two principal axes (from activations kept in memory
up to :data:`HOLD_BYTES`, else from a second pass). A layer change only looks them up; the prompt's tokens (which
interventions change) are projected onto the same axes at each request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ...sae.harvest import activations_at
from .. import panel
from ..panel import Key, Option, Panel, Request
from . import _projector_lasso as lasso
from ._projector_lasso import check_points, check_tokens, kept, points_json
from ._projector_points import PROJECTIONS, UMAP_INSTALL, Points, points_of, umap_installed

#: UMAP's seed: the same texts give the same picture
UMAP_SEED = 0

#: activations up to this size are kept between the two passes (one forward pass instead of two), and for UMAP
HOLD_BYTES = 256 * 2**20


def _points(session) -> Points | None:
    """The session's texts for the projector (its state), or None: no projector."""
    return session.state["projector"]


def colourings(session) -> list[str]:
    """What points can be coloured by: where they come from, their position, the texts' labels, each probe, a
    feature of each SAE (the request's ``feature``)."""
    out = ["source", "position"]
    if _points(session) is not None and _points(session).labels is not None:
        out.append("label")
    out += [f"probe {i}" for i, p in enumerate(session.probes) if p.site == "resid_post"]
    return out + [f"SAE {i} feature" for i in range(len(session.saes))]


def default_colouring(session) -> int:
    """The colouring shown first: the texts' labels when they have some, else where points come from."""
    names = colourings(session)
    return names.index("label") if "label" in names else 0


def _sae_of(name: str) -> int | None:
    """The SAE a colouring reads (``"SAE 1 feature"``: 1), or None."""
    return int(name.split()[1]) if name.startswith("SAE ") else None


def axes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[d]`` and the two principal axes ``[d, 2]`` of ``x`` ``[n, d]`` (each axis signed so that its largest
    component is positive, so the picture does not flip between layers at random)."""
    mean = x.double().mean(0)
    centred = x.double() - mean
    return mean, _top_axes(centred.T @ centred)


def _top_axes(covariance: torch.Tensor) -> torch.Tensor:
    _, vectors = torch.linalg.eigh(covariance)
    top = vectors[:, -2:].flip(1) if vectors.shape[1] >= 2 else torch.cat([vectors, torch.zeros_like(vectors)], 1)
    signs = top.gather(0, top.abs().argmax(0, keepdim=True)).sign()
    return top * torch.where(signs == 0, 1.0, signs)


def dataset(session) -> dict[str, Any]:
    """The points' tokens projected at every layer (``xy[layer]`` ``[n, 2]``), with each token's text, position
    and id, each layer's mean and axes, and probe scores; kept while the clean run is."""
    return session.of_clean(("projector",), lambda: _read(session))


def _read(session) -> dict[str, Any]:
    model = session.model
    ids, keep = kept(session)
    total = sum(take for _, take in keep)
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(model.n_layers)]
    read_by_saes = list(dict.fromkeys(sae.hook for sae in session.saes))
    extra = [h for h in read_by_saes if h not in hooks]
    chosen = [ids[i] for i, _ in keep]

    d = model.d_model
    held: dict[int, list[torch.Tensor]] | None = {} if total * len(hooks) * d * 4 <= HOLD_BYTES else None

    def read() -> Iterator[tuple[int, list[torch.Tensor]]]:
        if held is not None and len(held) == len(keep):  # the second time: what the first pass kept
            yield from ((j, [x.double() for x in held[j]]) for j in range(len(keep)))
            return
        for j, acts in activations_at(model, hooks + extra, chosen):
            layers = [acts[h][: keep[j][1]].double().cpu() for h in hooks]
            for h in read_by_saes:  # kept for colouring by a feature (MAX_POINTS rows each)
                sae_in[h][j] = acts[h][: keep[j][1]].float().cpu()
            if held is not None:
                held[j] = [x.float() for x in layers]
            yield j, layers

    sae_in: dict[str, dict[int, torch.Tensor]] = {h: {} for h in read_by_saes}
    first, second = torch.zeros(len(hooks), d, dtype=torch.float64), torch.zeros(len(hooks), d, d, dtype=torch.float64)
    for _, layers in read():
        for layer, x in enumerate(layers):
            first[layer] += x.sum(0)
            second[layer] += x.T @ x
    mean = first / total
    axes_ = torch.stack([_top_axes(second[i] - total * torch.outer(mean[i], mean[i])) for i in range(len(hooks))])
    start = [0]
    for _, take in keep:
        start.append(start[-1] + take)
    xy = torch.zeros(len(hooks), total, 2)
    probed = {i: p for i, p in enumerate(session.probes) if p.site == "resid_post"}
    scores = {(i, layer): torch.zeros(total) for i, p in probed.items() for layer in p.layers}
    for j, layers in read():
        rows = slice(start[j], start[j + 1])
        for layer, x in enumerate(layers):
            xy[layer, rows] = ((x - mean[layer]) @ axes_[layer]).float()
        for i, p in probed.items():
            for layer in p.layers:
                scores[(i, layer)][rows] = _score(p, layers[layer], layer)
    text = torch.cat([torch.full((take,), i, dtype=torch.int32) for i, take in keep])
    pos = torch.cat([torch.arange(1, take + 1, dtype=torch.int32) for _, take in keep])
    token = torch.cat([torch.tensor(ids[i][1 : take + 1], dtype=torch.int32) for i, take in keep])
    inputs = {h: torch.cat([parts[j] for j in range(len(keep))]) for h, parts in sae_in.items()}
    acts = None  # each layer's [total, d] activations, kept for UMAP when they fit
    if _points(session).projection == "umap" and held is not None:
        acts = [torch.cat([held[j][layer] for j in range(len(keep))]) for layer in range(len(hooks))]
    return {
        "xy": xy,
        "mean": mean,
        "axes": axes_,
        "text": text,
        "pos": pos,
        "ids": token,
        "scores": scores,
        "sae_in": inputs,
        "acts": acts,
    }


def umap_of(session, layer: int) -> tuple[Any, torch.Tensor]:
    """The UMAP fitted to the texts' tokens at ``layer`` (seeded: :data:`UMAP_SEED`) and their ``[n, 2]``
    coordinates; fitted once per layer, kept while the clean run is."""
    return session.of_clean(("projector-umap", layer), lambda: _fit_umap(session, layer))


def _fit_umap(session, layer: int) -> tuple[Any, torch.Tensor]:
    import umap

    data = dataset(session)
    acts = data["acts"][layer] if data["acts"] is not None else _layer_acts(session, layer)
    reducer = umap.UMAP(n_components=2, random_state=UMAP_SEED, n_jobs=1)  # seeded: one thread either way
    return reducer, torch.from_numpy(reducer.fit_transform(acts.numpy())).float()


def _layer_acts(session, layer: int) -> torch.Tensor:
    """The texts' tokens' ``resid_post`` at ``layer``, read again (when too many to keep for every layer)."""
    ids, keep = kept(session)
    hook = f"blocks.{layer}.hook_resid_post"
    chosen = [ids[i] for i, _ in keep]  # read shortest first: put back in order
    parts = {j: acts[hook][: keep[j][1]].float().cpu() for j, acts in activations_at(session.model, [hook], chosen)}
    return torch.cat([parts[j] for j in range(len(keep))])


def _score(probes, acts: torch.Tensor, layer: int) -> torch.Tensor:
    """The probability of the probe's second class (its direction's class) for each row of ``acts``."""
    probs = probes.logits(acts, layer).softmax(-1)
    return probs[:, min(1, probs.shape[1] - 1)].float()


def answer(session, args: dict[str, Any]) -> dict[str, Any]:
    """Points at ``layer``: ``xy`` ``[n_prompt + n_texts, 2]`` (the prompt's tokens first, position ``i`` at row
    ``i``), colour ``values`` by colouring ``colour`` (category indices into ``categories``, or values in 0..1 with
    -1 for none; an SAE's ``feature``: its activation over ``value_max``, the largest after the prompt's position 0),
    and the texts' points' ``text``, ``pos``, token ``ids`` and their ``vocab``."""
    layer, name = args["layer"], colourings(session)[args["colour"]]
    prompt = session.run[f"blocks.{layer}.hook_resid_post"].double().cpu()
    n = len(prompt)
    data = dataset(session) if _points(session) is not None else None
    if data is not None and _points(session).projection == "umap":
        reducer, texts_xy = umap_of(session, layer)
        key = f"projector-umap-{layer}"  # the prompt placed once per run and layer (a colouring change reuses it)
        placed = session.cached(key)
        if placed is None:
            placed = torch.from_numpy(reducer.transform(prompt.float().numpy())).float()
            session.cache(key, placed)
        xy = torch.cat([placed, texts_xy])
    elif data is not None:
        mean, basis = data["mean"][layer], data["axes"][layer]
        xy = torch.cat([((prompt - mean) @ basis).float(), data["xy"][layer]])
    else:
        mean, basis = axes(prompt[1:] if n > 1 else prompt)
        xy = ((prompt - mean) @ basis).float()
    m = 0 if data is None else len(data["text"])
    categories: list[str] = []
    extra: dict[str, Any] = {}
    if name == "source":
        categories = ["prompt", "texts"]
        values = torch.cat([torch.zeros(n), torch.ones(m)])
    elif name == "position":
        pos = torch.cat([torch.arange(n), data["pos"].float() if data is not None else torch.zeros(0)])
        values = pos / max(1.0, float(pos.max()))
    elif name == "label":
        labels = _points(session).labels
        categories = [*dict.fromkeys(labels), "prompt"]  # in the order the labels first come
        of_text = torch.tensor([categories.index(label) for label in labels])
        values = torch.cat([torch.full((n,), len(categories) - 1), of_text[data["text"].long()]]).float()
    elif (which := _sae_of(name)) is not None:
        sae, feature = session.saes[which], args["feature"]
        acts = sae.feature_activations(session.run[sae.hook], feature).float()
        if data is not None:
            inputs = data["sae_in"][sae.hook]
            of_texts = session.of_clean(
                ("projector-feature", which, feature), lambda: sae.feature_activations(inputs, feature)
            )
            acts = torch.cat([acts, of_texts.float()])
        top = float(acts[1:].max()) if len(acts) > 1 else 0.0  # <bos>'s activation (often huge) left out of the scale
        values = (acts / top).clamp(max=1.0) if top > 0 else torch.zeros_like(acts)
        extra["value_max"] = top
    else:
        index = int(name.split()[1])
        probes = session.probes[index]
        if layer in probes.layers:
            values = _score(probes, prompt.float(), layer)
            if m:
                values = torch.cat([values, data["scores"][(index, layer)]])
        else:
            values = torch.full((n + m,), -1.0)
    out: dict[str, Any] = {
        "xy": xy,
        "n_prompt": n,
        "values": values.float(),
        "categories": categories,
        "layer": layer,
        **extra,
    }
    if data is not None:
        unique = sorted(set(data["ids"].tolist()))
        out.update(
            text=data["text"],
            pos=data["pos"],
            ids=data["ids"],
            vocab=dict(zip(map(str, unique), session.model.to_str_tokens(unique), strict=True)),
        )
    return out


def _colours(session, _: dict[str, Any]) -> int:
    return len(colourings(session))


def _features(session, args: dict[str, Any]) -> int:
    """A feature of the colouring's SAE; 0 for the other colourings."""
    which = _sae_of(colourings(session)[args["colour"]])
    return 1 if which is None else session.saes[which].d_sae


def _feature_for(session, selection, colour: int) -> int:
    """The feature a colouring shows for ``selection`` (the selected feature of its SAE, else 0)."""
    which = _sae_of(colourings(session)[colour])
    if which is None or selection.get("sae", 0) != which or selection.get("feature") is None:
        return 0
    return selection["feature"]


def _selected(session, selection) -> Iterator[dict[str, Any]]:
    yield {"what": "projector", "layer": selection["layer"], "colour": default_colouring(session), "feature": 0}


def _around(session, selection) -> Iterator[dict[str, Any]]:
    for layer in range(session.model.n_layers):
        for colour in range(len(colourings(session))):
            feature = _feature_for(session, selection, colour)
            yield {"what": "projector", "layer": layer, "colour": colour, "feature": feature}


POINTS = (
    "``points=[...]`` (texts, or ``(text, label)`` pairs) adds the projector: their tokens and the prompt's at the "
    "selected layer in 2-D (PCA), coloured by label, position, probe score or an SAE feature's activation; click a "
    'prompt token\'s point to select it, drag a lasso to select many (``ex.selection["tokens"]``: prompt positions, '
    '``ex.selection["points"]``: ``[text, position]`` pairs of the texts\' tokens).'
)
PROJECTION = (
    '``projection="umap"`` reduces them by UMAP instead (fitted once per layer; needs ``pip install umap-learn``).'
)

PANEL = Panel(
    name="projector",
    # asked for with points=: in the side column under the predictions, in view, not below every other main view
    place="side",
    order=92,  # under the predictions, above the attribution: with points= it is the reason for the cell
    options={"points": Option(None, POINTS), "projection": Option("pca", PROJECTION)},
    state=lambda session, options: points_of(options["points"], options["projection"]),
    #: the projector's lasso: the prompt positions (``tokens``) and the texts' ``[text, position]`` pairs in it
    selection={"tokens": Key(lambda s: [], check_tokens), "points": Key(lambda s: [], check_points, points_json)},
    requests=(Request("projector", (("layer", panel.layers), ("colour", _colours), ("feature", _features)), answer),),
    shown=lambda session: _points(session) is not None,
    hooks=lambda session: (
        [f"blocks.{layer}.hook_resid_post" for layer in range(session.model.n_layers)]
        + [sae.hook for sae in session.saes]
    ),
    shape=lambda session: {
        "projector_colours": colourings(session),
        "projector_colour": default_colouring(session),
        "projector_projection": _points(session).projection.upper(),
        "projector_max": lasso.MAX_POINTS,
    },
    selected=_selected,
    around=_around,
)

__all__ = ["PANEL", "PROJECTIONS", "UMAP_INSTALL", "UMAP_SEED", "Points", "points_of", "umap_installed"]
