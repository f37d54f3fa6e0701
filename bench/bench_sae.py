"""SAE benchmark: harvesting a feature's top contexts over a dataset against the forward passes alone.

    python bench/bench_sae.py [n_texts]

The demo model and its shipped SAE, ``n_texts`` (default 2,000) documents of the demo tasks. Times
``rw.feature_dashboard`` (padded batched passes ending at the SAE's hook, encode, top-k heap,
histogram, output tokens) and ``rw.feature_dashboards`` for 16 features from the same harvest, against
plain Hugging Face forwards of the same texts one by one and batched by 32 with padding (the target:
a dashboard costs at most the batched forwards). Alternated, median of 5. Results: ``docs/bench_sae.md``.
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

    def dashboards() -> None:
        rw.feature_dashboards(model, sae, list(range(16)), texts)

    cases = {
        "feature_dashboard": dashboard,
        "feature_dashboards, 16 features": dashboards,
        "HF forward, one by one": plain,
        "HF forward, batches of 32": batched,
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(5):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["HF forward, one by one"])
    print(f"{len(texts)} texts, {sum(map(len, ids))} tokens; torch {torch.__version__}, 2 threads, median of 5\n")
    batch = statistics.median(times["HF forward, batches of 32"])
    print("| case | s | x HF one by one | x HF batches of 32 |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"| {name} | {t:.2f} | {t / base:.2f} | {t / batch:.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
