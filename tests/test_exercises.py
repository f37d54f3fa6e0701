"""The workshop notebooks' checks: right answers pass, wrong and malformed ones fail with a hint, nothing raises."""

from __future__ import annotations

import math

import pytest
import torch

import repwidget as rw
from repwidget.demo import exercises
from repwidget.demo.tasks import MONTHS


@pytest.fixture(scope="module")
def model():
    return rw.demo_model()


def _said(capsys) -> str:
    return capsys.readouterr().out


@pytest.mark.parametrize("bad", [None, (9, 0), (0,), "0.0", (True, 0), (0.0, 1)])
def test_a_malformed_head_answer_is_refused_with_the_expected_form(model, capsys, bad):
    assert exercises.check_previous_token_head(model, bad) is False
    assert "(layer, head)" in _said(capsys)


def test_the_previous_token_head_check_knows_the_head_by_its_attention(model, capsys):
    scores = exercises.head_scores(model)["previous_token"]
    # measured independently of the checker: the share of attention each head puts on position q-1
    run = model.run(exercises.repeated_tokens(3))
    p = torch.stack([run[f"blocks.{layer}.attn.hook_pattern"].float() for layer in range(model.n_layers)])
    own = p.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)  # [layer, head]
    best = divmod(int(own.argmax()), model.n_heads)
    assert divmod(int(scores.argmax()), model.n_heads) == best
    assert exercises.check_previous_token_head(model, best) is True
    other = (best[0], (best[1] + 1) % model.n_heads)
    assert exercises.check_previous_token_head(model, other) is False
    assert "not yet" in _said(capsys)


def test_the_induction_check_wants_the_head_whose_ablation_costs_most(model, capsys):
    clean = exercises.repeat_loss(model)
    assert clean < 0.05  # the demo model copies the repeat
    scores = exercises.head_scores(model)["induction"]
    candidates = [divmod(i, model.n_heads) for i in range(scores.numel()) if scores.flatten()[i] >= 0.3]
    costs = {h: exercises.repeat_loss(model, [rw.Ablate(h[0], head=h[1])]) - clean for h in candidates}
    best = max(costs, key=costs.get)
    assert exercises.check_induction_head(model, best) is True
    assert "nats" in _said(capsys)
    not_induction = min(
        ((la, he) for la in range(model.n_layers) for he in range(model.n_heads)), key=lambda h: scores[h]
    )
    assert exercises.check_induction_head(model, not_induction) is False
    assert "induction score" in _said(capsys)


def test_the_probe_layer_check_reads_the_accuracies(capsys):
    probes = rw.Probes(
        kind="logistic", site="resid_post", position=-1, layers=[0, 1, 2], classes=["a", "b"],
        accuracy=[0.7, 0.96, 0.99], baseline=0.5, weights={}, means={}, stds={}, d_model=4,
    )  # fmt: skip
    assert exercises.check_probe_layer(probes, 1) is True
    assert exercises.check_probe_layer(probes, 2) is False
    assert exercises.check_probe_layer(probes, None) is False
    assert "layer number" in _said(capsys)


def test_the_steering_check_counts_flipped_verdicts(model, capsys):
    examples = exercises.sentiment_examples(80)
    directions = rw.train_probes(model, examples, kind="mean_diff")
    strong = directions.steering(1, toward="negative", strength=3.0)
    assert exercises.verdict_flips(model, strong) >= 0.8
    assert exercises.check_steering(model, strong) is True
    assert exercises.check_steering(model, directions.steering(1, toward="negative", strength=0.0)) is False
    assert exercises.check_steering(model, None) is False
    assert "probes.steering" in _said(capsys)


def test_the_circle_check_wants_calendar_order():
    t = torch.arange(12) * 2 * math.pi / 12
    circle = torch.stack([t.cos(), t.sin()], 1)
    assert exercises.check_circle(circle, MONTHS) is True
    assert exercises.check_circle(circle.flip(0), MONTHS) is True  # the other way round
    swapped = circle.clone()
    swapped[[3, 4]] = swapped[[4, 3]]
    assert exercises.check_circle(swapped, MONTHS) is False
    assert exercises.check_circle(None, MONTHS) is False
    assert exercises.check_circle(circle[:5], MONTHS) is False


def test_the_day_feature_check_uses_the_sae(model, capsys):
    sae = rw.demo.demo_sae()
    best = exercises.day_features(model, sae)
    assert exercises.check_day_feature(model, sae, best[0]) is True
    run = model.run("two days after monday is", capture=[sae.hook])
    acts = sae.encode(run[sae.hook].float())
    assert acts[run.tokens.index("monday"), best[0]] > 0  # it fires on the day
    assert exercises.check_day_feature(model, sae, sae.d_sae) is False
    assert "feature index" in _said(capsys)
