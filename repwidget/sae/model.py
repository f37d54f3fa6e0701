"""Sparse autoencoders in SAELens's on-disk format: ReLU ("standard"), TopK and JumpReLU."""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any

import torch

from ..file_checks import FileFormatError, json_field, read_json, read_tensors, tensor_field
from ..hook_names import HookNameError, parse

ARCHITECTURES = ("standard", "topk", "jumprelu")
WEIGHTS = "sae_weights.safetensors"
CONFIG = "cfg.json"

#: SAEs loaded from unchanged files, while something else holds them (weak: deleting the SAE frees it)
_LOADED: weakref.WeakValueDictionary[tuple, SAE] = weakref.WeakValueDictionary()


def sparse_activation(pre: torch.Tensor, k: int | None = None, threshold: torch.Tensor | None = None) -> torch.Tensor:
    """The sparse activation of SAEs and transcoders: ReLU; with ``k``, TopK (the ``k`` largest, then ReLU); with
    ``threshold``, JumpReLU (``relu(pre) * (pre > threshold)``: SAELens's, and circuit-tracer's for thresholds
    >= 0)."""
    if k is not None:
        top = pre.topk(k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
    feats = pre.relu()
    if threshold is not None:
        feats = feats * (pre > threshold.to(pre.device))
    return feats


class SAE:
    """A sparse autoencoder on one hook of a model: ``encode`` activations into features, ``decode`` back.

    Load one saved by SAELens (or by :func:`repwidget.train_sae`) with :meth:`SAE.load`. ``hook`` is
    the TransformerLens-style hook name it reads (``blocks.2.hook_resid_pre``).
    """

    def __init__(
        self,
        W_enc: torch.Tensor,
        b_enc: torch.Tensor,
        W_dec: torch.Tensor,
        b_dec: torch.Tensor,
        *,
        architecture: str = "standard",
        hook: str | None = None,
        k: int | None = None,
        threshold: torch.Tensor | None = None,
        apply_b_dec_to_input: bool = True,
        rescale_acts_by_decoder_norm: bool = False,
        name: str | None = None,
        path: Path | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"SAE architecture {architecture!r} is not supported; use one of {', '.join(ARCHITECTURES)}"
            )
        if W_enc.dim() != 2:
            raise ValueError(f"SAE W_enc must be a matrix [d_in, d_sae], got shape {tuple(W_enc.shape)}")
        d_in, d_sae = W_enc.shape
        expected = {"b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
        for key, tensor in (("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec)):
            if tuple(tensor.shape) != expected[key]:
                raise ValueError(
                    f"SAE {key} has shape {tuple(tensor.shape)}; with W_enc {d_in}x{d_sae} it must be {expected[key]}"
                )
        if architecture == "topk" and not (isinstance(k, int) and 0 < k <= d_sae):
            raise ValueError(f"a TopK SAE needs k in 1..{d_sae}, got {k!r}")
        if architecture == "jumprelu" and (threshold is None or tuple(threshold.shape) != (d_sae,)):
            raise ValueError(f"a JumpReLU SAE needs a threshold of shape ({d_sae},)")
        for key, flag in (("apply_b_dec_to_input", apply_b_dec_to_input),
                          ("rescale_acts_by_decoder_norm", rescale_acts_by_decoder_norm)):  # fmt: skip
            if not isinstance(flag, bool):
                raise TypeError(f"SAE {key} must be True or False, got {flag!r}")
        if hook is not None:
            try:
                parse(hook)
            except HookNameError as e:
                raise ValueError(f"SAE hook: {e}") from None
        self.W_enc, self.b_enc, self.W_dec, self.b_dec = (t.detach().float() for t in (W_enc, b_enc, W_dec, b_dec))
        self.threshold = threshold.detach().float() if threshold is not None else None
        self.architecture, self.hook, self.k = architecture, hook, k
        self.apply_b_dec_to_input = apply_b_dec_to_input
        self.rescale_acts_by_decoder_norm = rescale_acts_by_decoder_norm
        self.path = path
        self.metadata = dict(metadata or {})
        #: held-out explained variance, mean L0 and dead fraction, for SAEs trained here
        self.stats: dict[str, float] = dict(self.metadata.get("training", {}).get("stats", {}))
        #: what the views call it (the directory's name for a loaded SAE)
        self.name = name or (f"{path.name}" if path else f"{architecture}-{hook or 'sae'}")

    # -- shape ---------------------------------------------------------------------------
    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    @property
    def layer(self) -> int:
        """The block whose activation the SAE reads."""
        return parse(self.require_hook())[0]

    def require_hook(self) -> str:
        if self.hook is None:
            raise ValueError(
                f"{self!r} does not say which activation it reads; load it with "
                "rw.SAE.load(path, hook='blocks.2.hook_resid_pre') (the hook it was trained on)"
            )
        return self.hook

    def check_fits(self, model: Any) -> None:
        """Raise ValueError unless ``model`` has this SAE's hook, of the width the SAE reads."""
        hook = self.require_hook()
        parse(hook, model.n_layers)
        width = model.hook_width(hook)
        if width != self.d_in:
            raise ValueError(
                f"{self.name} reads {self.d_in}-wide activations but {hook} of this model is {width} wide: "
                "is this SAE for another model or another hook?"
            )

    # -- maths ---------------------------------------------------------------------------
    def _flat(self, acts: torch.Tensor) -> torch.Tensor:
        """``attn.hook_z`` arrives as ``[..., head, d_head]``; SAEs read it flattened."""
        if acts.shape[-1] != self.d_in and acts.dim() >= 2 and acts.shape[-2] * acts.shape[-1] == self.d_in:
            acts = acts.reshape(*acts.shape[:-2], self.d_in)
        if acts.shape[-1] != self.d_in:
            raise ValueError(f"{self.name}: activations have width {acts.shape[-1]}, the SAE reads {self.d_in}")
        return acts

    def _weights(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.W_enc.device != like.device:
            self.to(like.device)
        return {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}

    @torch.no_grad()
    def pre_activations(self, acts: torch.Tensor) -> torch.Tensor:
        x = self._flat(acts).float()
        w = self._weights(x)
        if self.apply_b_dec_to_input:
            x = x - w["b_dec"]
        pre = x @ w["W_enc"] + w["b_enc"]
        if self.rescale_acts_by_decoder_norm:
            pre = pre * w["W_dec"].norm(dim=-1)
        return pre

    @torch.no_grad()
    def encode(self, acts: torch.Tensor) -> torch.Tensor:
        """Feature activations ``[..., d_sae]`` of activations ``[..., d_in]``."""
        pre = self.pre_activations(acts)
        k = self.k if self.architecture == "topk" else None
        return sparse_activation(pre, k, self.threshold if self.architecture == "jumprelu" else None)

    def rows_per_block(self, budget: int = 32 << 20) -> int:
        """How many activations to encode at once so that their features take about ``budget`` bytes."""
        return max(1, budget // (4 * self.d_sae * 3))

    @torch.no_grad()
    def feature_activations(self, acts: torch.Tensor, feature: int) -> torch.Tensor:
        """``[...]``: feature ``feature``'s activation on each of ``acts`` ``[..., d_in]``, a block of rows at a
        time (never every feature of every row at once)."""
        flat = self._flat(acts)
        lead = flat.shape[:-1]
        flat = flat.reshape(-1, self.d_in)
        step = self.rows_per_block()
        parts = [self.encode(flat[i : i + step])[:, feature] for i in range(0, len(flat), step)]
        return (torch.cat(parts) if parts else flat.new_zeros(0)).reshape(lead)

    def decoder_vectors(self) -> torch.Tensor:
        """``[d_sae, d_in]``: what one unit of each feature's activation adds to the reconstruction."""
        if self.rescale_acts_by_decoder_norm:
            return self.W_dec / self.W_dec.norm(dim=-1, keepdim=True)
        return self.W_dec

    @torch.no_grad()
    def decode(self, feats: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``[..., d_in]`` of feature activations ``[..., d_sae]``."""
        w = self._weights(feats)
        return feats.float() @ self.decoder_vectors() + w["b_dec"]

    def to(self, device: torch.device | str) -> SAE:
        for key in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
            value = getattr(self, key)
            if value is not None:
                setattr(self, key, value.to(device))
        return self

    # -- files ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, hook: str | None = None) -> SAE:
        """Load a directory in SAELens's format (``cfg.json`` + ``sae_weights.safetensors``).

        ``hook`` overrides the config's ``metadata.hook_name``. Loading the same unchanged files again
        returns the same SAE while it is alive. Only safetensors are read: nothing is unpickled. The
        config is checked field by field and the weights must be finite floating-point tensors of
        matching shapes; anything else is a one-line error naming the file and the field.
        """
        path = Path(path).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"no SAE directory at {path}: expected {CONFIG} and {WEIGHTS} in it")
        for name in (CONFIG, WEIGHTS):
            if not (path / name).is_file():
                others = sorted(p.name for p in path.iterdir())
                raise FileNotFoundError(f"{path} has no {name} (it holds {others}); is this an SAELens SAE directory?")
        key = _file_key(path)
        cached = _LOADED.get(key) if hook is None else None
        if cached is not None:
            return cached
        arguments = _read(path)
        if hook is not None:
            arguments["hook"] = hook
        sae = cls(**arguments, path=path)
        if hook is None:
            _LOADED[key] = sae
        return sae

    def save(self, path: str | Path, **metadata: Any) -> Path:
        """Save in SAELens's format, loadable by :meth:`load` and by ``sae_lens.SAE.load_from_disk``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        weights = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}
        if self.threshold is not None:
            weights["threshold"] = self.threshold
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, path / WEIGHTS)
        cfg: dict[str, Any] = {
            "architecture": self.architecture,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "dtype": "float32",
            "device": "cpu",
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": "none",
            "reshape_activations": "hook_z" if self.hook and self.hook.endswith("attn.hook_z") else "none",
            "metadata": {**self.metadata, **metadata, "hook_name": self.hook},
        }
        if self.architecture == "topk":
            cfg.update(k=self.k, rescale_acts_by_decoder_norm=self.rescale_acts_by_decoder_norm)
        (path / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")
        self.path = path.resolve()
        for key in [k for k, v in list(_LOADED.items()) if v is self]:
            del _LOADED[key]  # it no longer stands for the files it was loaded from
        return path

    def __repr__(self) -> str:
        if self.path is not None:
            return f"rw.SAE.load({str(self.path)!r})"
        return f"<rw.SAE {self.name}: {self.architecture}, {self.d_in} -> {self.d_sae} features at {self.hook}>"


def _file_key(path: Path) -> tuple:
    """What identifies the files of an SAE directory: the config's text and the weights' identity and time."""
    weights = (path / WEIGHTS).stat()
    return str(path), (path / CONFIG).read_bytes(), weights.st_ino, weights.st_size, weights.st_mtime_ns


def _read(path: Path) -> dict[str, Any]:
    """The SAE constructor's arguments from an SAELens directory, every field and tensor checked."""
    where = path / CONFIG
    cfg = read_json(where)
    architecture = json_field(cfg, "architecture", "str", where, "standard")
    if architecture not in ARCHITECTURES:
        raise FileFormatError(f"{where}: architecture {architecture!r} is not supported; use one of {ARCHITECTURES}")
    norm = cfg.get("normalize_activations", "none")
    if norm not in (None, "none"):
        raise FileFormatError(f"{where}: normalize_activations={norm!r} is not supported yet; only 'none'")
    metadata = json_field(cfg, "metadata", "dict", where, {})
    training = json_field({"metadata.training": metadata.get("training")}, "metadata.training", "dict", where, {})
    stats = json_field({"metadata.training.stats": training.get("stats")}, "metadata.training.stats", "dict", where, {})
    for key, value in stats.items():
        json_field({f"metadata.training.stats.{key}": value}, f"metadata.training.stats.{key}", "number", where)
    hook = json_field(metadata, "hook_name", "str", where, None) or json_field(cfg, "hook_name", "str", where, None)
    if hook is not None:
        try:
            parse(hook)
        except HookNameError as e:
            raise FileFormatError(f"{where}: hook_name: {e}") from None
    arguments: dict[str, Any] = {
        "architecture": architecture,
        "hook": hook,
        "k": json_field(cfg, "k", "+int", where) if architecture == "topk" else None,
        "apply_b_dec_to_input": json_field(cfg, "apply_b_dec_to_input", "bool", where, True),
        "rescale_acts_by_decoder_norm": json_field(cfg, "rescale_acts_by_decoder_norm", "bool", where, False),
        "metadata": metadata,
    }
    declared = {name: json_field(cfg, name, "+int", where, None) for name in ("d_in", "d_sae")}

    file = path / WEIGHTS
    weights = read_tensors(file)
    missing = [n for n in ("W_enc", "b_enc", "W_dec", "b_dec") if n not in weights]
    if architecture == "jumprelu" and "threshold" not in weights:
        missing.append("threshold")
    if missing:
        raise FileFormatError(f"{file} lacks {', '.join(missing)} (it holds {sorted(weights)})")
    w_enc = tensor_field(weights, "W_enc", file, (None, None))
    d_in, d_sae = w_enc.shape
    for name, value in (("d_in", d_in), ("d_sae", d_sae)):
        if declared[name] is not None and declared[name] != value:
            raise FileFormatError(f"{where}: {name} is {declared[name]} but the weights have {value} ({file.name})")
    arguments.update(
        W_enc=w_enc,
        b_enc=tensor_field(weights, "b_enc", file, (d_sae,)),
        W_dec=tensor_field(weights, "W_dec", file, (d_sae, d_in)),
        b_dec=tensor_field(weights, "b_dec", file, (d_in,)),
        threshold=tensor_field(weights, "threshold", file, (d_sae,)) if architecture == "jumprelu" else None,
    )
    if arguments["k"] is not None and arguments["k"] > d_sae:
        raise FileFormatError(f"{where}: k is {arguments['k']}, more than the {d_sae} features of the weights")
    return arguments
