"""Train the demo model's sparse autoencoder (TopK) on its middle residual stream.

    python -m repwidget.demo.train_sae [--steps 3000] [--out repwidget/demo/sae]

Deterministic given ``--seed``, CPU, about a minute. Saves in SAELens's layout (``cfg.json`` and
``sae_weights.safetensors``), loadable with ``rw.SAE.load`` and SAELens's ``SAE.load_from_disk``.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from . import MODEL_DIR, tasks

HOOK = "blocks.2.hook_resid_pre"  # after two of the four blocks
DEFAULT_OUT = Path(__file__).parent / "sae"


def documents(n: int, seed: int) -> list[str]:
    """``n`` training documents of the demo tasks (never a held-out text)."""
    rng = random.Random(seed)
    return [tasks.document(example, task) for task, example in (tasks.training_example(rng) for _ in range(n))]


def train(d_sae: int, k: int, steps: int, seed: int, out: Path, n_docs: int = 6000, model_dir: Path = MODEL_DIR):
    """Train the demo SAE on ``n_docs`` documents, save it to ``out`` and return it."""
    import torch

    from ..model import load
    from ..sae import train_sae

    torch.set_num_threads(2)
    model = load(model_dir)
    sae = train_sae(model, HOOK, documents(n_docs, seed), d_sae=d_sae, k=k, steps=steps, seed=seed)
    sae.save(out, model_name="repwidget-demo", training={**sae.metadata["training"], "documents": n_docs})
    return sae


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
