"""A hostile or broken NDIF host (:class:`LoopbackNDIF` on 127.0.0.1, nnsight's real RemoteBackend path): every
wait ends within ``executor.timeout`` in one line, a result that would run code is refused without running it,
an oversized or wrong-shaped result is refused before it reaches a view, and the next pass works.

Bounds on elapsed time here are hang checks (timeout + 10 s), not benchmarks.
"""

from __future__ import annotations

import io
import time

import pytest
import torch

pytest.importorskip("nnsight")

import repwidget as rw
from repwidget.model.nnsight_executor import RemoteExecutionError

from architectures import build, matrix_ids
from conftest import word_tokenizer
from fake_ndif import FakeNDIF, serving

REPO = "org/served-model"
TIMEOUT = 1.5
CAPTURE = ["blocks.1.hook_resid_post", "blocks.0.attn.hook_z"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt2")
    hf = build("gpt2")
    hf.save_pretrained(path)
    word_tokenizer().save_pretrained(path)
    return str(path), hf


@pytest.fixture
def remote(saved, monkeypatch):
    """A weightless ``rw.load(path, backend="nnsight", remote=True)`` whose passes go to :class:`FakeNDIF`."""
    import nnsight
    from nnsight import CONFIG
    from nnsight.modeling import huggingface

    path, hf = saved
    monkeypatch.setitem(huggingface._ID_CACHE, path, REPO)
    for key in ("HOST", "APIKEY"):
        monkeypatch.setattr(CONFIG.API, key, getattr(CONFIG.API, key))
    model = rw.load(path, backend="nnsight", remote=True)
    model.executor.backend = FakeNDIF(nnsight.TransformersModel(hf, tokenizer=word_tokenizer()))
    return model


def _to(model: rw.Model, host: str, timeout: float = TIMEOUT) -> None:
    """The real (bounded) RemoteBackend path, to ``host``."""
    from nnsight import CONFIG

    CONFIG.API.APIKEY, CONFIG.API.HOST = "test-key", host
    model.executor.backend, model.executor.timeout = None, timeout


def _failure(call) -> tuple[str, float]:
    start = time.perf_counter()
    with pytest.raises(RemoteExecutionError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    return message, time.perf_counter() - start


def _blob(value, compress: bool = True) -> bytes:
    import zstandard

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return zstandard.ZstdCompressor().compress(buffer.getvalue()) if compress else buffer.getvalue()


@pytest.mark.parametrize(
    "how", ["trickle_handshake", "silent", "no_answer", "no_status", "trickle_post", "trickle", "trickle_frame"]
)
def test_every_remote_wait_ends_within_the_timeout_and_the_explorer_stays_usable(remote, how) -> None:
    """A websocket that never speaks, a request never answered, a job that never reports, and a handshake, an
    answer or a result that trickles in a byte every 0.2 s: each ends in one line within about
    ``executor.timeout``."""
    from repwidget.interventions import to_json

    fake = remote.executor.backend
    ids = matrix_ids()
    want = remote.run(ids, capture=CAPTURE)
    ex = rw.explore(remote, ids)
    shown = ex.run
    with serving(how, result=fake.wire) as host:
        _to(remote, host)
        message, seconds = _failure(lambda: remote.run(ids, capture=CAPTURE))
        print(f"\n{how}: {message} ({seconds:.2f} s)")
        assert f"did not answer within {TIMEOUT:g} s" in message, message
        assert seconds < TIMEOUT + 10, seconds  # a hang check: nnsight alone waits for ever (or 600 s a read)
        sent = []
        ex.send = lambda content, buffers=None: sent.append(content)
        click = {"id": "a-1", "type": "set", "view": "a", "seq": 1, "interventions": [to_json(rw.Ablate(1, head=2))]}
        ex._on_message(ex, click, [])
        assert sent[0]["type"] == "error" and "did not answer" in ex.error and ex.run is shown
    remote.executor.backend = fake  # the host answers again: the next pass works
    got = remote.run(ids, capture=CAPTURE)
    for name in CAPTURE:
        torch.testing.assert_close(got[name], want[name], atol=0, rtol=0)


@pytest.mark.parametrize("how", ["download", "frame"])
def test_an_honest_result_arrives_whole_through_the_bounded_path(remote, how) -> None:
    """The bytes FakeNDIF sent for a pass, served by the loopback host as NDIF would (a download, or a binary
    frame on the websocket): decoded safely, checked against the plan, equal to the fake's."""
    fake = remote.executor.backend
    ids = matrix_ids()
    want = remote.run(ids, capture=CAPTURE)
    with serving(how, result=fake.wire) as host:
        _to(remote, host, timeout=30)
        got = remote.run(ids, capture=CAPTURE)
    for name in CAPTURE:
        torch.testing.assert_close(got[name], want[name], atol=0, rtol=0)


class _CreatesFile:
    """Unpickled, it calls ``open(path, "w")``: what a hostile host would put in a result frame."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("how", ["download", "frame", "status"])
def test_a_result_that_would_run_code_is_refused_without_running_it(remote, how, tmp_path) -> None:
    """A pickle whose loading creates a file, as the result (downloaded, or in a binary frame) or as the binary
    status frame itself: the file is not created and the error says why in one line."""
    target = tmp_path / "pwned"
    evil = _blob({"out": _CreatesFile(target)})
    if how == "status":  # the pickled status frame itself carries the payload (not its result blob)
        how, evil = "frame", _CreatesFile(target)
    with serving(how, result=evil) as host:
        _to(remote, host, timeout=30)
        message, _ = _failure(lambda: remote.run(matrix_ids(), capture=[]))
    assert not target.exists()  # nothing ran
    assert "holds something other than tensors and plain containers" in message and "open" in message, message


@pytest.mark.parametrize("what", ["bomb", "large_download", "large_frame"])
def test_an_oversized_result_is_refused_while_reading(remote, what) -> None:
    """A pass that brings back one flag may read a few dozen KiB: 64 MB of zeros compressed to a few KiB, 4 MB on
    the wire (declared by Content-Length, or in one websocket frame) are refused, in one line."""
    zeros = _blob({"out": {"x": torch.zeros(16_000_000)}})
    noise = torch.randint(0, 256, (4_000_000,), dtype=torch.uint8).numpy().tobytes()
    how, result = {"bomb": ("download", zeros), "large_download": ("download", noise),
                   "large_frame": ("frame", noise)}[what]  # fmt: skip
    assert len(zeros) < 64_000
    with serving(how, result=result) as host:
        _to(remote, host, timeout=30)
        message, _ = _failure(lambda: remote.run(matrix_ids(), capture=[]))
    assert "NDIF sent more than the pass can produce" in message, message


def _rows(out: dict) -> None:
    out["rows"] = torch.tensor(1.0)


def _missing(out: dict) -> None:
    del out["caches"]


def _string(out: dict) -> None:
    out["caches"][0]["blocks.1.hook_resid_post"] = "1.0"


def _width(out: dict) -> None:
    out["caches"][0]["blocks.0.attn.hook_z"] = out["caches"][0]["blocks.0.attn.hook_z"][..., :-1]


def _kind(out: dict) -> None:
    out["compare"]["ids"] = out["compare"]["ids"].float()


def _nothing(out: dict) -> None:
    out.clear()


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (_rows, r"result\['rows'\] is shaped \[\], expected \[1, \d+\]"),
        (_missing, r"result is missing \['caches'\]"),
        (_string, r"result\['caches'\]\[0\]\['blocks.1.hook_resid_post'\] is a str, expected a tensor"),
        (_width, r"\['blocks.0.attn.hook_z'\] is shaped \[20, (\d+), \d+\], expected \[20, \1, \d+\]"),
        (_kind, r"result\['compare'\]\['ids'\] is a torch.float32 tensor, expected a int tensor"),
        (_nothing, r"result is missing \["),
    ],
)
def test_a_result_that_does_not_fit_the_plan_is_one_line(remote, tamper, match) -> None:
    """``logits_at(-1)`` given a scalar, a capture missing, a string, a wrong width, float token ids: each refused
    with one line naming the value, before any view reads it; an honest host's next pass works."""
    fake = remote.executor.backend
    ids = matrix_ids()
    run = remote.run(ids, capture=CAPTURE)
    calls = {_rows: lambda: run.logits_at(-1), _kind: lambda: remote.compare_in_pass(run, run, [4], k=3)}
    fake.tamper = lambda result: tamper(result["out"])
    message, _ = _failure(calls.get(tamper, lambda: remote.run(ids, capture=CAPTURE)))
    assert message.startswith("NDIF's result does not fit the pass: ")
    import re

    assert re.search(match, message), message
    fake.tamper = None
    assert run.logits_at(-1).shape == (remote.hf.config.vocab_size,)


def test_the_hub_lookup_of_the_model_id_is_bounded_too(remote, monkeypatch) -> None:
    """Before its first request nnsight checks the model's id on the Hugging Face hub, with no timeout of its own: a
    hub that never answers ends within ``executor.timeout`` (10 s at most) in one line."""
    import socket

    from huggingface_hub import constants
    from nnsight.modeling import huggingface

    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(remote.executor.lm, "repo_id", "org/not-yet-named")  # not in nnsight's cache of ids
        assert "org/not-yet-named" not in huggingface._ID_CACHE
        _to(remote, "http://127.0.0.1:9", timeout=1.0)
        message, seconds = _failure(lambda: remote.run(matrix_ids(), capture=[]))
    print(f"\n{message} ({seconds:.2f} s)")
    assert message.startswith("could not name") and seconds < 11, (message, seconds)


@pytest.mark.parametrize("timeout", [0, -1.0, float("inf"), float("nan"), "30", None])
def test_a_timeout_that_bounds_nothing_is_refused_in_one_line(remote, timeout) -> None:
    _to(remote, "http://127.0.0.1:9", timeout=timeout)
    with pytest.raises(ValueError, match=r"^executor.timeout must be a positive number of seconds, got ") as info:
        remote.run(matrix_ids(), capture=[])
    assert "\n" not in str(info.value)
