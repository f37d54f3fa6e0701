"""Which hooks a model has, and how wide each is: what its architecture says."""

from __future__ import annotations

from .architecture import Architecture


def why_missing(arch: Architecture, name: str) -> str | None:
    """Why a model of ``arch`` has no hook ``name`` (a valid name), or None when it has it."""
    template = name.split(".", 2)[2]
    if template == "hook_resid_mid" and arch.parallel:
        return (
            "this model's blocks are parallel (attention and MLP both read hook_resid_pre), so there is no "
            "hook_resid_mid; use hook_resid_pre, hook_attn_out and hook_mlp_out"
        )
    if template == "mlp.hook_post" and arch.moe:
        return (
            "this model's MLP is a mixture of experts, so it has no single layer of neurons (mlp.hook_post, "
            "neuron ablation); use hook_mlp_out, what the MLP adds to the residual stream"
        )
    if template == "mlp.hook_in" and arch.mlp_in is None:
        return (
            "no one module of this model's blocks receives the MLP's whole input (its projections are the block's "
            "own children), so there is no mlp.hook_in; use hook_resid_mid or hook_mlp_out"
        )
    return None


def hook_width(arch: Architecture, template: str, n_tokens: int = 1) -> int:
    """Values per token at a hook of ``template`` (``attn.hook_z`` flattened over heads; patterns
    ``heads * n_tokens``)."""
    widths = {
        "attn.hook_pattern": arch.n_heads * n_tokens,
        "attn.hook_z": arch.n_heads * arch.d_head,
        "mlp.hook_post": arch.d_mlp,
    }
    return widths.get(template, arch.d_model)
