"""Train a TopK sparse autoencoder on a model's activations at one hook."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from tqdm.auto import tqdm

from . import harvest
from .model import SAE


def variance_explained(target: torch.Tensor, reconstruction: torch.Tensor) -> float:
    """1 - (squared error) / (variance of ``target``), over ``[tokens, width]`` (SAEs and transcoders)."""
    residual = target - reconstruction
    return 1 - (residual.pow(2).sum() / (target - target.mean(0)).pow(2).sum().clamp_min(1e-30)).item()


def explained_variance(sae: SAE, acts: torch.Tensor) -> float:
    """1 - (reconstruction error) / (variance of the activations), over ``[tokens, d_in]``."""
    return variance_explained(acts, sae.decode(sae.encode(acts)))


def sae_stats(sae: SAE, acts: torch.Tensor) -> dict[str, float]:
    """Explained variance, mean L0 (active features per token) and the fraction of features never active."""
    feats = sae.encode(acts)
    active = feats > 0
    return {
        "explained_variance": explained_variance(sae, acts),
        "l0": active.float().sum(-1).mean().item(),
        "dead_fraction": 1 - active.any(0).float().mean().item(),
    }


def train_sae(
    model: Any,
    hook: str,
    texts: Iterable[Any],
    d_sae: int = 512,
    k: int = 16,
    steps: int | None = None,
    batch_size: int = 2048,
    lr: float = 2e-3,
    seed: int = 0,
    max_tokens: int = 1_000_000,
    epochs: float = 20.0,
    patience: int = 5,
) -> SAE:
    """Train a TopK SAE (``k`` active features of ``d_sae``) on ``model``'s activations at ``hook``.

    Activations of ``texts`` are read once (in batches, with progress; ``<bos>`` left out), a tenth
    is held back, and Adam trains on random batches of the rest with unit-norm decoder rows. The
    number of steps follows the data (``epochs`` passes over the training activations, between 200
    and 3,000 steps, unless ``steps`` is given), and training stops early once the held-back
    explained variance has not improved for ``patience`` checks (every 100 steps); the best
    weights are kept. The result's ``stats`` hold the held-back explained variance, mean L0 and
    dead-feature fraction, which are also printed. Save it with ``sae.save(path)``.
    """
    from ..hook_names import parse

    parse(hook, model.n_layers)
    torch.manual_seed(seed)
    acts = harvest.stack(model, hook, texts, max_tokens)
    acts = acts[torch.randperm(len(acts))]
    n_test = max(1, min(4096, len(acts) // 10))
    test, train_acts = acts[:n_test], acts[n_test:]
    if len(train_acts) < 2 * k:
        raise ValueError(f"only {len(acts)} activations from these texts; give more text to train an SAE")
    d_in = acts.shape[1]
    w_dec = torch.randn(d_sae, d_in)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    w = {
        "W_enc": w_dec.T.clone().requires_grad_(),
        "b_enc": torch.zeros(d_sae, requires_grad=True),
        "W_dec": w_dec.requires_grad_(),
        "b_dec": train_acts.mean(0).requires_grad_(),
    }
    if steps is None:
        steps = int(min(3000, max(200, epochs * len(train_acts) / batch_size)))
    optimizer = torch.optim.Adam(w.values(), lr=lr)
    bar = tqdm(range(steps), desc=f"training a TopK SAE on {hook}")
    best, best_weights, since = -float("inf"), None, 0
    for step in bar:
        batch = train_acts[torch.randint(len(train_acts), (batch_size,))]
        pre = (batch - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
        top = pre.topk(k, dim=-1)
        feats = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
        loss = (feats @ w["W_dec"] + w["b_dec"] - batch).pow(2).sum(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            w["W_dec"] /= w["W_dec"].norm(dim=1, keepdim=True)
        if step % 100 == 99 or step == steps - 1:
            held = explained_variance(_sae(w, hook, k), test)
            bar.set_postfix(mse=f"{loss.item():.4f}", held_out_ev=f"{held:.3f}")
            if held > best + 1e-4:
                best, best_weights, since = held, {n: t.detach().clone() for n, t in w.items()}, 0
            else:
                since += 1
                if since >= patience:
                    break
    sae = _sae(best_weights or w, hook, k)
    sae.stats = sae_stats(sae, test)
    sae.metadata["training"] = {"steps": step + 1, "seed": seed, "tokens": len(acts), "stats": sae.stats}
    print(f"SAE on {hook}: " + ", ".join(f"{key} {value:.3f}" for key, value in sae.stats.items()))
    return sae


def _sae(w: dict[str, torch.Tensor], hook: str, k: int) -> SAE:
    return SAE(*(w[n].detach() for n in ("W_enc", "b_enc", "W_dec", "b_dec")), architecture="topk", hook=hook, k=k)
