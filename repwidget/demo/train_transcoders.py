"""Train the demo model's transcoders: JumpReLU, one per layer, from each MLP's input to its output.

    python -m repwidget.demo.train_transcoders [--steps 1200] [--out repwidget/demo/transcoders]

Deterministic given ``--seed``, CPU at one thread, about 90 s of CPU (training and measuring). Saves in
circuit-tracer's layout (``config.yaml`` and ``layer_{i}.safetensors``, float16; loading upcasts), loadable with
``rw.demo.transcoders()``, ``rw.TranscoderSet.load`` and circuit-tracer's own loader; prints each layer's quality on
held-out texts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import MODEL_DIR, TRANSCODERS_DIR
from .train_sae import documents


def held_out_texts(n_per_task: int = 6, seed: int = 7) -> list[str]:
    """Held-out demo texts (never trained on) to measure the transcoders with."""
    from . import TASKS, dataset

    return [example.text for task in TASKS for example in dataset(task, n_per_task, seed=seed)]


def train(d_tc: int, k: int, steps: int, seed: int, out: Path, n_docs: int = 4000, model_dir: Path = MODEL_DIR):
    """Train the demo transcoders on ``n_docs`` documents, save them to ``out`` (float16) and return them with their
    quality on held-out texts."""
    import torch

    from ..model import load
    from ..transcoders import quality, train_transcoder

    torch.set_num_threads(1)
    model = load(model_dir)
    transcoders = train_transcoder(
        model, documents(n_docs, seed), d_tc=d_tc, activation="jumprelu", k=k, steps=steps, seed=seed
    )
    measured = quality(model, transcoders, held_out_texts())
    transcoders.scan = "repwidget-demo"
    transcoders.metadata["training"]["documents"] = n_docs
    transcoders.metadata["quality"] = measured.to_dict()
    transcoders.save(out, dtype=torch.float16)
    print(measured)
    return transcoders, measured


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the demo model's transcoders (CPU, deterministic).")
    parser.add_argument("--d-tc", type=int, default=512)
    parser.add_argument("--k", type=int, default=24)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=TRANSCODERS_DIR)
    args = parser.parse_args()
    train(args.d_tc, args.k, args.steps, args.seed, args.out)


if __name__ == "__main__":
    main()
