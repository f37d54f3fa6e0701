"""Workshops 6-8's checks (repwidget.demo.exercises_advanced): right answers pass, wrong and malformed ones fail with
a hint, each right answer found independently of the checker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.demo import exercises_advanced as checks
from repwidget.demo.digits import digit_cnn, normalise


@pytest.fixture(scope="module")
def transcoders():
    return rw.demo.transcoders()


def test_the_key_side_check_wants_the_previous_token_head(demo, transcoders):
    # independently of QK attribution: the head that puts most attention on the previous token
    run = demo.run(checks.repeated_tokens(seed=3, length=8))
    own = torch.stack([run[f"blocks.{layer}.attn.hook_pattern"] for layer in range(demo.n_layers)])
    previous = own.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)[0]  # layer 0's heads
    best = (0, int(previous.argmax()))
    assert checks.check_key_side_head(demo, transcoders, best)
    other = checks.check_key_side_head(demo, transcoders, (0, (best[1] + 1) % demo.n_heads))
    assert not other and "not yet" in repr(other)
    for bad in (None, (1, 0), (0, 9)):
        assert not checks.check_key_side_head(demo, transcoders, bad)


def test_the_steering_check_weighs_flips_against_the_loss(demo):
    directions = rw.train_probes(demo, checks.sentiment_examples(120), kind="mean_diff", control=False)
    texts = [text for text, _ in checks.sentiment_examples(24, seed=9)]
    assert checks.check_steering_budget(demo, directions.steering(3, toward="negative", strength=0.75), texts)
    costly = checks.check_steering_budget(demo, directions.steering(2, toward="negative", strength=2.0), texts)
    assert not costly and "loss rises" in repr(costly)
    weak = checks.check_steering_budget(demo, directions.steering(3, toward="negative", strength=0.1), texts)
    assert not weak and "push harder" in repr(weak)
    assert "rw.Steer" in repr(checks.check_steering_budget(demo, None, texts))


def test_the_tcav_check_takes_another_digit_that_reads_as_a_seven():
    cnn = rw.Model(digit_cnn(), input_shape=(1, 28, 28), preprocess=lambda im: normalise(np.asarray(im)[None]))
    assert checks.check_tcav_concept(cnn, 1)  # a one is a seven's stroke
    assert not checks.check_tcav_concept(cnn, 0, draws=1)
    assert "too easy" in repr(checks.check_tcav_concept(cnn, 7))
    assert not checks.check_tcav_concept(cnn, None) and not checks.check_tcav_concept(cnn, True)
