"""The nnsight backend: every pass as an nnsight trace of the same model equals the local hook executor's.

Runs, reruns, batches, captures, gradients and every intervention kind, on GPT-2, Llama and GPT-NeoX (parallel)
random-init models from the architecture matrix, atol 1e-5. The remote path is exercised up to the request
(nnsight's own request format, its size) and through its failure modes against a closed local port.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("nnsight")

import repwidget as rw
from repwidget.model.nnsight_executor import (
    NNsightExecutor,
    UnsupportedOnBackendError,
)

from architectures import build, matrix_ids

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


def test_non_finite_edit_is_one_clear_error(pair) -> None:
    _, nn_model = pair
    with pytest.raises(ValueError, match="NaN or infinite"):
        nn_model.run(matrix_ids(), rw.Steer(1, torch.ones(nn_model.d_model) * 3e38, scale=10.0))
    _close(nn_model.run(matrix_ids()).logits, rw.load(nn_model.hf).run(matrix_ids()).logits)  # model left as it was
