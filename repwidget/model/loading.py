"""``rw.load``: a loaded model, a local directory, a GGUF file or a hub id, into a :class:`Model`."""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..file_checks import FileFormatError, check_gguf, check_gguf_metadata
from .backends import BACKENDS
from .errors import ModelLoadError, check_materialised
from .model import Model
from .vision import is_image_model
from .vision_model import VisionModel

_WHAT_INSTEAD = (
    "Pass a model you have loaded (rw.load(AutoModelForCausalLM.from_pretrained(...), tokenizer)), "
    "a local directory saved with save_pretrained(), a .gguf file, or try rw.demo_model()."
)
#: the first bytes of every GGUF file
_GGUF_MAGIC = b"GGUF"


def load(
    model_or_path_or_name: nn.Module | str | os.PathLike,
    tokenizer: Any = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    gguf_file: str | None = None,
    backend: str = "local",
    remote: bool = False,
) -> Model:
    """Wrap a Hugging Face model for repwidget.

    ``model_or_path_or_name`` is a loaded ``PreTrainedModel``, a local directory, a GGUF file
    (llama.cpp, Ollama: ``rw.load("model.gguf")``, or a directory and ``gguf_file=``), or a hub id
    (loaded from the local cache, or downloaded when the hub can be reached). Without a
    tokenizer (and none found beside the weights), runs take token ids.
    ``device`` and ``dtype`` move the model (``device="cuda"``, ``dtype=torch.float16``);
    models placed with ``device_map`` are used where they are. GGUF weights are dequantized
    to ``dtype`` (default float32) and the tokenizer is read from the same file.

    ``backend="nnsight"`` runs every pass as an nnsight trace of the same model (``pip install nnsight``);
    with ``remote=True`` the traces go to NDIF (nnsight's API key and host configuration), only what
    repwidget asks for coming back. A hub id or directory with ``remote=True`` loads **no weights**: the
    module tree is built from the config on the ``meta`` device (so does ``rw.load(nnsight.TransformersModel(
    "org/name"), backend="nnsight", remote=True)``), the architecture is read on a tiny twin, and logits and
    predictions are computed in the passes, on NDIF.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r:.40}")
    if remote and backend != "nnsight":
        raise ValueError("remote=True runs passes on NDIF through nnsight: use backend='nnsight'")
    dtype = _check_dtype(dtype)
    device = _check_device(device)
    if gguf_file is not None:
        if not isinstance(model_or_path_or_name, (str, os.PathLike)):
            raise TypeError("gguf_file= names a file in a directory: rw.load('path/to/dir', gguf_file='model.gguf')")
        model_or_path_or_name = Path(model_or_path_or_name).expanduser() / gguf_file
        if not model_or_path_or_name.is_file():
            raise ModelLoadError(f"no such GGUF file: {str(model_or_path_or_name)!r}")
    if remote and _is_nnsight_model(model_or_path_or_name):
        return _remote_model(model_or_path_or_name, tokenizer)
    if remote and isinstance(model_or_path_or_name, (str, os.PathLike)) and gguf_file is None:
        if device is not None:
            raise ValueError("device= places local weights; a remote model has none (NDIF places its own)")
        return _remote_model(_meta_model(str(model_or_path_or_name), tokenizer, dtype), tokenizer)
    if isinstance(model_or_path_or_name, nn.Module):
        hf = model_or_path_or_name
    elif isinstance(model_or_path_or_name, (str, os.PathLike)):
        hf, found_tokenizer = _from_pretrained(str(model_or_path_or_name), dtype)
        tokenizer = tokenizer if tokenizer is not None else found_tokenizer
        if is_image_model(hf):  # an image classifier's directory: its image processor is its preprocessing
            return VisionModel(hf.to(device=device) if device is not None else hf, preprocess=found_tokenizer)
        # (for an image classifier, _from_pretrained found its image processor, or None)
    else:
        raise TypeError(
            f"rw.load takes a Hugging Face model, a directory or a hub id, got {type(model_or_path_or_name).__name__}"
        )
    check_materialised(hf)
    if getattr(hf, "hf_device_map", None) is None and (device is not None or dtype is not None):
        hf.to(device=device, dtype=dtype)
    # a model passed in keeps its train/eval state: each pass runs in eval mode
    if is_image_model(hf):
        return VisionModel(hf, preprocess=tokenizer)
    return Model(hf, tokenizer, backend=backend, remote=remote)


def _check_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        dtype = getattr(torch, dtype)
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch dtype such as 'float32' or 'bfloat16', got {dtype!r}")
    return dtype


def _check_device(device: str | torch.device | None) -> torch.device | None:
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use e.g. 'cpu', 'cuda' or 'cuda:1'") from None
    if device.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index is not None and device.index >= available) or available == 0:
            raise ValueError(
                f"device {str(device)!r} is not available: this machine has {available} CUDA device(s). "
                "Use device='cpu', or leave device=None to keep the model where it is."
            )
    return device


def _from_pretrained(name: str, dtype: torch.dtype | None) -> tuple[nn.Module, Any]:
    local = Path(name).expanduser()
    if local.is_file() or name.lower().endswith(".gguf"):
        return _from_gguf(local, dtype)
    if local.exists() and not (local / "config.json").is_file():
        ggufs = sorted(local.glob("*.gguf"))
        if len(ggufs) == 1:
            return _from_gguf(ggufs[0], dtype)
        if ggufs:
            names = ", ".join(p.name for p in ggufs)
            raise ModelLoadError(
                f"{str(local)!r} holds {len(ggufs)} GGUF files ({names}); name one: "
                f"rw.load({str(local)!r}, gguf_file={ggufs[0].name!r})"
            )
    source, local_only = _resolve(name)
    config = _config(name, source, local_only)
    model = _auto_model(source, config, dtype, local_only)
    return model.eval(), (_image_processor(source) if is_image_model(model) else _tokenizer(source))


def _resolve(name: str) -> tuple[str, bool]:
    """Where a directory or hub id's files are read from, and whether only locally (fails fast offline)."""
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelLoadError(
                f"{str(local)!r} has no config.json, so it is not a saved Hugging Face model. " + _WHAT_INSTEAD
            )
        return str(local), True
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"no such directory: {name!r}. " + _WHAT_INSTEAD)
    local_only = _in_cache(name)
    if not local_only:
        if _hub_offline():
            raise ModelLoadError(
                f"{name!r} is not in the local Hugging Face cache and the hub is off (HF_HUB_OFFLINE). " + _WHAT_INSTEAD
            )
        _check_hub(name)
    return name, local_only


def _config(name: str, source: str, local_only: bool) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, local_files_only=local_only)
    except Exception as e:
        raise ModelLoadError(f"could not load the config of {name!r}: {_one_line(e)}. " + _WHAT_INSTEAD) from None


def _is_nnsight_model(obj: object) -> bool:
    """Whether ``obj`` is nnsight's model of a Hugging Face model (an envoy over its module tree)."""
    return isinstance(getattr(obj, "_module", None), nn.Module) and hasattr(obj, "trace") and hasattr(obj, "repo_id")


def _meta_model(name: str, tokenizer: Any, dtype: torch.dtype | None) -> Any:
    """nnsight's model of a directory or hub id built from its config on the ``meta`` device: no weights read."""
    import nnsight

    source, local_only = _resolve(name)
    config = _config(name, source, local_only)
    if dtype is not None:
        config.dtype = dtype
    tokenizer = tokenizer if tokenizer is not None else _tokenizer(source)
    if tokenizer is None and local_only:
        raise ModelLoadError(
            f"remote=True needs the model's tokenizer and {name!r} has none here: pass it, rw.load(name, tokenizer, "
            "backend='nnsight', remote=True)"
        )
    try:
        return nnsight.TransformersModel(source, task="text-generation", config=config, tokenizer=tokenizer)
    except Exception as e:
        raise ModelLoadError(
            f"nnsight could not build {name!r} without weights: {_one_line(e)[:200]}. NDIF serves causal language "
            "models by hub id"
        ) from None


def _remote_model(lm: Any, tokenizer: Any) -> Model:
    """A :class:`Model` over nnsight's model ``lm``, its passes on NDIF (its weights, if not here, stay there)."""
    tokenizer = tokenizer if tokenizer is not None else getattr(lm, "tokenizer", None)
    return Model(lm._module, tokenizer, backend="nnsight", remote=True, nnsight_model=lm)


def _from_gguf(path: Path, dtype: torch.dtype | None) -> tuple[nn.Module, Any]:
    """A GGUF file through transformers' GGUF support: weights dequantized to ``dtype`` (float32 by default),
    the tokenizer from the same file."""
    if not path.is_file():
        raise ModelLoadError(f"no such GGUF file: {str(path)!r}")
    with path.open("rb") as f:
        if f.read(4) != _GGUF_MAGIC:
            raise ModelLoadError(
                f"{str(path)!r} is not a GGUF file (it does not start with the bytes 'GGUF'). " + _WHAT_INSTEAD
            )
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files with it)
    except ImportError:
        raise ModelLoadError(f"reading {path.name!r} needs the gguf package: pip install gguf") from None
    try:
        header = check_gguf(path)  # declared sizes against the file's, before transformers reads anything
    except FileFormatError as e:
        raise ModelLoadError(f"cannot load {e}") from None
    from transformers import AutoConfig, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    source, kwargs = str(path.parent), {"gguf_file": path.name, "local_files_only": True}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
    except Exception as e:
        readable = ", ".join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))
        raise ModelLoadError(
            f"transformers cannot read {path.name!r}: {_one_line(e).rstrip('.')}; the GGUF architectures it reads: "
            f"{readable}"
        ) from None
    try:
        check_gguf_metadata(path, header)  # the sizes the model is built with against its tensors
    except FileFormatError as e:
        raise ModelLoadError(f"cannot load {e}") from None
    try:
        with quiet_progress():
            model = _auto_model(source, config, dtype or torch.float32, True, gguf_file=path.name)
    except (RuntimeError, ValueError, KeyError, IndexError) as e:
        if isinstance(e, ModelLoadError):
            raise
        raise ModelLoadError(
            f"transformers could not build a model from {path.name!r}: its tensors do not fit its metadata "
            f"({_one_line(e)[:200]})"
        ) from None
    model.name_or_path = str(path)  # so that the explorer's code() says rw.load('...gguf')
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception:
        tokenizer = None  # runs then take token ids
    return model.eval(), tokenizer


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """transformers' progress bars ("Loading weights", GGUF dequantizing) off inside, as they were after: the
    demo's and the notebooks' known models load with no bar above every explorer."""
    from transformers.utils import logging

    try:  # the GGUF reader's bar is tqdm's own, not behind transformers' switch
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        gguf_utils = None
    bar = getattr(gguf_utils, "tqdm", None)
    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    if bar is not None:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar
        if was:
            logging.enable_progress_bar()


def _auto_model(source: str, config: Any, dtype: torch.dtype | None, local_only: bool, **extra: Any) -> nn.Module:
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    kwargs: dict[str, Any] = {"local_files_only": local_only, "weights_only": True, **extra}  # only tensors
    if dtype is not None:
        kwargs["dtype"] = dtype
    from transformers import AutoModelForImageClassification

    for auto in (AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForImageClassification, AutoModel):
        if type(config) in auto._model_mapping:
            try:
                return auto.from_pretrained(source, config=config, **kwargs)
            except OSError as e:
                raise ModelLoadError(
                    f"could not load the weights of {source!r}: {_one_line(e)}. " + _WHAT_INSTEAD
                ) from None
            except (pickle.UnpicklingError, EOFError, RuntimeError) as e:
                refused = _pickle_error(source, e)
                if refused is None:
                    raise
                raise refused from None
    raise ModelLoadError(f"{source!r} is a {type(config).__name__}, which transformers cannot load as a model")


def _pickle_error(source: str, error: BaseException) -> ModelLoadError | None:
    """One line for a pickled checkpoint (``pytorch_model.bin``) that torch's restricted unpickler refused or
    could not read; None for an error that is about something else.

    Pickles are read only with ``weights_only=True``: tensors and plain containers, never arbitrary
    objects, so a state dict loads and a pickle that would run code is refused here.
    """
    text = str(error)
    convert = (
        "Only if you trust the file: convert it to safetensors outside repwidget "
        "(AutoModelForCausalLM.from_pretrained(path, weights_only=False).save_pretrained(path)), then load that."
    )
    if isinstance(error, pickle.UnpicklingError):
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()[0] if text.strip() else ""
        return ModelLoadError(
            f"{source!r} holds a pickled checkpoint with more than tensors in it ({detail.split(' Please use')[0]}), "
            f"and repwidget never unpickles objects (torch's weights_only loader refused it). {convert}"
        )
    if isinstance(error, EOFError) or "PytorchStreamReader" in text or "pickle" in text.lower():
        return ModelLoadError(
            f"{source!r} holds a pickled checkpoint that cannot be read (truncated or corrupt: "
            f"{_one_line(error).split('. ')[0]}). "
            "Download or save it again, preferably as safetensors (save_pretrained writes model.safetensors)."
        )
    return None


def _image_processor(source: str) -> Any:
    """An image classifier's image processor saved beside it (the PIL one: torchvision is not needed), or None."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(source, local_files_only=True, backend="pil")
    except Exception:
        return None


def _tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception:
        return None  # runs then take token ids
    # with no tokenizer files, transformers may build an empty tokenizer from the config alone
    return tokenizer if getattr(tokenizer, "vocab_size", 0) else None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _in_cache(name: str) -> bool:
    """Whether the hub id's config is in the local cache (looked up without any network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def _check_hub(name: str, timeout: float = 5.0) -> None:
    """Fail within ``timeout`` seconds, with one clear line, when the hub cannot be reached.

    One plain request, no retries: any HTTP answer means the hub is there (transformers then
    handles authentication and downloads); a refused, failed or silent connection does not.
    """
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    url = f"{constants.ENDPOINT.rstrip('/')}/api/models/{name}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise ModelLoadError(
                f"{name!r} is neither a local directory nor a model on the Hugging Face hub. " + _WHAT_INSTEAD
            ) from None
        return  # 401/403 and the like: the hub answered; from_pretrained reports the rest
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ModelLoadError(
            f"could not reach the Hugging Face hub to download {name!r} ({type(reason).__name__}: {reason}), "
            "and it is not in the local cache. " + _WHAT_INSTEAD
        ) from None


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
