"""Hostile input (issue 13): look-alike hook names, files that lie, links, pickles, meta models, bad texts, magics."""

from __future__ import annotations

import gc
import json
import math
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as T
from safetensors.torch import load_file, save_file

import repwidget as rw
from repwidget.file_checks import FileFormatError
from repwidget.hook_names import HookNameError, hook_for, parse

HOOK = "blocks.2.hook_resid_pre"
#: names that look like blocks.2.hook_resid_pre and matched no hook: leading zero, newline, spaces,
#: Arabic-Indic and fullwidth digits
LOOKALIKES = [
    "blocks.02.hook_resid_pre",
    "blocks.2.hook_resid_pre\n",
    " blocks.2.hook_resid_pre",
    "blocks.2.hook_resid_pre ",
    "blocks.\u0662.hook_resid_pre",
    "blocks.\uff12.hook_resid_pre",
]


@pytest.fixture(scope="module")
def demo_sae():
    return rw.demo.demo_sae()


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text.strip(), text
    return text


# -- 1. hook names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOOKALIKES)
def test_a_lookalike_hook_name_is_refused_with_the_real_one_suggested(name):
    with pytest.raises(HookNameError, match=r"did you mean 'blocks\.2\.hook_resid_pre'\?") as info:
        parse(name)
    _one_line(info.value)
    assert parse(HOOK, 4) == (2, "hook_resid_pre")


@pytest.mark.parametrize("name", LOOKALIKES)
def test_an_sae_on_a_lookalike_hook_is_refused_or_really_applied(demo, demo_sae, name):
    """Before: the SAE was accepted and its Ablate/Steer never ran (logits equal to the clean run)."""
    text = "one two three four one two three"
    clean = demo.run(text).logits
    try:
        sae = rw.SAE(demo_sae.W_enc, demo_sae.b_enc, demo_sae.W_dec, demo_sae.b_dec,
                     architecture="topk", k=demo_sae.k, hook=name)  # fmt: skip
    except ValueError as error:
        assert "did you mean 'blocks.2.hook_resid_pre'" in _one_line(error)
        return
    steered = demo.run(text, [rw.Steer(sae=sae, feature=3, scale=50.0), rw.Ablate(sae=sae, feature=5)])
    assert not torch.equal(steered.logits, clean), f"{name!r}: the SAE's interventions were silently not applied"


@pytest.mark.parametrize("name", LOOKALIKES[:3])
def test_every_entry_point_takes_hook_names_through_one_check(demo, demo_sae, tmp_path, name):
    demo_sae.save(tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    cfg["metadata"]["hook_name"] = name
    (tmp_path / "sae" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(FileFormatError, match=r"cfg\.json: hook_name: .*did you mean"):
        rw.SAE.load(tmp_path / "sae")
    with pytest.raises(ValueError, match="did you mean"):
        rw.SAE.load(tmp_path / "sae", hook=name)
    with pytest.raises(ValueError, match="did you mean"):
        rw.Patch(name, source=[1, 2, 3])
    with pytest.raises(HookNameError, match="did you mean"):
        demo.run("one two", capture=[name])
    with pytest.raises(HookNameError, match="did you mean"):
        demo.run("one two")[name]
    with pytest.raises(HookNameError, match="did you mean"):
        rw.train_sae(demo, name, ["one two three"], steps=1)


def test_probe_hooks_are_checked_names():
    assert hook_for("resid_post", 2) == "blocks.2.hook_resid_post"
    assert hook_for("mlp.hook_post", np.int64(1)) == "blocks.1.mlp.hook_post"
    for layer in (2.0, True, "02", "\u0662"):
        with pytest.raises(HookNameError):
            hook_for("resid_post", layer)


# -- 2. repwidget notebooks DIR --------------------------------------------------------------------


def _repwidget(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repwidget", *args], capture_output=True, text=True, cwd=cwd)


def test_notebooks_never_write_through_a_link(tmp_path):
    folder, outside = tmp_path / "nb", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "quickstart.ipynb").symlink_to(outside / "planted.ipynb")  # dangling
    (outside / "existing.ipynb").write_text("theirs")
    (folder / "01_attention_and_induction.ipynb").symlink_to(outside / "existing.ipynb")
    out = _repwidget("notebooks", str(folder))
    assert out.returncode == 0, out.stderr
    assert not (outside / "planted.ipynb").exists(), "a notebook was written outside the folder"
    assert (outside / "existing.ipynb").read_text() == "theirs"
    assert (folder / "quickstart.ipynb").is_symlink() and "skipped" in out.stdout and "symbolic link" in out.stdout
    assert (folder / "04_sae_features.ipynb").is_file() and not (folder / "04_sae_features.ipynb").is_symlink()


def test_notebooks_never_overwrite_a_file_that_appears_after_the_check(tmp_path, monkeypatch, capsys):
    """The exists-then-copy race: here the check always says "absent", as it would just before a file appears."""
    from repwidget import cli

    folder = tmp_path / "nb"
    folder.mkdir()
    (folder / "quickstart.ipynb").write_text("mine")
    monkeypatch.setattr(Path, "exists", lambda self: False)
    assert cli.main(["notebooks", str(folder)]) == 0
    assert (folder / "quickstart.ipynb").read_text() == "mine"
    assert "kept" in capsys.readouterr().out


def test_notebooks_folder_problems_are_one_line(tmp_path):
    (tmp_path / "a_file").write_text("x")
    for folder in ("a_file", "a_file/below"):
        out = _repwidget("notebooks", folder, cwd=tmp_path)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "a_file" in out.stderr


# -- 3. the SAE loader's cache ---------------------------------------------------------------------


def _small_sae(seed: int = 0, d_in: int = 128, d_sae: int = 64) -> rw.SAE:
    g = torch.Generator().manual_seed(seed)
    return rw.SAE(torch.randn(d_in, d_sae, generator=g), torch.zeros(d_sae), torch.randn(d_sae, d_in, generator=g),
                  torch.zeros(d_in), architecture="topk", k=8, hook=HOOK)  # fmt: skip


def test_a_loaded_sae_is_freed_when_deleted(tmp_path):
    _small_sae().save(tmp_path)
    sae = rw.SAE.load(tmp_path)
    assert rw.SAE.load(tmp_path) is sae  # unchanged files, still alive: the same SAE
    ref = weakref.ref(sae)
    del sae
    gc.collect()
    assert ref() is None, "the loader's cache kept a deleted SAE alive"


def test_an_edited_cfg_is_seen_when_loading_again(tmp_path):
    _small_sae().save(tmp_path)
    first = rw.SAE.load(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    cfg["k"], cfg["apply_b_dec_to_input"] = 4, False
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    again = rw.SAE.load(tmp_path)
    assert (again.k, again.apply_b_dec_to_input) == (4, False) and (first.k, first.apply_b_dec_to_input) == (8, True)


# -- 4. SAE.load and Probes.load validate their files ----------------------------------------------


def _edit_cfg(path: Path, **changes) -> None:
    cfg = json.loads((path / "cfg.json").read_text())
    cfg.update(changes)
    (path / "cfg.json").write_text(json.dumps(cfg))


def _edit_weights(path: Path, name: str, value: torch.Tensor) -> None:
    weights = load_file(path / "sae_weights.safetensors")
    weights[name] = value
    save_file(weights, path / "sae_weights.safetensors")


SAE_DAMAGE = {
    "apply_b_dec_to_input as the string 'false'": (
        lambda p: _edit_cfg(p, apply_b_dec_to_input="false"),
        r"cfg\.json: apply_b_dec_to_input must be true or false",
    ),
    "rescale flag as a string": (
        lambda p: _edit_cfg(p, rescale_acts_by_decoder_norm="no"),
        r"cfg\.json: rescale_acts_by_decoder_norm must be",
    ),
    "k as a string": (lambda p: _edit_cfg(p, k="8"), r"cfg\.json: k must be a positive integer"),
    "k beyond d_sae": (lambda p: _edit_cfg(p, k=1000), r"cfg\.json: k is 1000, more than the 64 features"),
    "unknown architecture": (lambda p: _edit_cfg(p, architecture="gated"), r"cfg\.json: architecture 'gated'"),
    "metadata not an object": (lambda p: _edit_cfg(p, metadata=[1]), r"cfg\.json: metadata must be an object"),
    "d_in disagreeing": (lambda p: _edit_cfg(p, d_in=7), r"cfg\.json: d_in is 7 but the weights have 128"),
    "cfg not JSON": (lambda p: (p / "cfg.json").write_text("{nope"), r"cfg\.json is not valid JSON"),
    "NaN in W_enc": (
        lambda p: _edit_weights(p, "W_enc", torch.full((128, 64), math.nan)),
        r"safetensors: tensor W_enc holds NaN",
    ),
    "inf in b_dec": (
        lambda p: _edit_weights(p, "b_dec", torch.full((128,), math.inf)),
        r"safetensors: tensor b_dec holds NaN",
    ),
    "integer weights": (
        lambda p: _edit_weights(p, "W_dec", torch.ones(64, 128, dtype=torch.int32)),
        r"W_dec must be floating point",
    ),
    "wrong shape": (lambda p: _edit_weights(p, "b_enc", torch.zeros(63)), r"b_enc has shape \(63,\), expected 64"),
    "3-d W_enc": (lambda p: _edit_weights(p, "W_enc", torch.zeros(2, 2, 2)), r"tensor W_enc has shape \(2, 2, 2\)"),
    "corrupt safetensors": (
        lambda p: (p / "sae_weights.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}"),
        r"sae_weights\.safetensors is not a readable safetensors file",
    ),
}


@pytest.mark.parametrize("damage", list(SAE_DAMAGE))
def test_sae_load_refuses_a_damaged_file_naming_file_and_field(tmp_path, damage):
    _small_sae().save(tmp_path)
    rw.SAE.load(tmp_path)  # intact, it loads
    spoil, message = SAE_DAMAGE[damage]
    spoil(tmp_path)
    with pytest.raises(ValueError, match=message) as info:
        rw.SAE.load(tmp_path)
    assert str(tmp_path) in _one_line(info.value)


@pytest.fixture(scope="module")
def probe_dirs(tmp_path_factory):
    """Probes of two kinds fitted on random activations (no model needed), saved."""
    g = torch.Generator().manual_seed(0)
    acts, y = torch.randn(40, 2, 16, generator=g), torch.arange(40) % 2
    dirs = {}
    for kind in ("logistic", "sparse"):
        probes = rw.probes.fit_probes(acts, y, ["neg", "pos"], [0, 1], kind=kind, k=4)
        dirs[kind] = probes.save(tmp_path_factory.mktemp(kind))
    return dirs


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("probes.json", "probes.safetensors"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _edit_meta(path: Path, **changes) -> None:
    meta = json.loads((path / "probes.json").read_text())
    meta.update(changes)
    (path / "probes.json").write_text(json.dumps(meta))


def _edit_probe_tensor(path: Path, name: str, fn) -> None:
    tensors = load_file(path / "probes.safetensors")
    tensors[name] = fn(tensors[name])
    save_file(tensors, path / "probes.safetensors")


PROBE_DAMAGE = {
    "unknown kind": ("logistic", lambda p: _edit_meta(p, kind="svm"), r"probes\.json: kind must be one of"),
    "unknown site": ("logistic", lambda p: _edit_meta(p, site="resid_mid"), r"probes\.json: site must be one of"),
    "layers a string": ("logistic", lambda p: _edit_meta(p, layers="0,1"), r"probes\.json: layers must be a list"),
    "negative layer": ("logistic", lambda p: _edit_meta(p, layers=[0, -1]), r"layers must be a non-empty list"),
    "one class": ("logistic", lambda p: _edit_meta(p, classes=["pos"]), r"classes must be two or more distinct"),
    "accuracy NaN": ("logistic", lambda p: _edit_meta(p, accuracy=[0.5, math.nan]), r"accuracy\[1\] must be a number"),
    "accuracy too short": ("logistic", lambda p: _edit_meta(p, accuracy=[0.5]), r"accuracy has 1 values for 2 layers"),
    "baseline a string": ("logistic", lambda p: _edit_meta(p, baseline="0.5"), r"baseline must be a number"),
    "d_model missing": ("logistic", lambda p: _edit_meta(p, d_model=None), r"d_model must be a positive integer"),
    "d_model disagreeing": ("logistic", lambda p: _edit_meta(p, d_model=32), r"tensor 0\.weights has shape \(17, 2\)"),
    "position a float": ("logistic", lambda p: _edit_meta(p, position=1.5), r"position must be an integer"),
    "json not an object": ("logistic", lambda p: (p / "probes.json").write_text("[]"), r"must hold a JSON object"),
    "NaN weight": (
        "logistic",
        lambda p: _edit_probe_tensor(p, "1.weights", lambda t: t * math.nan),
        r"1\.weights holds NaN",
    ),
    "zero std": ("logistic", lambda p: _edit_probe_tensor(p, "0.std", torch.zeros_like), r"0\.std must be positive"),
    "integer mean": (
        "logistic",
        lambda p: _edit_probe_tensor(p, "0.mean", lambda t: t.long()),
        r"0\.mean must be floating point",
    ),
    "missing tensor": (
        "logistic",
        lambda p: save_file({"x": torch.zeros(1)}, p / "probes.safetensors"),
        r"0\.weights is missing",
    ),
    "neuron out of range": (
        "sparse",
        lambda p: _edit_probe_tensor(p, "0.neurons", lambda t: t + 100),
        r"neuron indices in 0\.\.15",
    ),
    "corrupt safetensors": (
        "logistic",
        lambda p: (p / "probes.safetensors").write_bytes(b"garbage!"),
        r"not a readable safetensors file",
    ),
}


@pytest.mark.parametrize("damage", list(PROBE_DAMAGE))
def test_probes_load_refuses_a_damaged_file_naming_file_and_field(probe_dirs, tmp_path, damage):
    kind, spoil, message = PROBE_DAMAGE[damage]
    path = _copy(probe_dirs[kind], tmp_path / "p")
    rw.Probes.load(path)  # intact, it loads
    spoil(path)
    with pytest.raises(ValueError, match=message) as info:
        rw.Probes.load(path)
    assert str(path) in _one_line(info.value)


# -- 5. pickles and meta models: one line ----------------------------------------------------------


class _Planted:
    """Unpickling this writes a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


def _tiny_gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    return T.GPT2LMHeadModel(T.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=32)).eval()


def _pickle_only_dir(path: Path, state: object) -> Path:
    _tiny_gpt2().config.save_pretrained(path)
    torch.save(state, path / "pytorch_model.bin")
    assert not list(path.glob("*.safetensors"))
    return path


def test_a_pickled_state_dict_loads_with_the_safe_unpickler(tmp_path):
    hf = _tiny_gpt2()
    model = rw.load(_pickle_only_dir(tmp_path, hf.state_dict()))
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(model.run(ids[0]).logits, hf(ids).logits[0], atol=1e-5, rtol=0)


def test_a_pickle_that_would_run_code_is_refused_in_one_line(tmp_path, demo):
    marker = tmp_path / "ran.txt"
    path = _pickle_only_dir(tmp_path / "model", {"transformer.wte.weight": _Planted(str(marker))})
    with pytest.raises(rw.ModelLoadError, match=r"pickled checkpoint .* never unpickles objects") as info:
        rw.load(path)
    assert "safetensors" in _one_line(info.value) and not marker.exists()
    out = _repwidget("info", str(path))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "never unpickles" in out.stderr
    assert len([line for line in out.stderr.splitlines() if line.startswith("repwidget:")]) == 1
    assert not marker.exists()


def test_a_truncated_pickle_is_one_line(tmp_path):
    path = _pickle_only_dir(tmp_path, _tiny_gpt2().state_dict())
    data = (path / "pytorch_model.bin").read_bytes()
    (path / "pytorch_model.bin").write_bytes(data[:3000])  # the zip directory at the end is lost
    with pytest.raises(rw.ModelLoadError, match="truncated or corrupt") as info:
        rw.load(path)
    _one_line(info.value)


def test_a_model_on_the_meta_device_is_refused(tmp_path):
    with torch.device("meta"):
        hf = T.GPT2LMHeadModel(T.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=32))
    for attempt in (lambda: rw.load(hf), lambda: rw.Model(hf), lambda: rw.load(hf, device="cpu")):
        with pytest.raises(rw.ModelLoadError, match=r"meta device .* Load real weights") as info:
            attempt()
        _one_line(info.value)


# -- 7. texts are checked before any work ----------------------------------------------------------


@pytest.fixture
def counted(demo, monkeypatch):
    """The demo model, counting forward passes (model.capture and model.run)."""
    calls = []
    for name in ("capture", "run"):
        original = getattr(demo, name)
        monkeypatch.setattr(demo, name, lambda *a, _o=original, **k: calls.append(1) or _o(*a, **k))
    return demo, calls


BAD_LAST = [("", "empty"), (None, "give a text"), ("one " * 100, "at most 64")]


@pytest.mark.parametrize(("bad", "message"), BAD_LAST)
def test_a_bad_last_text_fails_before_any_pass_and_is_named(counted, demo_sae, bad, message):
    model, calls = counted
    texts = ["one two three four five"] * 6 + [bad]
    labelled = [("the food was good", "pos"), ("the food was bad", "neg")] * 4 + [(bad, "pos")]
    jobs = {
        "train_sae": lambda: rw.train_sae(model, HOOK, texts, d_sae=16, k=2, steps=1),
        "feature_dashboard": lambda: rw.feature_dashboard(model, demo_sae, 3, texts),
        "train_probes": lambda: rw.train_probes(model, labelled),
        "read_activations": lambda: rw.probes.read_activations(model, texts, [0, 1], "resid_post"),
    }
    for job, call in jobs.items():
        with pytest.raises((TypeError, ValueError), match=rf"^text {len(texts) - 1 if job != 'train_probes' else 8} "):
            call()
        with pytest.raises((TypeError, ValueError), match=message):
            call()
        assert calls == [], f"{job} ran {len(calls)} passes before finding the bad text"


def test_a_position_outside_a_text_is_found_before_any_pass(counted):
    model, calls = counted
    with pytest.raises(ValueError, match=r"^text 2 \('one'\): position 5 is outside its 2 tokens"):
        rw.probes.read_activations(model, ["one two three four five six", "one two three four five", "one"], [0],
                                   "resid_post", position=5)  # fmt: skip
    assert calls == []


def test_one_string_instead_of_a_list_is_refused(demo):
    with pytest.raises(TypeError, match=r"got a single str: pass \['one two three'\]"):
        rw.train_sae(demo, HOOK, "one two three", steps=1)


# -- 8. options ------------------------------------------------------------------------------------


@pytest.fixture
def options():
    """rw.options, restored afterwards even where a check is missing and a bad value got in."""
    before = dict(vars(rw.options))
    yield rw.options
    for key in set(vars(rw.options)) - set(before):
        object.__delattr__(rw.options, key)
    for key, value in before.items():
        object.__setattr__(rw.options, key, value)


@pytest.mark.parametrize(
    ("value", "error"),
    [("4GB", TypeError), (math.nan, TypeError), (1e9, TypeError), (True, TypeError), (None, TypeError),
     (0, ValueError), (-1, ValueError)],
)  # fmt: skip
def test_max_capture_bytes_is_checked_when_set(options, value, error):
    before = options.max_capture_bytes
    with pytest.raises(error, match="max_capture_bytes must be a positive int"):
        options.max_capture_bytes = value
    assert options.max_capture_bytes == before


def test_options_take_ints_and_refuse_misspelt_names(options):
    options.max_capture_bytes = np.int64(1 << 20)
    assert options.max_capture_bytes == 1 << 20 and type(options.max_capture_bytes) is int
    with pytest.raises(AttributeError, match="no option 'max_capture_byte'"):
        options.max_capture_byte = 1
