"""SAE benchmark: harvesting a feature's top contexts over a dataset against the forward passes alone.

    python bench/bench_sae.py [n_texts]

The demo model and its shipped SAE, ``n_texts`` (default 2,000) documents of the demo tasks. Times
``rw.feature_dashboard`` (one pass per text capturing the SAE's hook, encode, top-k heap,
histogram, output tokens) against plain Hugging Face forwards of the same texts one by one (the
same passes), and batched by 32 with padding (what a hand-written harvest loop might do).
Alternated, median of 5. Results: ``docs/bench_sae.md``.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

import repwidget as rw
from repwidget.demo.train_sae import documents


def main(n: int = 2000) -> None:
    torch.set_num_threads(2)
    model, sae = rw.demo_model(), rw.demo.demo_sae()
    texts = documents(n, seed=7)
    ids = [model.to_ids(t) for t in texts]
    hf = model.hf

    def plain() -> None:
        with torch.no_grad():
            for x in ids:
                hf(torch.tensor([x]))

    def batched() -> None:
        with torch.no_grad():
            for i in range(0, len(ids), 32):
                chunk = ids[i : i + 32]
                width = max(map(len, chunk))
                x = torch.tensor([c + [0] * (width - len(c)) for c in chunk])
                mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in chunk])
                hf(x, attention_mask=mask)

    def dashboard() -> None:
        rw.feature_dashboard(model, sae, 7, texts)

    cases = {"feature_dashboard": dashboard, "HF forward, one by one": plain, "HF forward, batches of 32": batched}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(5):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["HF forward, one by one"])
    print(f"{len(texts)} texts, {sum(map(len, ids))} tokens; torch {torch.__version__}, 2 threads, median of 5\n")
    print("| case | s | x HF forward one by one |")
    print("|---|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {statistics.median(values) / base:.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
