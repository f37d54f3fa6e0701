"""Steering judged over a dataset (rw.steering.evaluate): equal to a hand loop of single runs (loss from the logits,
the probe's verdict from its own predict), a zero-scale steer changes nothing, and a probe's steer flips verdicts."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import repwidget as rw
from repwidget.demo import tasks


@pytest.fixture(scope="module")
def probes(demo):
    return rw.train_probes(demo, tasks.dataset("sentiment", 80), layers=[1, 3], kind="mean_diff", control=False)


def _hand(model, probes, steer, texts, layer):
    """Each text run alone, clean and steered: its mean next-token loss (cross-entropy of the logits, by hand) and
    the probe's verdict at ``layer`` of its last token."""
    hook = f"blocks.{layer}.hook_resid_post"
    out = []
    for text in texts:
        row = []
        for run in (model.run(text, capture=[hook]), model.run(text, steer, capture=[hook])):
            logits, ids = run.logits.float(), torch.tensor(run.token_ids)
            loss = float(torch.nn.functional.cross_entropy(logits[:-1], ids[1:]))
            row += [loss, probes.predict(run[hook][-1][None], layer)[0]]
        out.append(row)
    return out


def test_evaluate_equals_a_hand_loop_of_single_runs(demo, probes):
    held_out = tasks.dataset("sentiment", 24, seed=7)
    texts, labels = [e.text for e in held_out], [e.target for e in held_out]
    steer = probes.steering(1, toward="negative", strength=4.0)
    ev = rw.steering.evaluate(demo, steer, texts, probe=probes, labels=labels, toward="negative", batch_size=10)
    hand = _hand(demo, probes, steer, texts, 3)
    for effect, (clean_loss, clean_verdict, loss, verdict) in zip(ev.texts, hand, strict=True):
        assert effect.clean_loss == pytest.approx(clean_loss, abs=1e-4) and effect.loss == pytest.approx(loss, abs=1e-4)
        assert (effect.clean_verdict, effect.verdict) == (clean_verdict, verdict)
    flips = sum(c != "negative" and v == "negative" for _, c, _, v in hand) / len(hand)
    assert ev.flipped == flips > 0.3  # the steer moves the probe's reading of positive reviews
    accuracy = sum(c == lab for (_, c, _, _), lab in zip(hand, labels, strict=True)) / len(hand)
    assert ev.accuracy[0] == accuracy and ev.accuracy[1] < accuracy
    assert ev.loss > ev.clean_loss and "SteeringEvaluation over 24 texts" in repr(ev)
    unnamed = rw.steering.evaluate(demo, steer, texts, probe=probes, batch_size=24)  # toward: where the steer went
    assert unnamed.toward == "negative" and unnamed.flipped == flips


def test_a_zero_scale_steer_changes_nothing_and_datasets_work_by_duck_typing(demo, probes):
    held_out = tasks.dataset("sentiment", 12, seed=8)
    data = type("Dataset", (), {"texts": [e.text for e in held_out], "labels": [e.target for e in held_out]})()
    steer = dataclasses.replace(probes.steering(1, toward="negative"), scale=0.0)
    ev = rw.steering.evaluate(demo, steer, data, probe=probes)
    assert ev.flipped == 0 and ev.target_rate[0] == ev.target_rate[1]
    for effect in ev.texts:
        assert effect.loss == pytest.approx(effect.clean_loss, abs=1e-6) and effect.verdict == effect.clean_verdict
    assert ev.accuracy[0] == ev.accuracy[1]
    no_probe = rw.steering.evaluate(demo, steer, data.texts[:3])
    with pytest.raises(ValueError, match="no probe was given"):
        _ = no_probe.flipped
    with pytest.raises(ValueError, match="labels must be one per text"):
        rw.steering.evaluate(demo, steer, data.texts, labels=["positive"])
    with pytest.raises(ValueError, match="toward must be one of"):
        rw.steering.evaluate(demo, steer, data.texts, probe=probes, toward="neutral")
