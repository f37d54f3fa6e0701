"""The projector's kernel half: PCA coordinates checked against numpy's SVD of the same tokens, colourings, limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.views.panels import projector
from repwidget.views.session import Session


@pytest.fixture(scope="module")
def demo():
    return rw.demo_model()


def _get(session, **args):
    (reply, _), *_ = session.handle({"type": "get", "id": 1, "what": "projector", **args})
    assert reply["type"] == "reply", reply
    return session.answer("projector", args)


def _same_up_to_sign(a: np.ndarray, b: np.ndarray) -> None:
    for axis in range(2):
        sign = np.sign((a[:, axis] * b[:, axis]).sum()) or 1.0
        np.testing.assert_allclose(a[:, axis], sign * b[:, axis], atol=2e-3, rtol=1e-3)


def test_points_are_the_pca_of_the_texts_tokens_and_the_prompt_goes_onto_the_same_axes(demo):
    examples = rw.demo.dataset("sentiment", 30)
    prompt = "review : the film was superb ."
    session = Session.of(demo, prompt, points=examples)
    assert "projector" in session.views and session.shape()["projector_colours"] == ["source", "position", "label"]
    assert "projector" not in Session.of(demo, prompt).views  # shown only with points=
    out = _get(session, layer=2, colour=0)
    # by hand: every token after <bos> of each text, one run each, PCA by numpy's SVD
    acts = np.concatenate([demo.run(e.text)["blocks.2.hook_resid_post"][1:].double().numpy() for e in examples])
    mean = acts.mean(0)
    _, _, vt = np.linalg.svd(acts - mean, full_matrices=False)
    n = out["n_prompt"]
    assert n == len(demo.to_ids(prompt)) and out["xy"].shape == (n + len(acts), 2)
    _same_up_to_sign(out["xy"][n:].numpy(), (acts - mean) @ vt[:2].T)
    clean = demo.run(prompt)["blocks.2.hook_resid_post"].double().numpy()
    got, expected = out["xy"][:n].numpy(), (clean - mean) @ vt[:2].T
    _same_up_to_sign(np.concatenate([out["xy"][n:].numpy(), got]), np.concatenate([(acts - mean) @ vt[:2].T, expected]))
    assert out["values"].tolist() == [0.0] * n + [1.0] * len(acts) and out["categories"] == ["prompt", "texts"]
    # which text and position each dataset point is, and its token
    first = demo.to_ids(examples[0].text)
    assert out["text"][: len(first) - 1].tolist() == [0] * (len(first) - 1)
    assert out["pos"][: len(first) - 1].tolist() == list(range(1, len(first)))
    assert out["ids"][: len(first) - 1].tolist() == first[1:]
    assert out["vocab"][str(first[1])] == demo.to_str_tokens([first[1]])[0]
    labels = _get(session, layer=2, colour=2)
    assert labels["categories"] == ["negative", "positive", "prompt"]
    label_of = [["negative", "positive"].index(e.target) for e in examples]
    assert labels["values"][n:].tolist() == [float(label_of[t]) for t in out["text"].tolist()]


def test_an_intervention_moves_the_prompt_points_not_the_texts(demo):
    session = Session.of(demo, "review : the film was superb .", points=["the film was bad .", "a fine day ."])
    before = _get(session, layer=3, colour=1)
    session.apply(rw.Skip(2))
    after = _get(session, layer=3, colour=1)
    n = before["n_prompt"]
    torch.testing.assert_close(before["xy"][n:], after["xy"][n:])
    assert not torch.allclose(before["xy"][:n], after["xy"][:n], atol=1e-3)
    assert after["values"].max() == 1.0 and "categories" in after and after["categories"] == []


def test_one_pass_or_two_give_the_same_points(demo, monkeypatch):
    texts = [e.text for e in rw.demo.dataset("ioi", 12)]
    held = _get(Session.of(demo, "the film was good .", points=texts), layer=1, colour=0)
    monkeypatch.setattr(projector, "HOLD_BYTES", 0)
    again = _get(Session.of(demo, "the film was good .", points=texts), layer=1, colour=0)
    torch.testing.assert_close(held["xy"], again["xy"])


def test_probe_colouring_and_the_point_limit(demo, monkeypatch):
    examples = rw.demo.dataset("sentiment", 60)
    probes = rw.train_probes(demo, examples, layers=[1, 2], control=False)
    monkeypatch.setattr(projector, "MAX_POINTS", 50)
    session = Session.of(demo, "review : the film was superb .", points=[e.text for e in examples], probes=[probes])
    assert session.shape()["projector_colours"] == ["source", "position", "probe 0"]
    out = _get(session, layer=2, colour=2)
    n = out["n_prompt"]
    assert len(out["xy"]) == n + 50  # at most MAX_POINTS tokens of the texts
    acts = demo.run(session.text)["blocks.2.hook_resid_post"]
    torch.testing.assert_close(out["values"][:n], probes.logits(acts, 2).softmax(-1)[:, 1].float())
    assert _get(session, layer=0, colour=2)["values"].tolist() == [-1.0] * (n + 50)  # layer 0 was not probed
    with pytest.raises(TypeError, match="not one text"):
        Session.of(demo, "a", points="one text")
