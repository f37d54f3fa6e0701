"""Fitting probes on cached activations: multinomial logistic regression, sparse (k best neurons), mean difference,
ridge regression; the mean-difference ranking of units."""

from __future__ import annotations

import torch

KINDS = ("logistic", "sparse", "mean_diff")


def standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (at least 1e-6) of each column, for standardising features."""
    return x.mean(0), x.std(0).clamp_min(1e-6)


def logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = 1.0, iters: int = 100) -> torch.Tensor:
    """Multinomial logistic regression on standardised ``x`` ``[n, d]``: weights ``[d + 1, classes]`` (bias last).

    Minimises the summed cross-entropy plus ``l2 / 2 * ||W||^2`` (bias unpenalised), as scikit-learn's
    ``LogisticRegression(C=1 / l2)`` does, with full-batch L-BFGS. For two classes scikit-learn fits one
    vector ``w = W[:, 1] - W[:, 0]`` with the penalty ``l2 / 2 * ||w||^2``; at the optimum ``W[:, 0] = -W[:, 1]``,
    so the same objective here takes twice the penalty on ``W`` (tested against scikit-learn).
    """
    n, d = x.shape
    if n_classes == 2:
        l2 = 2 * l2
    xb = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1)
    w = torch.zeros(d + 1, n_classes, dtype=x.dtype, requires_grad=True)
    # stop as scikit-learn's lbfgs does (gtol = tol = 1e-4 on its objective, the mean loss: here summed, so n times)
    tolerance = 1e-4 * n
    optimizer = torch.optim.LBFGS([w], lr=1, max_iter=iters, tolerance_grad=tolerance, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(xb @ w, y, reduction="sum") + 0.5 * l2 * w[:-1].pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach()


def best_neurons(x: torch.Tensor, y: torch.Tensor, n_classes: int, k: int) -> torch.Tensor:
    """The ``k`` columns that separate the classes best (between-class over within-class variance)."""
    means = torch.stack([x[y == c].mean(0) for c in range(n_classes)])
    between = means.var(0)
    within = torch.stack([x[y == c].var(0) for c in range(n_classes)]).mean(0).clamp_min(1e-6)
    return (between / within).topk(min(k, x.shape[1])).indices


def mean_difference(x: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class means as a nearest-mean classifier ``[d + 1, classes]``: score_c = x . m_c - |m_c|^2 / 2.

    For two classes the decision direction is ``m_1 - m_0`` (the concept direction).
    """
    means = torch.stack([x[y == c].mean(0) for c in range(n_classes)])  # [classes, d]
    return torch.cat([means.T, -0.5 * means.pow(2).sum(1, keepdim=True).T], 0)


def ridge(x: torch.Tensor, y: torch.Tensor, l2: float = 1.0) -> torch.Tensor:
    """Ridge regression of ``y`` ``[n]`` on standardised ``x`` ``[n, d]``, in closed form (float64): weights
    ``[d + 1]`` (bias last, unpenalised) minimising ``||x w + b - y||^2 + l2 ||w||^2``."""
    x64, y64 = x.double(), y.double()
    centred = x64 - x64.mean(0)
    w = torch.linalg.solve(centred.T @ centred + l2 * torch.eye(x.shape[1], dtype=torch.float64),
                           centred.T @ (y64 - y64.mean()))  # fmt: skip
    bias = y64.mean() - x64.mean(0) @ w
    return torch.cat([w, bias[None]]).to(x.dtype)


def r_squared(predicted: torch.Tensor, y: torch.Tensor) -> float:
    """The coefficient of determination: 1 - residual sum of squares / total sum of squares around ``y``'s mean."""
    y = y.double()
    total = (y - y.mean()).pow(2).sum()
    return float(1 - (predicted.double() - y).pow(2).sum() / total.clamp_min(1e-12))


def mean_difference_ranking(x: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Every column of ``x`` ``[n, d]``, best first by the absolute difference of its mean over the ``positive``
    rows (a boolean mask) and over the others: the ranking of the sparse-probing papers (Gurnee et al. 2023,
    Kantamneni et al. 2025), ties broken by column index."""
    difference = (x[positive].double().mean(0) - x[~positive].double().mean(0)).abs()
    return torch.sort(-difference, stable=True).indices
