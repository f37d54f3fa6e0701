"""Probe benchmark: repwidget's probes against scikit-learn's LogisticRegression on the same activations.

    OMP_NUM_THREADS=1 python bench/bench_probes.py

1. Timing at scale: 10,000 examples x 12 layers x d_model 768 (the shape of GPT-2 small), float32
   activations with a planted binary concept whose strength grows with depth (Gaussian noise plus
   a label-dependent shift along a random direction), so accuracy varies by layer. Both fit a
   standardised, L2-regularised (C = 1) logistic regression per layer on the same 75% split and
   score the same 25%.
2. The same shape with 4 classes (3 layers), each class shifted along its own random direction: the multinomial fit.
3. Real activations: the demo model's sentiment task (rw.demo.dataset("sentiment", 1000)), every
   layer, read at the last token.

Results: ``docs/bench_probes.md``.
"""

from __future__ import annotations

import time

import torch

import repwidget as rw

#: each side is timed this many times, the fastest kept
REPEATS = 3


def sklearn_probes(acts: torch.Tensor, y: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> list[float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    out = []
    for i in range(acts.shape[1]):
        x = acts[:, i].numpy()
        scaler = StandardScaler().fit(x[train])
        clf = LogisticRegression(C=1.0, max_iter=100).fit(scaler.transform(x[train]), y[train].numpy())
        out.append(float((clf.predict(scaler.transform(x[test])) == y[test].numpy()).mean()))
    return out


def best_of(work, repeats: int = REPEATS):
    """The fastest of ``repeats`` runs of ``work()`` (seconds) and its result: the machine is shared, so the
    fastest run is the one least slowed by other jobs."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def compare(name: str, acts: torch.Tensor, y: torch.Tensor, classes: list[str]) -> None:
    n, layers = acts.shape[0], list(range(acts.shape[1]))
    ours_s, ours = best_of(lambda: rw.probes.fit_probes(acts, y, classes, layers, control=False))  # no control task
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))  # the split fit_probes uses
    n_test = max(len(classes), round(n * 0.25))
    test, train = order[:n_test], order[n_test:]
    theirs_s, theirs = best_of(lambda: sklearn_probes(acts, y, train.numpy(), test.numpy()))
    worst = max(abs(a - b) for a, b in zip(ours.accuracy, theirs, strict=True))
    print(f"\n### {name}: {n} examples, {len(layers)} layers, d {acts.shape[-1]}\n")
    print(f"| | all layers, s (fastest of {REPEATS}) | accuracy by layer |")
    print("|---|---:|---|")
    print(f"| repwidget fit_probes | {ours_s:.2f} | {' '.join(f'{a:.3f}' for a in ours.accuracy)} |")
    print(f"| scikit-learn LogisticRegression | {theirs_s:.2f} | {' '.join(f'{a:.3f}' for a in theirs)} |")
    print(
        f"\ntime ratio repwidget / scikit-learn: {ours_s / theirs_s:.2f}; "
        f"largest accuracy gap: {100 * worst:.1f} points"
    )


def main() -> None:
    torch.set_num_threads(1)  # one thread each (set OMP_NUM_THREADS=1 too, for scikit-learn's BLAS)
    g = torch.Generator().manual_seed(0)
    n, layers, d = 10_000, 12, 768
    y = torch.randint(0, 2, (n,), generator=g)
    direction = torch.randn(d, generator=g)
    direction /= direction.norm()
    strength = torch.linspace(0.02, 1.0, layers)
    acts = torch.randn(n, layers, d, generator=g) + (2 * y - 1)[:, None, None] * strength[None, :, None] * direction
    compare("synthetic, GPT-2-small shape", acts.float(), y, ["a", "b"])

    classes, layers = ["a", "b", "c", "d"], 3  # more than two classes: the multinomial fit, one direction per class
    y4 = torch.randint(0, len(classes), (n,), generator=g)
    directions = torch.randn(len(classes), d, generator=g)
    directions /= directions.norm(dim=1, keepdim=True)
    shift = torch.linspace(0.1, 0.6, layers)[None, :, None] * directions[y4][:, None, :]
    compare("synthetic, 4 classes", torch.randn(n, layers, d, generator=g) + shift, y4, classes)

    model = rw.demo_model()
    examples = rw.demo.dataset("sentiment", 1000)
    real = rw.probes.read_activations(model, [e.text for e in examples], range(model.n_layers), "resid_post")
    labels = torch.tensor([e.target == "positive" for e in examples]).long()
    compare("demo model, sentiment", real, labels, ["negative", "positive"])


if __name__ == "__main__":
    main()
