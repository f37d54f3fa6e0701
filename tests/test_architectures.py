"""The architecture matrix: on every architecture repwidget's numbers equal plain transformers', and its hooks mean
what TransformerLens means, checked against TransformerLens's own implementation on the same weights
(``tl_reference``), or, for the architectures it lacks (Falcon, Granite, Cohere), against a reference read by hand
off the Hugging Face modules (``hand_reference``).

``pytest -s tests/test_architectures.py`` prints, per architecture and hook, the largest relative difference between
repwidget's hook and the reference's: ``max |repwidget - reference| / max |reference|`` over positions and layers.
"""

from __future__ import annotations

import functools

import hand_reference
import pytest
import torch

import repwidget as rw

import tl_reference
from architectures import ARCHITECTURES, build, matrix_ids
from tl_reference import HOOKS

NAMES = list(ARCHITECTURES)
TL_SUPPORTED = [name for name in NAMES if tl_reference.supported(name)]
REFERENCED = TL_SUPPORTED + [name for name in NAMES if hand_reference.supported(name)]
ATOL = 1e-5  # logits against transformers
REL = 1e-4  # a hook against the reference (fp32 implementations agree to ~1e-6 here), and the residual identities
N_LAYERS = 4


@functools.cache
def hf_model(name: str) -> torch.nn.Module:
    return build(name)


@functools.cache
def captured(name: str) -> rw.Run:
    """repwidget's run of the test ids capturing every hook."""
    return rw.load(hf_model(name)).run(matrix_ids(), capture="blocks.*.*")


@functools.cache
def reference(name: str) -> dict[str, torch.Tensor]:
    """TransformerLens's hooks (the hand reference's where TransformerLens lacks the architecture), and logits."""
    run = tl_reference.tl_run if tl_reference.supported(name) else hand_reference.hand_run
    return run(name, hf_model(name), matrix_ids())


def _tl_name(name: str, hook: str) -> str:
    """TransformerLens's name for repwidget's ``hook``: BERT's block output is its ``hook_normalized_resid_post``."""
    if ARCHITECTURES[name].encoder and hook.endswith(".hook_resid_post"):
        return hook.replace("hook_resid_post", "hook_normalized_resid_post")
    return hook


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


#: architecture -> its row of the printed table, for those compared in this session
_TABLE: dict[str, dict[str, float | str]] = {}


def comparison(name: str) -> dict[str, float | str]:
    """Per hook template: the max relative difference from the reference over layers, or why there is none."""
    if name not in _TABLE:
        _TABLE[name] = _compare(name)
    return _TABLE[name]


def _compare(name: str) -> dict[str, float | str]:
    ref = reference(name)
    run = captured(name)
    table: dict[str, float | str] = {}
    wanted = {k for k in ref if k.startswith("blocks.") and not k.endswith("hook_normalized_resid_post")}
    if ARCHITECTURES[name].encoder:
        wanted = {k for k in wanted if not k.endswith(".hook_resid_post")} | {
            f"blocks.{layer}.hook_resid_post" for layer in range(N_LAYERS)
        }
    for hook in sorted(wanted | set(run.keys())):
        template = hook.split(".", 2)[2]
        tl_hook = _tl_name(name, hook)
        if tl_hook not in ref:
            table.setdefault(template, "no reference")
        elif hook not in run:
            table[template] = "missing"
        elif run[hook].shape != ref[tl_hook].shape:
            table[template] = f"shape {tuple(run[hook].shape)} != {tuple(ref[tl_hook].shape)}"
        elif not isinstance(table.get(template), str):
            table[template] = max(table.get(template, 0.0), _rel(run[hook], ref[tl_hook]))
    return table


@pytest.fixture(scope="module", autouse=True)
def print_table():
    """After the module: the table of relative differences from the references (shown with ``pytest -s``)."""
    yield
    if not _TABLE:
        return
    columns = [h for h in HOOKS if h != "hook_normalized_resid_post"]
    lines = ["", f"max relative difference from TransformerLens (* by hand), per hook (pass: <= {REL:g})"]
    lines.append(f"{'architecture':16s}" + "".join(f"{c:>20s}" for c in columns))
    for name in [n for n in REFERENCED if n in _TABLE]:
        label = name if tl_reference.supported(name) else f"{name} *"
        row = _TABLE[name]
        cells = [row.get(c, "-") for c in columns]
        lines.append(
            f"{label:16s}" + "".join(f"{c:>20.1e}" if isinstance(c, float) else f"{c[:19]:>20s}" for c in cells)
        )
    print("\n".join(lines))


# --- every architecture: repwidget against plain transformers --------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_logits_equal_transformers(name):
    hf = hf_model(name)
    x = matrix_ids()
    with torch.no_grad():
        expected = hf(torch.tensor([x])).logits[0]
    run = rw.load(hf).run(x)
    assert run.logits is not None, f"{name}: repwidget found no logits"
    torch.testing.assert_close(run.logits, expected, atol=ATOL, rtol=0)


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    assert _rel(a, b) <= REL, f"{what}: max relative difference {_rel(a, b):.2g}"


HOOKS_FOR_IDENTITY = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_mid", "hook_resid_post")


def _check_residual_identities(name: str, hooks: dict[str, torch.Tensor], who: str) -> None:
    """Sequential: resid_mid = resid_pre + attn_out, resid_post = resid_mid + mlp_out; parallel:
    resid_post = resid_pre + attn_out + mlp_out; every block: the next resid_pre is this resid_post.
    BERT (post-LN): resid_mid = resid_pre + attn_out (the LayerNorms come after the sums)."""
    spec = ARCHITECTURES[name]
    for layer in range(N_LAYERS):
        h = {t: hooks.get(f"blocks.{layer}.{t}") for t in HOOKS}
        pre, attn, mlp, mid, post = (h[t] for t in HOOKS_FOR_IDENTITY)
        where = f"{who} {name} layer {layer}"
        if spec.parallel:
            assert mid is None, f"{where}: a parallel block has no resid_mid"
            _close(post, pre + attn + mlp, f"{where}: resid_post = resid_pre + attn_out + mlp_out")
            continue
        if not spec.encoder:
            _close(post, pre + attn + mlp, f"{where}: resid_post = resid_pre + attn_out + mlp_out")
        assert mid is not None, f"{where}: hook_resid_mid missing"
        _close(mid, pre + attn, f"{where}: resid_mid = resid_pre + attn_out")
        if not spec.encoder:
            _close(post, mid + mlp, f"{where}: resid_post = resid_mid + mlp_out")
        block_out = h["hook_normalized_resid_post"] if spec.encoder and who == "TL" else post
        if layer + 1 < N_LAYERS:
            _close(hooks[f"blocks.{layer + 1}.hook_resid_pre"], block_out, f"{where}: next resid_pre = block output")


@pytest.mark.parametrize("name", NAMES)
def test_residual_identities_hold_for_repwidget(name):
    """What each block adds to the residual stream adds up, on every architecture (TransformerLens or not)."""
    _check_residual_identities(name, dict(captured(name).items()), "repwidget")


# --- the references: TransformerLens, and by hand where it lacks the architecture ---------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", TL_SUPPORTED)
def test_reference_equals_transformers(name):
    """The reference is right before it is used: TransformerLens's logits (checked when it is built, to 1e-4) and
    block outputs equal Hugging Face's on the same weights."""
    ref = reference(name)
    hf = hf_model(name)
    with torch.no_grad():
        out = hf(torch.tensor([matrix_ids()]), output_hidden_states=True)
    torch.testing.assert_close(ref["logits"], out.logits[0], atol=ATOL, rtol=0)
    hidden = out.hidden_states
    torch.testing.assert_close(ref["blocks.0.hook_resid_pre"], hidden[0][0], atol=ATOL, rtol=0)
    for layer in range(N_LAYERS - 1):  # transformers' last hidden state is after the final norm
        torch.testing.assert_close(ref[_tl_name(name, f"blocks.{layer}.hook_resid_post")], hidden[layer + 1][0],
                                   atol=ATOL, rtol=0)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", REFERENCED)
def test_residual_identities_hold_for_the_reference(name):
    """The references' own hooks satisfy the identities the repwidget tests expect (so the expectations are right)."""
    _check_residual_identities(name, reference(name), "TL" if tl_reference.supported(name) else "hand")


@pytest.mark.slow
@pytest.mark.parametrize("name", REFERENCED)
def test_hooks_equal_the_reference(name):
    """Every hook the reference defines exists in repwidget and equals it; so does every repwidget hook the reference
    also has (Mixtral's mlp.hook_post is per expert in TransformerLens, so not compared)."""
    table = comparison(name)
    wrong = {
        hook: value
        for hook, value in table.items()
        if value != "no reference" and not (isinstance(value, float) and value <= REL)
    }
    assert not wrong, f"{name}: hooks that differ from the reference: {wrong}"


# --- every architecture: the lens, patterns read a block of rows at a time, batches -----------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_the_lens_at_the_last_layer_is_the_models_own_prediction(name):
    """The logit lens reads a residual stream through the model's own head: its final norm, unembedding and what it
    does to logits (Gemma 2's soft-capping, Cohere's and Granite's scales)."""
    model = rw.load(hf_model(name))
    if not model.has_unembed:
        pytest.skip("no unembedding")
    run = captured(name)
    last = run[f"blocks.{N_LAYERS - 1}.hook_resid_post"]
    torch.testing.assert_close(model.logits_from_resid(last), run.logits, atol=ATOL, rtol=0)
    lens = rw.analyses.logit_lens(run, range(3, 9), k=3)
    top = run.logits[3:9].float().softmax(-1).topk(3)
    assert torch.equal(lens.ids[-1], top.indices)


def reference_scores(pattern: torch.Tensor, ids: list[int], rows: list[int] | None = None) -> dict[str, torch.Tensor]:
    """The head scores of one layer's ``[head, q, k]`` pattern, written out from their definitions (averaged
    over the query ``rows`` given, every row by default)."""
    rows = list(range(len(ids))) if rows is None else rows
    prev = torch.stack([pattern[:, q, q - 1] for q in rows if q >= 1], -1).double().mean(-1)
    first = pattern[:, rows, 0].double().mean(-1)
    sums: dict[str, list[torch.Tensor]] = {"duplicate_token": [], "induction": []}
    for q in rows:
        keys = {
            "duplicate_token": [k for k in range(q) if ids[k] == ids[q]],
            "induction": [k for k in range(1, q) if ids[k - 1] == ids[q]],
        }
        for name, ks in keys.items():
            if ks:
                sums[name].append(pattern[:, q, ks].double().sum(-1))
    zero = torch.zeros(pattern.shape[0], dtype=torch.float64)
    mean = {name: torch.stack(v).mean(0) if v else zero for name, v in sums.items()}
    return {"previous_token": prev, "first_token": first, **mean}


@pytest.mark.parametrize("rows_per_block", [None, 3, "sampled"])
@pytest.mark.parametrize("name", NAMES)
def test_patterns_and_head_scores_never_held_whole_equal_the_eager_ones(name, rows_per_block, monkeypatch):
    """Patterns read when asked (the layer re-run, a block of query rows at a time, a causal block seeing only
    the keys up to its last row) and the head scores and thumbnails reduced from them equal the probabilities
    an eager pass computes; the scores equal their definitions. A prompt past EXACT_SUMMARY_ROWS ("sampled"):
    thumbnails and scores are those of every stride-th row, and the run's output is still the model's."""
    from repwidget.model import attention

    model = rw.load(hf_model(name))
    eager = captured(name)  # captures every hook, patterns included
    n = len(matrix_ids())
    rows = list(range(n))
    if rows_per_block == 3:  # blocks of 3 query rows: every reduction sees partial blocks
        monkeypatch.setattr(attention, "CHUNK_BYTES", model.n_heads * n * 16 * rows_per_block)
    if rows_per_block == "sampled":  # a "long" prompt: every third or fourth row
        monkeypatch.setattr(attention, "EXACT_SUMMARY_ROWS", n // 3)
        stride = -(-n // (n // 3))
        rows = list(range(0, n, stride))
        assert stride >= 3 and rows == [a for a, _ in attention.row_blocks(n, 10**6, stride)]
        summarized = model.run(matrix_ids(), summarize=8)
        if model.has_unembed:
            torch.testing.assert_close(summarized.logits, eager.logits, atol=1e-5, rtol=0)
    run = model.run(matrix_ids())
    assert "blocks.2.attn.hook_pattern" not in run
    torch.testing.assert_close(
        run["blocks.2.attn.hook_pattern"], eager["blocks.2.attn.hook_pattern"], atol=1e-6, rtol=0
    )
    for side in (8, 7):  # equal bins and unequal ones
        thumbs, scores = run.summary(side=side)
        patterns = torch.stack([eager[f"blocks.{layer}.attn.hook_pattern"] for layer in range(N_LAYERS)])
        read = torch.full_like(patterns, -torch.inf)
        read[:, :, rows] = patterns[:, :, rows]  # the rows an overview reads
        expected = torch.nn.functional.adaptive_max_pool2d(read.flatten(0, 1), side).reshape(thumbs.shape)
        torch.testing.assert_close(thumbs, expected, atol=1e-6, rtol=0)
    for layer in range(N_LAYERS):
        for score, values in reference_scores(patterns[layer], matrix_ids(), rows).items():
            torch.testing.assert_close(scores[score][layer], values.float(), atol=1e-6, rtol=0)


BATCHED = ["gpt2", "llama", "neox", "gemma2", "opt", "bert"]


@pytest.mark.parametrize("padding", ["right", "left"])
@pytest.mark.parametrize("name", BATCHED)
def test_a_padded_batch_equals_one_by_one_runs(name, padding):
    """Learned positions (GPT-2, OPT), rotary (Llama, NeoX), sliding windows and soft-capping (Gemma 2) and a
    bidirectional encoder (BERT): each run of a batch equals the run of that input alone, interventions included."""
    model = rw.load(hf_model(name))
    texts = [matrix_ids()[:n] for n in (20, 7, 13, 1)]
    ivs = [rw.Ablate(1, head=2), rw.Steer(2, torch.linspace(-1, 1, model.d_model))]
    capture = ["blocks.1.attn.hook_z", "blocks.2.hook_resid_post", "blocks.3.hook_mlp_out"]
    batch = model.run_batch(texts, ivs, capture=capture, batch_size=4, padding=padding)
    for text, run in zip(texts, batch, strict=True):
        alone = model.run(text, ivs, capture=capture)
        assert run.token_ids == alone.token_ids
        for hook in capture:
            torch.testing.assert_close(run[hook], alone[hook], atol=1e-5, rtol=0, msg=f"{hook}, {len(text)} tokens")
        if model.has_unembed:
            torch.testing.assert_close(run.logits, alone.logits, atol=1e-5, rtol=0)
