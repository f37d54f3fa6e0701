"""Layer-by-layer measures, each checked against a direct computation over runs of the texts one at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.analyses import layer_measures

from conftest import build, ids


def _entropy(p: np.ndarray) -> float:
    p = p / p.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_layer_measures_match_direct_computations():
    hf = build("gpt2")
    model = rw.load(hf)
    texts = [ids(n, seed=n) for n in (6, 11, 8)]
    got = layer_measures(model, texts)
    runs = [model.run(t) for t in texts]
    n_layers = model.n_layers
    for layer in range(n_layers):
        a = torch.cat([r[f"blocks.{layer}.hook_resid_pre"][1:] for r in runs]).double().numpy()
        b = torch.cat([r[f"blocks.{layer}.hook_resid_post"][1:] for r in runs]).double().numpy()
        update = np.mean(np.linalg.norm(b - a, axis=1) / np.linalg.norm(a, axis=1))
        cosine = np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
        assert float(got.update[layer]) == pytest.approx(update, rel=1e-5)
        assert float(got.cosine[layer]) == pytest.approx(cosine, rel=1e-5)
        # Skean et al.: entropy of the Gram matrix's eigenvalues = squared singular values of each prompt's tokens
        prompt = np.mean([
            _entropy(np.linalg.svd(r[f"blocks.{layer}.hook_resid_post"][1:].double().numpy(), compute_uv=False) ** 2)
            for r in runs
        ])  # fmt: skip
        assert float(got.prompt_entropy[layer]) == pytest.approx(prompt, rel=1e-4)
        rank = np.exp(_entropy(np.linalg.svd(b - b.mean(0), compute_uv=False)))
        assert float(got.effective_rank[layer]) == pytest.approx(rank, rel=1e-4)
        # the logit lens by hand: GPT-2's final norm and unembedding on the layer's stream
        kl = []
        for r in runs:
            with torch.no_grad():
                final = hf.lm_head(hf.transformer.ln_f(r[f"blocks.{n_layers - 1}.hook_resid_post"][1:]))
                lens = hf.lm_head(hf.transformer.ln_f(r[f"blocks.{layer}.hook_resid_post"][1:]))
            p, q = final.double().log_softmax(-1), lens.double().log_softmax(-1)
            kl.append((p.exp() * (p - q)).sum(-1))
        assert float(got.lens_kl[layer]) == pytest.approx(float(torch.cat(kl).mean()), rel=1e-4, abs=1e-6)
        skipped = [rw.analyses.token_losses(model.run(t, rw.Skip(layer))) for t in texts]
        assert float(got.skip_loss[layer]) == pytest.approx(float(torch.cat(skipped).mean()) - got.loss, abs=1e-4)
    assert float(got.lens_kl[-1]) == pytest.approx(0, abs=1e-6)
    with torch.no_grad():
        hf_loss = [hf(torch.tensor([t]), labels=torch.tensor([t])).loss * (len(t) - 1) for t in texts]
    assert got.loss == pytest.approx(float(sum(hf_loss)) / sum(len(t) - 1 for t in texts), rel=1e-5)
    assert got.tokens == sum(len(t) - 1 for t in texts)
    assert set(got.as_dict()) == {"update", "cosine", "lens_kl", "prompt_entropy", "effective_rank", "skip_loss"}


def test_layer_measures_without_an_unembedding_or_skips():
    model = rw.load(build("bert"))
    got = layer_measures(model, [ids(7), ids(9, seed=2)], skip=False)
    assert got.lens_kl is None and got.skip_loss is None and got.loss is None
    assert got.update.shape == (model.n_layers,) and bool((got.effective_rank > 1).all())
    with pytest.raises(ValueError, match="two tokens or more"):
        layer_measures(rw.load(build("gpt2")), [[3]])
