"""Sparse probing of a task of more than two classes: the units ranked by their largest one-vs-rest mean gap (as a
hand-written loop ranks them), one multinomial probe per k, its accuracy equal to scikit-learn's on the same
columns; and the fast logistic fit equal to scikit-learn's weights, for two classes and more."""

from __future__ import annotations

import numpy
import pytest
import torch

import repwidget as rw
from repwidget.demo import tasks
from repwidget.probes import fit

KS = (1, 4, 16, 64)


@pytest.fixture(scope="module")
def steps_task():
    """The demo's cycle prompts ("i think three days after thursday is") labelled by their step word: 5 classes."""
    examples = tasks.dataset("cycles", 160)
    step = {e.text: next(w for w in e.text.split() if w in tasks.STEPS) for e in examples}
    return rw.datasets.from_pairs([(text, label) for text, label in step.items()], name="steps")


def hand_ranking(x: torch.Tensor, labels: list[str]) -> list[int]:
    """Units by their largest |mean over one class - mean over the rest| (numpy, class by class), sorted by hand."""
    column_values = x.double().numpy()
    best = [0.0] * x.shape[1]
    for cls in sorted(set(labels)):
        inside = numpy.array([label == cls for label in labels])
        gaps = numpy.abs(column_values[inside].mean(0) - column_values[~inside].mean(0))
        best = [max(b, float(g)) for b, g in zip(best, gaps, strict=True)]
    return [unit for _, unit in sorted((-gap, unit) for unit, gap in enumerate(best))]


def test_multiclass_sparse_probes_rank_by_hand_and_equal_scikit_learn(demo, steps_task):
    linear = pytest.importorskip("sklearn.linear_model")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    assert len(steps_task.classes) == 5
    result = rw.probes.sparse_probing(demo, steps_task, layer=1, ks=KS, test=0.25, seed=0)
    test, train = rw.datasets.held_out(len(steps_task), 0.25, 0, least=5)
    neurons = rw.probes.read_activations(demo, steps_task.texts, [1], "mlp.hook_post")[:, 0]
    labels = [steps_task.labels[i] for i in train.tolist()]
    assert result.units(64) == hand_ranking(neurons[train], labels)[:64]
    y = torch.tensor([steps_task.classes.index(label) for label in steps_task.labels])
    for k, ours in zip(KS, result.accuracy, strict=True):
        columns = neurons[:, result.units(k)].numpy()
        scaler = preprocessing.StandardScaler().fit(columns[train])
        clf = linear.LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(columns[train]), y[train].numpy())
        theirs = float((clf.predict(scaler.transform(columns[test])) == y[test].numpy()).mean())
        assert abs(ours - theirs) <= 0.005, (k, ours, theirs)
    assert result.accuracy[-1] > 3 * result.baseline and result.dense > result.accuracy[0]
    assert result.classes == steps_task.classes and result.baseline == pytest.approx(
        float((y[test] == torch.bincount(y[train], minlength=5).argmax()).float().mean())
    )


@pytest.mark.parametrize("n_classes", [2, 4])
def test_the_logistic_fit_equals_scikit_learns_weights(n_classes):
    linear = pytest.importorskip("sklearn.linear_model")
    g = torch.Generator().manual_seed(n_classes)
    y = torch.randint(0, n_classes, (600,), generator=g)
    x = torch.randn(600, 20, generator=g) + torch.nn.functional.one_hot(y, 20).float() * 1.5 + 3.0
    mean, std = fit.standardise(x)
    torch.testing.assert_close(std, x.double().std(0).float(), rtol=1e-5, atol=1e-6)
    w = fit.logistic(x, y, n_classes, l2=2.0, mean=mean, std=std)  # standardised inside, never built
    torch.testing.assert_close(w, fit.logistic((x - mean) / std, y, n_classes, l2=2.0), rtol=1e-4, atol=1e-4)
    clf = linear.LogisticRegression(C=0.5, tol=1e-8, max_iter=5000).fit(((x - mean) / std).numpy(), y.numpy())
    if n_classes == 2:  # scikit-learn's one vector is the class-1 minus class-0 column
        coef, bias = w[:-1, 1] - w[:-1, 0], w[-1, 1] - w[-1, 0]
        torch.testing.assert_close(coef, torch.tensor(clf.coef_[0]).float(), rtol=2e-3, atol=2e-3)
    else:  # scikit-learn's multinomial weights are centred over the classes, ours too (zero start, same gradient)
        coef, bias = w[:-1].T, w[-1]
        torch.testing.assert_close(coef, torch.tensor(clf.coef_).float(), rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(bias.reshape(-1), torch.tensor(clf.intercept_).float().reshape(-1), rtol=2e-3, atol=2e-3)
