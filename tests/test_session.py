"""The kernel side of a widget (a Session) and its protocol: views shown twice, stale clicks, browser writes to
kernel-owned state, short errors, weights that change under an open explorer, and one home per concept."""

from __future__ import annotations

import pytest
import torch

import repwidget as rw
from repwidget.interventions import MODES, kinds, to_json

from conftest import build, ids


def handle(ex, **content):
    """What the kernel answers to one message, as the widget would send it."""
    sent = []
    ex.send = lambda content, buffers=None: sent.append(content)
    ex._on_message(ex, {"id": content.pop("id", "v-1"), **content}, [])
    return sent


def click(ex, view: str, seq: int, *ivs: rw.Ablate):
    return handle(ex, id=f"{view}-{seq}", type="set", view=view, seq=seq, interventions=[to_json(iv) for iv in ivs])


def test_sequence_numbers_are_per_view_and_every_click_is_answered(demo):
    ex = rw.explore(demo, "the capital of france is")
    assert click(ex, "a", 5, rw.Ablate(0, head=1))[0] == {"type": "applied", "id": "a-5", "gen": 1, "superseded": False}
    # a second view (the widget shown again, or a reloaded page) numbers from 1: its click is not ignored
    assert click(ex, "b", 1, rw.Ablate(1, head=2))[0]["superseded"] is False
    assert ex.interventions == [rw.Ablate(1, head=2)]
    # a late click of view a, older than its last, is answered (superseded, with the current generation)
    late = click(ex, "a", 4, rw.Ablate(3, head=3))
    assert late == [{"type": "applied", "id": "a-4", "gen": 2, "superseded": True}]
    assert ex.interventions == [rw.Ablate(1, head=2)]
    # one view's huge sequence number poisons nobody else
    click(ex, "evil", 2**62, rw.Ablate(2, head=0))
    assert click(ex, "c", 1)[0]["superseded"] is False and ex.interventions == []


def test_the_browser_cannot_write_what_the_kernel_owns(demo):
    ex = rw.explore(demo, "the capital of france is")
    before = {name: getattr(ex, name) for name in ("shape", "tokens", "views", "intervention_list", "generation")}
    ex.set_state({"shape": {"n_tokens": 10**9}, "tokens": ["x"], "views": ["secrets"], "generation": 99})
    assert {name: getattr(ex, name) for name in before} == before
    ex.set_state({"selection": {**ex.selection, "token": 99}})  # out of range: refused
    assert ex.selection["token"] == 5
    ex.set_state({"mode": "explode"})
    assert ex.mode == "zero"
    ex.set_state({"selection": {**ex.selection, "token": 2, "layer": 3}, "mode": "mean"})  # valid: taken
    assert (ex.selection["token"], ex.selection["layer"], ex.mode) == (2, 3, "mean")


def test_select_checks_ranges_and_keys(demo, tmp_path):
    ex = rw.explore(demo, "the capital of france is")
    for bad, match in (({"token": 6}, "token 6 is out of range 0..5"), ({"head": -1}, "head -1"),
                       ({"layer": "1"}, "layer must be an int"), ({"colour": 1}, "unknown selection keys"),
                       ({"feature": 3}, "feature 3 is out of range")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ex.select(**bad)
    ex.select(token=1, neuron=7)
    assert ex.selection["token"] == 1 and ex.selection["neuron"] == 7
    assert ex.save_html(tmp_path / "page.html").stat().st_size > 0  # the state still exports


def test_errors_quote_only_a_short_prefix_of_a_bad_input(demo):
    ex = rw.explore(demo, "the capital of france is")
    huge = "x" * 5_000_000
    for message in (
        {"type": "set", "view": "a", "seq": 1, "interventions": [{"type": huge}]},
        {"type": "get", "what": huge},
        {"type": huge},
        {"type": "get", "what": "pattern", "layer": huge, "head": 0},
    ):
        sent = handle(ex, **message)
        assert sent[0]["type"] == "error"
        assert len(sent[0]["message"]) < 600 and len(ex.error) < 600, len(ex.error)
    assert ex.interventions == []


def test_a_model_whose_weights_change_under_an_open_explorer_is_run_again_clean():
    model = rw.load(build("gpt2"))
    x = ids(9)
    ex = rw.explore(model, x)
    old_clean = ex.clean_run
    old_logits = old_clean.logits  # read before the change (after it, the run refuses to mix both weights)
    with torch.no_grad():
        model.hf.transformer.h[0].mlp.c_fc.weight.mul_(1.5)  # weights edited in place
    click(ex, "a", 1, rw.Ablate(3, head=1))
    fresh_clean = model.run(x)
    fresh = model.run(x, rw.Ablate(3, head=1))
    torch.testing.assert_close(ex.run.logits, fresh.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(ex.clean_run.logits, fresh_clean.logits, atol=1e-5, rtol=0)
    assert not torch.allclose(old_logits, fresh_clean.logits, atol=1e-3)
    assert "weights changed" in ex.error
    # a rerun of a run made before the change is a full pass, never a mix of old and new blocks
    torch.testing.assert_close(old_clean.rerun(rw.Ablate(3, head=1)).logits, fresh.logits, atol=1e-5, rtol=0)
    with torch.no_grad():
        model.hf.transformer.h[0].mlp.c_fc.weight.div_(1.5)


def test_every_kind_has_one_definition_with_a_label_json_and_repr():
    sae = rw.demo.demo_sae()
    examples = [
        rw.Ablate(1, head=2),
        rw.Ablate(2, neuron=7, mode="mean"),
        rw.Ablate(0),
        rw.Ablate(1, direction=[1.0] * 128),
        rw.Ablate(sae=sae, feature=3),
        rw.Steer(1, [0.5] * 128, scale=2.0),
        rw.Steer(sae=sae, feature=4, scale=-1.5),
        rw.Patch("blocks.1.hook_resid_post", [1, 2, 3], positions=[0]),
        rw.Knockout(2, head=1, query=[4], key=[1, 2]),
        rw.Skip(3),
        rw.Replace("blocks.2.hook_mlp_out", [[0.25] * 128, [-0.5] * 128], positions=[1, 3]),
    ]
    assert {type(iv).kind for iv in examples} == set(kinds())
    labels = [iv.label() for iv in examples]
    assert labels == [
        "ablate head 1.2 (zero)",
        "ablate neuron 2.7 (mean)",
        "ablate attention 0 (zero)",
        "project out a direction at layer 1 (zero)",
        f"ablate feature 3 of {sae.name}",
        "steer layer 1 (scale 2.00)",
        f"steer feature 4 of {sae.name} \u00d7 -1.5",
        "patch blocks.1.hook_resid_post at position 0 from 3 tokens",
        "knock out head 2.1: at position 4 \u2192 at keys 1, 2",
        "skip block 3",
        "replace blocks.2.hook_mlp_out at positions 1, 3",
    ]
    for iv in examples:
        assert rw.interventions.from_json(to_json(iv, saes=[sae]), saes=[sae]) == iv
        assert eval(repr(iv), {"rw": rw}) == iv


def test_the_modes_are_sent_to_the_front_end_with_what_each_needs(demo):
    model = rw.load(build("gpt2"))
    ex = rw.explore(model, ids(6))
    assert [(m["name"], m["available"]) for m in ex.shape["modes"]] == [(m, m == "zero") for m in MODES]
    assert ex.shape["modes"][1]["reason"] == "needs reference texts" and "set_reference" in ex.shape["modes"][1]["hint"]
    model.set_reference([ids(6, seed=3)])
    ex = rw.explore(model, ids(6))
    assert all(m["available"] for m in ex.shape["modes"])
