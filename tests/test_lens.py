"""The logit lens against the library: the final norm and lm_head applied to HF's own hidden states."""

import pytest
import torch

import repwidget as rw

from conftest import ids


def test_lens_equals_final_norm_and_unembedding_of_hf_hidden_states(hf_models, causal_name):
    hf = hf_models[causal_name]
    model = rw.load(hf)
    x = ids(9)
    with torch.no_grad():
        out = hf(torch.tensor([x]), output_hidden_states=True)
    lens = rw.analyses.logit_lens(model.run(x), k=3)
    norm = hf.get_output_embeddings()
    final_norm = hf.get_submodule(model.arch.final_norm)
    for layer in range(model.n_layers):
        # HF's last hidden state already went through the final norm
        last = layer == model.n_layers - 1
        logits = out.logits[0] if last else norm(final_norm(out.hidden_states[layer + 1][0]))
        top = logits.softmax(-1).topk(3)
        torch.testing.assert_close(lens.probs[layer], top.values, atol=1e-5, rtol=1e-4)
        assert torch.equal(lens.ids[layer], top.indices)


def test_lens_over_a_window_matches_the_whole_and_checks_its_range(hf_models):
    model = rw.load(hf_models["gpt2"])
    run = model.run(ids(12))
    whole = rw.analyses.logit_lens(run)
    part = rw.analyses.logit_lens(run, range(3, 8))
    assert torch.equal(part.ids, whole.ids[:, 3:8])
    with pytest.raises(ValueError, match="contiguous range"):
        rw.analyses.logit_lens(run, range(5, 20))


def test_a_model_without_unembedding_has_no_lens(hf_models):
    model = rw.load(hf_models["bert"])
    with pytest.raises(ValueError, match="no unembedding"):
        rw.analyses.logit_lens(model.run(ids(5)))
