"""rw.load: loaded models, local directories, and hub ids that cannot be reached."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading

import pytest
import torch

import repwidget as rw

from conftest import build, word_tokenizer


def test_local_directory_with_tokenizer(tmp_path):
    hf = build("llama")
    hf.save_pretrained(tmp_path)
    word_tokenizer().save_pretrained(tmp_path)
    model = rw.load(tmp_path)
    assert model.tokenizer is not None and (model.n_layers, model.n_heads, model.d_model) == (4, 4, 32)
    run = model.run("w3 w4 w5")
    torch.testing.assert_close(run.logits, hf(torch.tensor([run.token_ids])).logits[0], atol=1e-5, rtol=0)


def test_local_directory_without_tokenizer_takes_ids(tmp_path):
    build("gpt2").save_pretrained(tmp_path)
    model = rw.load(str(tmp_path), dtype="float64")
    assert model.tokenizer is None and model.run([1, 2]).logits.dtype == torch.float64


def test_bert_directory_loads_as_masked_lm(tmp_path):
    build("bert").save_pretrained(tmp_path)
    assert rw.load(tmp_path).run([1, 2, 3])["blocks.0.attn.hook_pattern"].shape == (4, 3, 3)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("./no/such/dir", "no such directory"),
        ("/definitely/not/here", "no such directory"),
    ],
)
def test_bad_paths(name, match):
    with pytest.raises(rw.ModelLoadError, match=match):
        rw.load(name)


def test_directory_without_config(tmp_path):
    with pytest.raises(rw.ModelLoadError, match=r"no config\.json"):
        rw.load(tmp_path)


def test_wrong_types():
    with pytest.raises(TypeError):
        rw.load(42)
    with pytest.raises(ValueError, match="floating-point"):
        rw.load(build("gpt2"), dtype="float7")
    with pytest.raises(ValueError, match="floating-point"):
        rw.load(build("gpt2"), dtype=torch.int8)
    with pytest.raises(ValueError, match="unknown device"):
        rw.load(build("gpt2"), device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="0 CUDA device"):
            rw.load(build("gpt2"), device="cuda")


def _load_in_subprocess(tmp_path, endpoint: str, extra_env: dict | None = None) -> tuple[float, str]:
    code = (  # the load alone is timed (importing torch and transformers takes 15 s on a loaded machine)
        "import time\nimport repwidget as rw\nstart = time.perf_counter()\n"
        "try:\n    rw.load('org/model')\nexcept rw.ModelLoadError as e:\n    print(e)\n"
        "print('load seconds', time.perf_counter() - start)\n"
    )
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_ETAG_TIMEOUT": "3",
        **(extra_env or {}),
    }
    env.pop("HF_HUB_OFFLINE", None)
    env.update(extra_env or {})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    timed = re.search(r"^load seconds ([0-9.]+)$", out.stdout, re.M)
    return (float(timed.group(1)) if timed else float("inf")), out.stdout + out.stderr


def test_unreachable_hub_fails_at_once_with_what_to_do(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    seconds, output = _load_in_subprocess(tmp_path, f"http://127.0.0.1:{port}")
    assert "could not reach the Hugging Face hub" in output and "rw.demo_model()" in output
    assert "Traceback" not in output, output
    assert seconds < 60


def test_a_hub_that_hangs_gives_up_within_seconds(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept_and_say_nothing():
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    try:
        seconds, output = _load_in_subprocess(tmp_path, f"http://127.0.0.1:{server.getsockname()[1]}")
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()
    assert "could not reach the Hugging Face hub" in output, output
    assert "Traceback" not in output
    assert accepted, "the load must have tried the (local, silent) hub"
    assert seconds < 30, "a silent hub is given up on after a timeout, not waited on"


def test_offline_mode_says_so(tmp_path):
    _, output = _load_in_subprocess(tmp_path, "http://127.0.0.1:9", {"HF_HUB_OFFLINE": "1"})
    assert "HF_HUB_OFFLINE" in output and "Traceback" not in output
