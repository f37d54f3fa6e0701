"""Train the demo model's tuned lens (affine translators per layer, see ``rw.TunedLens``).

    python -m repwidget.demo.train_tuned_lens [--steps 1000] [--out repwidget/demo/tuned_lens]

Deterministic given ``--seed``, CPU, one thread, about half a minute. Prints the held-out KL to the model's output
per layer of the logit lens and of the tuned lens, on the demo tasks' held-out texts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import MODEL_DIR
from .train_sae import documents

DEFAULT_OUT = Path(__file__).parent / "tuned_lens"


def held_out_texts(per_task: int = 40, seed: int = 7) -> list[str]:
    """Held-out texts of every demo task (never trained on): what the shipped lens is measured on."""
    from . import TASKS, dataset

    return [example.text for task in TASKS for example in dataset(task, per_task, seed=seed)]


def train(steps: int, seed: int, out: Path, n_docs: int = 3000, model_dir: Path = MODEL_DIR):
    """Train the demo tuned lens on ``n_docs`` training documents, save it to ``out`` and return it."""
    import torch

    from ..analyses import lens_kl
    from ..analyses.tuned_lens import TunedLens
    from ..model import load

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = load(model_dir)
    model.source = "demo"
    lens = TunedLens.train(model, documents(n_docs, seed), steps=steps, lr=1e-3, batch_tokens=512, seed=seed)
    held = held_out_texts()
    logit, tuned = lens_kl(model, held), lens_kl(model, held, lens=lens)
    lens.training["documents"] = n_docs
    lens.training["demo_held_out_kl_logit"] = [round(float(x), 4) for x in logit]
    lens.training["demo_held_out_kl_tuned"] = [round(float(x), 4) for x in tuned]
    lens.save(out)
    print("held-out KL to the output per layer (nats)")
    print("  logit lens:", ", ".join(f"{x:.3f}" for x in logit.tolist()))
    print("  tuned lens:", ", ".join(f"{x:.3f}" for x in tuned.tolist()))
    return lens


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the demo model's tuned lens (CPU, deterministic).")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    train(args.steps, args.seed, args.out)


if __name__ == "__main__":
    main()
