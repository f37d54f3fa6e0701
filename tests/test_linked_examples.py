"""Top contexts linked in the explorer for every unit kind: an SAE feature (the features view reads the given
``rw.TopExamples`` instead of its own dashboard search), a head (the attention view's) and a probe's direction (the
probes view's). What the kernel sends equals the TopExamples' contexts (which equal a brute-force scan:
``test_top_examples.py``)."""

from __future__ import annotations

import pytest
import torch

import repwidget as rw
from repwidget.demo import tasks
from repwidget.sae.dashboard import output_tokens
from repwidget.units import Direction, Head
from repwidget.views.panels import PANELS

TEXTS = [e.text for e in tasks.dataset("cycles", 10)] + [e.text for e in tasks.dataset("facts", 10)]
OTHER = [e.text for e in tasks.dataset("sentiment", 12)]
PROMPT = "two days after monday is"


def _get(ex, what: str, **args) -> dict:
    (message, buffers), *_ = ex.session.handle({"type": "get", "id": "v-1", "what": what, **args})
    assert message["type"] == "reply", message
    data = message["data"]
    packed = data["values"]
    raw = bytes(buffers[packed["buffer"]])
    data["values"] = torch.frombuffer(bytearray(raw), dtype=torch.float32) if raw else torch.zeros(0)
    return data


def _same_contexts(data: dict, examples) -> None:
    shown = examples[:5]
    assert shown, "the reference has no contexts to compare"
    assert data["tokens"] == [e.tokens for e in shown] and data["peaks"] == [e.peak for e in shown]
    assert data["texts"] == [e.text_index for e in shown]
    values = torch.tensor([v for e in shown for v in e.values])
    assert torch.allclose(data["values"], values, atol=1e-6)


@pytest.fixture(scope="module")
def sae():
    return rw.demo.demo_sae()


@pytest.fixture(scope="module")
def probes(demo):
    return rw.train_probes(demo, tasks.dataset("sentiment", 60), layers=[1, 2], kind="mean_diff", control=False)


def test_the_features_view_reads_the_given_examples_instead_of_searching_its_texts(demo, sae):
    top = rw.top_examples(demo, TEXTS, rw.units.features(sae), k=5, progress=False)
    active = [j for j in range(sae.d_sae) if top.values[j, 0] > 0][:2]
    # texts= are other texts: contexts from them would differ, so equal contexts say the given examples were read
    ex = rw.explore(demo, PROMPT, saes=[sae], texts=OTHER, examples=top, views=["features"])
    for j in active:
        data = _get(ex, "dashboard", sae=0, index=j)
        _same_contexts(data, top.examples(j))
        assert data["density"] is None and data["boosted"] == [t for t, _ in output_tokens(demo, sae, j)[0]]
    searched = rw.explore(demo, PROMPT, saes=[sae], texts=OTHER, views=["features"])  # no examples: its own search
    assert _get(searched, "dashboard", sae=0, index=active[0])["density"] is not None
    alone = rw.explore(demo, PROMPT, saes=[sae], examples=top, views=["features"])  # no texts: the given ones only
    assert alone.session.shape()["dashboards"] is True
    _same_contexts(_get(alone, "dashboard", sae=0, index=active[1]), top.examples(active[1]))


def test_a_selected_head_gets_its_top_contexts_from_texts_or_given_examples(demo):
    ex = rw.explore(demo, PROMPT, texts=TEXTS, views=["attention"])
    assert ex.session.shape()["head_examples"] is True
    for layer, head in ((1, 0), (0, 2)):  # harvested a layer at a time; compared with a harvest of that head alone
        alone = rw.top_examples(demo, TEXTS, Head(layer, head), k=5, progress=False)
        data = _get(ex, "head_examples", layer=layer, head=head)
        _same_contexts(data, alone.examples(0))
        assert data["label"] == f"head {layer}.{head} (out_norm)"
    given = rw.top_examples(demo, OTHER, [Head(1, 1), Head(1, 2, score="z_norm")], k=5, progress=False)
    ex = rw.explore(demo, PROMPT, examples=given, views=["attention"])
    _same_contexts(_get(ex, "head_examples", layer=1, head=1), given.examples(0))
    assert _get(ex, "head_examples", layer=1, head=2)["tokens"] == []  # held only by its z norm: not the view's score
    selected = list(PANELS["attention"].selected(ex.session, {"head_layer": 1, "head": 1}))
    assert {"what": "head_examples", "layer": 1, "head": 1} in selected
    none = rw.explore(demo, PROMPT, views=["attention"])
    assert none.session.shape()["head_examples"] is False


def test_a_probes_direction_gets_its_top_contexts_from_texts_or_given_examples(demo, probes):
    ex = rw.explore(demo, PROMPT, texts=TEXTS, probes=[probes], views=["probes"])
    assert ex.session.shape()["probe_examples"] is True
    for layer in (1, 2):
        alone = rw.top_examples(demo, TEXTS, Direction.of_probe(probes, layer), k=5, progress=False)
        data = _get(ex, "probe_examples", probe=0, layer=layer)
        _same_contexts(data, alone.examples(0))
        assert data["label"].startswith(f"probe toward positive at layer {layer}")
    assert _get(ex, "probe_examples", probe=0, layer=0)["tokens"] == []  # a layer not probed
    # given: the same direction rebuilt (another object, scaled) is found; another direction at that hook is not
    scaled = Direction(3 * probes.direction(2), "blocks.2.hook_resid_post", "mine")
    other = Direction(torch.randn(demo.d_model, generator=torch.Generator().manual_seed(0)), "blocks.1.hook_resid_post")
    given = rw.top_examples(demo, OTHER, [scaled, other], k=5, progress=False)
    ex = rw.explore(demo, PROMPT, probes=[probes], examples=given, views=["probes"])
    _same_contexts(_get(ex, "probe_examples", probe=0, layer=2), given.examples(0))
    assert _get(ex, "probe_examples", probe=0, layer=1)["tokens"] == []
