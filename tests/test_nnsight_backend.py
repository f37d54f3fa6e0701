"""The nnsight backend: every pass as an nnsight trace of the same model equals the local hook executor's.

Runs, reruns, batches, captures, gradients and every intervention kind, on GPT-2, Llama and GPT-NeoX (parallel)
random-init models from the architecture matrix, atol 1e-5. The remote path is exercised up to the request
(nnsight's own request format, its size) and through its failure modes against a closed local port.
"""

from __future__ import annotations

import socket
import time

import pytest
import torch

pytest.importorskip("nnsight")

import repwidget as rw
from repwidget.model.nnsight_executor import (
    NNsightExecutor,
    RemoteExecutionError,
    UnsupportedOnBackendError,
)

from architectures import ARCHITECTURES, build, matrix_ids

ATOL = 1e-5
NAMES = ["gpt2", "llama", "neox"]


@pytest.fixture(scope="module", params=NAMES)
def pair(request) -> tuple[rw.Model, rw.Model]:
    """The same weights behind the local backend and the nnsight backend."""
    hf = build(request.param)
    return rw.load(hf), rw.load(hf, backend="nnsight")


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def _same_run(a: rw.Run, b: rw.Run, names: list[str]) -> None:
    for name in names:
        _close(a[name], b[name])
    _close(a.logits, b.logits)


def _sae(model: rw.Model, hook: str, architecture: str = "standard", seed: int = 0) -> rw.SAE:
    g = torch.Generator().manual_seed(seed)
    d_in, d_sae = model.hook_width(hook), 48
    extra = {"k": 6} if architecture == "topk" else {}
    if architecture == "jumprelu":
        extra = {"threshold": torch.full((d_sae,), 0.05)}
    return rw.SAE(torch.randn(d_in, d_sae, generator=g) * 0.3, torch.randn(d_sae, generator=g) * 0.1,
                  torch.randn(d_sae, d_in, generator=g) * 0.3, torch.zeros(d_in), architecture=architecture,
                  hook=hook, name=f"sae-{architecture}", **extra)  # fmt: skip


@pytest.mark.filterwarnings("ignore:Module .* has a submodule named 'output'")  # BERT's, renamed by nnsight
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_of_the_matrix(name: str) -> None:
    """All 20 architectures: every hook, a head, layer, neuron ablation and a steer, and the thumbnails."""
    hf = build(name)
    local, nn_model = rw.load(hf), rw.load(hf, backend="nnsight")
    ids = matrix_ids()
    names = local.hook_names()
    ivs = [rw.Ablate(1, head=1), rw.Steer(2, torch.ones(local.d_model) * 0.3), rw.Ablate(0)]
    ivs += [] if local.arch.moe else [rw.Ablate(2, neuron=3)]
    _same_run(local.run(ids, ivs, capture=names), nn_model.run(ids, ivs, capture=names), names)
    _close(local.run(ids, summarize=8).summary()[0], nn_model.run(ids, summarize=8).summary()[0])


def test_load_makes_an_nnsight_executor(pair) -> None:
    local, nn_model = pair
    assert isinstance(nn_model.executor, NNsightExecutor)
    assert not isinstance(local.executor, NNsightExecutor)
    with pytest.raises(ValueError, match="backend must be one of"):
        rw.load(local.hf, backend="vllm")
    with pytest.raises(ValueError, match="use backend='nnsight'"):
        rw.load(local.hf, remote=True)


def test_runs_capture_every_hook_and_pattern(pair) -> None:
    local, nn_model = pair
    ids = matrix_ids()
    names = local.hook_names()
    a, b = local.run(ids, capture=names), nn_model.run(ids, capture=names)
    assert any(n.endswith("attn.hook_pattern") for n in names) and any(n.endswith("attn.hook_z") for n in names)
    assert b.result.final_hidden is not None and b.result.logits is None  # logits are computed when read
    _same_run(a, b, names)
    _close(a.logits_at(3), b.logits_at(3))


def test_summaries_and_replayed_patterns(pair) -> None:
    """What the explorer's attention views read: thumbnails and head scores, a pattern replayed from a run."""
    local, nn_model = pair
    ids = matrix_ids()
    a, b = local.run(ids, summarize=8), nn_model.run(ids, summarize=8)
    (ta, sa), (tb, sb) = a.summary(), b.summary()
    _close(ta, tb)
    assert sa.keys() == sb.keys()
    for key in sa:
        _close(sa[key], sb[key])
    _close(a["blocks.1.attn.hook_pattern"], b["blocks.1.attn.hook_pattern"])


def _interventions(model: rw.Model, n: int) -> list:
    """One of every kind and target the nnsight backend compiles (knockouts are refused)."""
    d = model.d_model
    g = torch.Generator().manual_seed(1)
    direction = torch.randn(d, generator=g)
    resid = "blocks.1.hook_resid_post"
    source = matrix_ids(n, seed=9)
    return [
        rw.Ablate(1, head=2),
        rw.Ablate(2, head=0, mode="mean"),
        rw.Ablate(0, head=1, mode="resample", seed=3, positions=[2, 5]),
        rw.Ablate(1, neuron=7),
        rw.Ablate(2, neuron=3, mode="mean", positions=[4]),
        rw.Ablate(0),
        rw.Ablate(3, mode="resample"),
        rw.Ablate(1, direction=direction),
        rw.Ablate(2, direction=direction, mode="mean", positions=[1, 3]),
        rw.Ablate(2, direction=direction, mode="resample"),
        rw.Ablate(sae=_sae(model, resid), feature=5),
        rw.Ablate(sae=_sae(model, "blocks.2.hook_resid_pre", "topk", 1), feature=2, positions=[6, 7]),
        rw.Ablate(sae=_sae(model, "blocks.0.hook_mlp_out", "jumprelu", 2), feature=0),
        rw.Steer(1, direction * 0.5),
        rw.Steer(3, direction, scale=2.0, positions=[0, 4]),
        rw.Steer(sae=_sae(model, resid), feature=3, scale=1.5),
        rw.Patch("blocks.1.hook_resid_pre", source),
        rw.Patch("blocks.2.attn.hook_z", source, head=1, positions=[3, 8]),
        rw.Patch("blocks.0.hook_attn_out", source, positions=[5]),
        rw.Patch("blocks.2.mlp.hook_post", source, interventions=(rw.Ablate(0, head=0),)),
        rw.Patch("blocks.3.hook_mlp_out", source),
    ]


def _reference(pair) -> None:
    for model in pair:
        if model.reference is None:
            model.set_reference([matrix_ids(12, seed=s) for s in range(3)])


def test_every_intervention_kind_alone_and_rerun(pair) -> None:
    local, nn_model = pair
    _reference(pair)
    ids = matrix_ids()
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(local.n_layers)]
    base_a, base_b = local.run(ids, capture=names), nn_model.run(ids, capture=names)
    for iv_a, iv_b in zip(_interventions(local, len(ids)), _interventions(nn_model, len(ids)), strict=True):
        a, b = local.run(ids, iv_a, capture=names), nn_model.run(ids, iv_b, capture=names)
        _same_run(a, b, names)
        assert not torch.allclose(a.logits, base_a.logits), f"{iv_a!r} changed nothing: a test that cannot fail"
        _same_run(local.rerun(base_a, iv_a, capture=names), nn_model.rerun(base_b, iv_b, capture=names), names)


def test_all_interventions_at_once_and_hook_edits(pair) -> None:
    """Many edits in one pass, several on one hook, and edits of what a block adds (attn_out, mlp_out, mid)."""
    local, nn_model = pair
    _reference(pair)
    ids = matrix_ids()
    names = local.hook_names()
    names = [n for n in names if not n.endswith("hook_pattern")]
    ivs_a, ivs_b = _interventions(local, len(ids)), _interventions(nn_model, len(ids))
    mid = [rw.Patch("blocks.1.hook_resid_mid", matrix_ids(seed=4))] if "blocks.1.hook_resid_mid" in names else []
    _same_run(local.run(ids, ivs_a + mid, capture=names), nn_model.run(ids, ivs_b + mid, capture=names), names)


@pytest.mark.parametrize("padding", ["right", "left"])
def test_batches_with_interventions(pair, padding: str) -> None:
    local, nn_model = pair
    texts = [matrix_ids(n, seed=n) for n in (9, 14, 6)]
    ivs = [rw.Ablate(1, head=0, positions=[2]), rw.Steer(2, torch.ones(local.d_model) * 0.3)]
    names = ["blocks.0.hook_resid_pre", "blocks.2.attn.hook_z", "blocks.3.hook_resid_post"]
    for a, b in zip(
        local.run_batch(texts, ivs, capture=names, padding=padding),
        nn_model.run_batch(texts, ivs, capture=names, padding=padding),
        strict=True,
    ):
        _same_run(a, b, names)


def test_rerun_batch_and_capture(pair) -> None:
    local, nn_model = pair
    ids = matrix_ids()
    sets = [[rw.Ablate(1, head=h)] for h in range(local.n_heads)]
    base_a, base_b = local.run(ids), nn_model.run(ids)
    for a, b in zip(local.rerun_batch(base_a, sets), nn_model.rerun_batch(base_b, sets), strict=True):
        _close(a.logits, b.logits)
    got_a = local.capture_batch([ids, ids[:7]], "blocks.1.*", progress=False)
    got_b = nn_model.capture_batch([ids, ids[:7]], "blocks.1.*", progress=False)
    for ca, cb in zip(got_a, got_b, strict=True):
        assert ca.keys() == cb.keys() and ca
        for key in ca:
            _close(ca[key], cb[key])


def test_gradients_and_lens(pair) -> None:
    local, nn_model = pair
    ids = matrix_ids()
    hook = "blocks.1.hook_resid_post"
    (ca, la), (cb, lb) = local.with_graph(ids, hook), nn_model.with_graph(ids, hook)
    _close(la, lb)
    ga = torch.autograd.grad(la[-1, 5], ca[hook])[0]
    gb = torch.autograd.grad(lb[-1, 5], cb[hook])[0]
    assert ga.abs().sum() > 0
    _close(ga, gb)
    resid = local.run(ids)[hook]
    _close(local.logits_from_resid(resid), nn_model.logits_from_resid(resid))


def test_knockouts_are_refused_before_the_pass(pair) -> None:
    _, nn_model = pair
    with pytest.raises(UnsupportedOnBackendError, match="knockouts act inside the attention function"):
        nn_model.run(matrix_ids(), rw.Knockout(1, key=[0]))


def test_skipped_blocks_are_refused_before_the_pass(pair) -> None:
    _, nn_model = pair
    with pytest.raises(UnsupportedOnBackendError, match="skipping a block is not compiled"):
        nn_model.run(matrix_ids(), rw.Skip(1))


def test_non_finite_edit_is_one_clear_error(pair) -> None:
    _, nn_model = pair
    with pytest.raises(ValueError, match="NaN or infinite"):
        nn_model.run(matrix_ids(), rw.Steer(1, torch.ones(nn_model.d_model) * 3e38, scale=10.0))
    _close(nn_model.run(matrix_ids()).logits, rw.load(nn_model.hf).run(matrix_ids()).logits)  # model left as it was


# -- remote: up to the request, and the failure modes ----------------------------------------------------------
REPO = "openai-community/gpt2"  # the hub id NDIF would know the model by (no hub here: the id is taken as given)


@pytest.fixture
def remote(monkeypatch) -> rw.Model:
    """A GPT-2 shaped model on the nnsight backend with remote=True, nnsight's config restored afterwards."""
    from nnsight import CONFIG
    from nnsight.modeling import huggingface

    from conftest import word_tokenizer

    monkeypatch.setitem(huggingface._ID_CACHE, REPO, REPO)  # nnsight checks the id on the hub once
    for key in ("HOST", "APIKEY"):
        monkeypatch.setattr(CONFIG.API, key, getattr(CONFIG.API, key))
    hf = build("gpt2")
    hf.name_or_path = REPO
    return rw.load(hf, word_tokenizer(), backend="nnsight", remote=True)


def _plan(model: rw.Model, ivs=(), capture=("blocks.1.hook_resid_post",)):
    from repwidget.model.plan import plan_pass

    return plan_pass(model, matrix_ids(), tuple(ivs), list(capture))


def test_remote_request_is_nnsights_format_and_small(remote) -> None:
    import zstandard
    from nnsight import CONFIG

    plain = remote.executor.request(_plan(remote))
    steered = remote.executor.request(_plan(remote, [rw.Steer(1, torch.ones(32)), rw.Ablate(2, head=1)]))
    # the request is the trace's source and the plan's data, never the model or a cache
    assert 1_000 < len(plain) < 6_000 and len(steered) < 6_000, (len(plain), len(steered))
    raw = zstandard.ZstdDecompressor().decompress(plain) if CONFIG.API.COMPRESS else plain
    assert b"envoy.output = new" in raw and b"tracer.stop()" in raw  # the trace body travels as source
    from nnsight.intervention.backends.local import LocalSimulationBackend

    remote.executor.backend = LocalSimulationBackend(remote.executor.lm)  # the patch's source is read by a pass
    plan = _plan(remote, [rw.Patch("blocks.0.hook_resid_pre", matrix_ids(seed=2))])
    remote.executor.backend = None
    patch = remote.executor.request(plan)
    assert len(patch) > len(plain)  # what an edit needs travels with it (here 20 x 32 floats)
    lens = remote.executor.request(_plan(remote, capture=()), lens=(0, 16, 1))
    assert len(lens) < 6_000  # the lens is asked for by its positions; it comes back as [layer, pos, k]


def test_remote_trace_runs_with_repwidget_hidden(remote) -> None:
    """nnsight's local simulation of a server: the request deserialised with repwidget not importable, then run.
    Equal results mean the trace needs nothing but torch and nnsight where it runs."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    local = rw.load(remote.hf)
    remote.set_reference([matrix_ids(12, seed=s) for s in range(3)])
    local.reference = remote.reference
    remote.executor.backend = LocalSimulationBackend(remote.executor.lm)
    names = ["blocks.0.attn.hook_z", "blocks.2.hook_resid_post"]
    sae = _sae(remote, "blocks.1.hook_resid_post", "topk")
    patch = rw.Patch("blocks.0.hook_resid_pre", matrix_ids(seed=2))
    steer, mean = rw.Steer(1, torch.ones(32) * 0.3), rw.Ablate(2, head=1, mode="mean")
    for ivs in ([], [steer], [mean], [rw.Ablate(sae=sae, feature=4)], [patch]):
        _same_run(local.run(matrix_ids(), ivs, capture=names), remote.run(matrix_ids(), ivs, capture=names), names)
    from repwidget import analyses

    full = analyses.logit_lens(local.run(matrix_ids(), [steer]), range(4, 12), k=2)
    reduced = analyses.logit_lens(remote.run(matrix_ids(), [steer], capture=[]), range(4, 12), k=2)  # on the "server"
    assert torch.equal(full.ids, reduced.ids)
    _close(full.probs, reduced.probs)
    (ta, sa), (tb, sb) = local.run(matrix_ids(), summarize=8).summary(), remote.run(matrix_ids(), summarize=8).summary()
    _close(ta, tb)  # thumbnails and head scores reduced on the "server"
    for key in sa:
        _close(sa[key], sb[key])
    window = rw.model.attention.Pooled(4, heads=slice(1, 2), rows=(3, 15), cols=(2, 18))
    other = rw.model.attention.Pooled(4, heads=slice(1, 2), rows=(3, 15), cols=(2, 18))
    local.replay(local.run(matrix_ids()), 2, {2: window})
    remote.replay(remote.run(matrix_ids(), capture=[]), 2, {2: other})
    _close(window.result, other.result)  # one head's window of a pattern, pooled where the model runs


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_remote_failures_are_one_line_each(remote) -> None:
    from nnsight import CONFIG

    def failure() -> str:
        start = time.perf_counter()
        with pytest.raises(RemoteExecutionError) as info:
            remote.run(matrix_ids())
        assert time.perf_counter() - start < 10
        message = str(info.value)
        assert "\n" not in message and len(message) < 200, message
        return message

    CONFIG.API.APIKEY = None
    assert failure().startswith("no NDIF API key: set NDIF_API_KEY")
    CONFIG.API.APIKEY = "test-key"
    CONFIG.API.HOST = f"http://127.0.0.1:{_closed_port()}"
    assert "is unreachable (connection refused)" in failure()
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        CONFIG.API.HOST = f"http://127.0.0.1:{silent.getsockname()[1]}"
        remote.executor.timeout = 0.5
        assert "did not answer within 0.5 s" in failure()
    with pytest.raises(UnsupportedOnBackendError, match="whole attention patterns are not brought back"):
        remote.run(matrix_ids(), capture="blocks.0.attn.hook_pattern")


def test_the_explorer_keeps_its_last_good_state_when_ndif_fails(remote) -> None:
    from nnsight import CONFIG

    from repwidget.interventions import to_json

    working = rw.load(remote.hf, remote.tokenizer, backend="nnsight")
    ex = rw.explore(working, matrix_ids())
    failing, good = remote.executor, working.executor
    shown, logits = ex.run, ex.run.logits.clone()
    CONFIG.API.APIKEY, CONFIG.API.HOST = "test-key", f"http://127.0.0.1:{_closed_port()}"
    working.executor = failing
    sent = []
    ex.send = lambda content, buffers=None: sent.append(content)
    message = {"id": "a-1", "type": "set", "view": "a", "seq": 1, "interventions": [to_json(rw.Ablate(1, head=0))]}
    ex._on_message(ex, message, [])
    assert sent[0]["type"] == "error" and "is unreachable (connection refused)" in ex.error
    assert "\n" not in ex.error
    assert ex.run is shown and ex.interventions == [] and torch.equal(ex.run.logits, logits)
    working.executor = good  # NDIF is back: the next click works
    ex._on_message(ex, {**message, "id": "a-2", "seq": 2}, [])
    assert ex.interventions == [rw.Ablate(1, head=0)] and not ex.error


def test_a_failed_trace_leaves_the_model_as_it_was(pair) -> None:
    """An error inside the trace (here a malformed edit, past every check) leaves the weights, the train/eval
    flags, the attention implementation and the hooks as they were; the next pass is right."""
    from repwidget.interventions import AddRows
    from repwidget.model.plan import plan_pass

    local, nn_model = pair
    hf = nn_model.hf
    ids = matrix_ids()
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in hf.modules()]
    implementation = hf.config._attn_implementation
    with torch.no_grad():
        before = hf(torch.tensor([ids])).logits
    plan = plan_pass(nn_model, ids, (rw.Steer(1, torch.ones(nn_model.d_model)),), ["blocks.2.hook_resid_post"])
    plan.edits["blocks.1.hook_resid_post"][0].edits[0] = AddRows(slice(None), torch.ones(nn_model.d_model + 1))
    plan.sinks = {0: rw.model.attention.Full()}  # the pass switches to eager attention: switched back
    hf.train()
    try:
        with pytest.raises(RuntimeError):
            nn_model.executor.execute(plan)
        assert all(m.training for m in hf.modules())
    finally:
        hf.eval()
    assert hf.config._attn_implementation == implementation
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in hf.modules()] == hooks
    with torch.no_grad():
        assert torch.equal(hf(torch.tensor([ids])).logits, before)
    _close(nn_model.run(ids).logits, local.run(ids).logits)


def test_the_logit_lens_is_reduced_where_the_model_runs(pair) -> None:
    """A run without residual streams reads its lens in one pass that brings back only the top tokens; it equals
    the lens read from captured streams, with interventions too; the explorer then captures no stream per click."""
    from repwidget import analyses

    local, nn_model = pair
    ids = matrix_ids()
    ivs = [rw.Ablate(1, head=2), rw.Steer(2, torch.ones(local.d_model) * 0.4)]
    for interventions in ((), ivs):
        full = analyses.logit_lens(local.run(ids, interventions), range(3, 11), k=3)
        bare = nn_model.run(ids, interventions, capture=[])
        assert "blocks.0.hook_resid_post" not in bare
        reduced = analyses.logit_lens(bare, range(3, 11), k=3)
        assert reduced.ids.shape == (local.n_layers, 8, 3)
        assert torch.equal(reduced.ids, full.ids)
        _close(reduced.probs, full.probs)
    ex_local, ex_nn = rw.explore(local, ids), rw.explore(nn_model, ids)
    assert not any(h.endswith("hook_resid_post") for h in ex_nn.session.capture)
    assert any(h.endswith("hook_resid_post") for h in ex_local.session.capture)
    from repwidget.views.panels.lens import lens_of

    a, b = lens_of(ex_local.run, 0, 16), lens_of(ex_nn.run, 0, 16)
    assert torch.equal(a["ids"], b["ids"]) and a["vocab"] == b["vocab"]
    _close(a["probs"], b["probs"])


def test_an_explorer_on_the_remote_path_answers_what_the_views_ask(remote) -> None:
    """Every pass of an explorer (its runs, a click, thumbnails, the lens, a head's pattern) serialised as a remote
    request and run by nnsight's server simulation: the answers equal the hook executor's."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    from repwidget.interventions import to_json

    remote.executor.backend = LocalSimulationBackend(remote.executor.lm)
    requests = []
    request = remote.executor.request
    execute = remote.executor.execute
    remote.executor.execute = lambda plan: (requests.append(len(request(plan))), execute(plan))[1]
    local = rw.load(remote.hf, remote.tokenizer)
    explorers = [rw.explore(model, matrix_ids()) for model in (local, remote)]
    answers = []
    for ex in explorers:
        sent = []
        ex.send = lambda content, buffers=None, sent=sent: sent.append((content, buffers))
        click = {"id": "a-1", "type": "set", "view": "a", "seq": 1, "interventions": [to_json(rw.Ablate(1, head=2))],
                 "then": {"type": "get", "id": "a-2", "what": "predictions", "position": 7}}  # fmt: skip
        ex._on_message(ex, click, [])
        for get in ({"what": "lens", "start": 0, "stop": 16}, {"what": "pattern", "layer": 2, "head": 1}):
            ex._on_message(ex, {"id": "b-1", "type": "get", **get}, [])
        assert not ex.error, ex.error
        answers.append(sent)
    assert requests and max(requests) < 8_000, requests
    for (ca, ba), (cb, bb) in zip(*answers, strict=True):
        assert ca["type"] == cb["type"] != "error"
        assert len(ba or []) == len(bb or [])
    torch.testing.assert_close(explorers[0].run.logits, explorers[1].run.logits, atol=ATOL, rtol=0)
    (ta, _), (tb, _) = explorers[0].run.summary(), explorers[1].run.summary()
    _close(ta, tb)
