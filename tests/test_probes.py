"""Probes on the demo model: accuracy, kinds, directions that steer, errors, files, the chart."""

import inspect

import pytest
import torch

import repwidget as rw
from repwidget.demo import dataset
from repwidget.demo.evaluate import prompt


@pytest.fixture(scope="module")
def sentiment(demo):
    return rw.train_probes(demo, dataset("sentiment", 400))


def test_a_linear_probe_reads_sentiment(sentiment):
    print("sentiment probe accuracy by layer:", [round(a, 3) for a in sentiment.accuracy])
    assert sentiment.classes == ["negative", "positive"] and sentiment.layers == [0, 1, 2, 3]
    assert max(sentiment.accuracy) >= 0.95 and sentiment.baseline < 0.7
    best = sentiment.layers.index(sentiment.best_layer)
    assert sentiment.accuracy[best] >= max(sentiment.accuracy) - sentiment.tolerance
    assert all(a < max(sentiment.accuracy) - sentiment.tolerance for a in sentiment.accuracy[:best])
    assert len(sentiment.control) == 4 and max(sentiment.control) < 0.8  # shuffled labels: near chance


def test_every_kind_trains_and_mean_diff_is_the_difference_of_means(demo):
    examples = dataset("sentiment", 200)
    acts = rw.probes.read_activations(demo, [e.text for e in examples], [2], "resid_post")[:, 0]
    labels = torch.tensor([e.target == "positive" for e in examples])
    sparse = rw.train_probes(demo, examples, layers=[2], kind="sparse", k=8)
    assert sparse.neurons[2].shape == (8,) and sparse.accuracy[0] > sparse.baseline
    diff = rw.train_probes(demo, examples, layers=[2], kind="mean_diff", test_fraction=0.25)
    order = torch.randperm(200, generator=torch.Generator().manual_seed(0))[50:]  # the seeded training split
    train_acts, train_labels = acts[order], labels[order]
    expected = train_acts[train_labels].mean(0) - train_acts[~train_labels].mean(0)
    torch.testing.assert_close(diff.direction(2), expected / expected.norm(), atol=1e-5, rtol=1e-4)
    agreement = rw.train_probes(demo, dataset("agreement", 200), layers=[1], position="mean")
    assert agreement.classes == ["are", "is", "was", "were"] and agreement.accuracy[0] > agreement.baseline


def test_steering_along_the_probe_direction_flips_the_models_verdict(demo):
    # the probe reads where the model gives its verdict: the last token of "review : ... . verdict :"
    # the difference of class means is the concept direction one steers along
    examples = [(prompt(e, "sentiment"), e.target) for e in dataset("sentiment", 300)]
    probes = rw.train_probes(demo, examples, kind="mean_diff")
    ids = demo.tokenizer.convert_tokens_to_ids(["negative", "positive"])
    examples = dataset("sentiment", 40, seed=5)  # not trained on (another seed's draw)
    for layer in (1, 2):  # after layer 0 (whose output the verdict does not read from this position)
        flipped = 0
        for example in examples:
            other = "negative" if example.target == "positive" else "positive"
            run = demo.run(prompt(example, "sentiment"), probes.steering(layer, toward=other, strength=2.0))
            flipped += ["negative", "positive"][int(run.logits_at(-1)[ids].argmax())] == other
        print(f"steering at layer {layer} flipped {flipped} of {len(examples)} verdicts")
        assert flipped >= 0.8 * len(examples)
        weak = demo.run(prompt(examples[0], "sentiment"), probes.steering(layer, toward=examples[0].target))
        assert ["negative", "positive"][int(weak.logits_at(-1)[ids].argmax())] == examples[0].target


def test_bad_examples_are_clear_errors(demo):
    with pytest.raises(ValueError, match="a probe needs two classes"):
        rw.train_probes(demo, [("the food was good", "positive")] * 10)
    few = [("the food was good", "positive")] * 10 + [("the food was bad", "negative")] * 2
    with pytest.raises(ValueError, match=r"too few examples of \{'negative': 2\}"):
        rw.train_probes(demo, few)
    with pytest.raises(ValueError, match="3 texts but 2 labels"):
        rw.train_probes(demo, ["a", "b", "c"], labels=["x", "y"])
    with pytest.raises(ValueError, match="kind must be one of"):
        rw.train_probes(demo, few, kind="svm")
    with pytest.raises(ValueError, match="site must be one of"):
        rw.train_probes(demo, dataset("sentiment", 20), site="resid_middle")
    with pytest.raises(ValueError, match="pairs"):
        rw.train_probes(demo, ["just text"])


def test_probes_save_and_load(sentiment, tmp_path, demo):
    sentiment.save(tmp_path)
    again = rw.Probes.load(tmp_path)
    example = dataset("sentiment", 1, seed=9)[0]
    acts = demo.run(example.text)["blocks.2.hook_resid_post"]
    torch.testing.assert_close(again.logits(acts, 2), sentiment.logits(acts, 2))
    assert again.accuracy == sentiment.accuracy and again.classes == sentiment.classes
    assert (again.control, again.tolerance, again.grouped) == (sentiment.control, 0.01, False)
    assert again.predict(acts[-1:], 2) == [example.target]
    with pytest.raises(ValueError, match="no probe at layer 7"):
        again.direction(7)


def test_the_accuracy_chart_has_a_layer_selection(sentiment):
    spec = sentiment.chart().to_dict()
    names = [p["name"] for p in spec["params"]]
    assert names == ["layer", "current"] and spec["params"][0]["select"]["on"] == "click"  # click; ring
    points = next(layer for layer in spec["layer"] if layer.get("name") == "points")
    values = points.get("data", spec.get("data"))["values"]
    assert [v["accuracy"] for v in values] == sentiment.accuracy
    control = next(layer for layer in spec["layer"] if layer.get("name") == "control")
    assert [v["control"] for v in control["data"]["values"]] == sentiment.control


def _memorisable(n_groups=40, per_group=6, d=64, seed=0):
    """Each group has its own random activation and one label: a probe can memorise groups, but nothing about
    the label generalises to an unseen group."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_groups, d, generator=g)
    labels = torch.randint(0, 2, (n_groups,), generator=g)
    groups = torch.arange(n_groups).repeat_interleave(per_group)
    acts = centres[groups] + 0.1 * torch.randn(len(groups), d, generator=g)
    return acts[:, None], labels[groups], groups.tolist()


def test_group_held_out_splits_do_not_flatter():
    acts, y, groups = _memorisable()
    leaky = rw.probes.fit_probes(acts, y, ["a", "b"], [0])
    held = rw.probes.fit_probes(acts, y, ["a", "b"], [0], groups=groups)
    print("random split", leaky.accuracy, "groups held out", held.accuracy, "control", held.control)
    assert leaky.accuracy[0] > 0.95 and held.accuracy[0] < 0.75 and held.grouped and not leaky.grouped
    # the held-out examples share no group with the training ones, and about test_fraction are held out
    from repwidget.probes.probes import _split

    test, train = _split(y, 2, 0.25, 0, groups)
    assert not {groups[i] for i in test.tolist()} & {groups[i] for i in train.tolist()}
    assert 0.25 <= len(test) / len(y) < 0.3 and len(test) + len(train) == len(y)
    with pytest.raises(ValueError, match="3 groups for 240 examples"):
        rw.probes.fit_probes(acts, y, ["a", "b"], [0], groups=[1, 2, 3])
    with pytest.raises(ValueError, match="needs two or more"):
        rw.probes.fit_probes(acts, y, ["a", "b"], [0], groups=[0] * len(y))


def test_the_control_task_reads_shuffled_labels():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (300,), generator=g)
    acts = torch.randn(300, 2, 32, generator=g)
    acts[:, 1, 0] += 3 * (2 * y - 1)  # layer 1 holds the label along one direction, layer 0 nothing
    for kind in ("logistic", "sparse", "mean_diff"):
        probes = rw.probes.fit_probes(acts, y, ["a", "b"], [0, 1], kind=kind, k=4)
        assert probes.accuracy[1] > 0.9 and all(c < 0.65 for c in probes.control), (kind, probes.control)
        assert probes.selectivity[1] > 0.3 and probes.best_layer == 1
    assert rw.probes.fit_probes(acts, y, ["a", "b"], [0, 1], control=False).control == []
    with pytest.raises(ValueError, match="without a control task"):
        _ = rw.probes.fit_probes(acts, y, ["a", "b"], [0, 1], control=False).selectivity


def test_best_layer_is_the_first_within_the_tolerance():
    acts, y, _ = _memorisable()
    probes = rw.probes.fit_probes(acts.repeat(1, 4, 1), y, ["a", "b"], [0, 1, 2, 3])
    probes.accuracy = [0.5, 0.995, 1.0, 1.0]
    assert probes.best_layer == 1
    probes.tolerance = 0.0
    assert probes.best_layer == 2
    with pytest.raises(ValueError, match="tolerance must be a number"):
        rw.probes.fit_probes(acts, y, ["a", "b"], [0], tolerance=2)


def test_one_probe_config_serves_both_and_keywords_override_it():
    acts, y, groups = _memorisable()
    config = rw.probes.ProbeConfig(kind="sparse", k=4, groups=groups, control=False, seed=3)
    given = rw.probes.fit_probes(acts, y, ["a", "b"], [0], config, seed=5)
    spelled = rw.probes.fit_probes(acts, y, ["a", "b"], [0], kind="sparse", k=4, groups=groups, control=False, seed=5)
    assert given.kind == "sparse" and given.grouped and given.control == [] and len(given.neurons[0]) == 4
    assert given.accuracy == spelled.accuracy and torch.equal(given.weights[0], spelled.weights[0])
    assert given.accuracy != rw.probes.fit_probes(acts, y, ["a", "b"], [0], config).accuracy  # seed 3 splits apart
    assert "tolerance" in str(inspect.signature(rw.train_probes))  # help() lists the options
    with pytest.raises(TypeError, match=r"train_probes\(\) got an unexpected keyword argument 'layer'"):
        rw.train_probes(None, [("a", "x")], layer=2)
    with pytest.raises(TypeError, match="config must be a ProbeConfig"):
        rw.probes.fit_probes(acts, y, ["a", "b"], [0], "resid_post")
    with pytest.raises(ValueError, match="kind must be one of"):
        rw.probes.ProbeConfig(kind="svm")
