"""The kernel side of what the views show about a click (issue 14): the lens's clean answer, how each position's
prediction changed, clean activations of ablated items, the head's own layer in the selection, the demo model's
reference texts, modes and errors that follow the state, and steering in the unit its maker chose."""

import math

import pytest
import torch
from test_views import ask, tensor

import repwidget as rw
from repwidget import analyses
from repwidget.demo import exercises
from repwidget.views.panels import tokens as tokens_panel

from conftest import build, ids

#: the quickstart's prompt: ten random words twice (head 1.0 copies the second copy)
PROMPT = exercises.repeated_tokens(seed=1, length=10)


def test_the_lens_answers_the_clean_run_too_when_there_are_interventions(demo):
    ex = rw.explore(demo, PROMPT)
    reply = ask(ex, type="get", what="lens", start=0, stop=8)[0][0]
    assert "clean_ids" not in reply["data"]  # nothing to compare with
    ex.interventions = [rw.Ablate(1, head=0)]
    reply, buffers = ask(ex, type="get", what="lens", start=5, stop=21)[0]
    clean = analyses.logit_lens(demo.run(PROMPT), range(5, 21), k=1)
    ablated = analyses.logit_lens(demo.run(PROMPT, [rw.Ablate(1, head=0)]), range(5, 21), k=1)
    assert tensor(reply, buffers, "clean_ids").tolist() == clean.ids[..., 0].tolist()
    assert tensor(reply, buffers, "ids").tolist() == ablated.ids[..., 0].tolist()
    assert reply["data"]["clean_probs"]["dtype"] == "float16"  # where the eye cannot tell
    torch.testing.assert_close(
        torch.tensor(tensor(reply, buffers, "clean_probs")).float(), clean.probs[..., 0], atol=2e-3, rtol=0
    )
    every = {str(i) for i in clean.ids.flatten().tolist() + ablated.ids.flatten().tolist()}
    assert set(reply["data"]["vocab"]) == every
    assert clean.ids[..., 0].tolist() != ablated.ids[..., 0].tolist()  # the copy changed somewhere


def test_effects_say_how_each_positions_clean_top_prediction_changed(demo):
    ex = rw.explore(demo, PROMPT, [rw.Ablate(1, head=0)])
    n = len(ex.run.token_ids)
    reply, buffers = ask(ex, type="get", what="effects", start=0, stop=n)[0]
    clean = demo.run(PROMPT).logits.float().log_softmax(-1)
    ablated = demo.run(PROMPT, [rw.Ablate(1, head=0)]).logits.float().log_softmax(-1)
    top = clean.argmax(-1)
    assert tensor(reply, buffers, "top").tolist() == top.tolist()
    got = {key: torch.tensor(tensor(reply, buffers, key)) for key in ("clean_p", "p", "clean_loss", "loss")}
    torch.testing.assert_close(got["clean_p"], clean.gather(-1, top[:, None])[:, 0].exp())
    torch.testing.assert_close(got["p"], ablated.gather(-1, top[:, None])[:, 0].exp())
    following = torch.tensor(ex.run.token_ids[1:])
    torch.testing.assert_close(got["loss"][:-1], -ablated[:-1].gather(-1, following[:, None])[:, 0])
    torch.testing.assert_close(got["clean_loss"][:-1], analyses.token_losses(ex.clean_run).float())
    assert math.isnan(got["loss"][-1]) and math.isnan(got["clean_loss"][-1])  # nothing follows the last token
    assert (got["p"][11:] < got["clean_p"][11:] - 0.3).any()  # the second copy lost its copied word
    assert reply["data"]["vocab"][str(int(top[15]))] == demo.to_str_tokens([int(top[15])])[0]
    part = ask(ex, type="get", what="effects", start=3, stop=6)[0]
    assert part[0]["data"]["start"] == 3 and tensor(*part, "top").tolist() == top[3:6].tolist()
    too_many = ask(ex, type="get", what="effects", start=0, stop=0)[0][0]
    assert too_many["type"] == "error" and "1..1024 positions" in too_many["message"]
    assert tokens_panel.effects_window(1500, 2048) == (988, 2012)  # js/src/views/tokens.ts effectsWindow agrees


def test_an_ablated_neuron_or_feature_is_shown_with_its_clean_activation(demo):
    sae = rw.demo.demo_sae()
    ex = rw.explore(demo, "two days after monday is", saes=[sae])
    assert "clean" not in ask(ex, type="get", what="neuron", layer=1, index=3)[0][0]["data"]
    ex.interventions = [rw.Ablate(1, neuron=3)]
    reply, buffers = ask(ex, type="get", what="neuron", layer=1, index=3)[0]
    assert tensor(reply, buffers, "values").tolist() == [0.0] * 6
    clean = demo.run("two days after monday is", capture=["blocks.1.mlp.hook_post"])["blocks.1.mlp.hook_post"]
    torch.testing.assert_close(torch.tensor(tensor(reply, buffers, "clean")), clean[:, 3].float())
    feature = int(sae.encode(ex.clean_run[sae.hook])[5].argmax())
    ex.interventions = [rw.Ablate(sae=sae, feature=feature)]
    reply, buffers = ask(ex, type="get", what="feature", sae=0, index=feature)[0]
    expected = sae.feature_activations(ex.clean_run[sae.hook], feature).float()
    torch.testing.assert_close(torch.tensor(tensor(reply, buffers, "clean")), expected)
    assert expected.max() > 0


def test_the_attention_head_has_its_own_layer_in_the_selection(demo):
    ex = rw.explore(demo, "the capital of france is")
    assert ex.selection["head_layer"] == 0 and ex.selection["head"] == 0
    ex.select(head=(2, 1))
    assert (ex.selection["head_layer"], ex.selection["head"], ex.selection["layer"]) == (2, 1, 0)
    ex.select(layer=3)  # the neurons', the lens's and the probes' layer: the head stays
    assert (ex.selection["head_layer"], ex.selection["head"], ex.selection["layer"]) == (2, 1, 3)
    ex.select(layer=1, head=3)  # a layer and a head together: that head
    assert (ex.selection["head_layer"], ex.selection["head"], ex.selection["layer"]) == (1, 3, 1)
    with pytest.raises(ValueError, match="head_layer 4 is out of range"):
        ex.select(head=(4, 0))
    with pytest.raises(ValueError, match=r"head=\(layer, head\)"):
        ex.select(head=(1, 2, 3))
    old = {k: v for k, v in ex.selection.items() if k != "head_layer"} | {"layer": 2, "head": 0}
    ex.set_state({"selection": old})  # a page saved before heads had their own layer: the layer was the head's
    assert (ex.selection["head_layer"], ex.selection["head"]) == (2, 0)
    asked = [request for panel in ex.session.panels for request in panel.selected(ex.session, ex.selection)]
    assert {"what": "pattern", "layer": 2, "head": 0} in asked


def test_the_demo_model_comes_with_reference_texts_so_every_mode_runs(demo):
    texts = rw.demo.reference_texts()
    assert len(texts) == rw.demo.REFERENCE_PER_TASK * len(rw.demo.TASKS)
    assert demo.reference is not None
    ex = rw.explore(demo, "the capital of france is")
    assert all(mode["available"] for mode in ex.shape["modes"])
    for mode in ("mean", "resample"):
        iv = {"type": "ablate", "layer": 1, "head": 0, "mode": mode}
        sent = ask(ex, type="set", seq={"mean": 1, "resample": 2}[mode], interventions=[iv])
        assert sent[0][0]["type"] == "applied", ex.error
        assert ex.interventions == [rw.Ablate(1, head=0, mode=mode)]
    mean = demo.reference.mean("blocks.1.attn.hook_z")
    assert mean.shape == (demo.d_model,) and mean.abs().sum() > 0


def test_the_modes_follow_reference_texts_set_after_the_explorer_opened():
    model = rw.load(build("gpt2"))
    ex = rw.explore(model, ids(6))
    assert not ex.shape["modes"][1]["available"]
    model.set_reference([ids(6, seed=3)])
    ask(ex, type="get", what="overview")  # the next message from the views brings the new modes
    assert all(mode["available"] for mode in ex.shape["modes"])


def test_errors_go_when_the_state_that_caused_them_changes(demo):
    reference, demo.reference = demo.reference, None
    try:
        ex = rw.explore(demo, "the capital of france is")
        ask(ex, type="set", seq=1, interventions=[{"type": "ablate", "layer": 1, "head": 0, "mode": "mean"}])
    finally:
        demo.reference = reference
    assert "reference" in ex.error
    ex.select(token=2)  # a command's error stays while its cause (the mode) does
    assert "reference" in ex.error
    ex.mode = "resample"
    assert ex.error == ""
    ask(ex, type="get", what="neuron", layer=0, index=10_000)  # a request's error goes with the selection
    assert "out of range" in ex.error
    ex.set_state({"selection": {**ex.selection, "token": 3}})
    assert ex.error == ""


def test_probe_steering_is_labelled_in_the_unit_of_the_slider(demo):
    examples = [(e.text, e.target) for e in rw.demo.dataset("sentiment", 60)]
    probes = rw.train_probes(demo, examples, layers=[2], kind="mean_diff")
    steer = probes.steering(2, "negative", 2.0)
    assert steer.label() == "steer layer 2 toward negative, strength 2 (class gaps)"
    assert steer.name == "toward negative, strength 2 (class gaps)" and steer.scale != 2.0
    assert eval(repr(steer), {"rw": rw}) == steer
    assert rw.interventions.from_json(rw.interventions.to_json(steer)) == steer
    with pytest.raises(ValueError, match="1 to 80 characters"):
        rw.Steer(1, [0.0] * demo.d_model, name="x" * 81)
    ex = rw.explore(demo, "review : the film was superb . verdict :", probes=[probes])
    ask(ex, type="steer_probe", probe=0, layer=2, toward="negative", strength=2.0)
    assert ex.intervention_list[0]["label"] == "steer layer 2 toward negative, strength 2 (class gaps)"
