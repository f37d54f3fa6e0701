"""The kernel side of issue 29's text views: the attribution view's vocabulary search and the run its caption names,
where it sits, the probes view's opening layer and steering class, and an ablated neuron shown in the run without its
ablation (the other interventions kept)."""

from __future__ import annotations

import torch
from test_views import ask, tensor

import repwidget as rw
from repwidget.demo.evaluate import prompt
from repwidget.views.panels import PANELS
from repwidget.views.panels import attribution as attribution_panel
from repwidget.views.panels import probes as probes_panel


def search(ex, query):
    reply, buffers = ask(ex, type="get", what="vocab_search", query=query)[0]
    assert reply["type"] == "reply", reply
    return tensor(reply, buffers, "ids").tolist(), reply["data"]["tokens"]


def test_the_vocabulary_search_ranks_equal_then_prefix_then_substring_with_leading_space_variants(demo):
    ex = rw.explore(demo, "when mary and john went to the store , john gave a drink to")
    ids, tokens = search(ex, "mary")
    assert ids[0] == demo.tokenizer.convert_tokens_to_ids("mary") and tokens[0] == "mary"
    ids, tokens = search(ex, "  MAR ")  # case and the spaces around it do not matter
    assert "mary" in tokens and all("mar" in t.lower() for t in tokens)
    # a BPE vocabulary: the leading-space variant is listed beside the bare word, both before longer ones
    vocab = ["<s>", "Mary", " Mary", " Maryland", "summary", " mar", "x"] + ["y"] * 5
    ex.session.state["attribution"].vocab = vocab
    ids, tokens = search(ex, "mary")
    assert tokens == ["Mary", " Mary", " Maryland", "summary"] and ids == [1, 2, 3, 4]
    assert search(ex, "y")[0] == [7, 8, 9, 10, 11, 1, 2, 4, 3]  # equal first, then containing it, shorter first
    assert search(ex, "3")[0] == [3]  # digits: the token with that id
    many = ["a" + str(i) for i in range(40)]
    ex.session.state["attribution"].vocab = many
    assert len(search(ex, "a")[0]) == attribution_panel.WORDS
    for bad in ("", "   ", "x" * 65, 7, None):
        reply = ask(ex, type="get", what="vocab_search", query=bad)[0][0]
        assert reply["type"] == "error" and "query must be text of 1 to 64 characters" in reply["message"], reply
        assert "\n" not in reply["message"]


def test_the_attribution_caption_names_its_run_and_the_view_sits_below_the_predictions(demo):
    text = "when mary and john went to the store , john gave a drink to"
    mary = demo.tokenizer.convert_tokens_to_ids("mary")
    ex = rw.explore(demo, text)
    reply = ask(ex, type="get", what="attribution", position=13, target=mary)[0][0]
    assert reply["data"]["run"] == "clean"
    ex.interventions = [rw.Ablate(1, head=0)]
    reply = ask(ex, type="get", what="attribution", position=13, target=mary)[0][0]
    assert reply["data"]["run"] == "intervened"
    assert PANELS["attribution"].place == PANELS["predictions"].place == "side"
    order = [name for name in ex.views if PANELS[name].place == "side"]  # no projector asked for here
    assert order.index("attribution") == order.index("predictions") + 1, order


def _probes(demo):
    reviews = [(prompt(e, "sentiment"), e.target) for e in rw.demo.dataset("sentiment", 80)]
    return rw.train_probes(demo, reviews, kind="mean_diff")


def test_the_probes_view_opens_on_the_best_layer_and_steers_toward_the_class_not_read(demo):
    probes = _probes(demo)
    probes.accuracy = [0.43, 0.6, 0.99, 0.995, 0.98][: len(probes.layers)]  # layer 0 the worst, as in notebook 03
    assert probes.best_layer == 2
    text = "review : the food was great and the staff were lovely . verdict :"
    ex = rw.explore(demo, text, probes=[probes])
    assert ex.selection["layer"] == 2
    assert rw.explore(demo, text).selection["layer"] == 0  # without probes: the first layer, as before
    reply, buffers = ask(ex, type="get", what="probe", probe=0, layer=2)[0]
    probs = tensor(reply, buffers, "probs")
    read = probes.classes[int(probs[-1].argmax())]
    assert reply["data"]["toward"] != read and reply["data"]["toward"] in probes.classes
    three = torch.tensor([0.2, 0.7, 0.1])
    assert probes_panel.toward(["a", "b", "c"], three) == "a"  # the likeliest other class
    assert probes_panel.toward(["only"], torch.tensor([1.0])) == "only"


def test_an_ablated_neuron_is_shown_in_the_run_without_its_ablation_other_interventions_kept(demo):
    text = "two days after monday is"
    head, neuron = rw.Ablate(0, head=1), rw.Ablate(1, neuron=3)
    ex = rw.explore(demo, text, [head, neuron])
    reply, buffers = ask(ex, type="get", what="neuron", layer=1, index=3)[0]
    assert tensor(reply, buffers, "values").tolist() == [0.0] * 6
    hook = "blocks.1.mlp.hook_post"
    kept = demo.run(text, [head], capture=[hook])[hook][:, 3].float()
    clean = demo.run(text, capture=[hook])[hook][:, 3].float()
    assert (kept - clean).abs().max() > 1e-3  # the head's ablation changes the neuron: the runs can be told apart
    torch.testing.assert_close(torch.tensor(tensor(reply, buffers, "clean")), kept)
    assert reply["data"]["clean_label"] == "without its ablation (the other 1 intervention kept)"
    ex.interventions = [neuron]  # its ablation alone: the clean run
    reply, buffers = ask(ex, type="get", what="neuron", layer=1, index=3)[0]
    torch.testing.assert_close(torch.tensor(tensor(reply, buffers, "clean")), clean)
    assert "clean run" in reply["data"]["clean_label"]
    ex.interventions = [head]  # not ablated: its own values, nothing else
    assert "clean" not in ask(ex, type="get", what="neuron", layer=1, index=3)[0][0]["data"]
