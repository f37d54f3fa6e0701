"""A reference written by hand for the matrix's architectures TransformerLens does not implement (Falcon, Granite,
Cohere): TransformerLens's hook meanings, read off the Hugging Face modules named here.

Per layer: ``hook_resid_pre`` / ``hook_resid_post`` (the block's input and output); ``attn.hook_pattern``
(transformers' own ``output_attentions`` from a twin built with eager attention); ``attn.hook_z`` (the attention
output projection's input, split into heads); ``hook_attn_out`` and ``hook_mlp_out`` (what the block adds to the
residual stream: the output projections' outputs times Granite's ``residual_multiplier``); ``mlp.hook_post`` (the
MLP down projection's input); for sequential blocks ``hook_resid_mid`` (the input of the norm before the MLP).
Every tensor is cloned when the hook sees it: Falcon adds the attention output into the MLP output in place.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM


@dataclass(frozen=True)
class Parts:
    blocks: str  #: the ModuleList of blocks
    attn_out: str  #: in a block: the attention output projection
    mlp_out: str  #: in a block: the MLP down projection
    mid_norm: str | None = None  #: in a sequential block: the norm whose input is resid_mid
    scale: str | None = None  #: config attribute multiplying each sublayer's output before the residual add


PARTS: dict[str, Parts] = {
    "falcon": Parts("transformer.h", "self_attention.dense", "mlp.dense_4h_to_h"),
    "granite": Parts(
        "model.layers", "self_attn.o_proj", "mlp.down_proj", "post_attention_layernorm", "residual_multiplier"
    ),
    "cohere": Parts("model.layers", "self_attn.o_proj", "mlp.down_proj"),
}


def supported(name: str) -> bool:
    return name in PARTS


def hand_run(name: str, hf_model: torch.nn.Module, ids: list[int]) -> dict[str, torch.Tensor]:
    """The reference hooks of ``hf_model`` (architecture ``name``) on ``ids``, batch axis dropped."""
    parts = PARTS[name]
    config = hf_model.config
    scale = getattr(config, parts.scale) if parts.scale else 1.0
    n_heads = config.num_attention_heads
    out: dict[str, torch.Tensor] = {}
    handles = []

    def save(key: str, multiplier: float = 1.0, of_input: bool = False):
        def hook(module, args, output):
            x = args[0] if of_input else (output if isinstance(output, torch.Tensor) else output[0])
            out[key] = x[0].detach().clone() * multiplier

        return hook

    def save_input(key: str):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            out[key] = x[0].detach().clone()

        return hook

    for layer, block in enumerate(hf_model.get_submodule(parts.blocks)):
        p = f"blocks.{layer}."
        handles.append(block.register_forward_pre_hook(save_input(p + "hook_resid_pre"), with_kwargs=True))
        handles.append(block.register_forward_hook(save(p + "hook_resid_post")))
        attn_out, mlp_out = block.get_submodule(parts.attn_out), block.get_submodule(parts.mlp_out)
        handles.append(attn_out.register_forward_hook(save(p + "attn.hook_z", of_input=True)))
        handles.append(attn_out.register_forward_hook(save(p + "hook_attn_out", scale)))
        handles.append(mlp_out.register_forward_hook(save(p + "mlp.hook_post", of_input=True)))
        handles.append(mlp_out.register_forward_hook(save(p + "hook_mlp_out", scale)))
        if parts.mid_norm:
            mid_norm = block.get_submodule(parts.mid_norm)
            handles.append(mid_norm.register_forward_hook(save(p + "hook_resid_mid", of_input=True)))
    try:
        with torch.no_grad():
            logits = hf_model(torch.tensor([ids])).logits[0]
    finally:
        for handle in handles:
            handle.remove()
    for key in [k for k in out if k.endswith("attn.hook_z")]:
        out[key] = out[key].view(out[key].shape[0], n_heads, -1)

    # a twin built with eager attention (Falcon's set_attn_implementation("eager") leaves it non-causal)
    eager = AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation="eager").eval()
    eager.load_state_dict(hf_model.state_dict())
    with torch.no_grad():
        eager_out = eager(torch.tensor([ids]), output_attentions=True)
    assert (eager_out.logits[0] - logits).abs().max() < 1e-5, f"{name}: the eager twin's logits differ"
    attentions = eager_out.attentions
    for layer, pattern in enumerate(attentions):
        out[f"blocks.{layer}.attn.hook_pattern"] = pattern[0]
    out["logits"] = logits
    return out
