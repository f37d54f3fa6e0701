"""Architecture discovery for a model without local weights (``remote=True`` on NDIF): on a tiny twin.

Discovery is numerical (one traced forward pass, see :mod:`.architecture`), so it cannot run on a model whose
parameters are on the ``meta`` device. It runs instead on a *config twin*: the same class built from a copy of the
config with 2 layers, heads of width 8 and a small vocabulary, random weights (a few MB). Module names, the
branch scales the config sets (Granite's multipliers), post-norms, parallel blocks and the logit head are the
class's, not the sizes', so the twin's :class:`Architecture` is the model's once the real sizes are put back:
layers, heads and widths from the config, ``d_head`` and ``d_mlp`` from the shapes of the meta model's own
projections. Every path found on the twin is checked to exist, as a module of the same class, in the meta model.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from .architecture import Architecture, UnsupportedModelError, _n_layers, discover, find_blocks
from .fit import short_decimal

#: the twin's size: layers, width of a head, vocabulary
TWIN_LAYERS, TWIN_HEAD, TWIN_VOCAB = 2, 8, 128
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
_WIDTH_KEYS = ("hidden_size", "n_embd", "d_model", "word_embed_proj_dim")
_MLP_KEYS = ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", "moe_intermediate_size", "d_ff")


def is_weightless(model: nn.Module) -> bool:
    """Whether every parameter of ``model`` is on the ``meta`` device (a shape, no values)."""
    params = list(model.parameters())
    return bool(params) and all(p.is_meta for p in params)


def twin_config(config):
    """A copy of ``config`` with :data:`TWIN_LAYERS` layers, heads :data:`TWIN_HEAD` wide, a small vocabulary and
    MLP; per-layer lists (Gemma 3's ``layer_types``) cut to the twin's layers."""
    twin = copy.deepcopy(config)
    n = _n_layers(config)
    layers = min(n, TWIN_LAYERS)
    for key in _LAYER_KEYS:
        if isinstance(getattr(twin, key, None), int):
            setattr(twin, key, layers)
    for key, value in list(vars(twin).items()):
        if isinstance(value, list) and len(value) == n and n != layers:
            setattr(twin, key, value[:layers])
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0) or 0)
    width = heads * TWIN_HEAD
    real_head = getattr(config, "head_dim", None) or (_width(config) // heads if heads else 0)
    for key in _WIDTH_KEYS:
        if isinstance(getattr(twin, key, None), int):
            setattr(twin, key, width)
    computed = isinstance(getattr(type(twin), "head_dim", None), property)  # Falcon's follows from the width
    if isinstance(getattr(twin, "head_dim", None), int) and not computed:
        twin.head_dim = TWIN_HEAD
    if isinstance(getattr(twin, "rotary_dim", None), int) and real_head:  # GPT-J: rotary on part of each head
        twin.rotary_dim = max(2, 2 * round(config.rotary_dim * TWIN_HEAD / real_head / 2))
    for key in _MLP_KEYS:
        if isinstance(getattr(twin, key, None), int):
            setattr(twin, key, 2 * width)
    vocab = getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and vocab > TWIN_VOCAB:
        twin.vocab_size = TWIN_VOCAB
        for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(twin, key, None)
            if isinstance(value, int) and value >= TWIN_VOCAB:
                setattr(twin, key, None)
    return twin


def _width(config) -> int:
    return int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 0)


def _in_features(module: nn.Module) -> int:
    """The input width of a linear layer (``nn.Linear`` or GPT-2's ``Conv1D``, whose weight is ``[in, out]``)."""
    if isinstance(getattr(module, "in_features", None), int):
        return module.in_features
    if type(module).__name__ == "Conv1D":
        return int(module.weight.shape[0])
    return int(module.weight.shape[-1])


def discover_weightless(model: nn.Module) -> Architecture:
    """``model``'s :class:`Architecture` without its weights: discovered on a config twin, the sizes the model's."""
    config = model.config
    try:
        twin_cfg = twin_config(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            twin = type(model)(twin_cfg).float().eval()
    except Exception as error:
        raise UnsupportedModelError(
            f"could not build a small twin of {type(model).__name__} to read its architecture without weights "
            f"({type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}); "
            "load it with weights instead (remote=False)"
        ) from None
    arch = discover(twin, int(twin.get_input_embeddings().num_embeddings))
    n_layers = _n_layers(config)
    blocks = find_blocks(model, n_layers)
    if blocks != arch.blocks:
        raise UnsupportedModelError(f"the twin's blocks ({arch.blocks}) are not the model's ({blocks})")
    paths = {"attn": arch.attn, "attn_proj": arch.attn_proj, "attn_end": arch.attn_end, "mlp_end": arch.mlp_end}
    paths.update({part: getattr(arch, part) for part in ("mlp_down", "mlp_in") if getattr(arch, part) is not None})
    block, twin_block = model.get_submodule(f"{blocks}.0"), twin.get_submodule(f"{blocks}.0")
    for part, path in paths.items():
        mine = _submodule(block, path)
        if mine is None or type(mine) is not type(twin_block.get_submodule(path)):
            raise UnsupportedModelError(f"the twin's {part} ({path}) is not a module of {type(model).__name__}")
    for path in (arch.final_norm, arch.unembed):
        if path is not None and _submodule(model, path) is None:
            raise UnsupportedModelError(f"the twin's {path} is not a module of {type(model).__name__}")
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0))
    d_attn = _in_features(block.get_submodule(arch.attn_proj))
    return dataclasses.replace(
        arch,
        n_layers=n_layers,
        n_heads=heads,
        n_kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
        d_model=_width(config),
        d_head=d_attn // heads,
        d_mlp=0 if arch.mlp_down is None else _in_features(block.get_submodule(arch.mlp_down)),
        attn_scale=short_decimal(arch.attn_scale),
        mlp_scale=short_decimal(arch.mlp_scale),
    )


def _submodule(root: nn.Module, path: str) -> nn.Module | None:
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None
