"""The workshop notebooks' checks: right answers pass, wrong and malformed ones fail with a hint, nothing raises."""

from __future__ import annotations

import math

import pytest
import torch

import repwidget as rw
from repwidget.demo import exercises
from repwidget.demo.tasks import MONTHS


@pytest.fixture(scope="module")
def model(demo):
    return demo


@pytest.mark.parametrize("bad", [None, (9, 0), (0,), "0.0", (True, 0), (0.0, 1)])
def test_a_malformed_head_answer_is_refused_with_the_expected_form(model, bad):
    verdict = exercises.check_previous_token_head(model, bad)
    assert not verdict and "(layer, head)" in repr(verdict)


def test_the_previous_token_head_check_knows_the_head_by_its_attention(model):
    scores = exercises.head_scores(model)["previous_token"]
    # measured independently of the checker: the share of attention each head puts on position q-1
    run = model.run(exercises.repeated_tokens(3))
    p = torch.stack([run[f"blocks.{layer}.attn.hook_pattern"].float() for layer in range(model.n_layers)])
    own = p.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)  # [layer, head]
    best = divmod(int(own.argmax()), model.n_heads)
    assert divmod(int(scores.argmax()), model.n_heads) == best
    assert exercises.check_previous_token_head(model, best)
    other = (best[0], (best[1] + 1) % model.n_heads)
    verdict = exercises.check_previous_token_head(model, other)
    assert not verdict and "not yet" in repr(verdict)


def test_the_induction_check_wants_a_smallest_set_that_breaks_copying(model):
    heads = exercises.induction_heads(model)
    assert heads and all(layer >= 1 for layer, _ in heads)  # induction needs a layer before it
    clean = exercises.repeat_loss(model)
    assert clean < 0.25  # the demo model copies the repeat
    # re-running saved clean runs from the ablated layer gives what full runs with the ablation give
    ablate = [rw.Ablate(*heads[0][:1], head=heads[0][1])]
    reused = exercises.repeat_loss(model, ablate, runs=exercises.repeat_runs(model))
    assert reused == pytest.approx(exercises.repeat_loss(model, ablate), abs=1e-5)
    full = exercises.logit_difference(model, ablate, n=10)
    reused = exercises.logit_difference(model, ablate, runs=exercises.ioi_runs(model, 10))
    assert reused == pytest.approx(full, abs=1e-4)

    def cost(subset):
        return exercises.repeat_loss(model, [rw.Ablate(la, head=he) for la, he in subset]) - clean

    assert cost(heads) > 1.0
    decisive = [h for h in heads if cost([h]) > 1.0]
    if decisive:  # one head is enough: it is a smallest set, and anything bigger is not
        assert exercises.check_induction_set(model, [decisive[0]])
        bigger = exercises.check_induction_set(model, [decisive[0], *[h for h in heads if h != decisive[0]][:1]])
        assert not bigger or len(heads) == 1
    else:  # redundant heads: the whole set is smallest when no head can be spared
        spare = any(cost([h for h in heads if h != drop]) > 1.0 for drop in heads)
        assert bool(exercises.check_induction_set(model, heads)) == (not spare)
    verdict = exercises.check_induction_set(model, [(0, 0)])
    assert not verdict and "not induction heads" in repr(verdict)
    assert not exercises.check_induction_set(model, None)


def test_the_probe_layer_check_reads_the_accuracies():
    probes = rw.Probes(
        kind="logistic", site="resid_post", position=-1, layers=[0, 1, 2], classes=["a", "b"],
        accuracy=[0.7, 0.96, 0.99], baseline=0.5, weights={}, means={}, stds={}, d_model=4,
    )  # fmt: skip
    assert exercises.check_probe_layer(probes, 1)
    assert not exercises.check_probe_layer(probes, 2)
    verdict = exercises.check_probe_layer(probes, None)
    assert not verdict and "layer number" in repr(verdict)


def test_the_steering_check_counts_flipped_verdicts(model):
    examples = exercises.sentiment_examples(80)
    directions = rw.train_probes(model, examples, kind="mean_diff")
    strong = directions.steering(1, toward="negative", strength=3.0)
    assert exercises.verdict_flips(model, strong) >= 0.8
    assert exercises.check_steering(model, strong)
    assert not exercises.check_steering(model, directions.steering(1, toward="negative", strength=0.0))
    verdict = exercises.check_steering(model, None)
    assert not verdict and "probes.steering" in repr(verdict)


def test_the_circle_check_wants_calendar_order():
    t = torch.arange(12) * 2 * math.pi / 12
    circle = torch.stack([t.cos(), t.sin()], 1)
    assert exercises.check_circle(circle, MONTHS)
    assert exercises.check_circle(circle.flip(0), MONTHS)  # the other way round
    swapped = circle.clone()
    swapped[[3, 4]] = swapped[[4, 3]]
    assert not exercises.check_circle(swapped, MONTHS)
    assert not exercises.check_circle(None, MONTHS)
    assert not exercises.check_circle(circle[:5], MONTHS)


def test_the_day_feature_check_wants_a_feature_on_every_day(model):
    sae = rw.demo.demo_sae()
    found = exercises.day_features(model, sae)
    assert found, "the demo SAE has a feature on every day token"
    feature = next(iter(found))
    assert exercises.check_day_feature(model, sae, feature)
    for day in ("monday", "thursday", "sunday"):  # measured here on other prompts than the checker's
        run = model.run(f"so three days after {day} is", capture=[sae.hook])
        assert sae.encode(run[sae.hook].float())[run.tokens.index(day), feature] > 0
    quiet = int(sae.encode(model.run("two days after monday is", capture=[sae.hook])[sae.hook].float())[4].argmin())
    assert not exercises.check_day_feature(model, sae, quiet)
    verdict = exercises.check_day_feature(model, sae, sae.d_sae)
    assert not verdict and "feature index" in repr(verdict)


def test_the_similar_layer_check_measures_cka_on_the_models(model):
    texts = [e.text for e in rw.demo.dataset("sentiment", 12, seed=1)]
    # a model against itself: its last layer is most like itself (CKA 1), and its first layer is far from it
    right = exercises.check_similar_layer(model, model, texts, model.n_layers - 1)
    assert right and "CKA with the last layer is 1.00" in repr(right)
    first = rw.analyses.layer_similarity(model, texts, unit="text")[0, -1]
    assert first < 0.98  # measured apart from the check: layer 0 is more than the tolerance away
    assert not exercises.check_similar_layer(model, model, texts, 0)
    for bad in (None, model.n_layers, -1, True, "3"):
        verdict = exercises.check_similar_layer(model, model, texts, bad)
        assert not verdict and f"0..{model.n_layers - 1}" in repr(verdict)
    missing = exercises.check_similar_layer(model, None, texts, None)
    assert not missing and rw.demo.SMOLLM2_INSTALL in repr(missing) and "\u2718 not yet" in repr(missing)
