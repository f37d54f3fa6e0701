"""Models placed by accelerate's ``device_map`` (what a multi-GPU user loads) work on the local backend and on the
nnsight backend: runs, reruns and interventions equal the same weights loaded plainly. On this CPU-only machine
the maps are ``"auto"`` (everything on the CPU) and a split with the last blocks offloaded to disk, whose
accelerate hooks move each block's weights in for its forward as a second GPU's would."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("accelerate")

import transformers as T

import repwidget as rw

from architectures import build, matrix_ids


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def saved(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    hf = build(request.param)
    hf.save_pretrained(path)
    return path, hf


def _split_map(hf: torch.nn.Module) -> dict[str, str]:
    """Everything on the CPU but the last two blocks, offloaded to disk (accelerate loads them per forward)."""
    model = rw.load(hf)
    blocks = model.arch.blocks
    placed = {name: "cpu" for name, _ in hf.named_children()}
    inner, rest = blocks.rsplit(".", 1) if "." in blocks else ("", blocks)
    placed.pop(blocks.split(".")[0])
    parent = hf.get_submodule(inner) if inner else hf
    for name, _ in parent.named_children():
        full = f"{inner}.{name}" if inner else name
        if name != rest:
            placed[full] = "cpu"
    n = model.n_layers
    for layer in range(n):
        placed[f"{blocks}.{layer}"] = "disk" if layer >= n - 2 else "cpu"
    return placed


@pytest.mark.parametrize("backend", ["local", "nnsight"])
@pytest.mark.parametrize("where", ["auto", "split"])
def test_device_map_models_run_like_plain_ones(saved, backend: str, where: str, tmp_path) -> None:
    if backend == "nnsight":
        pytest.importorskip("nnsight")
    path, plain_hf = saved
    device_map = "auto" if where == "auto" else _split_map(plain_hf)
    hf = T.AutoModelForCausalLM.from_pretrained(path, device_map=device_map, offload_folder=str(tmp_path))
    if where == "split":  # accelerate placed the blocks and hooks the offloaded ones
        assert "disk" in hf.hf_device_map.values() and hasattr(hf.get_submodule(_last_block(plain_hf)), "_hf_hook")
    else:  # one CPU: "auto" puts everything on it
        assert {p.device.type for p in hf.parameters()} == {"cpu"}
    placed, plain = rw.load(hf, backend=backend), rw.load(plain_hf)
    ids = matrix_ids()
    names = ["blocks.1.hook_resid_post", "blocks.3.attn.hook_z", "blocks.3.hook_resid_post"]
    ivs = [rw.Ablate(3, head=1), rw.Steer(2, torch.ones(placed.d_model) * 0.5)]
    base_a, base_b = placed.run(ids, capture=names), plain.run(ids, capture=names)
    for a, b in ((base_a, base_b), (placed.run(ids, ivs, capture=names), plain.run(ids, ivs, capture=names)),
                 (base_a.rerun(ivs, capture=names), base_b.rerun(ivs, capture=names))):  # fmt: skip
        for name in names:
            torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0)
        torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    thumbs_a, _ = placed.run(ids, summarize=8).summary()
    thumbs_b, _ = plain.run(ids, summarize=8).summary()
    torch.testing.assert_close(thumbs_a, thumbs_b, atol=1e-5, rtol=0)


def _last_block(hf: torch.nn.Module) -> str:
    model = rw.load(hf)
    return f"{model.arch.blocks}.{model.n_layers - 1}"
