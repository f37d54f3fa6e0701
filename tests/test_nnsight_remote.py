"""A model explored on NDIF without its weights here: ``rw.load(path, backend="nnsight", remote=True)``.

A GPT-2 and a Llama config are saved with random weights to a temp dir and loaded with ``remote=True``: the module
tree is on the ``meta`` device (no weight is materialised in this process) and every pass is a request that
:class:`FakeNDIF` serialises as nnsight's RemoteBackend would, deserialises with repwidget hidden against a
*separate* server model holding the real weights, runs, and sends back as NDIF does (``torch.save`` + zstd). Results
equal the hook executor's on the real weights (atol 1e-5); the bytes each way are measured. A model NDIF does not
serve is tested against :class:`LoopbackNDIF`, HTTP and websocket on 127.0.0.1 answering as NDIF would.
"""

from __future__ import annotations

import socket
import time

import pytest
import torch

pytest.importorskip("nnsight")

import repwidget as rw
from repwidget.model.nnsight_executor import RemoteExecutionError, UnsupportedOnBackendError

from architectures import ARCHITECTURES, build, matrix_ids
from conftest import word_tokenizer
from fake_ndif import FakeNDIF, serving

ATOL = 1e-5
REPO = "org/served-model"  # the hub id NDIF would know the saved model by (no hub here: taken as given)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def saved(request, tmp_path_factory):
    """A config with random weights saved to a directory, and the hook executor on those weights."""
    path = tmp_path_factory.mktemp(request.param)
    hf = build(request.param)
    assert hf.config._attn_implementation == "sdpa"  # the server's own: patterns switch it to eager for the pass
    hf.save_pretrained(path)
    word_tokenizer().save_pretrained(path)
    return str(path), rw.load(hf, word_tokenizer())


@pytest.fixture
def remote(saved, monkeypatch):
    """``rw.load(path, backend="nnsight", remote=True)`` with its passes going to :class:`FakeNDIF`."""
    import nnsight
    from nnsight import CONFIG
    from nnsight.modeling import huggingface

    path, local = saved
    monkeypatch.setitem(huggingface._ID_CACHE, path, REPO)  # nnsight checks the id on the hub once
    for key in ("HOST", "APIKEY"):
        monkeypatch.setattr(CONFIG.API, key, getattr(CONFIG.API, key))
    model = rw.load(path, backend="nnsight", remote=True)
    model.executor.backend = FakeNDIF(nnsight.TransformersModel(local.hf, tokenizer=word_tokenizer()))
    return model, local


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a.float(), b.float(), atol=ATOL, rtol=0)


def _on_meta(model: rw.Model) -> None:
    tensors = [*model.hf.parameters(), *model.hf.buffers()]
    assert tensors and all(t.is_meta for t in tensors), [t.device for t in tensors if not t.is_meta][:3]


def test_loads_without_weights_and_reads_the_architecture_on_a_twin(remote) -> None:
    model, local = remote
    _on_meta(model)  # no weight, no buffer materialised in this process
    assert model.weightless and not local.weightless
    assert model.arch == local.arch  # the twin's discovery, with the real sizes, is the real model's
    assert model.device == torch.device("cpu")  # where token ids and edits are built
    # what would read weights here is refused, one line each
    for call, error in ((model.unembedding, ValueError), (lambda: model.logits_from_resid(torch.zeros(4, 32)),
                                                           UnsupportedOnBackendError)):  # fmt: skip
        with pytest.raises(error, match="weights") as info:
            call()
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="on NDIF only") as info:  # it reads W_O
        rw.steering.function_vector(model, [matrix_ids(6)], [(1, 0)], 2)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="on NDIF only"):  # direct logit attribution reads the unembedding
        rw.analyses.direct_logit_attribution(model.run(matrix_ids(), capture=[]), 5)
    with pytest.raises(ValueError, match="a remote model has none"):
        rw.load("/nonexistent", backend="nnsight", remote=True, device="cpu")


def test_a_directory_without_a_tokenizer_is_one_line(saved, tmp_path) -> None:
    _, local = saved
    local.hf.config.save_pretrained(tmp_path)  # a config alone: no weights, no tokenizer
    with pytest.raises(rw.ModelLoadError, match="needs the model's tokenizer") as info:
        rw.load(str(tmp_path), backend="nnsight", remote=True)
    assert "\n" not in str(info.value)
    model = rw.load(str(tmp_path), word_tokenizer(), backend="nnsight", remote=True)  # a config is all it needs
    _on_meta(model)
    assert model.arch == local.arch


@pytest.mark.filterwarnings("ignore:Module .* has a submodule named 'output'")
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_the_twin_reads_every_architecture_of_the_matrix(name: str) -> None:
    """Discovery on the config twin of a meta model equals discovery on the real weights, for all 20 architectures
    (module paths, branch scales, parallel / post-norm blocks, logit head, sizes)."""
    from repwidget.model.architecture import discover
    from repwidget.model.twin import discover_weightless

    hf = build(name)
    with torch.device("meta"):
        meta = type(hf)(hf.config)
    assert discover_weightless(meta) == discover(hf, hf.get_input_embeddings().num_embeddings)


def test_an_nnsight_model_is_taken_as_it_is(saved, monkeypatch) -> None:
    """``rw.load(nnsight.TransformersModel(...), backend="nnsight", remote=True)``: nnsight's own meta model."""
    import nnsight

    path, local = saved
    lm = nnsight.TransformersModel(path, task="text-generation", tokenizer=word_tokenizer())
    model = rw.load(lm, backend="nnsight", remote=True)
    assert model.executor.lm is lm and model.hf is lm._module and model.weightless
    _on_meta(model)
    assert model.arch == local.arch and model.tokenizer is lm.tokenizer


def test_llama_405b_loads_from_its_config_alone(tmp_path) -> None:
    """Llama-3.1-405B's config (405.9B parameters, 810 GB in bfloat16): loaded with remote=True in seconds, every
    parameter on meta, the architecture read on its twin with the real sizes; a pass's request is a few KiB."""
    import transformers as T

    from repwidget.model.plan import plan_pass

    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}  # fmt: skip
    T.LlamaConfig(hidden_size=16384, num_hidden_layers=126, num_attention_heads=128, num_key_value_heads=8,
                  intermediate_size=53248, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                  rope_scaling=rope, tie_word_embeddings=False, dtype="bfloat16").save_pretrained(tmp_path)  # fmt: skip
    start = time.perf_counter()
    model = rw.load(str(tmp_path), word_tokenizer(), backend="nnsight", remote=True)
    seconds = time.perf_counter() - start
    _on_meta(model)
    assert sum(p.numel() for p in model.hf.parameters()) > 405e9 and seconds < 60, seconds
    arch = model.arch
    sizes = (arch.n_layers, arch.n_heads, arch.n_kv_heads, arch.d_model, arch.d_head, arch.d_mlp)
    assert sizes == (126, 128, 8, 16384, 128, 53248), sizes
    assert (arch.blocks, arch.attn_proj, arch.mlp_down, arch.final_norm, arch.unembed) == (
        "model.layers", "self_attn.o_proj", "mlp.down_proj", "model.norm", "lm_head")  # fmt: skip
    plan = plan_pass(model, matrix_ids(), (rw.Ablate(60, head=5),), [])
    assert len(model.executor.request(plan)) < 32_000


def test_runs_logits_predictions_ablation_and_lens_equal_the_hook_executor(remote) -> None:
    from repwidget import analyses

    model, local = remote
    fake = model.executor.backend
    ids = matrix_ids()
    names = ["blocks.0.attn.hook_z", "blocks.2.hook_resid_post", "blocks.1.mlp.hook_post"]
    a, b = local.run(ids, capture=names), model.run(ids, capture=names)
    for name in names:
        _close(a[name], b[name])
    assert b.result.final_hidden is None and b.result.logits is None  # no final hidden state came back
    _close(a.logits_at([3, 7, 19]), b.logits_at([3, 7, 19]))  # rows computed in a pass on the "server"
    _close(a.logits_at(5), b.logits_at(5))
    _close(a.logits_at(-1), b.logits_at(-1))
    _close(a.logits_at(slice(2, 6)), b.logits_at(slice(2, 6)))
    _close(a.logits, b.logits)
    (want, got) = (analyses.top_tokens(r, 6, k=5) for r in (a, b))
    assert [t for t, _ in want] == [t for t, _ in got]
    assert [p for _, p in want] == pytest.approx([p for _, p in got], abs=ATOL)
    ablate = [rw.Ablate(1, head=2), rw.Ablate(2, neuron=3), rw.Steer(0, torch.ones(model.d_model) * 0.3)]
    ra, rb = a.rerun(ablate, capture=names), b.rerun(ablate, capture=names)
    for name in names:
        _close(ra[name], rb[name])
    _close(ra.logits_at(range(20)), rb.logits_at(range(20)))
    assert not torch.allclose(ra.logits_at(range(20)), a.logits_at(range(20)))  # the ablation did something
    # the lens: reduced on the server even though resid_post streams were captured (no local weights to read them)
    full = analyses.logit_lens(local.run(ids), range(2, 14), k=3)
    reduced = analyses.logit_lens(model.run(ids), range(2, 14), k=3)
    assert torch.equal(full.ids, reduced.ids)
    _close(full.probs, reduced.probs)
    # predictions compared in one pass of both runs on the server equal the panel's computation from local logits
    from repwidget.views.panels.predictions import compare

    got = model.compare_in_pass(b, rb, [4, 19], k=10)
    for i, p in enumerate([4, 19]):
        want = compare(local, a.logits_at(p), ra.logits_at(p), p)
        assert torch.equal(got["ids"][:, i], want["ids"])
        for key in ("probs", "delta_prob", "delta_logit"):
            _close(got[key][:, i], want[key])
    lp_clean, lp = a.logits_at(range(20)).log_softmax(-1), ra.logits_at(range(20)).log_softmax(-1)
    got = model.compare_in_pass(b, rb, range(20), k=1)
    top = lp_clean.argmax(-1)
    assert torch.equal(got["top"].long(), top)
    _close(got["p"], lp.gather(-1, top[:, None])[:, 0].exp())
    _close(got["loss"][:-1], -lp[:-1].gather(-1, torch.tensor(ids[1:])[:, None])[:, 0])
    assert torch.isnan(got["loss"][-1]) and torch.isnan(got["clean_loss"][-1])
    last = model.compare_in_pass(b, rb, [-1], k=1)  # counted from the end: the last position has no next token
    assert torch.isnan(last["loss"]).all() and torch.equal(last["top"], got["top"][-1:])
    assert fake.sent and max(fake.sent) < 8_000, fake.sent
    _on_meta(model)  # still nothing materialised


def test_mean_ablation_patch_and_non_finite_edits_on_the_server(remote) -> None:
    model, local = remote
    refs = [matrix_ids(12, seed=s) for s in range(3)]
    model.set_reference(refs)  # statistics read from activations the server sends back
    local.set_reference(refs)
    ids = matrix_ids()
    for iv in (rw.Ablate(2, head=1, mode="mean"), rw.Patch("blocks.1.hook_resid_pre", matrix_ids(seed=5))):
        _close(local.run(ids, iv).logits_at(range(20)), model.run(ids, iv).logits_at(range(20)))
    with pytest.raises(ValueError, match="NaN or infinite"):  # checked on the server, one flag back
        model.run(ids, rw.Steer(1, torch.ones(model.d_model) * 3e38, scale=10.0))


def _click(ex, then: dict) -> list:
    from repwidget.interventions import to_json

    sent = []
    ex.send = lambda content, buffers=None: sent.append((content, buffers))
    click = {"id": "a-1", "type": "set", "view": "a", "seq": 1, "interventions": [to_json(rw.Ablate(1, head=2))],
             "then": then}  # fmt: skip
    ex._on_message(ex, click, [])
    return sent


def test_an_explorer_without_weights_answers_a_click(remote) -> None:
    """An explorer on the weightless model answers a click (the ablation and its predictions), the tokens view's
    effects, the lens and a head's pattern like the hook executor's; what comes back per click is small."""
    model, local = remote
    fake = model.executor.backend
    explorers = [rw.explore(m, matrix_ids()) for m in (local, model)]
    answers, per_click = [], {}
    for ex in explorers:
        start = time.perf_counter()
        before = (len(fake.sent), sum(fake.received))
        sent = _click(ex, {"type": "get", "id": "a-2", "what": "predictions", "position": 7})
        per_click = {"passes": len(fake.sent) - before[0], "received": sum(fake.received) - before[1],
                     "sent": sum(fake.sent[before[0]:]), "seconds": time.perf_counter() - start}  # fmt: skip
        for get in ({"what": "effects", "start": 0, "stop": 20}, {"what": "lens", "start": 0, "stop": 16},
                    {"what": "pattern", "layer": 2, "head": 1}):  # fmt: skip
            ex._on_message(ex, {"id": "b-1", "type": "get", **get}, [])
        assert not ex.error, ex.error
        answers.append(sent)
    assert [c["type"] for c, _ in answers[0]] == [c["type"] for c, _ in answers[1]]
    assert "error" not in [c["type"] for c, _ in answers[1]] and len(answers[1]) >= 5
    kinds = [c.get("what") for c, _ in answers[1]]
    assert kinds == [None, "predictions", "effects", "lens", "pattern"], kinds
    for (ca, ba), (cb, bb) in zip(*answers, strict=True):  # every reply, every tensor the views decode
        data_a, data_b = ca.get("data", {}), cb.get("data", {})
        assert data_a.keys() == data_b.keys()
        for key, value in data_a.items():
            if isinstance(value, dict) and "buffer" in value:
                x, y = _decoded(value, ba), _decoded(data_b[key], bb)
                if x.is_floating_point():
                    torch.testing.assert_close(x, y, atol=2e-3 if value["dtype"] == "float16" else ATOL, rtol=0,
                                               equal_nan=True)  # fmt: skip
                else:
                    assert torch.equal(x, y), (ca.get("what"), key)
            else:
                assert value == data_b[key], (ca.get("what"), key)
    print(f"\nper click on the weightless model: {per_click}")
    assert per_click["passes"] >= 2 and per_click["received"] < 16_000, per_click  # rerun + predictions, no rows
    assert fake.server._module.config._attn_implementation == "sdpa"  # eager for the passes with patterns only
    # views that read weights here are not shown; generation is refused in one line
    local_views, views = explorers[0].session.views, explorers[1].session.views
    assert "attribution" in local_views and "attribution" not in views and "predictions" in views, views
    with pytest.raises(ValueError, match="weights are on NDIF only"):
        model.generate(matrix_ids(), max_new_tokens=2)
    _on_meta(model)


def _decoded(header: dict, buffers: list) -> torch.Tensor:
    import numpy as np

    array = np.frombuffer(bytes(buffers[header["buffer"]]), dtype=header["dtype"]).reshape(header["shape"])
    return torch.from_numpy(array.astype(np.float32) if header["dtype"] == "float16" else array.copy())


# -- a model NDIF does not serve -------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["http", "status"])
def test_a_model_ndif_does_not_serve_is_one_line_and_the_explorer_keeps_its_state(remote, how) -> None:
    from nnsight import CONFIG

    model, _ = remote
    fake = model.executor.backend
    ex = rw.explore(model, matrix_ids())  # a good state, from the "server"
    shown, logits = ex.run, ex.run.logits_at(range(20)).clone()
    detail = f"Model {REPO!r} is not deployed on NDIF; see https://nnsight.net/status"
    with serving(how, detail=detail) as host:
        CONFIG.API.APIKEY, CONFIG.API.HOST = "test-key", host
        model.executor.backend, model.executor.timeout = None, 5.0  # the real RemoteBackend, to the local server
        start = time.perf_counter()
        with pytest.raises(RemoteExecutionError) as info:
            model.run(matrix_ids())
        message, seconds = str(info.value), time.perf_counter() - start
        print(f"\n{how}: {message} ({seconds:.2f} s)")
        assert seconds < 10
        assert "\n" not in message and len(message) < 300, message
        assert "is not deployed on NDIF" in message and REPO in message, message
        sent = _click(ex, {"type": "get", "id": "a-2", "what": "predictions", "position": 7})
        assert sent[0][0]["type"] == "error" and "is not deployed on NDIF" in ex.error and "\n" not in ex.error
        assert ex.run is shown and ex.interventions == []
    model.executor.backend = fake  # NDIF serves it again: the state was kept and the next click works
    _close(ex.run.logits_at(range(20)), logits)
    _click(ex, {"type": "get", "id": "a-3", "what": "predictions", "position": 7})
    assert ex.interventions == [rw.Ablate(1, head=2)] and not ex.error


def test_a_closed_port_is_one_line(remote) -> None:
    from nnsight import CONFIG

    model, _ = remote
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    CONFIG.API.APIKEY, CONFIG.API.HOST = "test-key", f"http://127.0.0.1:{port}"
    model.executor.backend = None
    with pytest.raises(RemoteExecutionError, match="unreachable"):
        model.run(matrix_ids())
