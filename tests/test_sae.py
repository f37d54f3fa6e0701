"""SAEs: SAELens's format and maths (against sae_lens itself), splicing, steering, training, dashboards."""

import json

import pytest
import torch

import repwidget as rw
from repwidget.demo import tasks
from repwidget.demo.evaluate import prompt
from repwidget.sae.dashboard import FeatureDashboard, render
from repwidget.sae.train import explained_variance

HOOK = "blocks.2.hook_resid_pre"


def _sae_lens(architecture: str, d_in: int = 128, d_sae: int = 96, seed: int = 0, **extra):
    """An SAE built and saved by sae_lens itself, with random (not initial) weights."""
    import sae_lens
    from sae_lens.saes.sae import SAEMetadata

    classes = {
        "standard": (sae_lens.StandardSAE, sae_lens.StandardSAEConfig),
        "topk": (sae_lens.TopKSAE, sae_lens.TopKSAEConfig),
        "jumprelu": (sae_lens.JumpReLUSAE, sae_lens.JumpReLUSAEConfig),
    }
    cls, config = classes[architecture]
    torch.manual_seed(seed)
    sae = cls(config(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=HOOK), **extra))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
        if architecture == "jumprelu":
            sae.threshold.copy_(torch.rand_like(sae.threshold) * 0.2)
    return sae


@pytest.mark.parametrize(
    "architecture, extra",
    [("standard", {}), ("topk", {"k": 8}), ("topk", {"k": 8, "rescale_acts_by_decoder_norm": True}), ("jumprelu", {})],
)
def test_an_sae_saved_by_sae_lens_loads_and_encodes_the_same(demo, tmp_path, architecture, extra):
    theirs = _sae_lens(architecture, **extra)
    theirs.save_model(tmp_path)
    ours = rw.SAE.load(tmp_path)
    assert ours.hook == HOOK and ours.architecture == architecture and (ours.d_in, ours.d_sae) == (128, 96)
    acts = demo.run("when mary and john went to the store , john gave a drink to", capture=HOOK)[HOOK]
    with torch.no_grad():
        expected = theirs.encode(acts)
        torch.testing.assert_close(ours.encode(acts), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.decode(expected), theirs.decode(expected), atol=1e-5, rtol=1e-5)
    assert (ours.encode(acts) > 0).any()


def test_an_sae_saved_here_loads_in_sae_lens(tmp_path, demo):
    import sae_lens

    theirs = _sae_lens("topk", k=8)
    theirs.save_model(tmp_path / "a")
    rw.SAE.load(tmp_path / "a", hook=HOOK).save(tmp_path / "b")
    back = sae_lens.SAE.load_from_disk(tmp_path / "b")
    acts = demo.run("the capital of france is", capture=HOOK)[HOOK]
    with torch.no_grad():
        torch.testing.assert_close(back.encode(acts), theirs.encode(acts))
    assert back.cfg.metadata.hook_name == HOOK


def test_loading_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="no SAE directory"):
        rw.SAE.load(tmp_path / "missing")
    _sae_lens("standard").save_model(tmp_path)
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "sae_weights.safetensors")
    del weights["b_dec"]
    save_file(weights, tmp_path / "sae_weights.safetensors")
    with pytest.raises(ValueError, match="lacks b_dec"):
        rw.SAE.load(tmp_path)
    (tmp_path / "sae_weights.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"sae_weights\.safetensors"):
        rw.SAE.load(tmp_path)


def test_an_sae_of_the_wrong_width_is_a_clear_error(demo, tmp_path):
    _sae_lens("standard", d_in=64).save_model(tmp_path)
    sae = rw.SAE.load(tmp_path)
    wrong = r"reads 64-wide activations but blocks\.2\.hook_resid_pre of this model is 128 wide"
    with pytest.raises(ValueError, match=wrong):
        demo.run("the capital of france is", interventions=rw.Ablate(sae=sae, feature=0))
    with pytest.raises(ValueError, match="64-wide"):
        rw.feature_dashboard(demo, sae, 0, ["the capital of france is"])
    with pytest.raises(ValueError, match="feature 96 is out of range"):
        rw.Ablate(sae=sae, feature=96)


@pytest.fixture(scope="module")
def trained(demo):
    texts = [e.text for task in tasks.TASKS for e in tasks.dataset(task, 40, seed=1)]
    return rw.train_sae(demo, HOOK, texts, d_sae=128, k=8, steps=300, batch_size=512)


def test_train_sae_reports_its_quality_and_saves_what_it_loads(trained, demo, tmp_path):
    assert set(trained.stats) == {"explained_variance", "l0", "dead_fraction"}
    assert trained.stats["explained_variance"] > 0.6 and trained.stats["l0"] <= 8
    trained.save(tmp_path)
    again = rw.SAE.load(tmp_path)
    acts = demo.run("two days after monday is", capture=HOOK)[HOOK]
    torch.testing.assert_close(again.encode(acts), trained.encode(acts))
    assert json.loads((tmp_path / "cfg.json").read_text())["metadata"]["training"]["stats"] == trained.stats


def test_the_shipped_demo_sae_explains_the_middle_residual_stream(demo):
    sae = rw.demo.demo_sae()
    assert sae.hook == HOOK
    texts = [prompt(e, t) for t in tasks.TASKS for e in tasks.dataset(t, 50)]
    acts = torch.cat([demo.run(text, capture=HOOK)[HOOK][1:] for text in texts])
    ev = explained_variance(sae, acts)
    print(f"shipped demo SAE: explained variance {ev:.3f} on {len(acts)} held-out tokens")
    assert ev >= 0.8


def test_ablating_a_feature_subtracts_its_decoder_contribution(trained, demo):
    text = "when mary and john went to the store , john gave a drink to"
    clean = demo.run(text, capture=[HOOK])
    feats = trained.encode(clean[HOOK])
    feature = int(feats[1:].sum(0).argmax())  # the feature most active on this prompt
    run = clean.rerun(rw.Ablate(sae=trained, feature=feature), capture=[HOOK])
    expected = clean[HOOK] - feats[:, feature : feature + 1] * trained.W_dec[feature]
    torch.testing.assert_close(run[HOOK], expected, atol=1e-4, rtol=1e-4)

    def subtract(module, args, kwargs):  # the same edit written against plain transformers
        x = args[0] if args else kwargs["hidden_states"]
        x = x - trained.encode(x)[..., feature : feature + 1] * trained.W_dec[feature]
        return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

    handle = demo.hf.transformer.h[2].register_forward_pre_hook(subtract, with_kwargs=True)
    try:
        with torch.no_grad():
            hf_logits = demo.hf(torch.tensor([clean.token_ids])).logits[0]
    finally:
        handle.remove()
    torch.testing.assert_close(run.logits, hf_logits, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(run.logits, clean.logits, atol=1e-3)


def test_the_splice_changes_nothing_when_the_feature_is_silent(trained, demo):
    text = "the capital of france is"
    clean = demo.run(text, capture=[HOOK])
    silent = int((trained.encode(clean[HOOK]) > 0).sum(0).argmin())
    assert trained.encode(clean[HOOK])[:, silent].abs().max() == 0
    spliced = clean.rerun(rw.Ablate(sae=trained, feature=silent))
    torch.testing.assert_close(spliced.logits, clean.logits, atol=1e-4, rtol=1e-5)


def test_steering_with_a_feature_is_steering_along_its_decoder_vector(trained, demo):
    text = "the capital of france is"
    steered = demo.run(text, rw.Steer(sae=trained, feature=3, scale=8.0))
    by_vector = demo.run(text, rw.Steer(1, trained.W_dec[3].tolist(), scale=8.0))  # resid_post 1 = resid_pre 2
    torch.testing.assert_close(steered.logits, by_vector.logits, atol=1e-4, rtol=1e-4)


def test_sae_interventions_print_and_serialise(trained, tmp_path):
    trained.save(tmp_path)
    sae = rw.SAE.load(tmp_path)
    iv = rw.Ablate(sae=sae, feature=5)
    assert repr(iv) == f"rw.Ablate(sae=rw.SAE.load({str(tmp_path.resolve())!r}), feature=5)"
    assert eval(repr(iv), {"rw": rw}) == iv  # the same directory loads the same SAE
    other = rw.SAE(sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, hook=sae.hook, name=sae.name)  # same name
    for original in (iv, rw.Steer(sae=sae, feature=2, scale=-3.0)):
        # by name against a mapping, or by index into a list (an explorer's SAEs): never a process-wide registry
        data = json.loads(json.dumps(rw.interventions.to_json(original)))
        assert data["sae"] == sae.name and rw.interventions.from_json(data, saes={sae.name: sae}) == original
        data = json.loads(json.dumps(rw.interventions.to_json(original, saes=[other, sae])))
        assert data["sae"] == 1 and rw.interventions.from_json(data, saes=[other, sae]).sae is sae
        with pytest.raises(ValueError, match="pass saes="):
            rw.interventions.from_json(data)
    with pytest.raises(ValueError, match="unknown SAE"):
        rw.interventions.from_json({"type": "ablate", "sae": "nope", "feature": 1}, saes={sae.name: sae})
    with pytest.raises(ValueError, match="index into"):
        rw.interventions.from_json({"type": "ablate", "sae": 2, "feature": 1}, saes=[sae])
    with pytest.raises(ValueError, match="mode must be 'zero'"):
        rw.Ablate(sae=sae, feature=1, mode="mean")


def test_feature_dashboard_finds_the_top_contexts(trained, demo):
    texts = [e.text for e in tasks.dataset("cycles", 60)] + [e.text for e in tasks.dataset("facts", 60)]
    acts = [trained.encode(demo.run(t, capture=[HOOK])[HOOK])[1:] for t in texts]
    feature = int(torch.cat(acts).max(0).values.argmax())
    dash = rw.feature_dashboard(demo, trained, feature, texts, k=5)
    peaks = sorted((float(a[:, feature].max()) for a in acts), reverse=True)[:5]
    assert [round(c.peak, 4) for c in dash.contexts] == [round(p, 4) for p in peaks]
    best = dash.contexts[0]
    assert best.tokens == demo.run(texts[best.text_index]).tokens
    assert sum(dash.counts) == dash.n_active == sum(int((a[:, feature] > 0).sum()) for a in acts)
    assert len(dash.boosted) == len(dash.suppressed) == 8
    html = dash._repr_html_()
    assert f"data-rw-feature='{feature}'" in html and "<svg" in html


def test_dashboard_html_escapes_token_text():
    dash = FeatureDashboard(1, "s", HOOK, [], [0], [0.0, 1.0], 1, 0, [("<script>", 1.0)], [("<b>", -1.0)])
    html = render(dash)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_dashboards_of_many_features_come_from_one_harvest_and_equal_one_by_one(trained, demo):
    texts = [e.text for e in tasks.dataset("cycles", 30)]
    calls = []
    execute = demo.executor.execute
    demo.executor.execute = lambda plan: calls.append(plan.batch) or execute(plan)
    try:
        many = rw.sae.feature_dashboards(demo, trained, [3, 7, 11], texts, k=4)
    finally:
        del demo.executor.execute
    assert sum(calls) == len(texts)  # every text read once, for all three features
    for feature, dash in many.items():
        alone = rw.feature_dashboard(demo, trained, feature, texts, k=4)
        assert [c.text_index for c in dash.contexts] == [c.text_index for c in alone.contexts]
        assert dash.counts == alone.counts and dash.n_active == alone.n_active


def test_train_sae_scales_its_steps_to_the_data_and_stops_early(demo):
    texts = [e.text for e in tasks.dataset("cycles", 40)]
    sae = rw.train_sae(demo, HOOK, texts, d_sae=64, k=4, batch_size=256, patience=2)
    steps = sae.metadata["training"]["steps"]
    tokens = sae.metadata["training"]["tokens"]
    assert steps <= max(200, int(20 * tokens / 256)), (steps, tokens)  # about 20 epochs of this small set
    assert sae.stats["explained_variance"] > 0.5
