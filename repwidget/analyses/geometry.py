"""Representational similarity: linear CKA, mutual k-nearest-neighbour alignment and SVCCA, between two sets of
activations or between every pair of layers of one model or two.

Each method is split in two: ``_prepare`` turns one ``[samples, width]`` array into what comparisons need (a
U-centred Gram matrix, neighbour sets, an orthonormal basis) and ``_compare`` scores two prepared arrays, so a
layers x layers matrix prepares each layer once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..hook_names import SHORT_NAMES, hook_for
from ..sae.harvest import activations_at

METHODS = ("cka", "mknn", "svcca")


def similarity(
    acts_a: Any,
    acts_b: Any,
    method: str = "cka",
    *,
    debiased: bool = True,
    k: int = 10,
    variance: float = 0.99,
) -> float:
    """How alike two representations of the same ``samples`` are: ``acts_a`` ``[samples, width_a]`` and
    ``acts_b`` ``[samples, width_b]`` (widths may differ).

    ``method``: ``"cka"`` (linear centred kernel alignment; ``debiased`` uses the unbiased HSIC estimator of
    Song et al. 2012, so unrelated representations score about 0 even with few samples), ``"mknn"``
    (mutual k-nearest-neighbour alignment of Huh et al. 2024: the mean fraction of each sample's ``k``
    nearest neighbours, by cosine, shared by both), ``"svcca"`` (Raghu et al. 2017: each side reduced to
    the top singular directions explaining ``variance`` of its variance, then the mean canonical
    correlation). Identical representations score 1; CKA and SVCCA are unchanged by rotations.
    """
    a, b = _matrix(acts_a, "acts_a"), _matrix(acts_b, "acts_b")
    if len(a) != len(b):
        raise ValueError(f"acts_a has {len(a)} samples and acts_b {len(b)}; give the same samples to both")
    options = _options(method, len(a), debiased=debiased, k=k, variance=variance)
    return _compare(_prepare(a, **options), _prepare(b, **options), **options)


def similarity_matrix(
    layers_a: Sequence[Any], layers_b: Sequence[Any] | None = None, method: str = "cka", **kwargs: Any
) -> torch.Tensor:
    """``[len(layers_a), len(layers_b)]`` :func:`similarity` of every pair (``layers_b`` defaults to
    ``layers_a``: a symmetric matrix), each array prepared once."""
    a = [_matrix(x, f"layers_a[{i}]") for i, x in enumerate(layers_a)]
    b = a if layers_b is None else [_matrix(x, f"layers_b[{i}]") for i, x in enumerate(layers_b)]
    if not a or not b:
        raise ValueError("similarity_matrix needs at least one array on each side")
    n = len(a[0])
    if any(len(x) != n for x in (*a, *b)):
        raise ValueError(f"every array must hold the same samples; got {sorted({len(x) for x in (*a, *b)})} rows")
    options = _options(method, n, **kwargs)
    pa = [_prepare(x, **options) for x in a]
    pb = pa if layers_b is None else [_prepare(x, **options) for x in b]
    out = torch.empty(len(pa), len(pb), dtype=torch.float64)
    for i, x in enumerate(pa):
        for j, y in enumerate(pb):
            if layers_b is None and j < i:
                out[i, j] = out[j, i]
            else:
                out[i, j] = _compare(x, y, **options)
    return out


def layer_similarity(
    model: Any,
    texts: Sequence[Any],
    other_model: Any = None,
    hook: str = "resid_post",
    method: str = "cka",
    unit: str = "token",
    **kwargs: Any,
) -> torch.Tensor:
    """``[layers, layers]`` :func:`similarity` between every pair of layers of ``model`` (or, with
    ``other_model``, ``[layers of model, layers of other_model]``; widths may differ), read at ``hook``
    (``resid_post``, ``resid_pre``, ``attn_out``, ``mlp_out``, ``mlp.hook_post``) over ``texts`` in padded
    batches. ``unit="token"``: every token after the first is a sample (two models must tokenise each text
    into as many tokens); ``unit="text"``: each text's mean over those tokens is one.

    The first token of every text is dropped (``<bos>``, or the text's first token where the tokenizer adds
    none): it sees no context, so it says nothing about how a layer represents text, and as the attention sink its
    residual stream's norm is often tens of times the others', which would dominate the similarity (CKA's Gram
    matrices) and make every layer look alike.
    """
    if unit not in ("token", "text"):
        raise ValueError(f'unit must be "token" or "text", got {unit!r:.40}')
    if hook not in SHORT_NAMES:
        raise ValueError(f"hook must be one of {', '.join(SHORT_NAMES)}, got {hook!r:.40}")
    texts = list(texts) if not isinstance(texts, (str, bytes)) else texts
    a = _layers(model, texts, hook, unit)
    b = None if other_model is None else _layers(other_model, texts, hook, unit)
    if b is not None and unit == "token":
        for i, (x, y) in enumerate(zip(a[1], b[1], strict=True)):
            if x != y:
                raise ValueError(
                    f"text {i} is {x} tokens for the first model and {y} for the other; tokens do not "
                    'correspond, compare texts instead (unit="text")'
                )
    return similarity_matrix(a[0], None if b is None else b[0], method, **kwargs)


def _layers(model: Any, texts: Any, site: str, unit: str) -> tuple[list[torch.Tensor], list[int]]:
    """Each layer's ``[samples, width]`` activations (float32, CPU, texts in order) and each text's token count."""
    hooks = [hook_for(site, layer) for layer in range(model.n_layers)]
    rows: dict[int, dict[str, torch.Tensor]] = {}
    for index, acts in activations_at(model, hooks, texts):
        if unit == "text":
            if not len(acts[hooks[0]]):
                raise ValueError(f"text {index} has no token after <bos> to average")
            acts = {h: x.float().mean(0, keepdim=True) for h, x in acts.items()}
        rows[index] = {h: x.float().cpu() for h, x in acts.items()}
    counts = [len(rows[i][hooks[0]]) for i in range(len(rows))]
    return [torch.cat([rows[i][h] for i in range(len(rows))]) for h in hooks], counts


def _matrix(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach()).cpu()
    t = t if t.dtype in (torch.float32, torch.float64) else t.double()  # float32 stays: products 4x faster
    if t.dim() != 2:
        raise ValueError(f"{name} must be [samples, width], got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return t


def _options(method: str, n: int, debiased: bool = True, k: int = 10, variance: float = 0.99) -> dict[str, Any]:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r:.40}")
    least = {"cka": 4 if debiased else 2, "mknn": k + 1, "svcca": 2}[method]
    if n < least:
        raise ValueError(f"{method} needs at least {least} samples here, got {n}")
    if method == "mknn" and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be a positive int, got {k!r:.40}")
    if method == "svcca" and not 0 < variance <= 1:
        raise ValueError(f"variance must be in (0, 1], got {variance!r:.40}")
    return {"method": method, "debiased": debiased, "k": k, "variance": variance}


def _prepare(x: torch.Tensor, method: str, debiased: bool, k: int, variance: float) -> Any:
    if method == "cka":
        gram = (x @ x.T).double()
        if not debiased:
            return _normalised(_centre(gram))
        return _normalised(_u_centre(gram))
    if method == "mknn":
        unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        scores = unit @ unit.T
        scores.fill_diagonal_(-float("inf"))
        near = torch.zeros(scores.shape, dtype=torch.bool)
        near.scatter_(1, scores.topk(k, dim=1).indices, True)
        return near
    centred = x - x.mean(0)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    s = s.double()
    energy = s.pow(2).cumsum(0) / s.pow(2).sum().clamp_min(1e-300)
    keep = int(torch.searchsorted(energy, torch.tensor(variance, dtype=energy.dtype) - 1e-12)) + 1
    return u[:, : min(keep, len(s))]  # an orthonormal basis of the reduced, centred data


def _compare(a: Any, b: Any, method: str, debiased: bool, k: int, variance: float) -> float:
    if method == "cka":
        return float((a * b).sum())
    if method == "mknn":
        return float((a & b).sum(1).double().mean() / k)
    # canonical correlations: singular values of Qa^T Qb, as square roots of the eigenvalues of M M^T (a symmetric
    # eigenproblem: about 15x faster than the SVD at k = 700, agreeing to 1e-15)
    m = (a.T @ b).double()
    small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m  # the smaller side: min(ka, kb) correlations
    return float(torch.linalg.eigvalsh(small).clamp(0, 1).sqrt().mean())


def _centre(gram: torch.Tensor) -> torch.Tensor:
    return gram - gram.mean(0) - gram.mean(1, keepdim=True) + gram.mean()


def _u_centre(gram: torch.Tensor) -> torch.Tensor:
    """Székely and Rizzo's U-centring of a Gram matrix with its diagonal removed: the inner product of two
    U-centred matrices is ``n (n - 3)`` times the unbiased HSIC estimator of Song et al. (2012)."""
    n = len(gram)
    g = gram.clone()
    g.fill_diagonal_(0)
    rows = g.sum(1) / (n - 2)
    g = g - rows[:, None] - rows[None, :] + g.sum() / ((n - 1) * (n - 2))
    g.fill_diagonal_(0)
    return g


def _normalised(g: torch.Tensor) -> torch.Tensor:
    """``g / |g|`` (Frobenius), so the inner product of two is their CKA; 0 stays 0 (no variance, no alignment)."""
    norm = g.norm()
    return g / norm if norm > 0 else g
