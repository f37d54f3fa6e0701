"""Layer similarity benchmark: every pair of layers of a GPT-2-small-shaped model over 2,000 tokens, on the CPU.

    python bench/bench_geometry.py

A random-initialised GPT-2 (12 layers, d_model 768, 12 heads, vocabulary 50,257: nothing downloaded) reads
20 texts of 101 random tokens (100 after the first, which is left out: 2,000 samples) at every
``hook_resid_post`` in padded batches, then ``rw.analyses.layer_similarity`` computes the 12 x 12 matrix
for each method. Reading is timed apart from the comparison (``similarity_matrix`` on the read
activations), and ``layer_similarity`` end to end. Results: ``docs/bench_geometry.md``.
"""

from __future__ import annotations

import os
import time

import torch
import transformers as T

import repwidget as rw
from repwidget.analyses import geometry


def main() -> None:
    torch.manual_seed(0)
    hf = T.GPT2LMHeadModel(T.GPT2Config(n_layer=12, n_embd=768, n_head=12)).eval()
    model = rw.load(hf)
    g = torch.Generator().manual_seed(0)
    texts = [torch.randint(0, 50257, (101,), generator=g).tolist() for _ in range(20)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 12 layers, d_model 768, 2,000 tokens\n")
    start = time.perf_counter()
    layers, counts = geometry._layers(model, texts, "resid_post", "token")
    read = time.perf_counter() - start
    assert sum(counts) == 2000 and layers[0].shape == (2000, 768)
    start = time.perf_counter()
    with torch.no_grad():
        hf(torch.tensor(texts), output_hidden_states=True)  # the same tokens in one batch, for scale
    plain = time.perf_counter() - start
    print("| step | seconds |\n|---|---:|")
    print(f"| plain transformers forward of the 20 texts, hidden states out (for scale) | {plain:.2f} |")
    print(f"| read 12 layers' resid_post (2,000 x 768 each) | {read:.2f} |")
    for method in geometry.METHODS:
        start = time.perf_counter()
        matrix = geometry.similarity_matrix(layers, method=method)
        seconds = time.perf_counter() - start
        print(f"| {method}: 12 x 12 matrix from the activations | {seconds:.2f} |")
        summary = f"{method}: layer 0 vs 1 {matrix[0, 1]:.3f}, 0 vs 11 {matrix[0, 11]:.3f}"
        print(f"|   ({summary}) | |")
    start = time.perf_counter()
    rw.analyses.layer_similarity(model, texts)
    print(f"| layer_similarity(model, texts) end to end (CKA, debiased) | {time.perf_counter() - start:.2f} |")
    print(f"\nload average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
