"""Train the demo model's sparse autoencoder (TopK) on its middle residual stream.

    python -m repwidget.demo.train_sae [--steps 3000] [--out repwidget/demo/sae]

Deterministic given ``--seed``, CPU, about a minute. Saves in SAELens's layout: ``cfg.json``
and ``sae_weights.safetensors`` with ``W_enc [d_in, d_sae]``, ``b_enc``, ``W_dec [d_sae, d_in]``
and ``b_dec``. A minimal trainer: the SAE issue brings loading, dashboards and the general trainer.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import MODEL_DIR, tasks

HOOK = "blocks.2.hook_resid_pre"  # after two of the four blocks
DEFAULT_OUT = Path(__file__).parent / "sae"


def harvest(model, n_docs: int, seed: int) -> torch.Tensor:
    """``[tokens, d_model]`` activations at :data:`HOOK` over training documents (``<bos>`` left out)."""
    rng = random.Random(seed)
    acts = []
    for _ in tqdm(range(n_docs), desc=f"harvesting {HOOK}", leave=False):
        task, example = tasks.training_example(rng)
        acts.append(model.run(tasks.document(example, task), capture=HOOK)[HOOK][1:])
    return torch.cat(acts).float()


def encode(x: torch.Tensor, w: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())


def decode(f: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
    return f @ w["W_dec"] + w["b_dec"]


def explained_variance(x: torch.Tensor, w: dict[str, torch.Tensor], k: int) -> float:
    with torch.no_grad():
        residual = x - decode(encode(x, w, k), w)
        return 1 - (residual.pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()


def train(
    d_sae: int, k: int, steps: int, seed: int, out: Path, n_docs: int = 6000, model_dir: Path = MODEL_DIR
) -> dict[str, float]:
    """Train, save and return ``{explained_variance, l0, dead_fraction}`` on held-back activations."""
    from safetensors.torch import save_file

    from ..model import load

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    model = load(model_dir)
    acts = harvest(model, n_docs, seed)
    acts = acts[torch.randperm(len(acts))]
    n_test = min(4096, len(acts) // 10)
    test, train_acts = acts[:n_test], acts[n_test:]
    d_in = acts.shape[1]
    w_dec = torch.randn(d_sae, d_in)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    w = {
        "W_enc": w_dec.T.clone().requires_grad_(),
        "b_enc": torch.zeros(d_sae, requires_grad=True),
        "W_dec": w_dec.requires_grad_(),
        "b_dec": train_acts.mean(0).requires_grad_(),
    }
    optimizer = torch.optim.Adam(w.values(), lr=2e-3)
    fired = torch.zeros(d_sae, dtype=torch.bool)
    for step in tqdm(range(steps), desc="training the SAE"):
        batch = train_acts[torch.randint(len(train_acts), (2048,))]
        f = encode(batch, w, k)
        loss = (decode(f, w) - batch).pow(2).sum(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            w["W_dec"] /= w["W_dec"].norm(dim=1, keepdim=True)
            if step >= steps - 200:
                fired |= (f > 0).any(0)
    weights = {name: t.detach().contiguous() for name, t in w.items()}
    with torch.no_grad():
        l0 = (encode(test, weights, k) > 0).float().sum(-1).mean().item()
    stats = {
        "explained_variance": explained_variance(test, weights, k),
        "l0": l0,
        "dead_fraction": 1 - fired.float().mean().item(),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, out / "sae_weights.safetensors")
    cfg = {
        "architecture": "topk",
        "d_in": d_in,
        "d_sae": d_sae,
        "k": k,
        "dtype": "float32",
        "metadata": {"hook_name": HOOK, "model_name": "repwidget-demo"},
        "training": {"seed": seed, "steps": steps, "documents": n_docs, **stats},
    }
    (out / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")
    print(", ".join(f"{key} {value:.3f}" for key, value in stats.items()))
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the demo model's TopK SAE (CPU, deterministic).")
    parser.add_argument("--d-sae", type=int, default=512)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    train(args.d_sae, args.k, args.steps, args.seed, args.out)


if __name__ == "__main__":
    main()
