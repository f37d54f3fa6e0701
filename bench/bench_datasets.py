"""Probes at dataset scale on real tasks (rw.datasets): accuracy by layer (train split, held-out test, OOD), the
control task, dense vs sparse probes, regression R^2, and the time of each step, against scikit-learn's fit.

    python bench/bench_datasets.py demo [--n 2000]              # the demo model, a task in its own vocabulary
    python bench/bench_datasets.py smollm2 [--n 600] [--task glue_sst2 hist_fig_ismale] [--every 3]

Each run reads the activations once (every ``--every``-th layer's resid_post and one layer's MLP neurons, in the
same batched passes), then fits from the cache: ``fit_probes`` (logistic, with the control task),
``sparse_curve`` (top-k neurons by mean difference, k = 1..256, against the dense probe) and, where the task has
an out-of-distribution file, the probes' accuracy on it. Results: ``docs/datasets.md``.
"""

from __future__ import annotations

import argparse
import time

import torch

import repwidget as rw
from repwidget.probes import fit
from repwidget.probes.read import read_at_hooks
from repwidget.probes.sparse import KS, sparse_curve


def sklearn_accuracy(acts: torch.Tensor, y: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> list[float]:
    from sklearn.linear_model import LogisticRegression

    out = []
    for i in range(acts.shape[1]):
        x = acts[:, i].double().numpy()
        mean, std = x[train].mean(0), x[train].std(0, ddof=1).clip(1e-6)
        clf = LogisticRegression(C=1.0, max_iter=1000).fit((x[train] - mean) / std, y[train].numpy())
        out.append(float((clf.predict((x[test] - mean) / std) == y[test].numpy()).mean()))
    return out


def run(model, data: rw.datasets.Dataset, layers: list[int], neuron_layer: int, label: str) -> None:
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in layers] + [f"blocks.{neuron_layer}.mlp.hook_post"]
    texts = data.texts + (data.ood.texts if data.ood is not None else [])
    start = time.perf_counter()
    read = read_at_hooks(model, texts, hooks)
    read_s = time.perf_counter() - start
    n = len(data)
    acts, neurons = torch.stack([read[hook] for hook in hooks[:-1]], 1), read[hooks[-1]][:n]
    resid = acts[:n]
    y = torch.tensor([data.classes.index(label) for label in data.labels])
    start = time.perf_counter()
    probes = rw.probes.fit_probes(resid, y, data.classes, layers, test_fraction=0.2, seed=0, control=True)
    fit_s = time.perf_counter() - start
    test, train = rw.datasets.held_out(n, 0.2, 0, least=len(data.classes))
    start = time.perf_counter()
    plain = rw.probes.fit_probes(resid, y, data.classes, layers, test_fraction=0.2, seed=0, control=False)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = sklearn_accuracy(resid, y, train, test)
    theirs_s = time.perf_counter() - start
    gap = max(abs(a - b) for a, b in zip(plain.accuracy, reference, strict=True))
    ood = None
    if data.ood is not None:
        y_ood = torch.tensor([data.classes.index(label) for label in data.ood.labels])
        ood = [
            (probes.logits(acts[n:, i], layer).argmax(-1) == y_ood).float().mean().item()
            for i, layer in enumerate(layers)
        ]
    train_acc = [
        (probes.logits(resid[train, i], layer).argmax(-1) == y[train]).float().mean().item()
        for i, layer in enumerate(layers)
    ]
    print(f"\n### {label}: {data.name}, {n} texts ({len(train)} train / {len(test)} test)")
    if data.ood is not None:
        print(f"and {len(data.ood)} OOD texts")
    print(f"\nread {len(texts)} texts at {len(hooks)} hooks: {read_s:.1f} s ({len(texts) / read_s:.1f} texts/s)")
    print(f"fit {len(layers)} layers with the control task: {fit_s:.2f} s; without it {ours_s:.2f} s, "
          f"scikit-learn {theirs_s:.2f} s (ratio {theirs_s / ours_s:.1f}x); largest accuracy gap to scikit-learn "
          f"{100 * gap:.2f} points\n")  # fmt: skip
    print("| layer | train | test | control | selectivity |" + (" OOD |" if ood else ""))
    print("|---:|---:|---:|---:|---:|" + ("---:|" if ood else ""))
    for i, layer in enumerate(layers):
        row = f"| {layer} | {train_acc[i]:.3f} | {probes.accuracy[i]:.3f} | {probes.control[i]:.3f} | "
        row += f"{probes.selectivity[i]:+.3f} |" + (f" {ood[i]:.3f} |" if ood else "")
        print(row)
    ks = [k for k in KS if k < neurons.shape[1]]
    start = time.perf_counter()
    accuracy, dense, ranking = sparse_curve(neurons, y, train, test, ks)
    sparse_s = time.perf_counter() - start
    print(f"\nsparse probing over the {neurons.shape[1]} MLP neurons of layer {neuron_layer} ({sparse_s:.1f} s): ")
    print("\n| k | " + " | ".join(str(k) for k in ks) + f" | dense ({neurons.shape[1]}) |")
    print("|---|" + "---:|" * (len(ks) + 1))
    print("| test accuracy | " + " | ".join(f"{a:.3f}" for a in accuracy) + f" | {dense:.3f} |")
    print(f"\ntop neurons: {ranking[:8].tolist()}")


def regression(model, data: rw.datasets.Dataset, layers: list[int], penalties=(10.0, 100.0, 1000.0, 10000.0)) -> None:
    start = time.perf_counter()
    acts = rw.probes.read_activations(model, data.texts, layers, "resid_post")
    read_s = time.perf_counter() - start
    print(f"\n### ridge probes: {data.name}, {len(data)} texts (read {read_s:.1f} s); held-out R^2 by layer and l2\n")
    print("| l2 | fit, s | " + " | ".join(str(layer) for layer in layers) + " | control (best layer) |")
    print("|---:|---:|" + "---:|" * (len(layers) + 1))
    for l2 in penalties:
        start = time.perf_counter()
        probes = rw.probes.fit_regression(acts, torch.tensor(data.labels), layers, l2=l2, test_fraction=0.2)
        fit_s = time.perf_counter() - start
        best = probes.layers.index(probes.best_layer)
        row = " | ".join(f"{r:.3f}" for r in probes.r2)
        print(f"| {l2:g} | {fit_s:.2f} | {row} | {probes.control[best]:.3f} |")


def demo_texts(n: int) -> list[str]:
    """``n`` held-out texts of the demo's tasks, in turn (tasks with fewer distinct texts give what they have)."""
    texts: list[str] = []
    for i, task in enumerate(rw.demo.TASKS):
        want = (n - len(texts)) // (len(rw.demo.TASKS) - i)
        while want > 0:
            try:
                texts += [e.text for e in rw.demo.dataset(task, want, seed=11)]
                break
            except ValueError:  # fewer distinct held-out texts than asked for
                want = int(want * 0.8)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", choices=["demo", "smollm2"])
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--task", nargs="*", default=["glue_sst2"])
    parser.add_argument("--regression", default="world_latitude", help="a continuous task, or '' for none")
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--n-regression", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fit.logistic(torch.randn(8, 2), torch.arange(8) % 2, 2)  # torch.optim's first step imports for seconds
    if args.model == "demo":
        model = rw.demo_model()
        texts = demo_texts(args.n or 2000)
        lengths = sorted(len(t.split()) for t in texts)
        median = lengths[len(lengths) // 2]
        data = rw.datasets.from_pairs([(t, "long" if len(t.split()) > median else "short") for t in texts], "length")
        run(model, data, list(range(model.n_layers)), 1, "demo model")
        return
    start = time.perf_counter()
    model = rw.load(rw.demo.smollm2_gguf())
    print(f"SmolLM2-135M loaded in {time.perf_counter() - start:.0f} s")
    layers = sorted({*range(0, model.n_layers, args.every), model.n_layers - 1})
    for task in args.task:
        data = rw.datasets.load(task).sample(args.n or 600, seed=0)  # the OOD variant, if any, comes along
        run(model, data, layers, model.n_layers // 2, "SmolLM2-135M")
    if args.regression:
        regression(model, rw.datasets.load(args.regression).sample(args.n_regression, seed=0), layers)


if __name__ == "__main__":
    main()
