"""Which components matter: patching sweeps against hand-written loops and TransformerLens, attribution patching
against autograd by hand, ablation sweeps, the Hydra view, knockouts, interventions at positions."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import transformers as T

import repwidget as rw
from repwidget.model.execute import NonFiniteError

from architectures import ARCHITECTURES, build, matrix_ids

CLEAN = "when mary and john went to the store , john gave a drink to"
CORRUPTED = "when mary and john went to the store , mary gave a drink to"


@functools.cache
def gpt2() -> rw.Model:
    return rw.load(build("gpt2"))


def raw_diff(model, target=5, foil=7):
    return rw.patching.Metric("diff", lambda logits: logits[target] - logits[foil], normalized=False)


@pytest.mark.parametrize("site", ["resid_pre", "attn_out", "mlp_out", "heads", "heads_by_pos"])
def test_an_exact_sweep_equals_a_loop_of_full_runs(site):
    model = gpt2()
    clean, corrupted = matrix_ids()[:9], matrix_ids()[9:18]
    metric = raw_diff(model)
    sweep = rw.patching.sweep(model, clean, corrupted, metric, site=site)
    for cell in [(0, 0), (1, 3), (3, 2)] if site in ("heads", "resid_pre", "attn_out", "mlp_out") else [(2, 1, 4)]:
        patch = sweep.patch(*cell)
        assert patch.source == tuple(clean)
        full = model.run(corrupted, patch)
        assert sweep.values[cell] == pytest.approx(metric(full), abs=1e-5)
    assert sweep.clean == pytest.approx(metric(model.run(clean)), abs=1e-5)
    assert sweep.corrupted == pytest.approx(metric(model.run(corrupted)), abs=1e-5)


@pytest.mark.parametrize(
    "n, shared, sites",
    [(9, 0, ("resid_pre", "heads")), (6, 3, ("attn_out", "mlp_out", "heads_by_pos"))],
    ids=["prompts-differ-from-the-start", "prompts-share-3-tokens"],
)
def test_sweeps_equal_transformerlens_patching_on_gpt2(n, shared, sites):
    from transformer_lens import patching

    import tl_reference

    hf = build("gpt2")
    tl = tl_reference.tl_model("gpt2", hf)
    clean, corrupted = matrix_ids()[:n], matrix_ids()[9 : 9 + n]
    corrupted = clean[:shared] + corrupted[shared:]
    _, clean_cache = tl.run_with_cache(torch.tensor([clean]))

    def tl_metric(logits):
        return logits[0, -1, 5] - logits[0, -1, 7]

    corrupted_tokens = torch.tensor([corrupted])
    model = gpt2()
    theirs_by_site = {
        "resid_pre": patching.get_act_patch_resid_pre,
        "attn_out": patching.get_act_patch_attn_out,
        "mlp_out": patching.get_act_patch_mlp_out,
        "heads": patching.get_act_patch_attn_head_out_all_pos,
        "heads_by_pos": patching.get_act_patch_attn_head_out_by_pos,  # [layer, pos, head]
    }
    for site in sites:  # TransformerLens runs every patch in full: a few sites per case keep this test short
        theirs_fn = theirs_by_site[site]
        ours = rw.patching.sweep(model, clean, corrupted, raw_diff(model), site=site)
        theirs = theirs_fn(tl, corrupted_tokens, clean_cache, tl_metric).float()
        theirs = theirs.permute(0, 2, 1) if site == "heads_by_pos" else theirs
        torch.testing.assert_close(ours.values, theirs, atol=1e-4, rtol=0, msg=site)


def test_attribution_patching_is_the_first_order_term_computed_by_hand():
    model = gpt2()
    hf = model.hf
    clean, corrupted = matrix_ids()[:9], matrix_ids()[9:18]
    sweep = rw.patching.sweep(model, clean, corrupted, raw_diff(model), site="resid_pre", method="attribution")
    # by hand: the blocks' inputs on the corrupted text, with gradients, through plain forward hooks
    seen = {}

    def keep(layer):
        def hook(module, args):
            seen[layer] = args[0]  # in the graph (the weights take gradients)

        return hook

    handles = [b.register_forward_pre_hook(keep(i)) for i, b in enumerate(hf.transformer.h)]
    try:
        logits = hf(torch.tensor([corrupted])).logits[0, -1]
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(logits[5] - logits[7], [seen[i] for i in range(4)])
    clean_run = model.run(clean, capture="blocks.*.hook_resid_pre")
    corrupted_value = float((logits[5] - logits[7]).detach())
    for layer in range(4):
        delta = clean_run[f"blocks.{layer}.hook_resid_pre"] - seen[layer][0].detach()
        expected = corrupted_value + (delta * grads[layer][0]).sum(-1)  # the patched run's metric, to first order
        torch.testing.assert_close(sweep.values[layer], expected, atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in hf.parameters())  # nothing left on the user's weights


def test_attribution_tracks_exact_patching_on_the_demo_ioi_prompt(demo):
    model = demo
    metric = rw.patching.logit_diff(model, "mary", "john")
    for site in ("heads", "attn_out"):
        exact = rw.patching.sweep(model, CLEAN, CORRUPTED, metric, site=site)
        approx = rw.patching.sweep(model, CLEAN, CORRUPTED, metric, site=site, method="attribution")
        correlation = torch.corrcoef(torch.stack([exact.values.reshape(-1), approx.values.reshape(-1)]))[0, 1]
        assert correlation > 0.9, (site, float(correlation))
    assert exact.clean > exact.corrupted  # the clean prompt's answer is mary


def test_attribution_patching_works_with_gradients_turned_off_by_the_caller(demo):
    model = demo
    metric = rw.patching.logit_diff(model, "mary", "john")
    expected = rw.patching.sweep(model, CLEAN, CORRUPTED, metric, site="heads", method="attribution")
    with torch.no_grad():  # as notebooks and benchmarks often run
        got = rw.patching.sweep(model, CLEAN, CORRUPTED, metric, site="heads", method="attribution")
    torch.testing.assert_close(got.values, expected.values)


def test_a_noising_sweep_patches_the_corrupted_run_into_the_clean_one(demo):
    model = demo
    metric = rw.patching.logit_diff(model, "mary", "john")
    sweep = rw.patching.sweep(model, CLEAN, CORRUPTED, metric, site="heads", direction="noise")
    patch = sweep.patch(1, 0)
    assert patch.source == tuple(model.to_ids(CORRUPTED))
    broken = metric(model.run(CLEAN, patch))
    assert sweep.values[1, 0] == pytest.approx((broken - sweep.corrupted) / (sweep.clean - sweep.corrupted), abs=1e-5)
    approx = rw.patching.sweep(model, CLEAN, CORRUPTED, metric, site="heads", direction="noise", method="attribution")
    correlation = torch.corrcoef(torch.stack([sweep.values.reshape(-1), approx.values.reshape(-1)]))[0, 1]
    assert correlation > 0.5, float(correlation)  # first order is rougher when noising (0.65 here)


def test_a_sweep_over_prompt_pairs_reports_the_mean_and_spread(demo):
    model = demo
    metric = rw.patching.logit_diff(model, "mary", "john")
    one = rw.patching.sweep(model, CLEAN, CORRUPTED, metric, site="heads")
    two = rw.patching.sweep(model, [CLEAN, CLEAN], [CORRUPTED, CORRUPTED], metric, site="heads")
    torch.testing.assert_close(two.values, one.values)
    assert float(two.spread.abs().max()) < 1e-6 and one.values[tuple(one.top(1)[0][0])] == pytest.approx(
        one.top(1)[0][1]
    )
    with pytest.raises(ValueError, match="equal lengths"):
        rw.patching.sweep(model, CLEAN, "when mary gave", metric)
    other_clean, other_corrupted = CLEAN.replace("store", "park"), CORRUPTED.replace("store", "park")
    other = rw.patching.sweep(model, other_clean, other_corrupted, metric, site="heads")
    both = rw.patching.sweep(model, [CLEAN, other_clean], [CORRUPTED, other_corrupted], metric, site="heads")
    pair = torch.stack([one.values, other.values])
    torch.testing.assert_close(both.values, pair.mean(0))
    torch.testing.assert_close(both.spread, pair.std(0, unbiased=False))
    assert float(both.spread.max()) > 0


def test_ablation_sweeps_use_mean_ablation_with_a_random_head_control(demo):
    model = demo
    metric = rw.patching.logit_diff(model, "mary", "john")
    shipped, model.reference = model.reference, None  # the demo model comes with reference texts: none here
    try:
        sweep = rw.patching.ablation_sweep(model, [CLEAN, CORRUPTED], metric, mode="mean")
        assert model.reference is None  # the prompts were the reference for the sweep only
        model.set_reference([CLEAN, CORRUPTED])
        by_hand = model.run(CLEAN, rw.Ablate(1, head=0, mode="mean"))
        expected = (
            metric(by_hand)
            - metric(model.run(CLEAN))
            + metric(model.run(CORRUPTED, rw.Ablate(1, head=0, mode="mean")))
            - metric(model.run(CORRUPTED))
        ) / 2
    finally:
        model.reference = shipped
    assert sweep.values[1, 0] == pytest.approx(expected, abs=1e-4)
    assert sweep.control_std > 0 and sweep.z.shape == (model.n_layers, model.n_heads)


def test_hydra_direct_effect_of_zero_ablation_is_minus_the_heads_attribution(demo):
    model = demo
    view = rw.patching.hydra(model, CLEAN, "mary", "john", mode="zero")
    dla = rw.analyses.direct_logit_attribution(model.run(CLEAN), model.tokenizer.convert_tokens_to_ids("mary"),
                                               model.tokenizer.convert_tokens_to_ids("john"))  # fmt: skip
    torch.testing.assert_close(view.direct, -dla.heads, atol=1e-5, rtol=0)
    metric = rw.patching.logit_diff(model, "mary", "john")
    assert view.total[1, 0] == pytest.approx(
        metric(model.run(CLEAN, rw.Ablate(1, head=0))) - metric(model.run(CLEAN)), abs=1e-4
    )
    assert view.compensation.shape == (model.n_layers, model.n_heads)


def test_a_knockout_equals_masking_the_scores_in_eager_attention_by_hand():
    torch.manual_seed(0)
    config = T.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    hf = T.LlamaForCausalLM(config).eval()
    model = rw.load(hf)
    x = matrix_ids()[:10]
    knockout = rw.Knockout(1, head=2, query=[6, 8], key=[2, 3])
    ours = model.run(x, knockout, capture="blocks.1.attn.hook_pattern")
    import transformers.models.llama.modeling_llama as llama

    original = llama.eager_attention_forward
    eager = copy.deepcopy(hf)  # its own config: the model repwidget wraps stays as it was loaded
    eager.set_attn_implementation("eager")

    def masked(module, query, key, value, attention_mask, *args, **kwargs):
        if module is eager.model.layers[1].self_attn:  # the scores blocked by hand, in the model's own eager attention
            attention_mask = attention_mask.expand(-1, query.shape[1], -1, -1).clone()
            attention_mask[:, 2, 6, [2, 3]] = torch.finfo(query.dtype).min
            attention_mask[:, 2, 8, [2, 3]] = torch.finfo(query.dtype).min
        return original(module, query, key, value, attention_mask, *args, **kwargs)

    llama.eager_attention_forward = masked
    try:
        with torch.no_grad():
            expected = eager(torch.tensor([x])).logits[0]
    finally:
        llama.eager_attention_forward = original
    torch.testing.assert_close(ours.logits, expected, atol=1e-5, rtol=0)
    pattern = ours["blocks.1.attn.hook_pattern"][2]
    assert float(pattern[6, 2:4].abs().max()) == 0 and pattern[6].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="could attend to no key"):
        model.run(x, rw.Knockout(1, query=[1], key=[0, 1]))
    # anywhere an intervention goes: batched reruns (with other kinds in the batch, and a set that changes only
    # late positions, which alone would re-run from position 7) and batched runs equal the single run
    base = model.run(x)
    sets = [[knockout], [rw.Ablate(0, head=1, positions=[7])], [knockout, rw.Ablate(2, head=0)]]
    for run, ivs in zip(model.rerun_batch(base, sets), sets, strict=True):
        torch.testing.assert_close(run.logits, model.run(x, ivs).logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.run_batch([x, x[:9]], knockout)[0].logits, ours.logits, atol=1e-5, rtol=0)


def test_interventions_at_chosen_positions_touch_only_those_positions():
    model = gpt2()
    x = matrix_ids()[:8]
    run = model.run(x, capture="blocks.*.*")
    ablated = model.run(x, rw.Ablate(1, head=2, positions=[3, 5]), capture="blocks.1.attn.hook_z")
    z, clean_z = ablated["blocks.1.attn.hook_z"], run["blocks.1.attn.hook_z"]
    assert torch.all(z[[3, 5], 2] == 0)
    torch.testing.assert_close(z[[0, 1, 2, 4, 6, 7]], clean_z[[0, 1, 2, 4, 6, 7]])
    vector = torch.randn(model.d_model)
    steered = model.run(x, rw.Steer(2, vector, positions=[7]), capture="blocks.2.hook_resid_post")
    expected = run["blocks.2.hook_resid_post"].clone()
    expected[7] += vector
    torch.testing.assert_close(steered["blocks.2.hook_resid_post"], expected)
    with pytest.raises(ValueError, match=r"out of range 0\.\.7"):
        model.run(x, rw.Steer(2, vector, positions=[8]))


def test_a_patch_from_an_intervened_run_carries_its_interventions():
    model = gpt2()
    source, target = matrix_ids()[:8], matrix_ids()[8:16]
    intervened = model.run(source, rw.Ablate(0, head=1), capture="blocks.2.hook_resid_pre")
    patch = rw.Patch.from_run(intervened, "blocks.2.hook_resid_pre")
    assert patch.interventions == (rw.Ablate(0, head=1),)
    patched = model.run(target, patch, capture="blocks.2.hook_resid_pre")
    torch.testing.assert_close(patched["blocks.2.hook_resid_pre"], intervened["blocks.2.hook_resid_pre"])
    assert rw.interventions.from_json(rw.interventions.to_json(patch)) == patch


CAUSAL = [name for name, spec in ARCHITECTURES.items() if not spec.encoder]


@pytest.mark.parametrize("name", CAUSAL)
def test_reruns_after_a_shared_prefix_compute_only_the_rest_and_equal_full_runs(name):
    model = rw.load(build(name))
    ids = matrix_ids()
    n, shared, last = len(ids), 8, model.n_layers - 1
    source = ids[:shared] + matrix_ids(seed=4)[shared:]  # the same first 8 tokens, then others
    base = model.run(ids, capture=[])
    sets = [
        [rw.Patch("blocks.0.attn.hook_z", source, head=0)],
        [rw.Patch(f"blocks.{last}.attn.hook_z", source, head=1)],
        [rw.Patch("blocks.1.hook_resid_pre", source, positions=[12])],
        [rw.Ablate(1, head=0, positions=[15, 17])],
        [rw.Steer(last, [1.0] * model.d_model, scale=2.0, positions=[n - 1])],
    ]
    widths: list[int] = []
    embeddings = model.hf.get_input_embeddings()
    handle = embeddings.register_forward_hook(lambda m, args, out: widths.append(args[0].shape[-1]))
    try:
        runs = model.rerun_batch(base, sets, batch_size=2)
    finally:
        handle.remove()
    # the three patches' sources read once each over the whole input; the reruns: each prefix's cache, then only
    # the positions after it
    assert widths.count(n) == 3, widths
    assert sorted(w for w in widths if w != n) == sorted([shared, n - shared, 12, n - 12, 15, n - 15, n - 1, 1]), widths
    for interventions, run in zip(sets, runs, strict=True):
        full = model.run(ids, interventions)
        torch.testing.assert_close(run.logits, full.logits, atol=1e-5, rtol=1e-5)
        assert run.interventions == tuple(interventions)
    assert all(p.grad is None for p in model.hf.parameters())


@pytest.mark.parametrize("name", ["gpt2", "bert"])
def test_a_sweep_of_prompts_sharing_a_prefix_reruns_only_what_differs_and_equals_full_runs(name):
    model = gpt2() if name == "gpt2" else rw.load(build(name))  # BERT: every position sees the later tokens
    clean = matrix_ids()
    corrupted = clean[:10] + matrix_ids(seed=5)[10:]
    for position in (-1, 3, 12):  # the metric read after, before and at the first differing token
        metric = rw.patching.Metric("diff", lambda logits: logits[5] - logits[7], position, normalized=False)
        for site in ("heads", "resid_pre") if position == -1 else ("heads_by_pos",):
            sweep = rw.patching.sweep(model, clean, corrupted, metric, site=site)
            full = torch.tensor([metric(model.run(corrupted, sweep.patch(*cell))) for cell in sweep.patches])
            torch.testing.assert_close(sweep.values.reshape(-1), full, atol=1e-5, rtol=0, msg=(site, position))
    if name == "gpt2":  # before the first differing token a patch changes nothing: no rerun
        assert (sweep.values[..., :10] == sweep.corrupted).all()


def test_reruns_recompute_only_what_each_set_can_change():
    model = gpt2()
    ids = matrix_ids()
    n = len(ids)
    widths: list[int] = []
    embeddings = model.hf.get_input_embeddings()
    handle = embeddings.register_forward_hook(lambda m, args, out: widths.append(args[0].shape[-1]))
    try:
        clean = model.run(ids, capture=[])
        ablated = model.run(ids, rw.Ablate(0, head=1), capture=[])
        cases = [
            (clean, [rw.Ablate(1, head=0)], n),  # every position: the whole input
            (clean, [rw.Ablate(1, head=0, positions=[3, 15])], n - 3),  # from its first position
            (clean, [rw.Ablate(1, head=0, positions=[15]), rw.Steer(0, [0.1] * model.d_model)], n),
            (clean, [rw.Patch("blocks.1.hook_resid_pre", ids[:6] + [3] * (n - 6), head=None)], n - 6),
            (clean, [rw.Patch("blocks.1.hook_resid_pre", ids, interventions=[rw.Ablate(0, head=0)])], n),
            (ablated, [rw.Ablate(1, head=0, positions=[15])], n),  # an intervened base: the whole input
        ]
        for base, ivs, width in cases:
            widths.clear()
            (run,) = model.rerun_batch(base, [ivs])
            rows = [w for w in widths if w != n or width == n][-1]  # the rerun's (after any source's capture)
            assert rows == width, (ivs, widths)
            torch.testing.assert_close(run.logits, model.run(ids, ivs).logits, atol=1e-5, rtol=1e-5)
    finally:
        handle.remove()


def test_attribution_reads_the_gradient_of_the_metric_at_its_own_position():
    model = gpt2()
    clean, corrupted = matrix_ids()[:9], matrix_ids()[9:18]
    metric = rw.patching.Metric("diff", lambda logits: logits[5] - logits[7], 5, normalized=False)
    sweep = rw.patching.sweep(model, clean, corrupted, metric, site="resid_pre", method="attribution")
    hooks = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.n_layers)]
    cache, logits = model.with_graph(corrupted, hooks)  # every row's logits, in the graph
    with torch.enable_grad():
        grads = torch.autograd.grad(logits[5, 5] - logits[5, 7], [cache[h] for h in hooks])
    source = model.run(clean, capture=hooks)
    by_hand = torch.stack([((source[h] - cache[h].detach()) * g).sum(-1) for h, g in zip(hooks, grads, strict=True)])
    torch.testing.assert_close(sweep.values, sweep.corrupted + by_hand, atol=1e-5, rtol=1e-5)
    assert float(by_hand[:, 6:].abs().max()) == 0  # positions after 5 cannot move the metric at 5


def test_one_non_finite_rerun_in_a_batch_is_an_error():
    model = gpt2()
    base = model.run(matrix_ids(), capture=[])
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        model.rerun_batch(base, [[rw.Ablate(0, head=0)], [rw.Steer(1, [1e30] * model.d_model)]])


def test_the_logits_of_many_runs_unembedded_together_equal_each_runs_own():
    model = gpt2()
    base = model.run(matrix_ids(), capture=[])
    runs = model.rerun_batch(base, [[rw.Ablate(layer, head=0)] for layer in range(model.n_layers)])
    together = rw.Run.logits_of(runs, -1)
    assert together.shape == (model.n_layers, model.hf.config.vocab_size)
    torch.testing.assert_close(together, torch.stack([r.logits[-1] for r in runs]), atol=1e-5, rtol=1e-5)
    metric = raw_diff(model)
    assert rw.patching.measure(metric, runs, chunk=3) == pytest.approx([metric(r) for r in runs], abs=1e-5)


def test_string_tokens_are_resolved_after_each_prompt_and_named_by_id(demo):
    """The demo's word-level tokenizer: "mary" follows the prompt as itself; a word it does not know, or two
    words, are refused in one line; the sweep's metric name gives the ids it used."""
    model = demo
    mary, john = model.tokenizer.convert_tokens_to_ids(["mary", "john"])
    sweep = rw.patching.sweep(model, CLEAN, CORRUPTED, rw.patching.logit_diff(model, "mary", "john"), site="heads")
    assert sweep.metric == f"logit_diff('mary'#{mary} - 'john'#{john})"
    assert rw.patching.logit_diff(model, mary, john).name == sweep.metric
    refused = {"Mary": "an unknown token to this tokenizer", "mary john": r"2 tokens there \('mary', 'john'\)"}
    for word, problem in refused.items():
        with pytest.raises(ValueError, match=f"after the prompt is {problem}: give one token"):
            rw.patching.sweep(model, CLEAN, CORRUPTED, rw.patching.logit_diff(model, word, "john"), site="heads")
    with pytest.raises(ValueError, match="outside the 15 tokens of this prompt"):
        rw.patching.sweep(model, CLEAN, CORRUPTED, rw.patching.logit_diff(model, mary, john, position=20))
