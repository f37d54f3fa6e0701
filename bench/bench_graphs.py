"""Attribution graphs: nodes, edges, time and peak memory on the demo model and on SmolLM2-135M (run by hand;
results in ``docs/graphs.md``).

The transcoders are fitted in seconds, not trained: random ReLU encoders whose biases leave a few features active
per token, decoders by least squares on the model's own MLP inputs and outputs over shipped texts. They make real
graphs of the right size and sparsity (their error nodes are large). Each prompt runs in a fresh process so that
its peak resident memory (``ru_maxrss``) is its own.

    python bench/bench_graphs.py            # every case, one thread
    python bench/bench_graphs.py smollm2 64 # one case
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch


def fit(model, texts: list[str], d_tc: int, active_std: float, seed: int = 0):
    import repwidget as rw

    names = [f"blocks.{layer}.{h}" for layer in range(model.n_layers) for h in ("mlp.hook_in", "hook_mlp_out")]
    caps = model.capture_batch(texts, names, progress=False)
    out = []
    for layer in range(model.n_layers):
        x = torch.cat([c[f"blocks.{layer}.mlp.hook_in"] for c in caps]).float()
        y = torch.cat([c[f"blocks.{layer}.hook_mlp_out"] for c in caps]).float()
        w_enc = torch.randn(d_tc, x.shape[1], generator=torch.Generator().manual_seed(seed + layer)) / x.shape[1] ** 0.5
        pre = x @ w_enc.T
        b_enc = -pre.mean(0) - active_std * pre.std(0)
        a = torch.cat([torch.relu(pre + b_enc), torch.ones(len(x), 1)], 1)
        sol = torch.linalg.lstsq(a, y).solution
        out.append(rw.Transcoder(layer, w_enc, b_enc, sol[:d_tc].contiguous(), sol[d_tc]))
    return rw.TranscoderSet(out, scan="least-squares")


def case(name: str, n_tokens: int) -> dict:
    import repwidget as rw

    torch.set_num_threads(1)
    if name == "demo":
        model = rw.demo_model()
        texts = [e.text for task in ("induction", "ioi", "facts") for e in rw.demo.tasks.dataset(task, 40)]
        tcs, prompt_words = fit(model, texts, 96, 0.7), rw.demo.tasks.dataset("induction", 3)[1].text.split()
        max_features = None
    else:
        model = rw.load(rw.demo.smollm2_gguf())
        texts = [e.text for task in rw.demo.tasks.TASKS for e in rw.demo.tasks.dataset(task, 30)]
        tcs, prompt_words = fit(model, texts, 256, 2.0), " ".join(rw.demo.reference_texts()[:4]).split()
        max_features = 500
    ids = model.to_ids(" ".join(prompt_words))[:n_tokens]
    start = time.perf_counter()
    graph = rw.attribution_graph(model, ids, tcs, max_feature_nodes=max_features, batch_size=64, progress=False)
    seconds = time.perf_counter() - start
    pruned = graph.prune()
    replacement, completeness = graph.scores()
    return {
        "model": name,
        "tokens": graph.n_pos,  # with the special token put first
        "active_features": graph.stats["active_features"],
        "feature_nodes": graph.n_features,
        "nodes": len(graph.adjacency),
        "edges": int((graph.adjacency != 0).sum()),
        "pruned_nodes": int(pruned.node_mask.sum()),
        "pruned_edges": int(pruned.edge_mask.sum()),
        "seconds": round(seconds, 2),
        "backward_passes": graph.stats["backward_passes"],
        "estimated_MiB": round(graph.stats["estimated_bytes"] / 2**20, 1),
        "peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "replacement_score": round(replacement, 3),
        "completeness_score": round(completeness, 3),
    }


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(case(sys.argv[1], int(sys.argv[2]))))
    else:
        for name, n in (("demo", 16), ("smollm2", 16), ("smollm2", 64)):
            out = subprocess.run([sys.executable, __file__, name, str(n)], capture_output=True, text=True, check=True)
            print(out.stdout.strip().splitlines()[-1])
