"""The continuation view's kernel side: continuations streamed a few tokens per request, equal to model.generate,
re-generated for new interventions, stopped on request, and a generated token shown in every view."""

from __future__ import annotations

import pytest
from test_views import ask, tensor

import repwidget as rw
from repwidget.views.panels import continuation

PROMPT = "review : the food was great and the staff were lovely . verdict :"


def stream(ex, which: int, stop: int = 0) -> list[dict]:
    """Ask for the continuation until it is done; every reply's payload (ids decoded)."""
    replies = []
    for _ in range(100):
        ((reply, buffers),) = ask(ex, type="get", what="continuation", which=which, stop=stop)
        assert reply["type"] == "reply", reply
        data = {**reply["data"], "ids": tensor(reply, buffers, "ids").tolist()}
        data["logprobs"] = tensor(reply, buffers, "logprobs").tolist()
        replies.append(data)
        if data["done"]:
            return replies
    raise AssertionError("the continuation never finished")


def test_continuations_stream_and_equal_generate(demo, monkeypatch):
    monkeypatch.setattr(continuation, "STEP_SECONDS", 0.0)  # one token per request: streaming is visible
    sae = rw.demo.demo_sae()
    ex = rw.explore(demo, PROMPT, saes=[sae], continuation=True)
    assert "continuation" in ex.views and ex.shape["continuation_tokens"] == continuation.MAX_NEW
    assert "continuation" not in rw.explore(demo, PROMPT).views  # only when asked for
    replies = stream(ex, 0)
    assert [len(r["ids"]) for r in replies[:3]] == [1, 2, 3]
    expected = demo.generate(PROMPT, max_new_tokens=continuation.MAX_NEW)
    last = replies[-1]
    assert last["ids"] == expected.new_token_ids and last["tokens"] == expected.new_tokens
    assert last["logprobs"] == pytest.approx(expected.logprobs, abs=1e-5)
    assert last["start"] == len(demo.to_ids(PROMPT)) and last["stopped"] == expected.stopped
    # with an intervention the other column is its own continuation; clean stays cached
    steer = rw.Steer(sae=sae, feature=3, scale=6.0)
    ex.interventions = [steer]
    steered = stream(ex, 1)[-1]
    assert steered["ids"] == demo.generate(PROMPT, steer, max_new_tokens=continuation.MAX_NEW).new_token_ids
    assert steered["ids"] != last["ids"] and steered["labels"] == [steer.label()]
    assert stream(ex, 0)[0]["ids"] == last["ids"]


def test_stop_ends_a_continuation_midway(demo, monkeypatch):
    monkeypatch.setattr(continuation, "STEP_SECONDS", 0.0)
    ex = rw.explore(demo, PROMPT, continuation=True)
    ((reply, _),) = ask(ex, type="get", what="continuation", which=0, stop=0)
    assert not reply["data"]["done"]
    stopped = stream(ex, 0, stop=1)
    assert len(stopped) == 1 and len(stopped[0]["ids"]) == 1 and stopped[0]["stopped"] == "stopped"
    assert len(stream(ex, 0)[-1]["ids"]) == 1  # stays stopped


def test_a_generated_token_is_shown_in_every_view_and_selected(demo):
    ex = rw.explore(demo, PROMPT, [rw.Ablate(1, head=0)], continuation=True)
    gen = stream(ex, 1)[-1]
    n = len(demo.to_ids(PROMPT))
    sent = ask(ex, type="show_continuation", view="v", seq=1, which="intervened", position=n + 2)
    assert sent[0][0]["type"] == "applied"
    assert ex.token_ids == demo.to_ids(PROMPT) + gen["ids"] and ex.selection["token"] == n + 2
    assert ex.run.interventions == (rw.Ablate(1, head=0),) and ex.run.token_ids == ex.token_ids
    assert ex.tokens == demo.to_str_tokens(ex.token_ids) and len(ex.token_kinds) == len(ex.token_ids)
    # the continuations still continue the prompt the explorer was opened on
    assert stream(ex, 1)[-1]["ids"] == gen["ids"]
    ((error, _),) = ask(ex, type="show_continuation", view="v", seq=2, which="intervened", position=10**6)
    assert error["type"] == "error" and "position must be an int in 0.." in error["message"]
    ((error, _),) = ask(ex, type="get", what="continuation", which=2, stop=0)
    assert error["type"] == "error" and "which 2 is out of range 0..1" in error["message"]
