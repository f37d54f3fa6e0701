"""Training transcoders (a few steps on the demo model), their quality against plain transformers with forward hooks
on the MLP modules, the ``Replace`` intervention, and the demo's shipped transcoders."""

from __future__ import annotations

import math

import pytest
import torch

import repwidget as rw
from repwidget.demo.train_sae import documents
from repwidget.demo.train_transcoders import held_out_texts
from repwidget.transcoders.train import harvest_mlp

#: what the shipped demo transcoders must reach on these held-out texts (measured: EV 0.94-0.98, +0.20 nats)
EV_FLOOR, LOSS_MARGIN = 0.9, 0.35


@pytest.fixture(scope="module")
def shipped():
    return rw.demo.transcoders()


@pytest.fixture(scope="module")
def texts():
    return held_out_texts(n_per_task=1)


def test_harvest_reads_every_layer_in_one_pass_as_runs_do(demo) -> None:
    docs = documents(4, seed=1)
    x, y = harvest_mlp(demo, docs, [1, 3], max_tokens=10_000)
    runs = [demo.run(d, capture=["blocks.*.mlp.hook_in", "blocks.*.hook_mlp_out"]) for d in docs]
    assert x.shape == y.shape == (2, sum(len(r.token_ids) - 1 for r in runs), demo.d_model)
    expected_x = torch.cat([r["blocks.3.mlp.hook_in"][1:] for r in sorted(runs, key=lambda r: len(r.token_ids))])
    assert torch.allclose(torch.sort(x[1].sum(-1)).values, torch.sort(expected_x.sum(-1)).values, atol=1e-4)


def test_training_a_few_steps(demo) -> None:
    docs = documents(60, seed=3)
    one = rw.train_transcoder(demo, docs, layers=2, d_tc=64, k=8, steps=100, batch_size=128, lr=5e-3)
    assert isinstance(one, rw.Transcoder) and one.layer == 2 and one.k == 8
    assert one.stats["explained_variance"] > 0.4 and one.stats["l0"] == 8
    jump = rw.train_transcoder(demo, docs, d_tc=32, k=8, activation="jumprelu", steps=20, batch_size=128)
    assert isinstance(jump, rw.TranscoderSet) and len(jump) == demo.n_layers and jump[0].threshold is not None
    assert all(4 <= v <= 16 for v in jump.stats["l0"])  # about k per token once the threshold replaces BatchTopK
    clt = rw.train_transcoder(demo, docs, d_tc=16, k=4, cross_layer=True, skip=True, steps=10, batch_size=64)
    assert isinstance(clt, rw.CrossLayerTranscoder) and clt.W_skip is not None and len(clt.stats["l0"]) == 4
    with pytest.raises(ValueError, match="cross-layer transcoder covers every layer"):
        rw.train_transcoder(demo, docs, layers=[1], cross_layer=True)
    with pytest.raises(ValueError, match="activation must be one of topk, jumprelu, relu"):
        rw.train_transcoder(demo, docs, activation="gelu")


def _hf_losses(model, transcoders, texts, replaced: list[int]) -> float:
    """The mean next-token loss of plain transformers with the MLP modules of ``replaced`` returning their
    transcoder's output on what they receive (forward hooks; the reference for ``quality``)."""
    hf = model.hf
    handles = [hf.transformer.h[layer].mlp.register_forward_hook(
        lambda m, args, out, t=transcoders[layer]: t(args[0]).to(out.dtype)) for layer in replaced]  # fmt: skip
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for text in texts:
                ids = torch.tensor([model.to_ids(text)])
                logits = hf(input_ids=ids).logits[0, :-1]
                total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
                count += ids.shape[1] - 1
    finally:
        for handle in handles:
            handle.remove()
    return total / count


def test_quality_equals_plain_transformers_with_mlps_replaced(demo, shipped, texts) -> None:
    q = rw.transcoders.quality(demo, shipped, texts)
    assert q.loss_clean == pytest.approx(_hf_losses(demo, shipped, texts, []), rel=1e-5)
    assert q.loss_all_replaced == pytest.approx(_hf_losses(demo, shipped, texts, [0, 1, 2, 3]), rel=1e-4)
    assert q.loss_replaced[2] == pytest.approx(_hf_losses(demo, shipped, texts, [2]), rel=1e-4)
    # the error share by hand: GPT-2's final LayerNorm with its scale frozen, read out along the top token's row
    run = demo.run(texts[0], capture=["blocks.*.mlp.hook_in", "blocks.*.hook_mlp_out", "blocks.3.hook_resid_post"])
    final, ln = run["blocks.3.hook_resid_post"][-1], demo.hf.transformer.ln_f
    scale = ((final - final.mean()).pow(2).mean() + ln.eps).sqrt()
    row = demo.hf.lm_head.weight[int(run.logits_at(-1).argmax())].detach()
    effect = lambda v: float(((v - v.mean()) * ln.weight.detach() / scale) @ row)  # noqa: E731
    recon = shipped[1](run["blocks.1.mlp.hook_in"][-1])
    error = run["blocks.1.hook_mlp_out"][-1] - recon
    one = rw.transcoders.quality(demo, shipped, texts[:1])
    assert one.error_fraction[1] == pytest.approx(abs(effect(error)) / (abs(effect(error)) + abs(effect(recon))),
                                                  rel=1e-3)  # fmt: skip
    chart = q.chart().to_dict()
    assert len({v["measure"] for v in chart["data"]["values"]}) == 3 and "every MLP replaced" in str(q)


def test_the_shipped_demo_transcoders(demo, shipped, texts) -> None:
    """They load (float16 files upcast), fit the demo model, explain most of every MLP's output on held-out texts
    and keep the loss with every MLP replaced near the clean loss."""
    shipped.check_fits(demo)
    assert shipped[0].dtype == torch.float32 and shipped[0].threshold is not None and shipped.d_tc == 512
    q = rw.transcoders.quality(demo, shipped, held_out_texts(n_per_task=2, seed=11))
    assert min(q.explained_variance) > EV_FLOOR, q.explained_variance
    assert q.loss_all_replaced - q.loss_clean < LOSS_MARGIN, str(q)
    assert 0 < q.error_fraction_total < 0.5 and all(math.isfinite(v) for v in q.error_fraction)


def test_replace_sets_the_activation_and_fits_the_model(demo) -> None:
    ids = demo.to_ids("when mary and john went to the store")
    values = torch.randn(2, demo.d_model, generator=torch.Generator().manual_seed(0))
    run = demo.run(ids, [rw.Replace("blocks.1.hook_mlp_out", values, positions=[2, 4])],
                   capture=["blocks.1.hook_mlp_out"])  # fmt: skip
    torch.testing.assert_close(run["blocks.1.hook_mlp_out"][[2, 4]], values)
    clean = demo.run(ids, capture=["blocks.1.hook_mlp_out"])
    torch.testing.assert_close(run["blocks.1.hook_mlp_out"][[0, 1, 3]], clean["blocks.1.hook_mlp_out"][[0, 1, 3]])
    with pytest.raises(ValueError, match=r"values are 3 wide, blocks\.1\.hook_mlp_out is 128 wide"):
        demo.run(ids, [rw.Replace("blocks.1.hook_mlp_out", [[1.0, 2.0, 3.0]] * len(ids))])
    with pytest.raises(ValueError, match=f"2 rows of values for a run of {len(ids)} tokens"):
        demo.run(ids, [rw.Replace("blocks.1.hook_mlp_out", values)])
