"""rw.datasets (sae-probes' tasks, CSV files, pairs; splits) and probes at dataset scale: test and OOD accuracy
against the plain HF forward pass, accuracy equal to scikit-learn's, ridge R^2 equal to numpy's least squares,
sparse probing's ranking equal to a hand-written one."""

import csv
import io
import os
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.datasets import catalog
from repwidget.probes import fit


def require_sae_probes():
    """Skip (locally) or fail (CI) where sae-probes is not installed, like SmolLM2's tests."""
    try:
        return catalog.data_dir()
    except ModuleNotFoundError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(error))


def demo_texts(n_per_task: int = 30) -> list[str]:
    return [e.text for task in rw.demo.TASKS for e in rw.demo.dataset(task, n_per_task, seed=5)]


@pytest.fixture(scope="module")
def plain_hf():
    """The demo model loaded by transformers alone: the independent reference (its own copy, so the hooks that
    ``output_hidden_states`` leaves behind touch no shared model)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(rw.demo.MODEL_DIR).eval()


def hf_resid_post(hf, model, texts, layer: int) -> torch.Tensor:
    """The last token's residual stream after block ``layer`` from the plain HF forward pass, one text at a time
    (GPT-2's hidden_states[layer + 1], before the final norm for layer < n_layers - 1)."""
    rows = []
    with torch.no_grad():
        for text in texts:
            out = hf(torch.tensor([model.to_ids(text)]), output_hidden_states=True)
            rows.append(out.hidden_states[layer + 1][0, -1].float())
    return torch.stack(rows)


# -- the catalogue ------------------------------------------------------------------------------
def test_a_shipped_task_loads_with_its_rows_labels_and_ood_variant():
    data = require_sae_probes()
    sst2 = rw.datasets.load("glue_sst2")
    with (data / "cleaned_data" / "92_glue_sst2.csv.zst").open("rb") as file:
        import zstandard

        rows = list(csv.reader(io.StringIO(zstandard.ZstdDecompressor().stream_reader(file).read().decode())))
    assert len(sst2) == len(rows) - 1 == 5000 and sst2.kind == "binary" and sst2.classes == ["0", "1"]
    assert sst2.texts[0] == rows[1][0] and sst2.labels[-1] == rows[-1][-1] and sst2.ood is None
    assert rw.datasets.load("92_glue_sst2").texts == sst2.texts  # the numbered file name works too

    tasks = {task.name: task for task in rw.datasets.list()}
    assert len(tasks) == 155 and {t.kind for t in tasks.values()} == {"binary", "multiclass", "continuous"}
    assert tasks["glue_sst2"].size == 5000 and tasks["glue_qnli"].has_ood and not tasks["glue_sst2"].has_ood
    assert all(t.kind == "continuous" for t in rw.datasets.list("continuous"))

    qnli = rw.datasets.load("glue_qnli")  # its OOD file spells the labels "1" / "not_entailment"
    assert len(qnli.ood) == 300 and qnli.ood.classes == qnli.classes == ["0", "1"]
    assert qnli.ood.labels.count("0") == qnli.ood.labels.count("1") == 150
    year = rw.datasets.load("hist_fig_birthyear")
    assert year.kind == "continuous" and all(isinstance(v, float) for v in year.labels[:10])


def test_unknown_names_and_a_missing_package_are_one_line_errors(monkeypatch):
    require_sae_probes()
    with pytest.raises(ValueError, match="close names: glue_sst2"):
        rw.datasets.load("sst2")
    with pytest.raises(TypeError, match="string"):
        rw.datasets.load(92)
    with pytest.raises(ValueError, match="kind must be one of"):
        rw.datasets.list("ordinal")
    monkeypatch.setattr(catalog.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps sae-probes zstandard"):
        catalog.data_dir()


# -- datasets of your own, splits ------------------------------------------------------------------
def test_csv_and_pairs_infer_their_kind_and_bad_columns_are_named(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('review,stars,author\n"good, really",5,a\nbad,1,b\n"fine\nenough",3,a\n', encoding="utf-8")
    reviews = rw.datasets.from_csv(path, text="review", label="stars", group="author")
    assert reviews.texts == ["good, really", "bad", "fine\nenough"] and reviews.groups == ["a", "b", "a"]
    assert reviews.kind == "multiclass" and reviews.classes == ["1", "3", "5"]
    assert rw.datasets.from_csv(path, text="review", label="stars", kind="continuous").labels == [5.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="no column 'text'; its columns are review, stars, author"):
        rw.datasets.from_csv(path, text="text", label="stars")
    assert rw.datasets.from_pairs([("a", 0.5), ("b", 1.25), ("c", 2.0)]).kind == "continuous"
    assert rw.datasets.from_pairs([("a", "x"), ("b", "y")]).kind == "binary"
    with pytest.raises(ValueError, match=r"pair 1 .* must be a \(text, label\) pair"):
        rw.datasets.from_pairs([("a", "x"), "b"])


def test_splits_are_seeded_and_group_disjoint():
    texts = [f"text {i}" for i in range(200)]
    groups = [i % 17 for i in range(200)]
    data = rw.datasets.from_pairs([(t, i % 2) for i, t in enumerate(texts)], groups=groups)
    train, test = data.split(test=0.2, seed=3)
    again, _ = data.split(test=0.2, seed=3)
    other, _ = data.split(test=0.2, seed=4)
    assert train.texts == again.texts and train.texts != other.texts
    assert sorted(train.texts + test.texts) == sorted(texts)
    assert not set(train.groups) & set(test.groups) and 0.2 <= len(test) / len(data) < 0.3
    by_last_digit, held = data.split(group_by=lambda text: text[-1])
    assert not {t[-1] for t in by_last_digit.texts} & {t[-1] for t in held.texts}
    plain_train, plain_test = replace(data, groups=None).split(test=0.25, seed=0)
    assert len(plain_test) == 50 and not set(plain_train.texts) & set(plain_test.texts)
    with pytest.raises(ValueError, match="between 0 and 1"):
        data.split(test=1.5)


# -- probes at dataset scale --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def length_task():
    """Demo texts labelled by whether they are longer than the median: readable, but not perfectly."""
    texts = demo_texts(24)
    lengths = [len(t.split()) for t in texts]
    median = sorted(lengths)[len(lengths) // 2]
    return rw.datasets.from_pairs([(t, "long" if n > median else "short") for t, n in zip(texts, lengths, strict=True)])


def test_probe_accuracy_equals_scikit_learn_and_ood_accuracy_reads_the_ood_texts(demo, plain_hf, length_task):
    sklearn = pytest.importorskip("sklearn.linear_model")
    acts = rw.probes.read_activations(demo, length_task.texts, [1, 2], "resid_post")
    reference = hf_resid_post(plain_hf, demo, length_task.texts[::6], 2)  # the batched read equals one-by-one HF
    torch.testing.assert_close(acts[::6, 1], reference, atol=1e-4, rtol=1e-4)
    y = torch.tensor([length_task.classes.index(label) for label in length_task.labels])
    probes = rw.probes.fit_probes(acts, y, length_task.classes, [1, 2], test_fraction=0.3, seed=1, control=False)
    test, train = rw.datasets.held_out(len(y), 0.3, 1, least=2)
    ours_s = theirs_s = 0.0
    for i in range(2):
        x = acts[:, i].double().numpy()
        mean, std = x[train].mean(0), x[train].std(0, ddof=1).clip(1e-6)
        start = time.perf_counter()
        reference = sklearn.LogisticRegression(C=1.0, max_iter=1000, tol=1e-8).fit((x[train] - mean) / std, y[train])
        theirs_s += time.perf_counter() - start
        expected = float((reference.predict((x[test] - mean) / std) == y[test].numpy()).mean())
        assert abs(probes.accuracy[i] - expected) <= 0.005, (i, probes.accuracy[i], expected)
        start = time.perf_counter()
        fit.logistic(torch.from_numpy((x[train] - mean) / std).float(), y[train], 2)
        ours_s += time.perf_counter() - start
    print(f"accuracy {probes.accuracy}; fit {ours_s * 1e3:.0f} ms here, {theirs_s * 1e3:.0f} ms scikit-learn")
    assert 0.6 < max(probes.accuracy) < 1.0  # neither chance nor saturated: the comparison means something

    # OOD: other texts with their own labels, scored by the probe on the plain HF pass's activations
    ood_texts = demo_texts(8)[::-1]
    ood = rw.datasets.from_pairs([(t, "long" if len(t.split()) > 9 else "short") for t in ood_texts], name="ood")
    task = replace(length_task, ood=ood)
    trained = rw.train_probes(demo, task, layers=[2], control=False)
    scores = trained.evaluate(demo, task.ood)
    reference = hf_resid_post(plain_hf, demo, ood.texts, 2)
    expected = [trained.classes[i] for i in trained.logits(reference, 2).argmax(-1).tolist()]
    assert scores == [pytest.approx(np.mean([a == b for a, b in zip(expected, ood.labels, strict=True)]), abs=1e-6)]
    with pytest.raises(ValueError, match="not one of these probes' classes"):
        trained.evaluate(demo, [("a b", "medium")])
    grouped = replace(length_task, groups=[len(t.split()) % 5 for t in length_task.texts])  # its groups held out
    assert rw.train_probes(demo, grouped, layers=[0], control=False).grouped


def test_regression_r2_equals_numpy_least_squares(demo):
    texts = demo_texts(20)
    target = [float(len(t.split())) + 0.5 * t.count("the") for t in texts]
    acts = rw.probes.read_activations(demo, texts, [0, 2], "resid_post")
    probes = rw.probes.fit_regression(acts, torch.tensor(target), [0, 2], l2=3.0, test_fraction=0.25, seed=2)
    test, train = rw.datasets.held_out(len(texts), 0.25, 2)
    y = np.array(target)
    for i in range(2):
        x = acts[:, i].double().numpy()
        z = (x - x[train].mean(0)) / x[train].std(0, ddof=1).clip(1e-6)
        d = z.shape[1]  # ridge as least squares on rows augmented with sqrt(l2) I (the bias unpenalised)
        a = np.vstack(
            [np.hstack([z[train], np.ones((len(train), 1))]), np.hstack([np.sqrt(3.0) * np.eye(d), np.zeros((d, 1))])]
        )
        b = np.concatenate([y[train], np.zeros(d)])
        w = np.linalg.lstsq(a, b, rcond=None)[0]
        predicted = z[test] @ w[:-1] + w[-1]
        r2 = 1 - ((predicted - y[test]) ** 2).sum() / ((y[test] - y[test].mean()) ** 2).sum()
        assert probes.r2[i] == pytest.approx(r2, abs=1e-4)
    assert max(probes.r2) > 0.5 and max(probes.control) < max(probes.r2)
    assert probes.selectivity == [a - c for a, c in zip(probes.r2, probes.control, strict=True)]
    data = rw.datasets.from_pairs(list(zip(texts, target, strict=True)))
    trained = rw.probes.train_regression(demo, data, layers=[2], l2=3.0)
    assert trained.evaluate(demo, data) == [
        pytest.approx(fit.r_squared(trained.predict(acts[:, 1], 2), torch.tensor(target)), abs=1e-6)
    ]
    with pytest.raises(ValueError, match="continuous target; train regression probes"):
        rw.train_probes(demo, data)


# -- sparse probing ----------------------------------------------------------------------------------
def hand_ranking(x: torch.Tensor, positive: list[bool]) -> list[int]:
    """Units by |mean over positives - mean over negatives|, computed with plain loops."""
    gaps = []
    for unit in range(x.shape[1]):
        pos = [float(x[r, unit]) for r in range(len(positive)) if positive[r]]
        neg = [float(x[r, unit]) for r in range(len(positive)) if not positive[r]]
        gaps.append((-abs(sum(pos) / len(pos) - sum(neg) / len(neg)), unit))
    return [unit for _, unit in sorted(gaps)]


def test_sparse_probing_picks_the_hand_ranked_units_and_reads_the_sae(demo, plain_hf, length_task):
    result = rw.probes.sparse_probing(demo, length_task, layer=1, ks=(2, 16), test=0.25, seed=0)
    _, train = rw.datasets.held_out(len(length_task), 0.25, 0, least=2)
    neurons = rw.probes.read_activations(demo, length_task.texts, [1], "mlp.hook_post")[:, 0]
    positive = [length_task.labels[i] == "short" for i in train.tolist()]  # classes sorted: "short" is index 1
    expected = hand_ranking(neurons[train], positive)
    assert result.units(16) == expected[:16] and result.hook == "blocks.1.mlp.hook_post"
    assert result.ks == [2, 16] and result.n_units == neurons.shape[1]
    assert result.accuracy[-1] >= result.accuracy[0] - 0.05 and 0.5 < result.dense <= 1

    sae = rw.demo.demo_sae()
    features = rw.probes.sparse_probing(demo, length_task, over="sae", sae=sae, ks=(8,), test=0.25, seed=0)
    with torch.no_grad():
        encoded = sae.encode(hf_resid_post(plain_hf, demo, length_task.texts, sae.layer - 1)).float()
    assert features.units(8) == hand_ranking(encoded[train], positive)[:8] and features.n_units == sae.d_sae
    chart = features.chart().to_dict()
    assert "sparse probing over SAE features" in str(chart) and len(chart["layer"]) == 3 and features.ks == [8]
    with pytest.raises(ValueError, match='over="sae" needs sae='):
        rw.probes.sparse_probing(demo, length_task, over="sae")
    with pytest.raises(ValueError, match=r"two classes or more.*train_regression"):
        rw.probes.sparse_probing(demo, [("a", 0.5), ("b", 1.5), ("c", 2.25)], layer=0)  # continuous
