"""The views' kernel side: answers against the runs they show, the message protocol, the explorer's state."""

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.views import codec, protocol
from repwidget.views.panels import attention, neurons, predictions

from conftest import ids, long_context_model


class Sent(list):
    """Records what a widget sends instead of sending it."""

    def __call__(self, content, buffers=None):
        self.append((content, buffers or []))


def wire(widget):
    widget.send = Sent()
    return widget.send


def ask(widget, **content):
    sent = wire(widget)
    widget._on_message(widget, {"id": 7, **content}, [])
    return sent


def tensor(reply, buffers, key):
    return codec.decode({**reply["data"][key], "buffer": buffers[reply["data"][key]["buffer"]]})


def test_pooling_keeps_the_maximum_of_each_block():
    m = torch.zeros(1, 8, 8)
    m[0, 5, 2] = 0.9
    out = attention.pooled(m, 4)
    assert out.shape == (1, 4, 4) and out[0, 2, 1] == pytest.approx(0.9) and out.sum() == pytest.approx(0.9)
    assert attention.pooled(m, 8) is m


def test_overview_is_every_head_with_its_scores(demo):
    run = demo.run("the capital of france is paris . the capital of france is")
    data = attention.overview(rw.views.Session(run), {})
    n = len(run.token_ids)
    assert data["thumbs"].shape == (demo.n_layers, demo.n_heads, min(n, attention.THUMB), min(n, attention.THUMB))
    expected = (run["blocks.2.attn.hook_pattern"][1].clamp(0, 1) * 255).round().to(torch.uint8)
    assert torch.equal(data["thumbs"][2, 1], expected)  # short prompt: no pooling
    scores = rw.analyses.head_scores(run)
    assert torch.equal(data["scores"][1], scores["induction"])


def test_pattern_whole_pooled_and_windowed(demo):
    run = long_context_model().run(ids(601))  # over MAX_SIDE
    full = run["blocks.1.attn.hook_pattern"][1]
    overview = attention.head_pattern(run, 1, 1)
    assert overview["pooled"] and overview["pattern"].shape == (512, 512)
    window = attention.head_pattern(run, 1, 1, (100, 356, 0, 256))
    assert not window["pooled"] and torch.equal(window["pattern"], full[100:356, 0:256])
    with pytest.raises(ValueError, match="at most 512"):
        attention.head_pattern(run, 1, 1, (0, 601, 0, 601))
    short = demo.run("the capital of france is")
    assert torch.equal(attention.head_pattern(short, 0, 0)["pattern"], short["blocks.0.attn.hook_pattern"][0])


def test_predictions_compare_clean_and_intervened(demo):
    clean = demo.run("the capital of france is")
    ablated = clean.rerun(rw.Ablate(0, head=3))
    data = predictions.compare(demo, clean.logits[5], ablated.logits[5], 5, k=4)
    assert data["tokens"][0][0] == "paris"
    p = [run.logits[5].softmax(-1) for run in (clean, ablated)]
    top = data["ids"][1].long()
    torch.testing.assert_close(data["delta_prob"][1], (p[1] - p[0])[top])
    torch.testing.assert_close(data["probs"][0], p[0].topk(4).values)


def test_neurons_are_the_most_active_at_the_position_read_when_asked(demo):
    ex = rw.explore(demo, "the capital of france is", [rw.Ablate(1, head=2)])
    session = ex.session
    assert "blocks.2.mlp.hook_post" not in session.run  # no view holds every layer's MLP
    data = neurons.top_neurons(session, {"layer": 2, "position": 3})
    post = demo.run("the capital of france is", rw.Ablate(1, head=2), capture="blocks.2.mlp.hook_post")
    acts = post["blocks.2.mlp.hook_post"]
    torch.testing.assert_close(data["values"], acts[3].topk(neurons.TOP).values)
    torch.testing.assert_close(neurons.neuron(session, {"layer": 2, "index": 7})["values"], acts[:, 7])


def test_pack_sends_tensors_as_buffers_never_float_lists():
    content, buffers = protocol.pack(
        {"pattern": torch.rand(3, 3), "ids": torch.arange(4), "n": 2}, frozenset({"pattern"})
    )
    assert content["pattern"] == {"dtype": "float16", "shape": [3, 3], "buffer": 0}
    assert content["ids"] == {"dtype": "int32", "shape": [4], "buffer": 1}
    assert [len(b) for b in buffers] == [18, 16] and content["n"] == 2


@pytest.mark.parametrize(
    "message, error",
    [
        ({"type": "get", "what": "secrets"}, "unknown request"),
        ({"type": "get", "what": "pattern", "layer": 0, "head": 99}, "head 99 is out of range"),
        ({"type": "get", "what": "pattern", "layer": "0", "head": 0}, "layer must be an int"),
        ({"type": "get", "what": "pattern", "layer": 0, "head": 0, "window": [0, 1]}, "window must be"),
        ({"type": "get", "what": "lens", "start": 3, "stop": 2}, "must be after start"),
        ({"type": "get", "what": "neuron", "layer": 0, "index": 10_000}, "index 10000 is out of range"),
        ({"type": "set", "seq": 1, "interventions": [{"type": "ablate", "layer": 0, "head": 9}]}, "head"),
        ({"type": "set", "seq": 2, "interventions": [{"type": "nope"}]}, "not an intervention"),
        ({"type": "set", "seq": 3, "interventions": "all"}, "list of interventions"),
        (
            {"type": "set", "seq": 4, "interventions": [{"type": "ablate", "layer": 0, "head": 1, "mode": "mean"}]},
            "reference",
        ),
        ({"type": "launch"}, "unknown message type"),
    ],
)
def test_malformed_messages_get_an_error_and_change_nothing(demo, message, error):
    reference, demo.reference = demo.reference, None  # mean ablation without reference texts is refused
    try:
        ex = rw.explore(demo, "the capital of france is")
        before = ex.run
        sent = ask(ex, **message)
    finally:
        demo.reference = reference
    errors = [content for content, _ in sent if content["type"] == "error"]
    assert len(errors) == 1 and error in errors[0]["message"], sent
    assert error in ex.error
    assert ex.run is before and ex.interventions == [] and not ex.busy


def test_messages_without_an_id_are_refused_too(demo):
    ex = rw.explore(demo, "the capital of france is")
    sent = wire(ex)
    for junk in ("text", None, [1, 2], {"type": "get", "what": "overview"}, {"id": "1", "type": "get"}):
        ex._on_message(ex, junk, [])
    assert [content["type"] for content, _ in sent] == ["error"] * 5


def test_a_click_reruns_and_answers_with_fresh_predictions(demo):
    ex = rw.explore(demo, "the capital of france is")
    iv = rw.Ablate(0, head=3)
    then = {"what": "predictions", "position": 5}
    sent = ask(ex, type="set", seq=1, interventions=[rw.interventions.to_json(iv)], then=then)
    assert ex.interventions == [iv] and ex.generation == 1
    assert [content["type"] for content, _ in sent] == ["applied", "reply"]
    expected = demo.run("the capital of france is", interventions=[iv])
    torch.testing.assert_close(ex.run.logits, expected.logits)
    reply, buffers = sent[1]
    probs = tensor(reply, buffers, "probs")
    assert probs[1, 0] == pytest.approx(expected.logits[5].softmax(-1).max().item(), rel=1e-3)
    listed = ex.intervention_list[0]
    assert listed["label"] == "ablate head 0.3 (zero)" and listed["key"]
    assert {k: v for k, v in listed.items() if k not in ("label", "key")} == rw.interventions.to_json(iv)


def test_a_late_click_does_not_undo_a_newer_one(demo):
    ex = rw.explore(demo, "the capital of france is")
    newer = rw.interventions.to_json(rw.Ablate(1, head=0))
    ask(ex, type="set", seq=2, interventions=[newer])
    ask(ex, type="set", seq=1, interventions=[])
    assert ex.interventions == [rw.Ablate(1, head=0)]


def test_interventions_set_from_python_rerun_and_code_reproduces_the_run(demo, monkeypatch):
    monkeypatch.setattr(demo.hf, "name_or_path", "demo")  # what rw.demo_model() gives (model.source == "demo")
    ex = rw.explore(demo, "the capital of france is")
    ex.interventions = [rw.Ablate(0, head=3), rw.Ablate(2, neuron=5)]
    assert ex.generation == 1 and len(ex.intervention_list) == 2
    namespace = {}
    exec(ex.code(), namespace)
    assert "rw.demo_model()" in ex.code()
    torch.testing.assert_close(namespace["run"].logits, ex.run.logits)
    torch.testing.assert_close(ex.clean_run.logits, demo.run("the capital of france is").logits)
    with pytest.raises(ValueError, match="out of range"):
        ex.interventions = [rw.Ablate(0, head=4)]
    assert ex.interventions == [rw.Ablate(0, head=3), rw.Ablate(2, neuron=5)]  # the last good state stays


def test_each_view_works_alone_on_a_run(demo):
    run = demo.run("the capital of france is", capture=[])  # nothing captured: the view re-runs what it reads
    view = rw.AttentionView(run)
    assert view.views == ["tokens", "attention"] and not view.editable
    sent = ask(view, type="get", what="overview")
    assert sent[0][0]["type"] == "reply"
    refused = ask(view, type="set", seq=1, interventions=[])
    assert refused[0][0]["type"] == "error"
    assert rw.LogitLensView(run).views == ["tokens", "lens"]
    ablated = run.rerun(rw.Ablate(0, head=3))
    view = rw.PredictionsView(ablated)
    torch.testing.assert_close(view.clean_run.logits, run.logits)
    with pytest.raises(TypeError, match=r"rw\.Run"):
        rw.TokensView("text")


def test_an_encoder_without_unembedding_gets_the_views_it_can_show(hf_models):
    model = rw.load(hf_models["bert"])
    ex = rw.explore(model, ids(8))
    assert ex.views == ["interventions", "tokens", "attention", "neurons"]
    sent = ask(ex, type="set", seq=1, interventions=[rw.interventions.to_json(rw.Ablate(1, head=0))])
    assert [content["type"] for content, _ in sent] == ["applied"] and ex.interventions == [rw.Ablate(1, head=0)]
    assert ask(ex, type="get", what="overview")[0][0]["type"] == "reply"


def test_the_explorer_shows_sae_features_and_takes_feature_clicks(demo):
    sae = rw.demo.demo_sae()
    texts = [e.text for e in rw.demo.dataset("cycles", 30)]
    ex = rw.explore(demo, "two days after monday is", saes=[sae], texts=texts)
    assert "features" in ex.views and ex.saes == [{"name": sae.name, "hook": sae.hook, "d_sae": sae.d_sae}]
    feats = sae.encode(ex.run[sae.hook])
    reply, buffers = ask(ex, type="get", what="features", sae=0, position=5)[0]
    indices = tensor(reply, buffers, "indices")
    assert indices[0] == int(feats[5].argmax()) and len(indices) == min(12, int((feats[5] > 0).sum()))
    top = int(indices[0])
    sent = ask(ex, type="set", seq=1, interventions=[{"type": "ablate", "sae": 0, "feature": top}])
    assert sent[0][0]["type"] == "applied" and ex.interventions == [rw.Ablate(sae=sae, feature=top)]
    torch.testing.assert_close(
        ex.run.logits, demo.run("two days after monday is", rw.Ablate(sae=sae, feature=top)).logits
    )
    steer = {"type": "steer", "scale": -4.0, "sae": 0, "feature": top}
    ask(ex, type="set", seq=2, interventions=[steer])
    assert ex.interventions == [rw.Steer(sae=sae, feature=top, scale=-4.0)]
    assert "rw.Steer(sae=rw.SAE.load(" in ex.code()
    reply = ask(ex, type="get", what="dashboard", sae=0, index=top)[0][0]
    assert reply["type"] == "reply" and len(reply["data"]["tokens"]) == 5 and reply["data"]["index"] == top
    assert ask(ex, type="get", what="feature", sae=0, index=sae.d_sae)[0][0]["type"] == "error"
    assert ask(ex, type="get", what="features", sae=1, position=0)[0][0]["type"] == "error"


def test_an_sae_for_another_model_is_refused_up_front(hf_models):
    model = rw.load(hf_models["gpt2"])
    with pytest.raises(ValueError, match="128-wide activations"):
        rw.explore(model, ids(6), saes=[rw.demo.demo_sae()])
    session = rw.views.Session(model.run(ids(6)))
    with pytest.raises(ValueError, match="no SAEs"):
        session.get({"what": "features", "sae": 0, "position": 0})


def test_steering_vectors_stay_in_the_kernel(demo):
    ex = rw.explore(demo, "the capital of france is")
    vector = torch.randn(demo.d_model).tolist()
    ex.interventions = [rw.Steer(1, vector, scale=2.0), rw.Ablate(0, head=1)]
    listed = ex.intervention_list[0]
    assert listed["vector"] is None and listed["scale"] == 2.0 and listed["label"] == "steer layer 1 (scale 2.00)"
    ask(ex, type="set", seq=1, interventions=[{"ref": listed["key"]}])  # the head's ablation removed in the browser
    assert ex.interventions == [rw.Steer(1, vector, scale=2.0)]
    refused = ask(ex, type="set", seq=2, interventions=[{"ref": "nope"}])
    assert refused[0][0]["type"] == "error" and "ref 'nope'" in ex.error
    assert ex.interventions == [rw.Steer(1, vector, scale=2.0)]


def test_the_explorer_shows_probes_and_steers_along_them(demo):
    from repwidget.demo.evaluate import prompt

    examples = [(prompt(e, "sentiment"), e.target) for e in rw.demo.dataset("sentiment", 80)]
    probes = rw.train_probes(demo, examples, kind="mean_diff")
    text = prompt(rw.demo.dataset("sentiment", 1, seed=9)[0], "sentiment")
    ex = rw.explore(demo, text, probes=[probes])
    assert "probes" in ex.views and ex.probes[0]["classes"] == ["negative", "positive"]
    reply, buffers = ask(ex, type="get", what="probe", probe=0, layer=2)[0]
    probs = tensor(reply, buffers, "probs")
    expected = probes.logits(ex.run["blocks.2.hook_resid_post"], 2).softmax(-1)
    np.testing.assert_allclose(probs, expected.numpy(), atol=2e-3)
    then = {"what": "predictions", "position": 0}
    sent = ask(ex, type="steer_probe", probe=0, layer=2, toward="negative", strength=2.0, then=then)
    assert [c["type"] for c, _ in sent] == ["applied", "reply"] and sent[1][0]["what"] == "predictions"
    assert ex.interventions == [probes.steering(2, "negative", 2.0)]
    ask(ex, type="steer_probe", probe=0, layer=2, toward="positive", strength=1.0)  # replaces the first
    assert ex.interventions == [probes.steering(2, "positive", 1.0)]
    assert ex.intervention_list[0]["vector"] is None
    for bad in ({"toward": "neutral"}, {"strength": "lots"}, {"probe": 3}):
        message = {"type": "steer_probe", "probe": 0, "layer": 2, "toward": "positive", "strength": 1.0, **bad}
        assert ask(ex, **message)[0][0]["type"] == "error"
    assert ex.interventions == [probes.steering(2, "positive", 1.0)]

    # project the probe's direction out (a toggle): the probe reads nothing there any more
    sent = ask(ex, type="project_probe", probe=0, layer=2, then=then)
    assert [c["type"] for c, _ in sent] == ["applied", "reply"]
    assert ex.interventions == [probes.steering(2, "positive", 1.0), probes.projection(2)]
    assert ex.intervention_list[1]["direction"] is None and ex.intervention_list[1]["key"]
    along = ex.run["blocks.2.hook_resid_post"].float() @ probes.direction(2)
    assert along.abs().max() < 1e-4
    ask(ex, type="project_probe", probe=0, layer=2)
    assert ex.interventions == [probes.steering(2, "positive", 1.0)]
    assert ask(ex, type="project_probe", probe=0, layer=9)[0][0]["type"] == "error"

    # the accuracy chart, linked both ways (the vega signal as altair's front end reports a click)
    chart = ex.probe_chart()
    assert int(chart.params.current) == ex.selection["layer"]
    chart._vl_selections = {"layer": {"value": {"vlPoint": {"or": [{"layer": 3}]}}, "store": []}}
    assert ex.selection["layer"] == 3
    ex.select(layer=1)
    assert chart.params.current == 1
    assert "esm.sh" not in chart._esm and "jsdelivr" not in chart._esm  # Vega inlined, not fetched from a CDN
    with pytest.raises(ValueError, match="index into"):
        ex.probe_chart(2)
    with pytest.raises(ValueError, match="no probes"):
        rw.explore(demo, text).probe_chart()


def test_the_probes_view_lists_the_sae_features_nearest_the_probe_direction(demo):
    examples = [(e.text, e.target) for e in rw.demo.dataset("sentiment", 60)]
    probes = rw.train_probes(demo, examples, layers=[1, 2], kind="mean_diff")
    sae = rw.demo.demo_sae()  # blocks.2.hook_resid_pre: the same activation as resid_post of layer 1
    ex = rw.explore(demo, "review : the film was superb .", saes=[sae], probes=[probes])
    reply, buffers = ask(ex, type="get", what="probe", probe=0, layer=1)[0]
    data = reply["data"]
    vectors = sae.decoder_vectors() / sae.decoder_vectors().norm(dim=-1, keepdim=True)
    cosines = vectors @ probes.direction(1)
    assert data["near_features"] == cosines.abs().topk(5).indices.tolist() and data["near_sae"] == [0] * 5
    got = tensor(reply, buffers, "near_cosines")
    np.testing.assert_allclose(got, cosines[data["near_features"]].numpy(), atol=1e-5)
    other = ask(ex, type="get", what="probe", probe=0, layer=2)[0][0]["data"]
    assert other["near_features"] == []  # no SAE reads resid_post of layer 2


def test_the_attribution_view_ranks_heads_neurons_and_features_by_direct_share(demo):
    sae = rw.demo.demo_sae()
    ex = rw.explore(demo, "two days after monday is", saes=[sae])
    target = demo.tokenizer.convert_tokens_to_ids("wednesday")
    reply, buffers = ask(ex, type="get", what="attribution", position=5, target=target)[0]
    dla = rw.analyses.direct_logit_attribution(ex.run, target, position=5)
    torch.testing.assert_close(torch.from_numpy(tensor(reply, buffers, "heads")), dla.heads.float())
    assert reply["data"]["target_token"] == "wednesday" and reply["data"]["total"] == pytest.approx(dla.total)
    reply, buffers = ask(ex, type="get", what="attribution_neurons", position=5, target=target, layer=3)[0]
    shares = dla.neurons(3)
    indices = tensor(reply, buffers, "indices")
    assert int(indices[0]) == int(shares.abs().argmax())
    reply, buffers = ask(ex, type="get", what="attribution_features", position=5, target=target, sae=0)[0]
    acts = sae.encode(ex.run[sae.hook][5])
    expected = acts * dla.of(sae.decoder_vectors())
    assert int(tensor(reply, buffers, "indices")[0]) == int(expected.abs().argmax())
    assert f"direct_logit_attribution(run, {target}, foil=None, position=5)" in ex.code()
    assert ask(ex, type="get", what="attribution", position=5, target=10**6)[0][0]["type"] == "error"


def test_the_patching_view_sweeps_the_corrupted_prompt_into_this_one_and_applies_a_cell(demo):
    clean = "when mary and john went to the store , john gave a drink to"
    corrupted = "when mary and john went to the store , mary gave a drink to"
    ex = rw.explore(demo, clean, corrupted=corrupted)
    assert "patching" in ex.views and "patching" not in rw.explore(demo, clean).views
    defaults = ask(ex, type="get", what="sweep_defaults")[0][0]["data"]
    assert (defaults["target_token"], defaults["foil_token"]) == ("mary", "john")
    args = {"site": 3, "method": 0, "target": defaults["target"], "foil": defaults["foil"]}
    reply, buffers = ask(ex, type="get", what="sweep", **args)[0]
    values = tensor(reply, buffers, "values")
    metric = rw.patching.logit_diff(demo, "mary", "john")
    expected = rw.patching.sweep(demo, clean, corrupted, metric, site="heads", direction="noise")
    np.testing.assert_allclose(values, expected.values.numpy(), atol=1e-5)
    sent = ask(ex, type="apply_patch", view="v", seq=1, cell=[1, 0], **args)
    assert sent[0][0]["type"] == "applied"
    assert ex.interventions == [rw.Patch("blocks.1.attn.hook_z", demo.to_ids(corrupted), head=0)]
    assert "rw.patching.sweep(model, run.token_ids" in ex.code()
    with pytest.raises(ValueError, match="same length"):
        rw.explore(demo, clean, corrupted="when mary")
