"""Transcoders: the contract (maths against plain torch written out here), files in circuit-tracer's and SAELens's
formats (round trips, a circuit-tracer directory written by hand, bad files), training and quality."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import repwidget as rw

D, F, N = 8, 16, 3  # d_model, features, layers


def _weights(seed: int, layer: int = 0, **extra) -> rw.Transcoder:
    g = torch.Generator().manual_seed(seed)
    return rw.Transcoder(layer, torch.randn(F, D, generator=g), torch.randn(F, generator=g) * 0.5,
                         torch.randn(F, D, generator=g), torch.randn(D, generator=g), **extra)  # fmt: skip


def test_transcoder_maths_equals_the_formulas() -> None:
    x = torch.randn(5, D, generator=torch.Generator().manual_seed(9))
    relu = _weights(0)
    pre = x @ relu.W_enc.T + relu.b_enc
    torch.testing.assert_close(relu.pre(x), pre)
    torch.testing.assert_close(relu(x), torch.relu(pre) @ relu.W_dec + relu.b_dec)

    threshold = torch.rand(F, generator=torch.Generator().manual_seed(1))
    jump = _weights(0, threshold=threshold)
    torch.testing.assert_close(jump.encode(x), pre * (pre > threshold))

    topk = _weights(0, k=3)
    acts = topk.encode(x)
    for row, p in zip(acts, pre, strict=True):  # a brute-force top-3 of the positive pre-activations
        keep = sorted(range(F), key=lambda i: -p[i].item())[:3]
        expected = torch.zeros(F)
        expected[keep] = p[keep].clamp_min(0)
        torch.testing.assert_close(row, expected)

    skip = torch.randn(D, D, generator=torch.Generator().manual_seed(2))
    skipped = _weights(0, W_skip=skip)
    torch.testing.assert_close(skipped(x), torch.relu(pre) @ skipped.W_dec + skipped.b_dec + x @ skip.T)
    torch.testing.assert_close(skipped.decode(relu.encode(x)), relu(x))  # no x: no skip


def test_transcoder_set_and_cross_layer_transcoder() -> None:
    ts = rw.TranscoderSet([_weights(i, layer=i) for i in range(N)])
    assert len(ts) == N and [t.layer for t in ts] == list(range(N)) and ts[2].layer == 2
    assert ts[1].hook_in == "blocks.1.mlp.hook_in" and ts[1].hook_out == "blocks.1.hook_mlp_out"
    with pytest.raises(ValueError, match=r"every layer 0\.\.n-1"):
        rw.TranscoderSet([_weights(0, layer=0), _weights(1, layer=2)])

    g = torch.Generator().manual_seed(4)
    w_enc, b_enc = torch.randn(N, F, D, generator=g), torch.randn(N, F, generator=g)
    w_dec = [torch.randn(F, N - layer, D, generator=g) for layer in range(N)]
    b_dec = torch.randn(N, D, generator=g)
    clt = rw.CrossLayerTranscoder(w_enc, b_enc, w_dec, b_dec)
    xs = [torch.randn(4, D, generator=g) for _ in range(N)]
    acts = [torch.relu(xs[s] @ w_enc[s].T + b_enc[s]) for s in range(N)]
    for target in range(N):  # each layer's output: every earlier layer's features through its decoder to it
        expected = b_dec[target] + sum(acts[s] @ w_dec[s][:, target - s] for s in range(target + 1))
        torch.testing.assert_close(clt.decode_to(target, acts), expected)
        torch.testing.assert_close(clt(xs)[target], expected)


def test_the_contract_refuses_bad_weights_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"b_dec has shape \(7,\), expected \(8,\)"):
        rw.Transcoder(0, torch.zeros(F, D), torch.zeros(F), torch.zeros(F, D), torch.zeros(7))
    with pytest.raises(ValueError, match=r"k \(TopK\) or a threshold"):
        _weights(0, k=2, threshold=torch.zeros(F))
    with pytest.raises(ValueError, match="input_hook must be one of"):
        _weights(0, input_hook="mlp.hook_inn")


def test_check_fits_the_demo_model(demo) -> None:
    ts = rw.TranscoderSet([rw.Transcoder(i, torch.zeros(4, 128), torch.zeros(4), torch.zeros(4, 128),
                                         torch.zeros(128)) for i in range(4)])  # fmt: skip
    ts.check_fits(demo)
    with pytest.raises(ValueError, match="has 3 layers but the model has 4"):
        rw.TranscoderSet(list(ts)[:3]).check_fits(demo)
    narrow = rw.TranscoderSet([_weights(i, layer=i) for i in range(4)])
    with pytest.raises(ValueError, match="reads width 8 but the model's d_model is 128"):
        narrow.check_fits(demo)


def _set(**extra) -> rw.TranscoderSet:
    return rw.TranscoderSet([_weights(10 + i, layer=i, **extra) for i in range(N)])


def _same(a, b, atol: float = 0.0) -> None:
    x = torch.randn(6, D, generator=torch.Generator().manual_seed(5))
    assert type(a) is type(b) and len(a) == len(b)
    for ta, tb in zip(a, b, strict=True):
        assert (ta.layer, ta.k, ta.input_hook, ta.output_hook) == (tb.layer, tb.k, tb.input_hook, tb.output_hook)
        assert tb.dtype == torch.float32
        torch.testing.assert_close(tb(x), ta(x), atol=atol, rtol=atol)


@pytest.mark.parametrize("fmt", ["circuit-tracer", "saelens"])
def test_round_trips(tmp_path, fmt: str) -> None:
    skip = {"W_skip": torch.randn(D, D, generator=torch.Generator().manual_seed(3))}
    for name, ts in {"relu_skip": _set(**skip), "jumprelu": _set(threshold=torch.full((F,), 0.3)),
                     "topk": _set(k=4)}.items():  # fmt: skip
        ts.stats = {"explained_variance": [0.5, 0.6, 0.7]}
        loaded = rw.TranscoderSet.load(ts.save(tmp_path / fmt / name, format=fmt))
        _same(ts, loaded)
        assert loaded.stats == ts.stats and loaded.path == (tmp_path / fmt / name).resolve()
    half = rw.TranscoderSet.load(_set().save(tmp_path / fmt / "half", format=fmt, dtype=torch.float16))
    _same(_set(), half, atol=2e-2)  # float16 files load as float32


def test_a_circuit_tracer_directory_written_by_hand_loads(tmp_path) -> None:
    """The layout circuit-tracer 0.5 reads (``load_relu_transcoder``: per-layer safetensors, JumpReLU when a
    threshold is present; its config names TransformerLens hooks), written with safetensors directly."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(7)
    raw = []
    for layer in range(N):
        tensors = {"W_enc": torch.randn(F, D, generator=g), "W_dec": torch.randn(F, D, generator=g),
                   "b_enc": torch.randn(F, generator=g), "b_dec": torch.randn(D, generator=g),
                   "activation_function.threshold": torch.rand(F, generator=g)}  # fmt: skip
        save_file({k: v.to(torch.bfloat16) for k, v in tensors.items()}, tmp_path / f"layer_{layer}.safetensors")
        raw.append({k: v.to(torch.bfloat16).float() for k, v in tensors.items()})
    config = "model_kind: transcoder_set\nfeature_input_hook: mlp.hook_in\nfeature_output_hook: mlp.hook_out\n"
    (tmp_path / "config.yaml").write_text(config + "scan: hand/test\n")
    ts = rw.TranscoderSet.load(tmp_path)
    assert ts.scan == "hand/test" and ts.input_hook == "mlp.hook_in" and ts.output_hook == "hook_mlp_out"
    x = torch.randn(4, D, generator=g)
    for t, w in zip(ts, raw, strict=True):  # circuit-tracer's JumpReLU: pre * (pre > threshold)
        pre = x @ w["W_enc"].T + w["b_enc"]
        torch.testing.assert_close(t(x), (pre * (pre > w["activation_function.threshold"])) @ w["W_dec"] + w["b_dec"])
    listed = [f"layer_{i}.safetensors" for i in reversed(range(N))]  # a `transcoders` list is followed, in order
    (tmp_path / "config.yaml").write_text(config + "scan: x\ntranscoders: [" + ", ".join(listed) + "]\n")
    swapped = rw.TranscoderSet.load(tmp_path)
    torch.testing.assert_close(swapped[0].W_enc, raw[N - 1]["W_enc"])


def test_cross_layer_transcoder_files(tmp_path) -> None:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(8)
    for layer in range(N):  # circuit-tracer's CLT layout, by hand
        enc = {f"W_enc_{layer}": torch.randn(F, D, generator=g), f"b_enc_{layer}": torch.randn(F, generator=g)}
        enc.update({f"b_dec_{layer}": torch.randn(D, generator=g), f"threshold_{layer}": torch.rand(F, generator=g)})
        save_file(enc, tmp_path / f"W_enc_{layer}.safetensors")
        save_file(
            {f"W_dec_{layer}": torch.randn(F, N - layer, D, generator=g)}, tmp_path / f"W_dec_{layer}.safetensors"
        )
    text = "model_kind: cross_layer_transcoder\nfeature_input_hook: mlp.hook_in\nfeature_output_hook: mlp.hook_out\n"
    (tmp_path / "config.yaml").write_text(text)
    clt = rw.CrossLayerTranscoder.load(tmp_path)
    assert clt.n_layers == N and clt.threshold.shape == (N, F)
    again = rw.CrossLayerTranscoder.load(clt.save(tmp_path / "again"))
    xs = [torch.randn(3, D, generator=g) for _ in range(N)]
    for a, b in zip(clt(xs), again(xs), strict=True):
        torch.testing.assert_close(a, b)


def test_bad_files_are_one_line_errors(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    from repwidget.file_checks import FileFormatError

    def broken(name: str, change) -> Path:
        path = _set().save(tmp_path / name)
        change(path)
        return path

    missing = broken("missing", lambda p: (p / "layer_1.safetensors").unlink())
    with pytest.raises(FileFormatError, match=r"no layer_1\.safetensors .* needs every layer"):
        rw.TranscoderSet.load(missing)

    def widen(p: Path) -> None:
        tensors = load_file(p / "layer_2.safetensors")
        save_file({**tensors, "b_dec": torch.zeros(D + 1)}, p / "layer_2.safetensors")

    with pytest.raises(FileFormatError, match=r"layer_2\.safetensors: tensor b_dec has shape \(9,\), expected 8"):
        rw.TranscoderSet.load(broken("wide", widen))

    def integers(p: Path) -> None:
        tensors = load_file(p / "layer_0.safetensors")
        save_file({**tensors, "W_enc": tensors["W_enc"].to(torch.int32)}, p / "layer_0.safetensors")

    with pytest.raises(FileFormatError, match=r"tensor W_enc must be floating point, got torch\.int32"):
        rw.TranscoderSet.load(broken("dtype", integers))

    def hook(p: Path) -> None:
        (p / "config.yaml").write_text((p / "config.yaml").read_text().replace("mlp.hook_in", "blocks.hook_x"))

    with pytest.raises(FileFormatError, match=r"feature_input_hook 'blocks\.hook_x' is not a hook repwidget knows"):
        rw.TranscoderSet.load(broken("hook", hook))
    with pytest.raises(FileNotFoundError, match="neither circuit-tracer transcoders"):
        rw.TranscoderSet.load(tmp_path)


#: run in circuit-tracer's venv: its own loaders on our saved files, applied to the inputs given
THEIR_LOADERS = """
import sys, torch
from circuit_tracer.transcoder.cross_layer_transcoder import load_clt
from circuit_tracer.transcoder.single_layer_transcoder import load_transcoder_set
set_dir, clt_dir, n, inputs, out = sys.argv[1:]
cpu, hooks = torch.device("cpu"), {"feature_input_hook": "mlp.hook_in", "feature_output_hook": "mlp.hook_out"}
x, xs = torch.load(inputs)
ts = load_transcoder_set({i: f"{set_dir}/layer_{i}.safetensors" for i in range(int(n))}, scan="x", device=cpu,
                         lazy_encoder=False, lazy_decoder=False, **hooks)
clt = load_clt(clt_dir, scan="x", lazy_decoder=False, lazy_encoder=False, device=cpu, dtype=torch.float32, **hooks)
with torch.no_grad():
    torch.save({"set": [ts[i](x) for i in range(int(n))], "clt": list(clt(xs))}, out)
"""


def test_circuit_tracer_reads_our_files_the_same(tmp_path) -> None:
    """circuit-tracer's own loaders on our files give our outputs (in its venv, ``.venv-ct``: it pins transformers
    < 4.58, so it is not in the test venv; skipped locally without it, failed under CI)."""
    import subprocess

    from test_circuit_tracer_compat import venv_ct_python

    python = venv_ct_python()
    ts = _set(threshold=torch.full((F,), 0.2), W_skip=torch.randn(D, D, generator=torch.Generator().manual_seed(1)))
    g = torch.Generator().manual_seed(3)
    clt = rw.CrossLayerTranscoder(torch.randn(N, F, D, generator=g), torch.randn(N, F, generator=g),
                                  [torch.randn(F, N - s, D, generator=g) for s in range(N)],
                                  torch.randn(N, D, generator=g), threshold=torch.rand(N, F, generator=g))  # fmt: skip
    x, xs = torch.randn(5, D, generator=g), torch.randn(N, 5, D, generator=g)
    torch.save((x, xs), tmp_path / "inputs.pt")
    args = [ts.save(tmp_path / "set"), clt.save(tmp_path / "clt"), N, tmp_path / "inputs.pt", tmp_path / "out.pt"]
    done = subprocess.run([python, "-c", THEIR_LOADERS, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = torch.load(tmp_path / "out.pt")
    for layer in range(N):
        torch.testing.assert_close(theirs["set"][layer], ts[layer](x))
    for a, b in zip(theirs["clt"], clt(list(xs)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
