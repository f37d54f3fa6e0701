"""TransformerLens as an independent reference: the matrix's random models rebuilt, offline, as HookedTransformers.

TransformerLens (3.9.0, the last line with ``HookedTransformer``) reimplements each architecture itself and defines
the hook names repwidget uses. For each model of ``architectures.ARCHITECTURES`` that it supports we build its
``HookedTransformerConfig`` with its own ``convert_hf_model_config`` (``AutoConfig.from_pretrained`` answered with
our config, so nothing is fetched), convert the weights with its own converters
(``transformer_lens.pretrained.weight_conversions``) and load them with no processing at all (no LayerNorm folding,
no centring, no value-bias folding), so its numbers are comparable to the raw Hugging Face model's.
``tl_model`` checks that TransformerLens's logits equal Hugging Face's before anything uses it.

Where TransformerLens names a real checkpoint rather than reading the config (Gemma 1-3 and OLMo 2 are hard-coded
per checkpoint size), we take that checkpoint family's entry (which says *how* the architecture computes) and
replace its sizes and hyper-parameters with our config's (``_SIZES_FROM_CONFIG``).

Conventions, so that comparisons are apples to apples (all checked against Hugging Face by the logits check and by
``tests/test_architectures.py``):

- Tensors come back without the batch axis: residual streams ``[pos, d_model]``, ``attn.hook_pattern``
  ``[head, q, k]``, ``attn.hook_z`` ``[pos, head, d_head]``, ``mlp.hook_post`` ``[pos, d_mlp]``.
- Grouped-query attention: ``hook_pattern`` and ``hook_z`` have every *query* head (the key/value heads are repeated
  to the query heads before ``z`` is computed), which is what repwidget gives too; TransformerLens's ``hook_k`` /
  ``hook_v`` (not returned here) have only the key/value heads.
- Gemma: the converter folds the ``sqrt(d_model)`` embedding scale into ``W_E`` and the ``1 + weight`` of Gemma's
  RMSNorm into the norm weights, so ``blocks.0.hook_resid_pre`` is the scaled embedding (Hugging Face's
  ``hidden_states[0]``).
- ``hook_attn_out`` / ``hook_mlp_out`` are what the block adds to the residual stream: after Gemma 2/3's
  post-attention / post-feedforward norms and after OLMo 2's post-norms. ``hook_resid_mid`` exists only for
  sequential blocks; parallel blocks (GPT-J, GPT-NeoX with ``use_parallel_residual``, Phi) have
  ``resid_post = resid_pre + attn_out + mlp_out``.
- Mixture of experts (Mixtral): there is no ``mlp.hook_post`` (TransformerLens has one per expert,
  ``mlp.experts.{e}.hook_post``, over the tokens routed to it); ``hook_mlp_out`` is the routed sum.
- BERT (``HookedEncoder``, post-LN): ``hook_attn_out`` is the attention output projection's output,
  ``hook_resid_mid = resid_pre + attn_out`` (before the first LayerNorm), ``hook_resid_post = LN1(resid_mid) +
  mlp_out`` (before the second LayerNorm), and the block's output, the next ``hook_resid_pre`` and Hugging Face's
  hidden state, is ``hook_normalized_resid_post``. Returned here as ``hook_normalized_resid_post`` too.
- ``logits``: TransformerLens applies Gemma 2's final soft-cap; BERT's are the masked-LM head's.

Not supported by TransformerLens 3.9.0 (no converter): Falcon, Granite, Cohere.
"""

from __future__ import annotations

import types
import weakref
from typing import Any
from unittest import mock

import torch

#: our architecture -> the TransformerLens checkpoint name whose config branch and weight converter fit it
TL_NAMES: dict[str, str] = {
    "gpt2": "gpt2",
    "gptj": "EleutherAI/gpt-j-6B",
    "neox": "EleutherAI/pythia-70m",
    "neox_sequential": "EleutherAI/pythia-70m",  # TransformerLens reads use_parallel_residual from the config
    "llama": "01-ai/Yi-6B",  # a Llama-architecture name without "llama" in it: TL then reads the config
    "mistral": "mistralai/Mistral-7B-v0.1",
    "mixtral": "mistralai/Mixtral-8x7B-v0.1",
    "qwen2": "Qwen/Qwen2-0.5B",
    "qwen3": "Qwen/Qwen3-0.6B",
    "gemma": "google/gemma-2b",
    "gemma2": "google/gemma-2-2b",
    "gemma3": "google/gemma-3-270m",
    "olmo2": "allenai/OLMo-2-0425-1B",
    "phi": "microsoft/phi-2",
    "phi3": "microsoft/Phi-3-mini-4k-instruct",
    "opt": "facebook/opt-125m",
    "bert": "google-bert/bert-base-cased",
}

#: logits of TransformerLens and Hugging Face must agree this closely before the reference is used
LOGITS_ATOL = 1e-4

#: hooks returned per layer (those the architecture defines)
HOOKS = (
    "hook_resid_pre",
    "attn.hook_pattern",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "mlp.hook_post",
    "hook_mlp_out",
    "hook_resid_post",
    "hook_normalized_resid_post",  # BERT only: the block's output
)


def supported(name: str) -> bool:
    return name in TL_NAMES


def _rope_theta(config, layer_type: str | None = None) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    if layer_type is not None and layer_type in params:
        params = params[layer_type]
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _sizes_from_config(config) -> dict[str, Any]:
    """The sizes and hyper-parameters of a hard-coded TransformerLens entry, read from our config instead."""
    n = config.num_hidden_layers
    d_head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * n
    sizes = {
        "d_model": config.hidden_size,
        "d_head": d_head,
        "n_heads": config.num_attention_heads,
        "d_mlp": config.intermediate_size,
        "n_layers": n,
        "n_ctx": config.max_position_embeddings,
        "eps": config.rms_norm_eps,
        "d_vocab": config.vocab_size,
        "act_fn": getattr(config, "hidden_activation", None) or config.hidden_act,
        "initializer_range": config.initializer_range,
        "rotary_dim": d_head,
        "rotary_base": _rope_theta(config, "full_attention"),
    }
    kv = config.num_key_value_heads
    sizes["n_key_value_heads"] = kv if kv != config.num_attention_heads or "gemma" in config.model_type else None
    if getattr(config, "sliding_window", None) and "sliding_attention" in layer_types:
        sizes["use_local_attn"] = True
        sizes["window_size"] = config.sliding_window
        sizes["attn_types"] = ["local" if t == "sliding_attention" else "global" for t in layer_types]
    else:
        sizes["attn_types"] = ["global"] * n
    if getattr(config, "query_pre_attn_scalar", None):
        sizes["attn_scale"] = float(config.query_pre_attn_scalar) ** 0.5
    if "attn_logit_softcapping" in config:
        sizes["attn_scores_soft_cap"] = config.attn_logit_softcapping or -1.0
    if "final_logit_softcapping" in config:
        sizes["output_logits_soft_cap"] = config.final_logit_softcapping or -1.0
    if config.model_type == "gemma3_text":
        sizes["rotary_base_local"] = _rope_theta(config, "sliding_attention")
    return sizes


def _restore_legacy_attributes(config) -> None:
    """Attributes TransformerLens 3.9.0 still reads that transformers 5 moved (values unchanged)."""
    if config.model_type == "gpt2":
        config.n_ctx = config.n_positions  # GPT-2's context length
    if config.model_type == "phi":
        config.partial_rotary_factor = config.rope_parameters["partial_rotary_factor"]


#: TransformerLens entries that are hard-coded per checkpoint: their sizes come from our config
_SIZES_FROM_CONFIG = {"gemma", "gemma2", "gemma3", "olmo2"}


def tl_config(name: str, hf_model: torch.nn.Module):
    """TransformerLens's own ``HookedTransformerConfig`` for ``hf_model``, made offline from its config."""
    import transformer_lens.loading_from_pretrained as loading

    tl_name = TL_NAMES[name]
    config = hf_model.config.__class__.from_dict(hf_model.config.to_dict())
    config.architectures = [type(hf_model).__name__]
    _restore_legacy_attributes(config)
    offline = types.SimpleNamespace(from_pretrained=lambda *args, **kwargs: config)
    with mock.patch.object(loading, "AutoConfig", offline):
        cfg_dict = loading.convert_hf_model_config(tl_name)
    if name in _SIZES_FROM_CONFIG:
        cfg_dict.update(_sizes_from_config(config))
    cfg_dict["tokenizer_name"] = None  # nothing to fetch: ids are given
    with mock.patch.object(loading, "convert_hf_model_config", lambda *args, **kwargs: dict(cfg_dict)):
        return loading.get_pretrained_model_config(
            tl_name, hf_cfg=config.to_dict(), fold_ln=False, device="cpu", dtype=torch.float32
        )


def _converter_input(name: str, hf_model: torch.nn.Module) -> torch.nn.Module:
    """The Hugging Face model TransformerLens's converter reads: BERT's wants the pre-training class."""
    if name != "bert":
        return hf_model
    import transformers as T

    pretraining = T.BertForPreTraining(hf_model.config).eval()
    missing, unexpected = pretraining.load_state_dict(hf_model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("bert.pooler", "cls.seq_relationship")) for k in missing), missing
    return pretraining  # the pooler and next-sentence head stay random: no hook or logit reads them


def tl_model(name: str, hf_model: torch.nn.Module):
    """A ``HookedTransformer`` (``HookedEncoder`` for BERT) with ``hf_model``'s weights, unprocessed.

    Raises AssertionError when its logits differ from Hugging Face's: a reference must first be right.
    """
    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedEncoder, HookedTransformer

    cfg = tl_config(name, hf_model)
    state_dict = loading.get_pretrained_state_dict(TL_NAMES[name], cfg, _converter_input(name, hf_model))
    state_dict = {k: v.detach().clone() for k, v in state_dict.items()}
    if name == "bert":
        model = HookedEncoder(cfg, move_to_device=False)
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        assert not unexpected and not [k for k in missing if not k.endswith(("IGNORE", "mask"))], missing
    else:
        model = HookedTransformer(cfg, move_to_device=False)
        model.load_and_process_state_dict(
            state_dict,
            fold_ln=False,
            center_writing_weights=False,
            center_unembed=False,
            fold_value_biases=False,
            refactor_factored_attn_matrices=False,
        )
    model.eval()
    ids = torch.randint(3, cfg.d_vocab, (1, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = _hf_logits(hf_model, ids)
        got = model(ids, return_type="logits") if name != "bert" else model(ids)
    diff = (got - expected).abs().max().item()
    assert diff <= LOGITS_ATOL, f"TransformerLens's {name} logits differ from Hugging Face's by {diff:.3g}"
    return model


def _hf_logits(hf_model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return hf_model(ids).logits


#: hf model -> its TransformerLens twin, built once
_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tl_run(name: str, hf_model: torch.nn.Module, ids: list[int] | torch.Tensor) -> dict[str, torch.Tensor]:
    """TransformerLens's hooks on ``ids`` for a model with ``hf_model``'s weights (see the module docstring).

    Per layer ``l``: ``blocks.{l}.{hook}`` for each of ``HOOKS`` the architecture defines, batch axis dropped;
    plus ``logits`` ``[pos, vocab]``.
    """
    if hf_model not in _TWINS:
        _TWINS[hf_model] = tl_model(name, hf_model)
    model = _TWINS[hf_model]
    ids = torch.as_tensor(ids).reshape(1, -1)
    wanted = {f"blocks.{layer}.{hook}" for layer in range(model.cfg.n_layers) for hook in HOOKS}
    with torch.no_grad():
        if name == "bert":
            logits, cache = model.run_with_cache(ids, names_filter=lambda n: n in wanted)
        else:
            logits, cache = model.run_with_cache(ids, return_type="logits", names_filter=lambda n: n in wanted)
    out = {k: v[0] for k, v in cache.items()}
    out["logits"] = logits[0]
    return out
