"""Caches follow the weights and stay bounded: every cache of activations or statistics is read again after the
weights change (a training step, ``load_state_dict``, an edit through ``p.data``), an interrupted generation step
leaves its stream as it was, sweeps and remembered patch sources are counted in ``rw.options.max_capture_bytes``,
and every ``Run`` reruns from its first intervened block."""

from __future__ import annotations

import copy

import pytest
import torch

import repwidget as rw
from repwidget.generation import Stream
from repwidget.views.panels import patching as patching_panel

from architectures import build, matrix_ids


def _train_step(hf: torch.nn.Module) -> None:
    optimizer = torch.optim.SGD(hf.parameters(), lr=0.05)
    ids = torch.tensor([matrix_ids(10, seed=9)])
    hf.train()
    hf(ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    hf.eval()


def _load_other(hf: torch.nn.Module) -> None:
    hf.load_state_dict(build("llama", seed=7).state_dict())


def _scale_data(hf: torch.nn.Module) -> None:
    for p in hf.parameters():
        p.data.mul_(1.3)  # bumps no version counter


CHANGES = {"train_step": _train_step, "load_state_dict": _load_other, "data_mul": _scale_data}


def _changed(change: str) -> tuple[rw.Model, rw.Model]:
    """A model whose weights change (returned with ``change`` still to apply) and a fresh twin given the changed
    weights afterwards by :func:`_twin`."""
    return rw.Model(build("llama")), CHANGES[change]


def _twin(model: rw.Model) -> rw.Model:
    """A fresh model with ``model``'s current weights (nothing read with it yet)."""
    return rw.Model(copy.deepcopy(model.hf))


REFERENCE = [matrix_ids(9, seed=5), matrix_ids(7, seed=6)]


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("mode", ["mean", "resample"])
def test_reference_statistics_are_read_again_after_the_weights_change(change, mode):
    model, apply = _changed(change)
    model.set_reference(REFERENCE)
    x = matrix_ids(8)
    ablation = [rw.Ablate(2, head=1, mode=mode), rw.Ablate(1, neuron=3, mode=mode)]
    before = model.run(x, ablation).logits
    apply(model.hf)
    after = model.run(x, ablation).logits
    fresh = _twin(model)
    fresh.set_reference(REFERENCE)
    expected = fresh.run(x, ablation).logits
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(before, after, atol=1e-3)


@pytest.mark.parametrize("change", CHANGES)
def test_patch_sources_are_read_again_after_the_weights_change(change):
    model, apply = _changed(change)
    clean, corrupted = matrix_ids(8, seed=1), matrix_ids(8, seed=2)
    patch = rw.Patch("blocks.1.hook_resid_post", clean, positions=[3])
    model.run(corrupted, patch)
    apply(model.hf)
    torch.testing.assert_close(
        model.run(corrupted, patch).logits, _twin(model).run(corrupted, patch).logits, atol=1e-5, rtol=0
    )


def test_the_weights_version_sees_an_edit_through_data():
    model = rw.Model(build("llama"))
    version = model.weights_version()
    next(model.hf.parameters()).data.mul_(2)  # no version counter moves
    assert model.weights_version() != version


@pytest.mark.parametrize("change", CHANGES)
def test_the_patching_views_sweeps_are_made_again_after_the_weights_change(change):
    model, apply = _changed(change)
    clean, corrupted = matrix_ids(8, seed=1), matrix_ids(8, seed=2)
    args = {"site": 0, "method": 0, "target": 5, "foil": 9}
    ex = rw.explore(model, clean, corrupted=corrupted)
    before = patching_panel.sweep_of(ex.session, args).values
    apply(model.hf)
    after = patching_panel.sweep_of(ex.session, args).values
    expected = patching_panel.sweep_of(rw.explore(_twin(model), clean, corrupted=corrupted).session, args).values
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(before, after, atol=1e-3)


def test_the_patching_view_keeps_a_bounded_number_of_sweeps():
    model = rw.Model(build("llama"))
    ex = rw.explore(model, matrix_ids(6, seed=1), corrupted=matrix_ids(6, seed=2))
    for target in range(patching_panel.KEPT + 3):
        patching_panel.sweep_of(ex.session, {"site": 3, "method": 1, "target": target, "foil": 40})
    assert len(ex.session.state["patching"].sweeps) == patching_panel.KEPT


def test_feature_dashboards_are_read_again_after_the_weights_change(fresh_demo):
    sae = rw.demo.demo_sae()
    texts = [e.text for e in rw.demo.dataset("cycles", 12)]
    ex = rw.explore(fresh_demo, "two days after monday is", saes=[sae], texts=texts)
    before = ex.session.dashboard(0, 3)
    _scale_data(fresh_demo.hf)
    after = ex.session.dashboard(0, 3)
    expected = rw.feature_dashboard(fresh_demo, sae, 3, texts)
    assert after is not before and after.counts == expected.counts and after.edges == expected.edges


# -- an interrupted generation step ------------------------------------------------------------------------------


def _interrupting(model: rw.Model, layer: int, at: int):
    """A forward hook on ``layer`` raising KeyboardInterrupt at its ``at``-th call (the layers before it have run)."""
    calls = []

    def hook(module, args, output):
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt

    return model.hf.get_submodule(f"{model.arch.blocks}.{layer}").register_forward_hook(hook)


@pytest.mark.parametrize("name", ["llama", "gpt2", "gemma2"])  # gemma2: sliding-window cache layers
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_an_interrupted_stream_step_leaves_the_stream_as_it_was(name, temperature):
    model = rw.Model(build(name))
    prompt = matrix_ids(9)
    steer = rw.Steer(1, torch.ones(model.d_model), scale=2.0)
    whole = Stream(model, prompt, steer, max_new_tokens=12, temperature=temperature, seed=4)
    while whole.step():
        pass
    stream = Stream(model, prompt, steer, max_new_tokens=12, temperature=temperature, seed=4)
    for _ in range(4):
        stream.step()
    handle = _interrupting(model, 2, 2)  # the 6th step's pass: blocks 0-1 have written their KV cache
    try:
        stream.step()
        with pytest.raises(KeyboardInterrupt):
            stream.step()
    finally:
        handle.remove()
    assert len(stream.generation) == 5
    while stream.step():
        pass
    assert stream.generation.new_token_ids == whole.generation.new_token_ids
    torch.testing.assert_close(
        torch.tensor(stream.generation.logprobs), torch.tensor(whole.generation.logprobs), atol=1e-5, rtol=0
    )


def test_an_interrupt_in_the_stop_function_is_read_again_at_the_next_step():
    model = rw.Model(build("llama"))
    seen = []

    def stop(gen):
        seen.append(len(gen))
        if len(seen) == 3:
            raise KeyboardInterrupt
        return len(gen) >= 3

    stream = Stream(model, matrix_ids(6), max_new_tokens=10, stop=stop)
    stream.step(), stream.step()
    with pytest.raises(KeyboardInterrupt):
        stream.step()
    assert not stream.step() and stream.generation.stopped == "stop" and len(stream.generation) == 3


def test_an_interrupted_click_after_the_weights_change_leaves_both_runs_as_they_were():
    model = rw.Model(build("llama"))
    x, ablation = matrix_ids(8), (rw.Ablate(1, head=0),)
    ex = rw.explore(model, x)
    ex.session.apply(ablation)
    old = ex.session.clean_run, ex.session.run
    _scale_data(model.hf)
    handle = _interrupting(model, 2, 2)  # the intervened rerun, after the clean run was computed again
    try:
        with pytest.raises(KeyboardInterrupt):
            ex.session.apply(ablation)
    finally:
        handle.remove()
    assert (ex.session.clean_run, ex.session.run) == old
    ex.session.apply(ablation)
    twin = _twin(model)
    torch.testing.assert_close(ex.session.run.logits, twin.run(x, ablation).logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(ex.session.clean_run.logits, twin.run(x).logits, atol=1e-5, rtol=0)


# -- bounded sweeps and sources ----------------------------------------------------------------------------------


def _sweep_memory(model: rw.Model, n: int) -> tuple[int, int, int]:
    """A heads-by-position sweep of an ``n``-token pair differing at the first token (every cell re-run): the peak
    of Python memory it allocated (the cells' patches, each holding the prompt's ids), the most runs held at once
    (each holding a ``[n, d_model]`` final state) and what the returned sweep holds."""
    import tracemalloc

    from repwidget.patching import sweeps

    from conftest import ids

    clean = ids(n)
    corrupted = [2 + (clean[0] - 1) % 62, *clean[1:]]
    most = []
    original = sweeps.measure

    def spy(metric, runs, chunk=256):
        most.append(len(runs))
        return original(metric, runs, chunk)

    sweeps.measure = spy
    tracemalloc.start()
    try:
        result = rw.patching.sweep(model, clean, corrupted, lambda run: 0.0, site="heads_by_pos")
        peak = tracemalloc.get_traced_memory()[1]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        sweeps.measure = original
    del result
    return peak, max(most), held


def test_sweep_memory_is_within_the_budget_and_linear_in_prompt_length(monkeypatch):
    from conftest import long_context_model

    model = long_context_model(n_positions=512, n_layer=2, n_head=2)
    monkeypatch.setattr(rw.options, "max_capture_bytes", 2 << 20)
    short, long = _sweep_memory(model, 48), _sweep_memory(model, 96)
    cells = model.n_layers * model.n_heads * 96
    assert long[1] <= 64 < cells  # one batch of runs at a time (were all 384 cells' runs)
    # Python memory (the cells' patches held at once: a share of the budget) at most doubles with the length (was
    # 384 patches holding 96 ids each: 0.65 -> 1.39 MB)
    assert long[0] < 2 * short[0], (short, long)


def test_a_sweep_holds_no_patch_per_cell_and_makes_each_when_asked():
    model = rw.Model(build("llama"))
    clean, corrupted = matrix_ids(8, seed=1), matrix_ids(8, seed=2)
    result = rw.patching.sweep(model, clean, corrupted, lambda run: 0.0, site="heads_by_pos", method="exact")
    assert not isinstance(result.patches, dict) and len(result.patches) == 4 * 4 * 8
    assert result.patch(2, 1, 5) == rw.Patch("blocks.2.attn.hook_z", clean, head=1, positions=[5])
    assert (2, 1, 5) in result.patches and (4, 0, 0) not in result.patches and (2, 1) not in result.patches


def test_remembered_patch_sources_are_bounded_by_bytes(monkeypatch):
    from repwidget.model import sources

    model = rw.Model(build("llama"))
    monkeypatch.setattr(rw.options, "max_capture_bytes", 64 << 10)
    for seed in range(12):
        clean, corrupted = matrix_ids(20, seed=seed), matrix_ids(20, seed=seed + 50)
        rw.patching.sweep(model, clean, corrupted, lambda run: 0.0, site="heads")
    held = sum(t.untyped_storage().nbytes() for t in model.patch_sources._kept.values())
    assert 0 < held == model.patch_sources.nbytes <= sources.SHARE * rw.options.max_capture_bytes
    assert len(model.patch_sources) < 12 * 4  # a count limit alone kept every one (256)


# -- every Run reruns from its first intervened block ------------------------------------------------------------


@pytest.mark.parametrize("views", [None, ["attention"]])  # the attention view alone captures no residual stream
def test_the_explorers_runs_rerun_from_their_first_intervened_block(views):
    from repwidget.views.session import Session

    model = rw.Model(build("llama"))
    x, ablation = matrix_ids(9), [rw.Ablate(2, head=1)]
    ex = rw.explore(model, x) if views is None else Session.of(model, x, views=views)
    calls = []
    handles = [  # the attention inside each block runs only when the block is computed
        layer.self_attn.register_forward_pre_hook(lambda m, a, i=i: calls.append(i))
        for i, layer in enumerate(model.hf.model.layers)
    ]
    try:
        clean, intervened = ex.clean_run.rerun(ablation), ex.run.rerun(ablation)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == [2, 3, 2, 3]  # blocks 0 and 1 reused, in both reruns (were computed again)
    expected = model.run(x, ablation)
    for run in (clean, intervened):
        torch.testing.assert_close(run.logits, expected.logits, atol=1e-5, rtol=0)
        assert sorted(run) == sorted(expected)
        for hook in expected:
            torch.testing.assert_close(run[hook], expected[hook], atol=1e-5, rtol=0)


def test_a_run_refuses_to_compute_what_it_lacks_with_other_weights():
    model = rw.Model(build("llama"))
    run, kept = model.run(matrix_ids(8)), model.run(matrix_ids(8))
    logits, pattern = kept.logits, kept.pattern(1)  # read before the change: still read after it
    _scale_data(model.hf)
    for read in (lambda: run.logits, lambda: run.logits_at(-1), lambda: run.pattern(1), lambda: run.summary()):
        with pytest.raises(ValueError, match="weights changed since this run was made"):
            read()
    assert kept.logits is logits and kept.pattern(1) is pattern
    assert torch.equal(run["blocks.1.hook_resid_post"], kept["blocks.1.hook_resid_post"])


@pytest.mark.parametrize("change", CHANGES)
def test_the_explorers_next_message_after_the_weights_change_answers_from_the_new_weights(change):
    """A click after a training step (no intervention changed) makes both runs again and tells every view
    (a new generation), rather than answering from the old weights or refusing."""
    model, apply = _changed(change)
    ids = matrix_ids(8, seed=3)
    ex = rw.explore(model, ids, interventions=[rw.Ablate(1, head=0)])
    generation = ex.generation
    apply(model.hf)
    sent = []
    ex.send = lambda reply, buffers=None: sent.append(reply)
    ex._on_message(ex, {"type": "get", "id": 1, "what": "predictions", "position": 7}, [])
    assert sent and sent[-1]["type"] == "reply", sent
    assert ex.clean_run.weights_version == ex.run.weights_version == model.weights_version()
    assert ex.generation > generation
    twin = _twin(model)
    torch.testing.assert_close(ex.run.logits, twin.run(ids, [rw.Ablate(1, head=0)]).logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(ex.clean_run.logits, twin.run(ids).logits, atol=1e-5, rtol=0)
