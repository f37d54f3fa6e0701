"""Transcoders on disk: circuit-tracer 0.5's layouts and SAELens's, every field and tensor checked on load.

- circuit-tracer transcoder set: a directory of ``layer_{i}.safetensors`` (``W_enc``, ``W_dec`` ``[d_tc, d_model]``,
  ``b_enc``, ``b_dec``, optional ``activation_function.threshold`` (JumpReLU, else ReLU) and ``W_skip``) and a
  ``config.yaml`` (``model_kind: transcoder_set``, ``feature_input_hook``, ``feature_output_hook``, ``scan``; a
  ``transcoders`` list of per-layer files, if present, is followed). What circuit-tracer cannot say (TopK's ``k``,
  repwidget's metadata) is kept under a ``repwidget`` key, which circuit-tracer ignores: a TopK set loads there as
  ReLU, so save JumpReLU or ReLU sets for circuit-tracer.
- circuit-tracer cross-layer transcoder: ``W_enc_{l}.safetensors`` (``W_enc_{l}``, ``b_enc_{l}``, ``b_dec_{l}``,
  optional ``threshold_{l}``) and ``W_dec_{l}.safetensors`` (``W_dec_{l}`` ``[d_tc, n_layers - l, d_model]``).
- SAELens: ``layer_{i}/cfg.json`` + ``sae_weights.safetensors`` per layer, SAELens's transcoder architectures
  (``transcoder``, ``skip_transcoder``, ``jumprelu_transcoder``, ``jumprelu_skip_transcoder``; TopK as
  ``topk_transcoder``, which only repwidget reads), ``W_enc`` ``[d_in, d_sae]``, ``W_dec`` ``[d_sae, d_out]``, the
  hooks as ``metadata.hook_name`` and ``hook_name_out``.

Hook names in files are circuit-tracer's (TransformerLens's) or repwidget's; :data:`HOOKS` maps them, one table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from ..file_checks import FileFormatError, json_field, read_json, read_tensors, tensor_field
from ..hook_names import parse
from .cross_layer import CrossLayerTranscoder
from .model import Transcoder, TranscoderSet

FORMATS = ("circuit-tracer", "saelens")
CONFIG, SAE_CONFIG, SAE_WEIGHTS = "config.yaml", "cfg.json", "sae_weights.safetensors"
#: circuit-tracer's (TransformerLens's) hook templates -> repwidget's; ``mlp.hook_out`` is the MLP module's output,
#: which is ``hook_mlp_out`` wherever the block adds it unscaled (not after Gemma 2's post-feedforward norm)
HOOKS = {
    "mlp.hook_in": "mlp.hook_in",
    "ln2.hook_normalized": "mlp.hook_in",
    "mlp.hook_out": "hook_mlp_out",
    "hook_mlp_out": "hook_mlp_out",
    "hook_resid_mid": "hook_resid_mid",
}
#: repwidget's -> what circuit-tracer's configs say
TO_CIRCUIT_TRACER = {"mlp.hook_in": "mlp.hook_in", "hook_mlp_out": "mlp.hook_out", "hook_resid_mid": "hook_resid_mid"}
_SAELENS = {("relu", False): "transcoder", ("relu", True): "skip_transcoder", ("jumprelu", False):
            "jumprelu_transcoder", ("jumprelu", True): "jumprelu_skip_transcoder", ("topk", False): "topk_transcoder",
            ("topk", True): "topk_skip_transcoder"}  # fmt: skip
_LAYER_FILE = re.compile(r"layer_(0|[1-9][0-9]*)(\.safetensors)?")


def save(coder: TranscoderSet | CrossLayerTranscoder, path: str | Path, format: str = "circuit-tracer",
         dtype: torch.dtype = torch.float32) -> Path:  # fmt: skip
    """Write ``coder`` to the directory ``path`` in ``format`` (see the module's docstring), tensors as ``dtype``."""
    from safetensors.torch import save_file

    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r:.40}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cast = lambda t: t.detach().to("cpu", dtype).contiguous()  # noqa: E731
    ours = {"activation": coder.activation_name, "k": coder.k, "input_hook": coder.input_hook,
            "output_hook": coder.output_hook, "metadata": {**coder.metadata, "stats": coder.stats}}  # fmt: skip
    if isinstance(coder, CrossLayerTranscoder):
        if format != "circuit-tracer" or coder.W_skip is not None:
            raise ValueError("a cross-layer transcoder saves in circuit-tracer's layout only, without a skip")
        for layer in range(coder.n_layers):
            enc = {f"W_enc_{layer}": coder.W_enc[layer], f"b_enc_{layer}": coder.b_enc[layer],
                   f"b_dec_{layer}": coder.b_dec[layer]}  # fmt: skip
            if coder.threshold is not None:
                enc[f"threshold_{layer}"] = coder.threshold[layer]
            save_file({k: cast(v) for k, v in enc.items()}, path / f"W_enc_{layer}.safetensors")
            save_file({f"W_dec_{layer}": cast(coder.W_dec[layer])}, path / f"W_dec_{layer}.safetensors")
        _write_config(path, "cross_layer_transcoder", coder, ours)
    elif format == "circuit-tracer":
        for t in coder:
            save_file({k: cast(v) for k, v in t.tensors().items()}, path / f"layer_{t.layer}.safetensors")
        _write_config(path, "transcoder_set", coder, ours)
    else:
        for t in coder:
            _save_saelens(t, path / f"layer_{t.layer}", cast, dtype, ours["metadata"])
    coder.path = path.resolve()
    return path


def _write_config(path: Path, kind: str, coder: Any, ours: dict) -> None:
    import yaml

    config = {
        "model_kind": kind,
        "feature_input_hook": TO_CIRCUIT_TRACER.get(coder.input_hook, coder.input_hook),
        "feature_output_hook": TO_CIRCUIT_TRACER.get(coder.output_hook, coder.output_hook),
        "scan": coder.scan or f"repwidget/{path.resolve().name}",
        "repwidget": ours,
    }
    (path / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))


def _save_saelens(t: Transcoder, path: Path, cast, dtype: torch.dtype, metadata: dict) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    weights = {"W_enc": t.W_enc.T, "b_enc": t.b_enc, "W_dec": t.W_dec, "b_dec": t.b_dec}
    if t.threshold is not None:
        weights["threshold"] = t.threshold
    if t.W_skip is not None:
        weights["W_skip"] = t.W_skip
    save_file({k: cast(v) for k, v in weights.items()}, path / SAE_WEIGHTS)
    cfg = {
        "architecture": _SAELENS[(t.activation_name, t.W_skip is not None)],
        "d_in": t.d_model,
        "d_sae": t.d_tc,
        "d_out": t.d_model,
        "dtype": str(dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name_out": t.hook_out,
        "hook_layer_out": t.layer,
        "metadata": {**metadata, "hook_name": t.hook_in, "hook_layer": t.layer},
    }
    if t.k is not None:
        cfg["k"] = t.k
    (path / SAE_CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")


def load(path: str | Path) -> TranscoderSet | CrossLayerTranscoder:
    """A transcoder set or cross-layer transcoder from a directory in either format, found from its files."""
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"no transcoder directory at {path}")
    if (path / CONFIG).is_file():
        return _load_circuit_tracer(path)
    if (path / "layer_0" / SAE_CONFIG).is_file():
        return _load_saelens(path)
    held = sorted(p.name for p in path.iterdir())[:8]
    raise FileNotFoundError(
        f"{path} holds neither circuit-tracer transcoders ({CONFIG} + layer_{{i}}.safetensors) nor SAELens ones "
        f"(layer_0/{SAE_CONFIG}); it holds {held}"
    )


def _hook(value: Any, key: str, where: Path) -> str:
    if value not in HOOKS:
        raise FileFormatError(f"{where}: {key} {value!r:.60} is not a hook repwidget knows ({', '.join(HOOKS)})")
    return HOOKS[value]


def _read_yaml(where: Path) -> dict[str, Any]:
    import yaml

    try:
        config = yaml.safe_load(where.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{where} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise FileFormatError(f"{where} must hold a mapping, not {type(config).__name__}")
    return config


def _layer_files(path: Path, config: dict, where: Path) -> list[Path]:
    """Each layer's file: the config's ``transcoders`` list (local paths, relative to the directory), else
    ``layer_{i}.safetensors`` for every ``i`` from 0, none missing."""
    listed = config.get("transcoders")
    if listed is not None:
        if not isinstance(listed, list) or not listed or not all(isinstance(p, str) for p in listed):
            raise FileFormatError(f"{where}: transcoders must be a non-empty list of file paths")
        if any(p.startswith("hf://") for p in listed):
            raise FileFormatError(f"{where}: transcoders lists hf:// files; download them and list the local paths")
        files = [path / p for p in listed]
    else:
        found = sorted(int(m.group(1)) for p in path.iterdir() if (m := _LAYER_FILE.fullmatch(p.name)) and m.group(2))
        if not found:
            raise FileFormatError(f"{path} has {CONFIG} but no layer_{{i}}.safetensors files")
        missing = sorted(set(range(found[-1] + 1)) - set(found))
        if missing:
            raise FileFormatError(f"{path} has no layer_{missing[0]}.safetensors (it has layers {found}): "
                                  "a transcoder set needs every layer")  # fmt: skip
        files = [path / f"layer_{i}.safetensors" for i in found]
    for file in files:
        if not file.is_file():
            raise FileFormatError(f"{where}: {file} does not exist")
    return files


def _ours(config: dict, where: Path) -> dict[str, Any]:
    ours = json_field(config, "repwidget", "dict", where, {})
    checked = {"activation": json_field(ours, "activation", "str", where, None),
               "k": json_field(ours, "k", "+int", where, None),
               "metadata": json_field(ours, "metadata", "dict", where, {})}  # fmt: skip
    if checked["activation"] not in (None, "relu", "jumprelu", "topk"):
        raise FileFormatError(f"{where}: repwidget.activation must be relu, jumprelu or topk")
    if (checked["activation"] == "topk") != (checked["k"] is not None):
        raise FileFormatError(f"{where}: repwidget.k is given exactly when repwidget.activation is topk")
    return checked


def _load_circuit_tracer(path: Path) -> TranscoderSet | CrossLayerTranscoder:
    where = path / CONFIG
    config = _read_yaml(where)
    kind = json_field(config, "model_kind", "str", where)
    hooks = {"input_hook": _hook(config.get("feature_input_hook"), "feature_input_hook", where),
             "output_hook": _hook(config.get("feature_output_hook"), "feature_output_hook", where)}  # fmt: skip
    scan = config.get("scan")
    scan = scan if isinstance(scan, str) else None
    ours = _ours(config, where)
    if kind == "cross_layer_transcoder":
        return _load_clt(path, hooks, scan, ours)
    if kind != "transcoder_set":
        raise FileFormatError(f"{where}: model_kind must be transcoder_set or cross_layer_transcoder, got {kind!r:.40}")
    transcoders = []
    for layer, file in enumerate(_layer_files(path, config, where)):
        weights = read_tensors(file)
        known = {"W_enc", "W_dec", "b_enc", "b_dec", "activation_function.threshold", "W_skip"}
        if set(weights) - known:
            raise FileFormatError(f"{file}: unexpected tensors {sorted(set(weights) - known)} (known: {sorted(known)})")
        w_enc = tensor_field(weights, "W_enc", file, (None, None))
        d_tc, d_model = w_enc.shape
        first = transcoders[0] if transcoders else None
        if first is not None and (d_tc, d_model) != (first.d_tc, first.d_model):
            raise FileFormatError(f"{file}: W_enc is {d_tc}x{d_model} but layer 0's is {first.d_tc}x{first.d_model}")
        threshold = weights.get("activation_function.threshold")
        if threshold is not None and ours["k"] is not None:
            raise FileFormatError(f"{file}: a threshold in a set the config calls topk")
        if threshold is not None:
            threshold = tensor_field(weights, "activation_function.threshold", file, (d_tc,))
        skip = tensor_field(weights, "W_skip", file, (d_model, d_model)) if "W_skip" in weights else None
        b_enc, b_dec = tensor_field(weights, "b_enc", file, (d_tc,)), tensor_field(weights, "b_dec", file, (d_model,))
        w_dec = tensor_field(weights, "W_dec", file, (d_tc, d_model))
        transcoders.append(
            Transcoder(layer, w_enc, b_enc, w_dec, b_dec, threshold=threshold, W_skip=skip, k=ours["k"], **hooks)
        )
    try:
        return TranscoderSet(transcoders, scan=scan, metadata=ours["metadata"], path=path)
    except ValueError as e:
        raise FileFormatError(f"{path}: {e}") from None


def _load_clt(path: Path, hooks: dict, scan: str | None, ours: dict) -> CrossLayerTranscoder:
    n = 0
    while (path / f"W_enc_{n}.safetensors").is_file():
        n += 1
    if n == 0:
        raise FileFormatError(f"{path} is a cross-layer transcoder with no W_enc_0.safetensors")
    parts: dict[str, list] = {"W_enc": [], "b_enc": [], "b_dec": [], "threshold": [], "W_dec": []}
    for layer in range(n):
        file = path / f"W_enc_{layer}.safetensors"
        enc = read_tensors(file)
        w = tensor_field(enc, f"W_enc_{layer}", file, (None, None) if layer == 0 else tuple(parts["W_enc"][0].shape))
        d_tc, d_model = w.shape
        parts["W_enc"].append(w)
        parts["b_enc"].append(tensor_field(enc, f"b_enc_{layer}", file, (d_tc,)))
        parts["b_dec"].append(tensor_field(enc, f"b_dec_{layer}", file, (d_model,)))
        if f"threshold_{layer}" in enc:
            parts["threshold"].append(tensor_field(enc, f"threshold_{layer}", file, (d_tc,)))
        dec_file = path / f"W_dec_{layer}.safetensors"
        if not dec_file.is_file():
            raise FileFormatError(f"{path} has W_enc_{layer}.safetensors but no W_dec_{layer}.safetensors")
        shape = (d_tc, n - layer, d_model)
        parts["W_dec"].append(tensor_field(read_tensors(dec_file), f"W_dec_{layer}", dec_file, shape))
    if parts["threshold"] and len(parts["threshold"]) != n:
        raise FileFormatError(f"{path}: some layers have a threshold and some do not")
    threshold = torch.stack([t.float() for t in parts["threshold"]]) if parts["threshold"] else None
    return CrossLayerTranscoder(
        torch.stack([t.float() for t in parts["W_enc"]]), torch.stack([t.float() for t in parts["b_enc"]]),
        parts["W_dec"], torch.stack([t.float() for t in parts["b_dec"]]), threshold=threshold, k=ours["k"],
        scan=scan, metadata=ours["metadata"], path=path, **hooks)  # fmt: skip


def _load_saelens(path: Path) -> TranscoderSet:
    by_name = {v: k for k, v in _SAELENS.items()}
    layers = sorted(int(m.group(1)) for p in path.iterdir() if (m := _LAYER_FILE.fullmatch(p.name)) and p.is_dir())
    missing = sorted(set(range(layers[-1] + 1)) - set(layers))
    if missing:
        raise FileFormatError(f"{path} has no layer_{missing[0]}/ (it has layers {layers}): a set needs every layer")
    transcoders, metadata = [], {}
    for layer in layers:
        where, file = path / f"layer_{layer}" / SAE_CONFIG, path / f"layer_{layer}" / SAE_WEIGHTS
        cfg = read_json(where)
        architecture = json_field(cfg, "architecture", "str", where)
        if architecture not in by_name:
            raise FileFormatError(f"{where}: architecture {architecture!r:.40} is not one of {', '.join(by_name)}")
        activation, skip = by_name[architecture]
        metadata = json_field(cfg, "metadata", "dict", where, {})
        hook_in = json_field(metadata, "hook_name", "str", where)
        hook_out = json_field(cfg, "hook_name_out", "str", where)
        (in_layer, in_template), (out_layer, out_template) = (_parse(h, where) for h in (hook_in, hook_out))
        if in_layer != layer or out_layer != layer:
            raise FileFormatError(f"{where}: hooks {hook_in} and {hook_out} are not of layer {layer}")
        weights = read_tensors(file)
        w_enc = tensor_field(weights, "W_enc", file, (None, None))
        d_model, d_tc = w_enc.shape
        for key, value in (("d_in", d_model), ("d_sae", d_tc), ("d_out", d_model)):
            declared = json_field(cfg, key, "+int", where, value)
            if declared != value:
                raise FileFormatError(f"{where}: {key} is {declared} but the weights have {value} ({file.name})")
        b_enc, b_dec = tensor_field(weights, "b_enc", file, (d_tc,)), tensor_field(weights, "b_dec", file, (d_model,))
        transcoders.append(
            Transcoder(
                layer,
                w_enc.T,
                b_enc,
                tensor_field(weights, "W_dec", file, (d_tc, d_model)),
                b_dec,
                threshold=tensor_field(weights, "threshold", file, (d_tc,)) if activation == "jumprelu" else None,
                k=json_field(cfg, "k", "+int", where) if activation == "topk" else None,
                W_skip=tensor_field(weights, "W_skip", file, (d_model, d_model)) if skip else None,
                input_hook=in_template,
                output_hook=out_template,
            )
        )
    metadata = {k: v for k, v in metadata.items() if k not in ("hook_name", "hook_layer")}
    try:
        return TranscoderSet(transcoders, metadata=metadata, path=path)
    except ValueError as e:
        raise FileFormatError(f"{path}: {e}") from None


def _parse(hook: str, where: Path) -> tuple[int, str]:
    try:
        return parse(hook)
    except KeyError as e:
        raise FileFormatError(f"{where}: {e}") from None
