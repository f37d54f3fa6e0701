"""Find the parts of any Hugging Face model once, by tracing one tiny forward pass.

Nothing else in repwidget is architecture-specific: it only uses the module paths and numbers found here.
What a block adds to the residual stream is found numerically, as TransformerLens defines it: the
attention's contribution ``hook_attn_out`` and the MLP's ``hook_mlp_out`` are the outputs ``y`` of the
modules ending each branch, times the scale the block applies (``resid_mid = resid_pre + c * y``), so
post-attention norms (Gemma 2/3, OLMo 2) and residual multipliers (Granite) are read where they act.
"""

from __future__ import annotations

import inspect
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from torch import nn

from ..placement import input_device
from .fit import branch_scale, has_experts, is_linear, is_pattern, mlp_input, rounding_equal, short_decimal
from .modes import eager_attention, eval_mode

#: tokens in the tracing pass (a prime, so that no reshape of the activations is ambiguous)
TRACE_TOKENS = 5


class UnsupportedModelError(ValueError):
    """A model repwidget cannot read (no attention probabilities, no residual stream it can decompose)."""


@dataclass(frozen=True)
class Architecture:
    """Where the parts of a model live, as module paths relative to the model or to a block."""

    blocks: str  #: the ModuleList of decoder (or encoder) blocks
    attn: str  #: in a block: the module that computes the attention probabilities
    pattern_index: int  #: where in that module's output tuple the probabilities are
    attn_proj: str  #: in a block: the attention output projection (its input is hook_z)
    attn_end: str  #: in a block: the module whose output, times attn_scale, is what attention adds (hook_attn_out)
    attn_scale: float
    mlp_end: str  #: in a block: the module whose output, times mlp_scale, is what the MLP adds (hook_mlp_out)
    mlp_scale: float
    mlp_down: str | None  #: in a block: the MLP down projection (its input is mlp.hook_post); None for MoE
    final_norm: str | None  #: the norm applied after the last block, if any
    unembed: str | None  #: the output embedding (lm_head), if any
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int  #: width of mlp.hook_post (0 for a mixture-of-experts MLP)
    #: True when ``logits == unembed(final hidden)`` exactly, so logits can be computed lazily
    plain_logits: bool
    #: True when ``logits == unembed(final_norm(last resid_post))``: the lens reads a residual stream directly;
    #: otherwise the model's own head (soft-capping, logit scales) is replayed on it
    plain_readout: bool = True
    #: attention and MLP both read hook_resid_pre (GPT-J, Falcon, Phi, GPT-NeoX parallel): no hook_resid_mid
    parallel: bool = False
    #: resid_post == resid_mid + mlp_out; False for post-norm blocks (BERT), which normalise the sums
    additive: bool = True
    #: the MLP is a mixture of experts: no single neuron basis (no mlp.hook_post)
    moe: bool = False
    #: the attention is causal (a decoder)
    causal: bool = True
    #: in a block: the module whose input is the MLP's (normalised) input, mlp.hook_in; None when no one module
    #: receives all of it (the MLP's projections are the block's own children)
    mlp_in: str | None = None
    #: extra keyword arguments the forward pass needs for attention probabilities to exist
    pattern_kwargs: dict = field(default_factory=dict)
    #: what a block returns: 0 for a tensor, else the length of its tuple (the hidden state first)
    block_output: int = 0


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
        raise UnsupportedModelError(
            f"could not find the {n_layers} transformer blocks of {type(model).__name__}: no ModuleList "
            f"of {n_layers} identical modules. repwidget supports transformer models from Hugging Face."
        )
    return best


def _n_layers(config) -> int:
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise UnsupportedModelError(f"{type(config).__name__} does not say how many layers the model has")


@dataclass
class _Call:
    """One module call inside the traced block: when it started and ended, what it read and returned."""

    path: str
    module: nn.Module
    enter: int
    exit: int = -1
    input: torch.Tensor | None = None
    output: object = None


class _Trace:
    """Every module call of one forward pass, in order."""

    def __init__(self, model: nn.Module) -> None:
        self.names = {id(m): n for n, m in model.named_modules()}
        self.calls: list[_Call] = []
        self.open: dict[int, list[_Call]] = {}
        self.clock = 0

    def enter(self, module, args, kwargs):
        x = args[0] if args else next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)
        x = x.detach().clone() if isinstance(x, torch.Tensor) else None  # a model may change it in place later
        call = _Call(self.names[id(module)], module, self.clock, input=x)
        self.clock += 1
        self.calls.append(call)
        self.open.setdefault(id(module), []).append(call)

    def leave(self, module, args, kwargs, output):
        call = self.open[id(module)].pop()
        first = _first_tensor(output)
        if first is not None:  # kept as it is now: Falcon adds to its MLP's output in place afterwards
            first = first.detach().clone()
            output = first if isinstance(output, torch.Tensor) else (first, *output[1:])
        call.exit, call.output = self.clock, output
        self.clock += 1


def _trace(model: nn.Module, inputs: dict, extra: dict) -> tuple[_Trace, object]:
    trace = _Trace(model)
    with ExitStack() as stack, torch.inference_mode():
        stack.enter_context(eager_attention(model))
        stack.enter_context(eval_mode(model))
        for module in model.modules():
            stack.callback(module.register_forward_pre_hook(trace.enter, with_kwargs=True).remove)
            stack.callback(module.register_forward_hook(trace.leave, with_kwargs=True).remove)
        kwargs = {"use_cache": False} if getattr(model.config, "use_cache", None) is not None else {}
        out = model(**inputs, **kwargs, **extra)
    return trace, out


def _flat(x: object, d_model: int, n: int) -> torch.Tensor | None:
    """``x`` as ``[tokens, d_model]`` floats if it is one activation of the residual stream's width."""
    t = _first_tensor(x)
    if t is None or not t.is_floating_point() or t.shape[-1] != d_model or t.numel() != n * d_model:
        return None
    return t.detach().reshape(n, d_model).float()


def discover(model: nn.Module, vocab_size: int, inputs: dict | None = None) -> Architecture:
    """Trace one forward pass of a few tokens (eager attention) and read off the model's parts.

    ``inputs`` replaces the token ids (a vision transformer's ``{"pixel_values": ...}``: its patches are the
    tokens)."""
    config = model.config
    n_layers = _n_layers(config)
    blocks_path = find_blocks(model, n_layers)
    n_heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0) or 0)
    d_model = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 0)
    if not n_heads or not d_model:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no attention heads in its config: repwidget reads transformer models "
            "with attention (state-space and recurrent models are not supported)"
        )
    if inputs is None:
        pad = getattr(config, "pad_token_id", None)
        ids = torch.tensor([[i for i in range(1, TRACE_TOKENS + 3) if i != pad][:TRACE_TOKENS]])
        inputs = {"input_ids": ids.remainder(max(vocab_size, 1)).to(input_device(model))}

    extra: dict = {}
    trace, out = _trace(model, inputs, extra)
    prefix = f"{blocks_path}.0."
    n = _tokens(trace, prefix, d_model)
    pattern = _find_pattern(trace, prefix, n_heads, n)
    if pattern is None and "output_attentions" in inspect.signature(model.forward).parameters:
        extra = {"output_attentions": True}  # older implementations return probabilities only when asked
        trace, out = _trace(model, inputs, extra)
        pattern = _find_pattern(trace, prefix, n_heads, n)
    if pattern is None:
        raise UnsupportedModelError(
            f"could not find the attention probabilities in {type(model).__name__}'s blocks: repwidget reads "
            "transformer models with attention (state-space and recurrent models are not supported)"
        )
    attn_call, pattern_index, probs = pattern
    block_call = next(c for c in trace.calls if c.path == prefix[:-1])
    inner = [c for c in trace.calls if c.path.startswith(prefix)]
    rel = lambda call: call.path[len(prefix) :]  # noqa: E731
    once = {path for path in {c.path for c in inner} if sum(c.path == path for c in inner) == 1}

    r0, r2 = _flat(block_call.input, d_model, n), _flat(block_call.output, d_model, n)
    if r0 is None or r2 is None:
        raise UnsupportedModelError(f"{type(block_call.module).__name__} does not map the residual stream to itself")
    outputs = [(c, _flat(c.output, d_model, n)) for c in inner if c.path in once]
    outputs = [(c, y) for c, y in outputs if y is not None]
    eps = torch.finfo(_first_tensor(block_call.output).dtype).eps
    parts = _branches(r0, r2, inner, outputs, attn_call, d_model, n, eps)
    attn_end, attn_scale, mlp_end, mlp_scale, parallel, additive, mid_enter = parts

    linears = [c for c in inner if is_linear(c.module) and _first_tensor(c.output) is not None]
    to_model = [c for c in linears if _first_tensor(c.output).shape[-1] == d_model]
    attn_proj = next(
        (c for c in reversed(to_model) if attn_call.enter <= c.enter and c.exit <= attn_end.exit), None
    ) or next((c for c in reversed(to_model) if c.exit <= attn_end.exit), None)
    if attn_proj is None or attn_proj.input is None or attn_proj.input.shape[-1] % n_heads:
        raise UnsupportedModelError(
            f"could not find the attention output projection in {type(block_call.module).__name__}"
        )
    d_attn = attn_proj.input.shape[-1]
    mlp_start = mid_enter if mid_enter is not None else attn_end.exit
    in_mlp = [c for c in inner if mlp_start <= c.enter and c.exit <= mlp_end.exit]
    downs = [c for c in to_model if c is not attn_proj and c in in_mlp]
    moe = (
        len(downs) != 1
        or downs[0].input is None
        or downs[0].input.numel() % n != 0
        or any(has_experts(c.module) for c in in_mlp)
    )
    mlp_down = None if moe else downs[0]
    mlp_in = mlp_input(in_mlp, lambda call: _flat(call.input, d_model, n))
    d_mlp = 0 if mlp_down is None else mlp_down.input.numel() // n

    final_norm, unembed_path = _head(model, trace, blocks_path, n_layers)
    plain, plain_readout = _plain_head(model, trace, out, blocks_path, n_layers, final_norm, unembed_path, d_model, n)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)
    causal = bool(torch.all(probs[0].float().triu(1) == 0))
    return Architecture(
        blocks=blocks_path,
        attn=rel(attn_call),
        pattern_index=pattern_index,
        attn_proj=rel(attn_proj),
        attn_end=rel(attn_end),
        attn_scale=short_decimal(attn_scale),
        mlp_end=rel(mlp_end),
        mlp_scale=short_decimal(mlp_scale),
        mlp_down=None if mlp_down is None else rel(mlp_down),
        final_norm=final_norm,
        unembed=unembed_path,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_model=d_model,
        d_head=d_attn // n_heads,
        d_mlp=d_mlp,
        plain_logits=plain,
        plain_readout=plain_readout,
        parallel=parallel,
        additive=additive,
        moe=bool(moe),
        causal=causal,
        mlp_in=None if mlp_in is None else rel(mlp_in),
        pattern_kwargs=extra,
        block_output=0 if isinstance(block_call.output, torch.Tensor) else len(block_call.output),
    )


def _tokens(trace: _Trace, prefix: str, d_model: int) -> int:
    """How many tokens the traced pass had: the first block's input is ``[1, tokens, d_model]``."""
    x = next((c.input for c in trace.calls if c.path == prefix[:-1]), None)
    if x is None or x.dim() != 3 or x.shape[-1] != d_model:
        raise UnsupportedModelError(f"the blocks at {prefix[:-1]!r} do not read [batch, tokens, {d_model}] activations")
    return int(x.shape[1])


def _find_pattern(trace: _Trace, prefix: str, n_heads: int, n: int):
    """The innermost module of block 0 returning ``[batch, heads, query, key]`` probabilities."""
    for call in sorted((c for c in trace.calls if c.path.startswith(prefix) and c.exit >= 0), key=lambda c: c.exit):
        if isinstance(call.output, (tuple, list)):
            for i, o in enumerate(call.output):
                if is_pattern(o, n_heads, n):
                    return call, i, o
    return None


def _branches(r0, r2, inner, outputs, attn_call, d_model: int, n: int, eps: float):
    """What each branch adds to the residual stream: ``(attn_end, attn_scale, mlp_end, mlp_scale, parallel,
    additive, resid_mid's entry time)``."""
    seen: list[torch.Tensor] = [r0]
    for call in sorted(inner, key=lambda c: c.enter):
        if call.enter <= attn_call.exit:
            continue
        x = _flat(call.input, d_model, n)
        if x is None:
            continue
        earlier = [y for c, y in outputs if c.exit < call.enter]
        if any(torch.equal(x, t) for t in seen + earlier):
            continue
        # a new value of the residual stream's width: resid_mid = resid_pre + what attention added
        ends = [
            (c, branch_scale(x - r0, y, eps)) for c, y in outputs if c.exit < call.enter and c.exit > attn_call.enter
        ]
        ends = [(c, s) for c, s in ends if s is not None]
        if not ends:
            break
        attn_end, attn_scale = max(ends, key=lambda e: e[0].exit)
        mlp_ends = [(c, branch_scale(r2 - x, y, eps)) for c, y in outputs if c.enter > call.enter]
        mlp_ends = [(c, s) for c, s in mlp_ends if s is not None]
        if mlp_ends:
            mlp_end, mlp_scale = max(mlp_ends, key=lambda e: e[0].exit)
            return attn_end, attn_scale, mlp_end, mlp_scale, False, True, call.enter
        # post-norm blocks (BERT): the MLP's output is normalised with the sum; hook_mlp_out is its last projection
        later = [(c, y) for c, y in outputs if c.enter > call.enter and is_linear(c.module)]
        if later:
            return attn_end, attn_scale, later[-1][0], 1.0, False, False, call.enter
        break
    # parallel blocks: resid_post = resid_pre + c_a * attention + c_m * mlp
    delta = r2 - r0
    candidates = [(c, y) for c, y in outputs if c.exit > attn_call.enter]
    best = None
    for i, (ca, ya) in enumerate(candidates):
        for cm, ym in candidates[i + 1 :]:
            if ca.exit >= cm.exit or ca.enter <= cm.enter <= ca.exit:
                continue
            basis = torch.stack([ya.reshape(-1), ym.reshape(-1)], 1)
            coef = torch.linalg.lstsq(basis, delta.reshape(-1, 1)).solution[:, 0]
            coef = torch.where((coef - 1).abs() < 16 * eps, torch.ones_like(coef), coef)
            fit = (basis @ coef).reshape(delta.shape)
            if rounding_equal(fit, delta, eps) and bool((coef.abs() > 1e-6).all()):
                key = (ca.exit, cm.exit)
                if best is None or key > best[0]:
                    best = (key, ca, float(coef[0]), cm, float(coef[1]))
    if best is None:
        raise UnsupportedModelError(
            "could not decompose a block's update of the residual stream into attention and MLP contributions"
        )
    _, attn_end, attn_scale, mlp_end, mlp_scale = best
    return attn_end, attn_scale, mlp_end, mlp_scale, True, True, None


def _head(model: nn.Module, trace: _Trace, blocks_path: str, n_layers: int) -> tuple[str | None, str | None]:
    """The final norm (the first norm after the last block that is a sibling of the block list) and lm_head."""
    base_path = blocks_path.rsplit(".", 1)[0] if "." in blocks_path else ""
    last_block = f"{blocks_path}.{n_layers - 1}"
    final_norm = None
    last_exit = max(c.exit for c in trace.calls if c.path == last_block)
    for call in sorted(trace.calls, key=lambda c: c.enter):
        if call.enter > last_exit and "norm" in type(call.module).__name__.lower():
            parent = call.path.rsplit(".", 1)[0] if "." in call.path else ""
            if parent == base_path:
                final_norm = call.path
                break
    unembed = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = trace.names
    return final_norm, (names.get(id(unembed)) if unembed is not None else None)


def _plain_head(model, trace, out, blocks_path, n_layers, final_norm, unembed_path, d_model, n) -> tuple[bool, bool]:
    """Whether logits are the unembedding of its input (lazy logits), and of the normalised last resid_post."""
    logits = getattr(out, "logits", None)
    if unembed_path is None or not isinstance(logits, torch.Tensor):
        return False, False
    head_call = next((c for c in trace.calls if c.path == unembed_path), None)
    head_out = _first_tensor(head_call.output) if head_call is not None else None
    plain = head_out is not None and head_out.shape == logits.shape and torch.equal(head_out, logits)
    last = next(c for c in trace.calls if c.path == f"{blocks_path}.{n_layers - 1}")
    resid = _first_tensor(last.output)
    with torch.inference_mode():
        hidden = model.get_submodule(final_norm)(resid) if final_norm is not None else resid
        read = model.get_submodule(unembed_path)(hidden)
    eps = torch.finfo(logits.dtype).eps if logits.is_floating_point() else 1e-7
    readout = plain and read.shape == logits.shape and rounding_equal(read.float(), logits.float(), eps)
    return plain, bool(readout)
