"""What each view shows, computed from runs: small tensors ready for the codec (pure functions)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .. import analyses
from ..run import Run

#: thumbnails in the attention grid are at most this many pixels a side
THUMB = 24
#: a pattern is sent whole up to this many tokens a side; longer ones as an overview plus zoomed windows
MAX_SIDE = 512


def pooled(matrix: torch.Tensor, side: int) -> torch.Tensor:
    """Shrink ``[..., q, k]`` to at most ``side`` x ``side`` by max pooling (sharp attention stays visible)."""
    q, k = matrix.shape[-2:]
    if q <= side and k <= side:
        return matrix
    lead = matrix.shape[:-2]
    flat = matrix.reshape(-1, 1, q, k).float()
    out = F.adaptive_max_pool2d(flat, (min(q, side), min(k, side)))
    return out.reshape(*lead, *out.shape[-2:])


def _patterns(run: Run) -> torch.Tensor:
    return torch.stack([run[f"blocks.{layer}.attn.hook_pattern"] for layer in range(run.model.n_layers)])


def overview(run: Run) -> dict[str, Any]:
    """Every head as a thumbnail (uint8, 0-255 = attention 0-1) and the head scores ``[score, layer, head]``."""
    thumbs = pooled(_patterns(run), THUMB).float().clamp(0, 1)
    scores = analyses.head_scores(run)
    return {
        "thumbs": (thumbs * 255).round().to(torch.uint8),
        "scores": torch.stack([scores[name] for name in analyses.heads.SCORES]).float(),
        "score_names": list(analyses.heads.SCORES),
    }


def pattern(run: Run, layer: int, head: int, window: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
    """One head's pattern: whole if it fits :data:`MAX_SIDE`, else pooled, or a full-resolution ``window``.

    ``window`` is ``(q0, q1, k0, k1)`` (half-open) and at most ``MAX_SIDE`` a side. The answer says
    which rows and columns it covers and the pooling factor, so the front end can label it.
    """
    n = len(run.token_ids)
    q0, q1, k0, k1 = window if window is not None else (0, n, 0, n)
    if not (0 <= q0 < q1 <= n and 0 <= k0 < k1 <= n):
        raise ValueError(f"window {window} is outside the {n} x {n} pattern")
    if window is not None and (q1 - q0 > MAX_SIDE or k1 - k0 > MAX_SIDE):
        raise ValueError(f"a window is at most {MAX_SIDE} tokens a side, got {q1 - q0} x {k1 - k0}")
    full = run[f"blocks.{layer}.attn.hook_pattern"][head, q0:q1, k0:k1]
    shown = pooled(full, MAX_SIDE)
    return {"pattern": shown.float(), "window": [q0, q1, k0, k1], "pooled": list(shown.shape) != list(full.shape)}


def lens(run: Run, start: int, stop: int) -> dict[str, Any]:
    """Logit lens over positions ``start..stop``: top token ids ``[layer, pos]``, their probabilities and texts."""
    result = analyses.logit_lens(run, range(start, stop), k=1)
    ids = result.ids[..., 0]
    unique = sorted(set(ids.flatten().tolist()))
    return {
        "ids": ids.to(torch.int32),
        "probs": result.probs[..., 0].float(),
        "start": start,
        "vocab": dict(zip(map(str, unique), run.model.to_str_tokens(unique), strict=True)),
    }


def lens_slice(full: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """The :func:`lens` answer for ``start..stop`` cut out of one over a range that contains it."""
    cols = slice(start - full["start"], stop - full["start"])
    ids = full["ids"][:, cols]
    return {
        "ids": ids,
        "probs": full["probs"][:, cols],
        "start": start,
        "vocab": {key: full["vocab"][key] for key in map(str, sorted(set(ids.flatten().tolist())))},
    }


def predictions(
    clean: Run,
    run: Run,
    position: int,
    k: int = 10,
    clean_logits: dict[int, torch.Tensor] | None = None,
    logits: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Top-``k`` next tokens at ``position``, clean and intervened, and how each changed between them.

    ``ids``/``probs`` are ``[2, k]`` (row 0 clean, row 1 intervened); ``delta_prob`` and
    ``delta_logit`` are ``[2, k]``: for each listed token, intervened minus clean. ``clean_logits``
    caches the clean run's logits by position across calls; ``logits`` are ``run``'s at
    ``position`` when already computed.
    """
    cache = clean_logits if clean_logits is not None else {}
    if position not in cache:
        cache[position] = clean.logits_at(position).float()
    if logits is None:
        logits = run.logits_at(position)
    both = torch.stack([cache[position], logits.float()])
    probs = both.softmax(-1)
    top = probs.topk(k, dim=-1)
    delta_prob = (probs[1] - probs[0])[top.indices]
    delta_logit = (both[1] - both[0])[top.indices]
    return {
        "ids": top.indices.to(torch.int32),
        "probs": top.values,
        "delta_prob": delta_prob,
        "delta_logit": delta_logit,
        "tokens": [run.model.to_str_tokens(row) for row in top.indices.tolist()],
        "position": position,
    }


def neurons(run: Run, layer: int, position: int, k: int = 12) -> dict[str, Any]:
    """The ``k`` MLP neurons of ``layer`` most active at ``position`` (indices and activations)."""
    acts = run[f"blocks.{layer}.mlp.hook_post"][position].float()
    top = acts.topk(min(k, acts.numel()))
    return {"indices": top.indices.to(torch.int32), "values": top.values, "layer": layer, "position": position}


def neuron(run: Run, layer: int, index: int) -> dict[str, Any]:
    """One MLP neuron's activation at every position, ``[pos]``."""
    return {"values": run[f"blocks.{layer}.mlp.hook_post"][:, index].float(), "layer": layer, "index": index}


def features(run: Run, sae: Any, position: int, k: int = 12) -> dict[str, Any]:
    """The ``k`` features of ``sae`` most active at ``position`` (indices and activations; zeros left out)."""
    acts = sae.encode(run[sae.hook][position])
    top = acts.topk(min(k, acts.numel()))
    keep = top.values > 0
    return {"indices": top.indices[keep].to(torch.int32), "values": top.values[keep], "position": position}


def feature(run: Run, sae: Any, index: int) -> dict[str, Any]:
    """One SAE feature's activation at every position, ``[pos]``."""
    return {"values": sae.encode(run[sae.hook])[:, index].float(), "index": index}


def dashboard(dash: Any, k: int = 5) -> dict[str, Any]:
    """A feature dashboard's top ``k`` contexts (tokens, activations, peak) and its output tokens."""
    contexts = dash.contexts[:k]
    return {
        "tokens": [c.tokens for c in contexts],
        "peaks": [c.position for c in contexts],
        "values": torch.tensor([v for c in contexts for v in c.activations], dtype=torch.float32),
        "boosted": [t for t, _ in dash.boosted],
        "suppressed": [t for t, _ in dash.suppressed],
        "density": dash.density,
        "index": dash.feature,
    }


def same_site(hook: str, site: str, layer: int) -> bool:
    """Whether ``hook`` reads the activation a probe on ``site`` at ``layer`` reads (resid_post L = resid_pre L+1)."""
    from ..probes.probes import hook_for

    return hook == hook_for(site, layer) or (site == "resid_post" and hook == f"blocks.{layer + 1}.hook_resid_pre")


def probe(run: Run, probes: Any, layer: int, saes: Any = (), k: int = 5) -> dict[str, Any]:
    """A probe's held-out accuracy by layer and, at ``layer``, each token's probability of each class,
    and for each SAE reading the same activation, the ``k`` features whose decoder directions are
    closest (cosine) to the probe's direction: ``near_sae``, ``near_features`` and ``near_cosines``."""
    from ..probes.probes import hook_for

    accuracy = torch.tensor(probes.accuracy, dtype=torch.float32)
    out: dict[str, Any] = {"accuracy": accuracy, "layer": layer, "classes": probes.classes}
    if layer not in probes.layers:
        return out
    out["probs"] = probes.logits(run[hook_for(probes.site, layer)], layer).softmax(-1).float()
    direction = probes.direction(layer)
    near_sae, near_features, near_cosines = [], [], []
    for i, sae in enumerate(saes):
        if same_site(sae.hook, probes.site, layer):
            vectors = sae.decoder_vectors().cpu()
            cosines = (vectors / vectors.norm(dim=-1, keepdim=True)) @ direction
            top = cosines.abs().topk(min(k, len(cosines)))
            near_sae += [i] * len(top.indices)
            near_features += top.indices.tolist()
            near_cosines += cosines[top.indices].tolist()
    out.update(near_sae=near_sae, near_features=near_features, near_cosines=torch.tensor(near_cosines))
    return out
