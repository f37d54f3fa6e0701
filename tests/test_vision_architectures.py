"""Vision architectures: every stage's activation and the logits equal the plain model's forward pass, and reruns
after an intervention equal full forward passes with the same intervention made by hand (independent hooks)."""

from __future__ import annotations

import pytest
import torch
from vision_models import CNNS, VITS, build

import repwidget as rw
from repwidget.model.modes import eager_attention

TOL = 1e-5
_MODELS: dict = {}


def _model(name: str):
    if name not in _MODELS:
        net = build(name)
        _MODELS[name] = rw.Model(net, input_shape=(3, 16, 16)) if name == "vgg" else rw.Model(net)
    return _MODELS[name]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a - b).abs().max() <= TOL * max(1.0, float(b.abs().max())))


def _image(model, seed: int = 0) -> torch.Tensor:
    return torch.randn((1, *model.arch.input_shape), generator=torch.Generator().manual_seed(seed))


def _hook(module, index: int, pre: bool, change=None, taken: dict | None = None):
    """A hook of this test's own on call ``index`` of ``module``: ``change`` its input (pre) or output there, and
    keep what it then is in ``taken["x"]``."""
    seen = {"n": 0}

    def hook(module, args, output=None):
        target, n = (args[0] if pre else output), seen["n"]
        seen["n"] += 1
        if n != index:
            return None
        if change is not None:
            target = change(target.clone())
        if taken is not None:
            taken["x"] = target
        if change is None:
            return None
        return (target, *args[1:]) if pre else target

    return module.register_forward_pre_hook(hook) if pre else module.register_forward_hook(hook)


def _plain(net, x, path: str | None = None, index: int = 0, change=None, pre: bool = False, read=None):
    """The plain forward pass: (logits, the input (``pre``) or output of call ``index`` of module ``path``), with
    ``change`` applied there; ``read=(path, index)`` also returns the output of that call. Hooks removed after."""
    taken, later = {}, {}
    handles = [] if path is None else [_hook(net.get_submodule(path), index, pre, change, taken)]
    if read is not None:
        handles.append(_hook(net.get_submodule(read[0]), read[1], False, None, later))
    try:
        with torch.no_grad():
            out = net(pixel_values=x) if hasattr(net, "config") else net(x)
    finally:
        for handle in handles:
            handle.remove()
    logits = getattr(out, "logits", out)[0]
    return (logits, taken.get("x"), later["x"]) if read is not None else (logits, taken.get("x"))


@pytest.mark.parametrize("name", CNNS)
def test_cnn_stages_and_logits_equal_the_plain_forward(name):
    model = _model(name)
    assert model.kind == "cnn" and model.n_layers >= 2
    x = _image(model)
    run = model.run(x)
    logits, _ = _plain(model.hf, x)
    assert _close(run.logits, logits)
    for layer, (path, index) in enumerate(model.arch.ends):
        _, out = _plain(model.hf, x, path, index)
        assert run[f"stages.{layer}.hook_out"].shape == out.shape[1:] == model.arch.shapes[layer]
        assert _close(run[f"stages.{layer}.hook_out"], out[0]), layer
    if hasattr(model.hf, "config"):  # the last stage is the model's own last feature map
        with torch.no_grad():
            last = model.hf.base_model(pixel_values=x).last_hidden_state[0]
        assert _close(run[f"stages.{model.n_layers - 1}.hook_out"], last)
    for module in model.hf.modules():  # nothing left behind
        assert not module._forward_hooks and not module._forward_pre_hooks and "forward" not in module.__dict__


@pytest.mark.parametrize("name", CNNS)
def test_cnn_channel_ablation_rerun_equals_a_full_forward_with_the_same_ablation(name):
    model = _model(name)
    x = _image(model, 1)
    run = model.run(x)
    layer = model.n_layers // 2
    act = run[f"stages.{layer}.hook_out"]
    channel = int(act.flatten(1).abs().sum(1).argmax())  # the strongest channel, so that ablating it matters
    ablate = rw.Ablate(layer, channel=channel)
    rerun, full = run.rerun(ablate), model.run(x, ablate)

    def zero(out):
        out[:, channel] = 0
        return out

    next_stage = model.arch.ends[layer + 1]
    reference, _, next_out = _plain(model.hf, x, *model.arch.ends[layer], change=zero, read=next_stage)
    assert act[channel].abs().max() > 0 and not torch.equal(next_out[0], run[f"stages.{layer + 1}.hook_out"])
    assert _close(rerun[f"stages.{layer + 1}.hook_out"], next_out[0])
    assert _close(rerun.logits, reference) and _close(full.logits, reference)
    assert rerun[f"stages.{layer}.hook_out"][channel].abs().max() == 0
    for later in range(layer, model.n_layers):
        assert _close(rerun[f"stages.{later}.hook_out"], full[f"stages.{later}.hook_out"])


@pytest.mark.parametrize("name", VITS)
def test_vit_hooks_equal_hidden_states_attentions_and_inputs_of_the_modules_found(name):
    model = _model(name)
    assert model.kind == "vit" and model.n_layers == 3 and model.n_heads == 4
    x = _image(model)
    run = model.run(x, capture="*")
    with torch.no_grad(), eager_attention(model.hf):
        out = model.hf(pixel_values=x, output_hidden_states=True, output_attentions=True)
    assert _close(run.logits, out.logits[0])
    blocks = model.arch.blocks
    for layer in range(model.n_layers):
        assert _close(run[f"blocks.{layer}.hook_resid_pre"], out.hidden_states[layer][0])
        assert _close(run[f"blocks.{layer}.attn.hook_pattern"], out.attentions[layer][0])
        _, z = _plain(model.hf, x, f"{blocks.blocks}.{layer}.{blocks.attn_proj}", pre=True)
        assert _close(run[f"blocks.{layer}.attn.hook_z"].flatten(1), z[0])
        _, post = _plain(model.hf, x, f"{blocks.blocks}.{layer}.{blocks.mlp_down}", pre=True)
        assert _close(run[f"blocks.{layer}.mlp.hook_post"], post[0])
    last = run[f"blocks.{model.n_layers - 1}.hook_resid_post"]  # the class lens of the last block is the output
    assert _close(model.logits_from_resid(last[0]), out.logits[0])
    lens = rw.analyses.logit_lens(run)
    assert lens.ids.shape == (model.n_layers, 1, 1) and int(lens.ids[-1, 0, 0]) == int(out.logits[0].argmax())


@pytest.mark.parametrize("name", VITS)
def test_vit_head_ablation_steer_and_patch_reruns_equal_full_passes(name):
    model = _model(name)
    x, other = _image(model, 2), _image(model, 3)
    run = model.run(x)
    blocks, d_head, head = model.arch.blocks, model.d_head, 2

    def zero_head(z):
        z[..., head * d_head : (head + 1) * d_head] = 0
        return z

    reference, _ = _plain(model.hf, x, f"{blocks.blocks}.1.{blocks.attn_proj}", change=zero_head, pre=True)
    ablate = rw.Ablate(1, head=head)
    assert _close(run.rerun(ablate).logits, reference) and _close(model.run(x, ablate).logits, reference)
    assert not _close(reference, run.logits)
    at_patches = rw.Ablate(1, head=head, positions=[0, 5])
    assert _close(run.rerun(at_patches).logits, model.run(x, at_patches).logits)
    steer = rw.Steer(1, vector=torch.randn(model.d_model, generator=torch.Generator().manual_seed(4)), scale=2.0)
    assert _close(run.rerun(steer).logits, model.run(x, steer).logits)
    source = model.run(other)  # every position of a residual stream from another image: that image's logits
    patch = rw.Patch.from_run(source, "blocks.1.hook_resid_post")
    assert _close(run.rerun(patch).logits, source.logits) and _close(model.run(x, patch).logits, source.logits)


def _swin():
    if "swin" not in _MODELS:
        from transformers import SwinConfig, SwinForImageClassification

        torch.manual_seed(0)  # 3 stages (8x8, 4x4, 4x4 patches; patch merging after the first two), shifted windows
        config = SwinConfig(
            image_size=32, patch_size=2, embed_dim=8, depths=[2, 2, 2], num_heads=[2, 2, 2], window_size=4, num_labels=5
        )
        _MODELS["swin"] = rw.Model(SwinForImageClassification(config).eval())
    return _MODELS["swin"]


def _stage_tokens(net, layer: int, change=None, taken: dict | None = None):
    """A hook of this test's own on Swin stage ``layer``: ``change`` (and keep) its tokens [batch, h*w, C]."""

    def hook(module, args, output):
        tokens = change(output[0].clone()) if change is not None else output[0]
        if taken is not None:
            taken["x"] = tokens
        return (tokens, *output[1:]) if change is not None else None

    return net.swin.encoder.layers[layer].register_forward_hook(hook)


def test_swin_stages_are_feature_maps_equal_to_its_reshaped_hidden_states_and_logits(tmp_path):
    model = _swin()
    assert model.kind == "cnn" and model.n_layers == 3 and model.arch.shapes == ((16, 8, 8), (32, 4, 4), (32, 4, 4))
    x = _image(model)
    with torch.no_grad():
        out = model.hf(pixel_values=x, output_hidden_states=True)
    hooks = [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.hf.modules()]  # HF's own
    run = model.run(x)
    assert _close(run.logits, out.logits[0])
    for layer in range(model.n_layers):  # HF's own [C, h, w] layout of each stage's output (after its patch merging)
        assert _close(run[f"stages.{layer}.hook_out"], out.reshaped_hidden_states[layer + 1][0]), layer
    run.rerun(rw.Ablate(2, channel=0))  # nothing left behind by a pass or a rerun
    assert hooks == [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.hf.modules()]
    assert not any("forward" in m.__dict__ for m in model.hf.modules())
    model.hf.save_pretrained(tmp_path)  # rw.load of the checkpoint directory reads it the same way
    loaded = rw.load(str(tmp_path))
    assert loaded.arch == model.arch and _close(loaded.run(x).logits, out.logits[0])


def test_swin_channel_ablation_and_patch_reruns_equal_full_passes_and_a_hand_made_hook():
    model = _swin()
    net, x = model.hf, _image(model, 1)
    run, layer = model.run(x), 1
    act = run[f"stages.{layer}.hook_out"]
    channel = int(act.flatten(1).abs().sum(1).argmax())
    ablate = rw.Ablate(layer, channel=channel)
    rerun, full = run.rerun(ablate), model.run(x, ablate)

    def zero(tokens):
        tokens[:, :, channel] = 0
        return tokens

    later = {}
    handles = [_stage_tokens(net, layer, zero), _stage_tokens(net, layer + 1, taken=later)]
    try:
        with torch.no_grad():
            reference = net(pixel_values=x).logits[0]
    finally:
        for handle in handles:
            handle.remove()
    next_map = later["x"][0].reshape(4, 4, -1).permute(2, 0, 1)
    assert not _close(reference, run.logits) and not _close(next_map, run[f"stages.{layer + 1}.hook_out"])
    for result in (rerun, full):
        assert _close(result[f"stages.{layer + 1}.hook_out"], next_map)
    assert _close(rerun.logits, reference) and _close(full.logits, reference)
    assert rerun[f"stages.{layer}.hook_out"][channel].abs().max() == 0
    model.set_reference([_image(model, 3)])
    mean = rw.Ablate(layer, channel=channel, mode="mean")
    assert _close(run.rerun(mean).logits, model.run(x, mean).logits)
    at_patches = rw.Ablate(0, channel=3, positions=[0, 9])
    assert _close(run.rerun(at_patches).logits, model.run(x, at_patches).logits)
    source = model.run(_image(model, 2))  # a whole stage's output from another image: that image's logits
    patch = rw.Patch.from_run(source, f"stages.{layer}.hook_out")
    assert _close(run.rerun(patch).logits, source.logits) and _close(model.run(x, patch).logits, source.logits)


def test_shapeless_modules_are_refused_in_one_line():
    with pytest.raises(ValueError, match="input_shape"):
        rw.Model(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten()))


def test_an_interrupt_inside_a_rerun_leaves_the_model_as_it_was():
    model = _model("vgg")
    net, x = model.hf, _image(model, 5)
    base = model.run(x)
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def interrupt(module, args, output):
        raise KeyboardInterrupt

    handle = net[-1].register_forward_hook(interrupt)  # the classifier, after the stages a rerun replaced
    try:
        with pytest.raises(KeyboardInterrupt):
            base.rerun(rw.Ablate(2, channel=3))
    finally:
        handle.remove()
    for module in net.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks and "forward" not in module.__dict__
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()) and not net.training
    assert _close(base.rerun(rw.Ablate(2, channel=3)).logits, model.run(x, rw.Ablate(2, channel=3)).logits)
