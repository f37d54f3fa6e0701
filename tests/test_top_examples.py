"""Top examples for any unit: equal to a brute-force scan (each text run alone, every position's value read
independently and sorted), ties to the earlier text, batched equal to one by one, the budget, files."""

from __future__ import annotations

import pytest
import torch

import repwidget as rw
from repwidget.demo import tasks
from repwidget.file_checks import FileFormatError
from repwidget.units import Direction, Feature, Head, Neuron

TEXTS = [e.text for e in tasks.dataset("cycles", 14)] + [e.text for e in tasks.dataset("facts", 14)]


def _head_out_norms(model, z: torch.Tensor, layer: int, head: int) -> torch.Tensor:
    """A head's output norm per token the slow way: the model's own output projection applied to ``z`` with every
    other head zeroed, its bias taken off."""
    arch = model.arch
    projection = model.hf.get_submodule(arch.blocks)[layer].get_submodule(arch.attn_proj)
    only = torch.zeros_like(z)
    only[:, head] = z[:, head]
    with torch.no_grad():
        out = projection(only.reshape(len(z), -1)) - projection(torch.zeros_like(z).reshape(len(z), -1))
    return (arch.attn_scale * out.float()).norm(dim=-1)


def _brute(values: list[torch.Tensor], k: int, per_text: bool) -> list[tuple[int, int, float]]:
    """The top ``k`` (text, position, value) by ``(-value, text, position)`` of each text's values ``[pos]`` (read
    with the text run alone), position 0 left out; ``per_text``: each text's first peak only."""
    rows = []
    for t, text_values in enumerate(values):
        rest = text_values.float()[1:].tolist()
        if per_text:
            rows.append((t, rest.index(max(rest)) + 1, max(rest)))
        else:
            rows.extend((t, p + 1, v) for p, v in enumerate(rest))
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))[:k]


def _alone(model, texts, hooks: list[str]) -> list[dict[str, torch.Tensor]]:
    runs = [model.run(text, capture=hooks) for text in texts]
    return [{h: run[h] for h in hooks} for run in runs]


def _found(ex, j) -> list[tuple[int, int, float]]:
    return [(e.text_index, e.position, e.value) for e in ex.examples(j)]


def _same(got, expected) -> None:
    assert [(t, p) for t, p, _ in got] == [(t, p) for t, p, _ in expected]
    assert torch.allclose(torch.tensor([v for *_, v in got]), torch.tensor([v for *_, v in expected]), atol=1e-5)


@pytest.fixture(scope="module")
def probe_direction(demo):
    probes = rw.train_probes(demo, tasks.dataset("sentiment", 60), layers=[1], kind="mean_diff", control=False)
    return Direction.of_probe(probes, 1)


def test_top_examples_equal_a_brute_force_scan_for_every_kind_of_unit(demo, probe_direction):
    sae = rw.demo.demo_sae()
    units = [Neuron(1, 5), Head(1, 0), Head(0, 2, score="z_norm"), Feature(sae, 3), probe_direction]
    per_token = [
        (lambda a: a[:, 5], "blocks.1.mlp.hook_post"),
        (lambda a: _head_out_norms(demo, a, 1, 0), "blocks.1.attn.hook_z"),
        (lambda a: a[:, 2].float().norm(dim=-1), "blocks.0.attn.hook_z"),
        (lambda a: sae.encode(a)[:, 3], sae.hook),
        (lambda a: a.float() @ probe_direction.vector, "blocks.1.hook_resid_post"),
    ]
    caches = _alone(demo, TEXTS, list({hook for _, hook in per_token}))
    for per_text in (True, False):
        ex = rw.top_examples(demo, TEXTS, units, k=6, per_text=per_text, progress=False)
        for j, (value_of, hook) in enumerate(per_token):
            _same(_found(ex, j), _brute([value_of(c[hook]) for c in caches], 6, per_text))
    assert ex.n_texts == len(TEXTS) and ex.n_tokens == sum(len(demo.to_ids(t)) - 1 for t in TEXTS)


def test_windows_hold_the_tokens_and_values_around_each_peak(demo):
    ex = rw.top_examples(demo, TEXTS, ("neuron", 2, 9), k=4, context=(3, 1), progress=False)
    for e in ex.examples(0):
        ids = demo.to_ids(TEXTS[e.text_index])
        lo = max(0, e.position - 3)
        assert e.tokens == demo.to_str_tokens(ids[lo : e.position + 2])
        assert e.tokens[e.peak] == demo.to_str_tokens([ids[e.position]])[0] and e.values[e.peak] == e.value
        acts = demo.run(TEXTS[e.text_index], capture=["blocks.2.mlp.hook_post"])["blocks.2.mlp.hook_post"][:, 9]
        assert torch.allclose(torch.tensor(e.values), acts[lo : e.position + 2].float(), atol=1e-5)
    whole = rw.top_examples(demo, TEXTS, Neuron(2, 9), k=2, context=None, progress=False).examples(0)[0]
    assert whole.tokens == demo.to_str_tokens(demo.to_ids(TEXTS[whole.text_index])) and whole.peak == whole.position


def test_ties_go_to_the_earlier_text_and_batches_equal_one_by_one(demo):
    texts = TEXTS[:6] * 2  # every value twice: text i + 6 ties text i
    ex = rw.top_examples(demo, texts, rw.units.neurons(0, range(8)), k=4, progress=False)
    for j in range(8):
        found = [e.text_index for e in ex.examples(j)]
        assert all(a < 6 or a - 6 in found[:i] for i, a in enumerate(found))  # a copy only after its original
    one = rw.top_examples(demo, texts, rw.units.neurons(0, range(8)), k=4, batch_size=1, progress=False)
    for name in ("text_index", "position", "window_ids"):
        assert torch.equal(getattr(ex, name), getattr(one, name)), name
    for name in ("values", "window_values"):  # a padded batch's sums round differently
        assert torch.allclose(getattr(ex, name), getattr(one, name), atol=1e-5), name


def test_every_neuron_of_a_layer_in_one_pass_per_batch(demo):
    calls = []
    execute = demo.executor.execute
    demo.executor.execute = lambda plan: calls.append(plan.batch) or execute(plan)
    try:
        ex = rw.top_examples(demo, TEXTS, rw.units.neurons(3, range(demo.d_mlp)), k=3, progress=False)
    finally:
        del demo.executor.execute
    assert sum(calls) == len(TEXTS) and len(ex) == demo.d_mlp
    j = 77
    hook = "blocks.3.mlp.hook_post"
    _same(_found(ex, j), _brute([c[hook][:, j] for c in _alone(demo, TEXTS, [hook])], 3, True))


def test_the_budget_and_bad_units_refuse_in_one_line(demo):
    old = rw.options.max_capture_bytes
    rw.options.max_capture_bytes = 200_000
    try:
        with pytest.raises(rw.CaptureBudgetError, match="over the budget") as info:
            rw.top_examples(demo, TEXTS, rw.units.neurons(3, range(demo.d_mlp)), k=50, progress=False)
        assert "\n" not in str(info.value)
    finally:
        rw.options.max_capture_bytes = old
    with pytest.raises(ValueError, match=r"index must be an int in 0\.\.511"):
        rw.top_examples(demo, TEXTS, Neuron(0, 512))
    with pytest.raises(TypeError, match="a unit is"):
        rw.top_examples(demo, TEXTS, ("neurons", 0, 1))
    with pytest.raises(ValueError, match=r"k must be an int in 1\.\.100000"):
        rw.top_examples(demo, TEXTS, Neuron(0, 1), k=0)
    with pytest.raises(ValueError, match="is 3 wide"):
        rw.top_examples(demo, TEXTS, Direction(torch.ones(3), "blocks.0.hook_resid_post"))
    with pytest.raises(ValueError, match="finite numbers"):
        Direction(torch.tensor([1.0, float("nan")]), "blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match="score must be one of out_norm, z_norm"):
        Head(0, 1, score="pattern")


def test_saved_top_examples_load_back_and_bad_files_fail_in_one_line(demo, tmp_path):
    vector = torch.randn(demo.d_model, generator=torch.Generator().manual_seed(0))
    units = [Neuron(1, 2), Head(0, 1), Direction(vector, "blocks.2.hook_resid_post", "random")]
    ex = rw.top_examples(demo, TEXTS, units, k=3, progress=False)
    back = rw.TopExamples.load(ex.save(tmp_path / "ex"))
    assert back.units[:2] == units[:2] and torch.equal(back.units[2].vector, vector)
    for j in range(3):
        assert back.examples(j) == ex.examples(j)
    assert "<table>" in back.html() and back.index("neuron 1.2") == 0
    meta = (tmp_path / "ex" / "top_examples.json").read_text()
    (tmp_path / "ex" / "top_examples.json").write_text(meta.replace('"per_text": true', '"per_text": "yes"'))
    with pytest.raises(FileFormatError, match="per_text must be true or false"):
        rw.TopExamples.load(tmp_path / "ex")


def _contexts(ex, layer: int, index: int) -> dict:
    reply = ex.session.handle({"type": "get", "id": "v-1", "what": "neuron_examples", "layer": layer, "index": index})
    return reply[0][0]["data"]


def test_the_explorer_shows_a_neurons_top_contexts_from_texts_or_given_examples(demo):
    top = rw.top_examples(demo, TEXTS, rw.units.neurons(2, range(demo.d_mlp)), k=5, progress=False)
    ex = rw.explore(demo, "two days after monday is", texts=TEXTS)
    assert ex.session.shape()["neuron_examples"] is True
    for index in (5, 300):
        data, expected = _contexts(ex, 2, index), top.examples(index)
        assert data["tokens"] == [e.tokens for e in expected] and data["texts"] == [e.text_index for e in expected]
        assert data["peaks"] == [e.peak for e in expected]
    given = rw.explore(demo, "two days after monday is", examples=top)  # no texts: the given examples only
    assert _contexts(given, 2, 7)["tokens"] == [e.tokens for e in top.examples(7)]
    assert _contexts(given, 1, 7)["tokens"] == []  # a neuron the examples do not hold
    assert rw.explore(demo, "one two", views=["neurons"]).session.shape()["neuron_examples"] is False
    with pytest.raises(TypeError, match=r"examples must be a rw\.TopExamples"):
        rw.explore(demo, "one two", examples=TEXTS)
