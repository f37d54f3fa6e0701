"""The hook site ``blocks.L.mlp.hook_in``: the MLP's normalised input (what the MLP module receives, after ln2;
circuit-tracer's ``mlp.hook_in``, a transcoder's input), on the demo model and on architectures of the matrix.

The reference is a forward pre-hook on the Hugging Face module named here by hand per architecture (not by
repwidget's discovery); edits at the hook are checked against calling that module on the edited input.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

import repwidget as rw
from repwidget.hook_names import HookNameError

from architectures import build, matrix_ids

#: per architecture: the module of block L that receives the MLP's whole input, named by hand
MLP_MODULE = {
    "gpt2": "transformer.h.{}.mlp",
    "llama": "model.layers.{}.mlp",
    "neox": "gpt_neox.layers.{}.mlp",  # parallel attention + MLP
    "gemma2": "model.layers.{}.mlp",  # post-feedforward norm after the MLP
    "bert": "bert.encoder.layer.{}.intermediate",  # post-norm encoder: the MLP reads the normalised resid_mid
    "mixtral": "model.layers.{}.mlp",  # a mixture of experts: its router and experts read one input
    "opt": "model.decoder.layers.{}.fc1",  # no MLP module: fc1 is the only reader of the normalised stream
}


def _received(hf: torch.nn.Module, path: str, ids: list[int]) -> list[torch.Tensor]:
    """What the module at ``path`` (one per layer) receives in a plain forward pass of ``hf``."""
    got: list[torch.Tensor] = []
    handles = []
    for layer in range(hf.config.num_hidden_layers):
        module = hf.get_submodule(path.format(layer))
        handles.append(module.register_forward_pre_hook(lambda m, args: got.append(args[0].detach().clone())))
    try:
        with torch.no_grad():
            hf(input_ids=torch.tensor([ids]))
    finally:
        for handle in handles:
            handle.remove()
    return [g.reshape(len(ids), -1) for g in got]


@pytest.mark.parametrize("name", list(MLP_MODULE))
def test_hook_in_is_what_the_mlp_module_receives(name: str) -> None:
    hf = build(name)
    model, ids = rw.load(hf), matrix_ids()
    run = model.run(ids, capture="blocks.*.mlp.hook_in")
    expected = _received(hf, MLP_MODULE[name], ids)
    assert len(expected) == model.n_layers
    for layer, reference in enumerate(expected):
        torch.testing.assert_close(run[f"blocks.{layer}.mlp.hook_in"], reference, atol=1e-6, rtol=1e-5)


def test_demo_model_hook_in_and_an_edit_there(demo) -> None:
    """On the demo model: the captured input is ln_2's output fed to ``mlp``, and a Patch / SAE steer at the hook
    changes exactly what the MLP computes (hook_mlp_out is the HF MLP applied to the edited input) and nothing
    upstream."""
    ids = demo.to_ids("when mary and john went to the store, john gave a drink to")
    layer, hf = 2, demo.hf
    run = demo.run(ids, capture=[f"blocks.{layer}.hook_resid_mid", f"blocks.{layer}.mlp.hook_in"])
    received = _received(hf, "transformer.h.{}.mlp", ids)
    mlp, ln2 = hf.transformer.h[layer].mlp, hf.transformer.h[layer].ln_2
    torch.testing.assert_close(run[f"blocks.{layer}.mlp.hook_in"], received[layer], atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(ln2(run[f"blocks.{layer}.hook_resid_mid"]), received[layer], atol=1e-6, rtol=1e-5)

    hook = f"blocks.{layer}.mlp.hook_in"
    other = demo.to_ids("then alice and bob walked to the park, bob handed a letter to mary")[: len(ids)]
    source = demo.run(other, capture=[hook])[hook]
    capture = [hook, f"blocks.{layer}.hook_resid_mid", f"blocks.{layer}.hook_mlp_out"]
    patched = demo.run(ids, [rw.Patch(hook, other)], capture=capture)
    torch.testing.assert_close(patched[hook], source)
    torch.testing.assert_close(patched[f"blocks.{layer}.hook_resid_mid"], run[f"blocks.{layer}.hook_resid_mid"])
    with torch.no_grad():
        torch.testing.assert_close(patched[f"blocks.{layer}.hook_mlp_out"], mlp(source), atol=1e-5, rtol=1e-5)

    g = torch.Generator().manual_seed(0)
    d, n = demo.d_model, 8
    sae = rw.SAE(torch.randn(d, n, generator=g), torch.zeros(n), torch.randn(n, d, generator=g), torch.zeros(d),
                 hook=hook, name="at-mlp-in")  # fmt: skip
    steered = demo.run(ids, [rw.Steer(sae=sae, feature=3, scale=2.0)], capture=capture)
    shifted = run[hook] + 2.0 * sae.decoder_vectors()[3]
    torch.testing.assert_close(steered[hook], shifted, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(steered[f"blocks.{layer}.hook_mlp_out"], mlp(shifted), atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Module .* has a submodule named 'output'")
@pytest.mark.parametrize("name", ["gpt2", "neox"])
def test_nnsight_executor_reads_and_edits_hook_in_like_the_local_one(name: str) -> None:
    pytest.importorskip("nnsight")
    hf = build(name)
    local, traced = rw.load(hf), rw.load(hf, backend="nnsight")
    ids, other = matrix_ids(), matrix_ids(seed=4)
    ivs = [rw.Patch("blocks.1.mlp.hook_in", other, positions=[3, 5])]
    capture = ["blocks.1.mlp.hook_in", "blocks.1.hook_mlp_out", "blocks.3.mlp.hook_in"]
    a, b = local.run(ids, ivs, capture=capture), traced.run(ids, ivs, capture=capture)
    for hook in capture:
        torch.testing.assert_close(a[hook], b[hook], atol=1e-5, rtol=0)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)


def test_a_block_without_one_mlp_input_refuses_the_hook(demo) -> None:
    """Where no one module receives the MLP's whole input (``arch.mlp_in`` is None), the hook is refused in one
    line that says why, and is not among the model's hook names."""
    model = copy.copy(demo)  # the shared model's own architecture is left as it is
    model.arch = dataclasses.replace(model.arch, mlp_in=None)
    assert "blocks.0.mlp.hook_in" not in model.hook_names()
    with pytest.raises(HookNameError, match=r"no mlp\.hook_in"):
        model.run([1, 2, 3], capture=["blocks.0.mlp.hook_in"])
