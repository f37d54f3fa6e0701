"""The projector's kernel half: PCA coordinates checked against numpy's SVD of the same tokens, colourings, limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.views.codec import encode_rows
from repwidget.views.panels import projector
from repwidget.views.session import Session


def _get(session, **args):
    args.setdefault("feature", 0)
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
    assert session.shape()["projector_colour"] == 2  # labelled texts are coloured by their labels first
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
    # the labels in the order they first come (the months of a calendar stay in calendar order), then the prompt
    first = examples[0].target
    assert labels["categories"] == [first, {"negative": "positive", "positive": "negative"}[first], "prompt"]
    label_of = [labels["categories"].index(e.target) for e in examples]
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
    monkeypatch.setattr(projector.lasso, "MAX_POINTS", 50)
    session = Session.of(demo, "review : the film was superb .", points=[e.text for e in examples], probes=[probes])
    assert session.shape()["projector_colours"] == ["source", "position", "probe 0"]
    assert session.shape()["projector_colour"] == 0
    out = _get(session, layer=2, colour=2)
    n = out["n_prompt"]
    assert len(out["xy"]) == n + 50  # at most MAX_POINTS tokens of the texts
    acts = demo.run(session.text)["blocks.2.hook_resid_post"]
    torch.testing.assert_close(out["values"][:n], probes.logits(acts, 2).softmax(-1)[:, 1].float())
    assert _get(session, layer=0, colour=2)["values"].tolist() == [-1.0] * (n + 50)  # layer 0 was not probed
    with pytest.raises(TypeError, match="not one text"):
        Session.of(demo, "a", points="one text")


def test_the_lasso_selection_is_checked_positions_and_text_points(demo, monkeypatch):
    texts = ["the film was bad .", "a fine day ."]
    first = len(demo.to_ids(texts[0])) - 1
    monkeypatch.setattr(projector.lasso, "MAX_POINTS", first + 1)  # every token of the first text, one of the second
    session = Session.of(demo, "review : the film was superb .", points=texts)
    n = session.n_tokens
    assert session.default_selection()["tokens"] == [] and session.default_selection()["points"] == []
    shown = _get(session, layer=0, colour=0)
    pairs = list(zip(shown["text"].tolist(), shown["pos"].tolist(), strict=True))
    assert pairs == [(0, p) for p in range(1, first + 1)] + [(1, 1)]
    # kept sorted and without repeats; every pair is one the projector shows
    out = session.check_selection({"tokens": [3, 1, 3], "points": [[1, 1], [0, 2], (0, 2)]})
    assert out["tokens"] == [1, 3] and out["points"] == [[0, 2], [1, 1]]
    assert session.check_selection({"tokens": [], "points": []})["points"] == []
    for bad, message in [
        ({"tokens": [n]}, f"tokens {n} is out of range"),
        ({"tokens": 2}, "tokens must be a list"),
        ({"tokens": [True]}, "tokens must be an int"),
        ({"points": [[1, 2]]}, "no point at text 1, position 2"),  # beyond MAX_POINTS
        ({"points": [[0, 0]]}, "no point at text 0, position 0"),  # <bos> is not shown
        ({"points": [[2, 1]]}, "no point at text 2"),
        ({"points": [[0, 1, 2]]}, "pairs of ints"),
        ({"points": [["0", 1]]}, "pairs of ints"),
        ({"points": 3}, "must be a list"),
        ({"points": {"0": 1}}, 'points must be {"n": rows'),
        ({"points": {"n": first + 2, "bits": "AA=="}}, f"among {first + 2} rows; there are {first + 1}"),
    ]:
        with pytest.raises(ValueError, match=message):
            session.check_selection(bad)
    with pytest.raises(ValueError, match="open the explorer with points="):
        Session.of(demo, "the film").check_selection({"points": [[0, 1]]})
    # the widget takes it from the browser and from Python (the kernel reads what the lasso chose)
    jx = rw.explore(demo, "review : the film was superb .", points=texts)
    jx.select(tokens=[2, 4], points=[[0, 3]])
    assert jx.selection["tokens"] == [2, 4] and jx.selection["points"] == [[0, 3]]
    jx.set_state({"selection": {**jx.selection, "points": [[5, 5]]}})  # refused: the kernel's value stays
    assert jx.selection["points"] == [[0, 3]]


def test_the_lasso_travels_as_a_bitset_of_the_shown_rows(demo, monkeypatch):
    texts = ["the film was bad .", "a fine day .", "the cat sat ."]
    first = len(demo.to_ids(texts[0])) - 1
    monkeypatch.setattr(projector.lasso, "MAX_POINTS", first + 3)  # text 0 whole, then 3 tokens of text 1, none of 2
    jx = rw.explore(demo, "review : the film was superb .", points=texts)
    shown = _get(jx.session, layer=0, colour=0)
    pairs = list(zip(shown["text"].tolist(), shown["pos"].tolist(), strict=True))
    # rows are the order of the projector's points (the browser's lasso reads them off its reply)
    rows = [1, first, first + 2]
    wire = encode_rows(rows, len(pairs))
    sent = []
    monkeypatch.setattr(jx, "_send", lambda msg, buffers=None: sent.append(msg))
    jx.set_state({"selection": {**jx.selection, "tokens": [1], "points": wire}})
    assert jx.selection["points"] == [list(pairs[r]) for r in rows] == [[0, 2], [1, 1], [1, 3]]
    # the kernel echoes the bitset, not the pairs, and sends nothing more: its checked value is what came
    assert [m["method"] for m in sent] == ["echo_update"] and sent[0]["state"]["selection"]["points"] == wire
    assert jx.get_state("selection")["selection"]["points"] == wire
    # a lasso made in Python travels the same way; an empty one as []
    jx.select(points=[[1, 3], [0, 2]])
    assert jx.get_state("selection")["selection"]["points"] == encode_rows([1, first + 2], len(pairs))
    jx.select(points=[])
    assert jx.get_state("selection")["selection"]["points"] == []
    # a malformed bitset is refused with the kernel's value kept
    jx.select(points=[[0, 1]])
    for bad in ({"n": len(pairs), "bits": "***"}, {"n": len(pairs) + 1, "bits": wire["bits"]}, {"n": 3}):
        jx.set_state({"selection": {**jx.selection, "points": bad}})
        assert jx.selection["points"] == [[0, 1]]
    with pytest.raises(ValueError, match="not valid base64"):
        jx.session.check_selection({"points": {"n": len(pairs), "bits": "***"}})


def test_colouring_by_an_sae_feature_is_the_saes_own_encoding(demo):
    sae = rw.demo.demo_sae()
    texts = [e.text for e in rw.demo.dataset("sentiment", 20)]
    prompt = "review : the film was superb ."
    session = Session.of(demo, prompt, points=texts, saes=[sae])
    colours = session.shape()["projector_colours"]
    assert colours[-1] == "SAE 0 feature"
    colour = len(colours) - 1
    # the feature most active over the texts, so that the test sees real activations
    acts = torch.cat([demo.run(t)[sae.hook][1:] for t in texts]).float()
    feature = int(sae.encode(acts).sum(0).argmax())
    out = _get(session, layer=1, colour=colour, feature=feature)
    n = out["n_prompt"]
    expected = torch.cat([sae.encode(demo.run(prompt)[sae.hook].float())[:, feature], sae.encode(acts)[:, feature]])
    assert out["value_max"] == pytest.approx(float(expected[1:].max()), rel=1e-5) and out["value_max"] > 0
    torch.testing.assert_close(out["values"], (expected / out["value_max"]).clamp(max=1.0), atol=1e-5, rtol=1e-4)
    assert out["categories"] == [] and len(out["values"]) == n + len(acts)
    # an ablation changes the prompt's activations, not the texts'
    session.apply(rw.Ablate(layer=0, head=0))
    after = _get(session, layer=1, colour=colour, feature=feature)
    rerun = demo.run(prompt, interventions=[rw.Ablate(layer=0, head=0)])
    prompt_acts = sae.encode(rerun[sae.hook].float())[:, feature]
    torch.testing.assert_close(after["values"][:n] * after["value_max"], prompt_acts.clamp(max=after["value_max"]))
    assert not torch.allclose(after["values"][:n], out["values"][:n])
    torch.testing.assert_close(after["values"][n:] * after["value_max"], out["values"][n:] * out["value_max"])
    with pytest.raises(ValueError, match="feature"):
        session.get({"type": "get", "what": "projector", "layer": 0, "colour": colour, "feature": sae.d_sae})
    assert session.get({"type": "get", "what": "projector", "layer": 0, "colour": 0, "feature": 0})[1]["feature"] == 0


def test_umap_is_umap_learns_own_fit_of_the_same_tokens(demo, monkeypatch):
    if not projector.umap_installed():
        pytest.skip("umap-learn is not installed (pip install umap-learn)")
    import umap

    texts = [e.text for e in rw.demo.dataset("sentiment", 30)]
    prompt = "review : the film was superb ."
    session = Session.of(demo, prompt, points=texts, projection="umap")
    assert session.shape()["projector_projection"] == "UMAP"
    out = _get(session, layer=2, colour=0)
    # the tokens it fitted are every token after <bos> of each text (one run each, by hand); UMAP's neighbour graph
    # breaks ties between near-duplicate tokens by the last bits, so the fit by hand reads the projector's own copy
    kept = projector.dataset(session)["acts"][2]
    by_hand = np.concatenate([demo.run(t)["blocks.2.hook_resid_post"][1:].float().numpy() for t in texts])
    np.testing.assert_allclose(kept.numpy(), by_hand, atol=1e-4, rtol=1e-4)
    acts = kept.numpy()
    reducer = umap.UMAP(n_components=2, random_state=projector.UMAP_SEED, n_jobs=1)
    expected = reducer.fit_transform(acts)
    n = out["n_prompt"]
    np.testing.assert_allclose(out["xy"][n:].numpy(), expected, atol=1e-3)
    clean = session.run["blocks.2.hook_resid_post"].float()
    torch.testing.assert_close(clean, demo.run(prompt)["blocks.2.hook_resid_post"].float())
    np.testing.assert_allclose(out["xy"][:n].numpy(), reducer.transform(clean.numpy()), atol=1e-3)
    # another colouring reuses the fit and the prompt's place; an intervention moves the prompt, not the texts
    torch.testing.assert_close(_get(session, layer=2, colour=1)["xy"], out["xy"])
    session.apply(rw.Skip(1))
    moved = _get(session, layer=2, colour=0)
    torch.testing.assert_close(moved["xy"][n:], out["xy"][n:])
    assert not torch.allclose(moved["xy"][:n], out["xy"][:n], atol=1e-3)
    # the activations kept or read again give the same fit
    monkeypatch.setattr(projector, "HOLD_BYTES", 0)
    again = _get(Session.of(demo, prompt, points=texts, projection="umap"), layer=2, colour=0)
    torch.testing.assert_close(again["xy"][n:], out["xy"][n:])


def test_umap_without_umap_learn_says_how_to_install_it(demo, monkeypatch):
    import importlib.util
    from importlib.machinery import ModuleSpec

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else real(name, *a))
    with pytest.raises(ImportError, match="pip install umap-learn"):
        rw.explore(demo, "the film", points=["a fine day ."], projection="umap")
    # a folder left by an uninstall (numba's cache) imports as an empty namespace package: not umap-learn
    stub = ModuleSpec("umap", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: stub if name == "umap" else real(name, *a))
    assert not projector.umap_installed()
    with pytest.raises(ValueError, match='projection must be "pca" or "umap"'):
        Session.of(demo, "the film", points=["a fine day ."], projection="tsne")
    with pytest.raises(ValueError, match="give it texts with points="):
        Session.of(demo, "the film", projection="umap")
    assert Session.of(demo, "the film", points=["a fine day ."]).shape()["projector_projection"] == "PCA"


def test_the_predictions_features_and_probes_average_over_the_lassoed_tokens(demo, monkeypatch):
    examples = rw.demo.dataset("sentiment", 40)
    probes = rw.train_probes(demo, examples, layers=[1, 2], control=False)
    sae = rw.demo.demo_sae()
    prompt = "review : the film was superb ."
    session = Session.of(demo, prompt, points=[e.text for e in examples[:4]], saes=[sae], probes=[probes])
    session.apply(rw.Ablate(layer=1, head=0))
    tokens = [4, 1, 3, 4]  # repeats and order do not matter
    clean, now = demo.run(prompt), demo.run(prompt, interventions=[rw.Ablate(layer=1, head=0)])

    def ask(what, **args):
        (reply, _), *_ = session.handle({"type": "get", "id": 1, "what": what, "tokens": tokens, **args})
        assert reply["type"] == "reply", reply
        return session.answer(what, session.get({"what": what, "tokens": tokens, **args})[1])

    # predictions: by hand, each position's softmax, then the mean over positions 1, 3, 4
    rows = [1, 3, 4]
    mean_clean = clean.logits[rows].float().softmax(-1).mean(0)
    mean_now = now.logits[rows].float().softmax(-1).mean(0)
    out = ask("predictions_over")
    assert out["over"] == 3
    top = mean_now.topk(len(out["ids"][1]))
    assert out["ids"][1].tolist() == top.indices.tolist()
    torch.testing.assert_close(out["probs"][1], top.values)
    torch.testing.assert_close(out["probs"][0], mean_clean.topk(len(out["ids"][0])).values)
    torch.testing.assert_close(out["delta_prob"][1], (mean_now - mean_clean)[top.indices])
    logit_change = now.logits[rows].float().mean(0) - clean.logits[rows].float().mean(0)
    torch.testing.assert_close(out["delta_logit"][1], logit_change[top.indices], atol=1e-4, rtol=1e-4)
    assert out["tokens"][1] == demo.to_str_tokens(top.indices.tolist())
    # features: the mean of each feature's activation over the positions, largest first
    acts = sae.encode(now[sae.hook][rows].float()).mean(0)
    out = ask("features_over", sae=0)
    expected = acts.topk(len(out["indices"]))
    assert out["indices"].tolist() == expected.indices.tolist() and out["over"] == 3
    torch.testing.assert_close(out["values"], expected.values)
    # probes: each class's probability averaged over the positions, at a probed layer; none at another
    out = ask("probe_over", probe=0, layer=2)
    by_hand = probes.logits(now["blocks.2.hook_resid_post"][rows], 2).softmax(-1).mean(0).float()
    torch.testing.assert_close(out["mean"], by_hand)
    assert out["classes"] == probes.classes
    assert "mean" not in ask("probe_over", probe=0, layer=0) and out["over"] == 3
    # bad positions are refused in one line, nothing else changes
    n = session.n_tokens
    # a model run elsewhere (no full logits here) gets a note for the caption, not an error
    monkeypatch.setattr(demo, "weightless", True, raising=False)
    assert session.answer("predictions_over", {"tokens": [1]}) == {
        "over": 1,
        "note": "no mean next-token probability (the model runs elsewhere)",
    }
    monkeypatch.undo()
    refused = [([], "1..4096 prompt positions"), (3, "must be a list"), ([1, "2"], "ints"), ([n], "out of range")]
    for bad, message in refused:
        (reply, _), *_ = session.handle({"type": "get", "id": 2, "what": "predictions_over", "tokens": bad})
        assert reply["type"] == "error" and message in reply["message"], (bad, reply)
