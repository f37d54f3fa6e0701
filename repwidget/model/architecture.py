"""Find the parts of any Hugging Face model once, by tracing one tiny forward pass.

Nothing else in repwidget is architecture-specific: it only uses the module paths found here.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn

from ..placement import input_device
from .modes import eager_attention, eval_mode


@dataclass(frozen=True)
class Architecture:
    """Where the parts of a model live, as module paths relative to the model or to a block."""

    blocks: str  #: the ModuleList of decoder (or encoder) blocks
    attn: str  #: in a block: the module that computes the attention probabilities
    pattern_index: int  #: where in that module's output tuple the probabilities are
    attn_out: str  #: in a block: the attention output projection (its input is hook_z)
    mlp_out: str  #: in a block: the MLP down projection (its input is mlp.hook_post)
    final_norm: str | None  #: the norm applied after the last block, if any
    unembed: str | None  #: the output embedding (lm_head), if any
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    #: True when ``logits == unembed(final hidden)`` exactly, so logits can be computed lazily.
    plain_logits: bool


def _is_linear(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, torch.Tensor)
        and weight.dim() == 2
        and not isinstance(module, nn.Embedding)
        and ("linear" in type(module).__name__.lower() or type(module).__name__ == "Conv1D")
    )


def _first_tensor(x: object) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], torch.Tensor):
        return x[0]
    return None


def find_blocks(model: nn.Module, n_layers: int) -> str:
    """The path of the ModuleList holding ``n_layers`` blocks of one class (the largest such)."""
    best, best_size = None, -1
    for name, module in model.named_modules():
        same_class = isinstance(module, nn.ModuleList) and len({type(m) for m in module}) == 1
        if same_class and len(module) == n_layers > 0:
            size = sum(p.numel() for p in module.parameters())
            if size > best_size:
                best, best_size = name, size
    if best is None:
        raise ValueError(
            f"could not find the {n_layers} transformer blocks of {type(model).__name__}: no ModuleList "
            f"of {n_layers} identical modules. repwidget supports transformer models from Hugging Face."
        )
    return best


def _n_layers(config) -> int:
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"{type(config).__name__} does not say how many layers the model has")


def discover(model: nn.Module, vocab_size: int) -> Architecture:
    """Trace one forward pass of 4 tokens (eager attention) and read off the model's parts."""
    config = model.config
    n_layers = _n_layers(config)
    blocks_path = find_blocks(model, n_layers)
    blocks = model.get_submodule(blocks_path)
    block0 = blocks[0]
    n_heads = int(config.num_attention_heads)
    d_model = int(config.hidden_size)

    order: list[tuple[str, nn.Module]] = []  # module exits, in call order
    seen: dict[str, tuple[torch.Tensor | None, object]] = {}
    unembed = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {id(m): n for n, m in model.named_modules()}

    def record(module, args, kwargs, output):
        name = names[id(module)]
        x = args[0] if args else next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)
        order.append((name, module))
        seen[name] = (x if isinstance(x, torch.Tensor) else None, output)

    device = input_device(model)
    pad = getattr(config, "pad_token_id", None)
    ids = torch.tensor([[i for i in range(5) if i != pad][:4]], device=device).remainder(max(vocab_size, 1))
    with ExitStack() as stack, torch.inference_mode():
        stack.enter_context(eager_attention(model))
        stack.enter_context(eval_mode(model))
        for module in model.modules():
            stack.callback(module.register_forward_hook(record, with_kwargs=True).remove)
        out = model(input_ids=ids, use_cache=False) if _accepts_use_cache(model) else model(input_ids=ids)

    prefix = f"{blocks_path}.0."
    in_block0 = [(n[len(prefix) :], m) for n, m in order if n.startswith(prefix)]

    # attention: the innermost module returning a [batch, heads, query, key] tensor of probabilities
    attn, pattern_index = None, -1
    for rel, _ in in_block0:
        output = seen[prefix + rel][1]
        if isinstance(output, (tuple, list)):
            hits = [i for i, o in enumerate(output) if _is_pattern(o, n_heads, 4)]
            if hits:
                attn, pattern_index = rel, hits[0]
                break
    if attn is None:
        raise ValueError(f"could not find the attention probabilities in {type(block0).__name__}")

    linears = [(rel, seen[prefix + rel]) for rel, m in in_block0 if _is_linear(m)]
    dims = {rel: (x.shape[-1], _first_tensor(o).shape[-1]) for rel, (x, o) in linears}
    to_model = [rel for rel, _ in linears if dims[rel][1] == d_model]
    if len(to_model) < 2:
        raise ValueError(f"could not find the attention and MLP output projections in {type(block0).__name__}")
    mlp_out = to_model[-1]
    attn_out = to_model[-2]
    d_attn = dims[attn_out][0]
    if d_attn % n_heads:
        raise ValueError(
            f"attention output projection {attn_out} has width {d_attn}, not a multiple of {n_heads} heads"
        )

    base_path = blocks_path.rsplit(".", 1)[0] if "." in blocks_path else ""
    final_norm = None
    after = False
    last_block = f"{blocks_path}.{n_layers - 1}"
    for name, _ in order:
        if name == last_block:
            after = True
        elif after and "norm" in type(model.get_submodule(name)).__name__.lower():
            parent = name.rsplit(".", 1)[0] if "." in name else ""
            if parent == base_path:
                final_norm = name
                break

    unembed_path = names.get(id(unembed)) if unembed is not None else None
    plain = False
    logits = getattr(out, "logits", None)
    if unembed_path is not None and isinstance(logits, torch.Tensor):
        head_out = _first_tensor(seen[unembed_path][1])
        plain = head_out is not None and head_out.shape == logits.shape and torch.equal(head_out, logits)

    n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)
    return Architecture(
        blocks=blocks_path,
        attn=attn,
        pattern_index=pattern_index,
        attn_out=attn_out,
        mlp_out=mlp_out,
        final_norm=final_norm,
        unembed=unembed_path,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_model=d_model,
        d_head=d_attn // n_heads,
        d_mlp=dims[mlp_out][0],
        plain_logits=plain,
    )


def _is_pattern(x: object, n_heads: int, n_tokens: int) -> bool:
    if not (isinstance(x, torch.Tensor) and x.dim() == 4 and tuple(x.shape[1:]) == (n_heads, n_tokens, n_tokens)):
        return False
    atol = 1e-3 if x.dtype in (torch.float32, torch.float64) else 3e-2  # rows of half-precision probabilities
    return torch.allclose(x.float().sum(-1), torch.ones((), device=x.device), atol=atol)


def _accepts_use_cache(model: nn.Module) -> bool:
    return getattr(model.config, "use_cache", None) is not None
