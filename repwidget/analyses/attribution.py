"""Direct logit attribution: how much each component writes the logit of a token (or a token against a foil).

The final residual stream is the sum of the embeddings, every attention and every MLP output (additive
architectures). With the final norm's scale frozen at its value on that stream (as TransformerLens's
``apply_ln_to_stack``), the norm and the unembedding are linear, so the logit splits exactly into one
number per component plus a bias no component owns: ``embed + attn.sum() + mlp.sum() + bias == total``.
A head's share goes through its slice of the attention output projection (and a post-attention norm,
also with its scale frozen), so ``heads.sum(-1) == attn - attn_bias``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ..model.model import Model
    from ..run import Run


class Frozen:
    """A LayerNorm- or RMSNorm-like module with its scale frozen at its value on one vector ``x``: the linear map
    ``c -> weight * P(c) / scale`` (``P`` centres for a LayerNorm) and its bias. Which kind it is is found by
    comparing the module's output on ``x`` with each kind's formula."""

    def __init__(self, module: nn.Module | None, x: torch.Tensor) -> None:
        self.center, self.scale, self.weight, self.bias, self.eps = False, torch.ones(()), None, None, 0.0
        if module is None:
            return
        x = x.float()
        with torch.no_grad():
            y = module(x[None])[0].float()
        weight = getattr(module, "weight", None)
        weight = weight.detach().float() if isinstance(weight, torch.Tensor) else torch.ones_like(x)
        bias = getattr(module, "bias", None)
        bias = bias.detach().float() if isinstance(bias, torch.Tensor) else torch.zeros_like(x)
        names = ("eps", "variance_epsilon", "epsilon")
        eps = next((float(getattr(module, k)) for k in names if hasattr(module, k)), 1e-6)
        centred = x - x.mean()
        kinds = {
            "layernorm": (True, (centred.pow(2).mean() + eps).sqrt(), weight),
            "rmsnorm": (False, (x.pow(2).mean() + eps).sqrt(), weight),
            "rmsnorm (1 + weight)": (False, (x.pow(2).mean() + eps).sqrt(), 1 + weight),
        }
        for center, scale, w in kinds.values():
            form = w * ((centred if center else x) / scale) + (bias if center else 0)
            if torch.allclose(form, y, atol=1e-4 * (1 + float(y.abs().max())), rtol=1e-3):
                self.center, self.scale, self.weight, self.eps = center, scale, w, eps
                self.bias = bias if center else torch.zeros_like(x)
                return
        raise ValueError(
            f"{type(module).__name__} is neither a LayerNorm nor an RMSNorm: direct logit attribution freezes "
            "the scale of such norms only"
        )

    def linear(self, c: torch.Tensor) -> torch.Tensor:
        """The norm's linear part, scale frozen, on ``c`` ``[..., d]``."""
        if self.weight is None:
            return c.float()
        c = c.float()
        if self.center:
            c = c - c.mean(-1, keepdim=True)
        return self.weight * c / self.scale

    def scales(self, x: torch.Tensor) -> torch.Tensor:
        """The norm's scale on each row of ``x`` ``[..., d]`` (``[..., 1]``), by the formula of its kind."""
        x = x.float()
        c = x - x.mean(-1, keepdim=True) if self.center else x
        return (c.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()

    def offset(self, d: int) -> torch.Tensor:
        return torch.zeros(d) if self.bias is None else self.bias


@dataclass(frozen=True)
class Attribution:
    """Direct logit attributions at one position; each number is in logits (of ``target``, or of ``target``
    minus ``foil``)."""

    target: int
    foil: int | None
    position: int
    embed: float  #: the embeddings' share (token and position)
    attn: torch.Tensor  #: ``[layer]``: each attention output's
    mlp: torch.Tensor  #: ``[layer]``: each MLP output's
    heads: torch.Tensor  #: ``[layer, head]``: each head's (its slice of the output projection)
    attn_bias: torch.Tensor  #: ``[layer]``: what the attention output's biases add (no head owns it)
    bias: float  #: what no component owns: the final norm's and the unembedding's biases
    total: float  #: the logit (difference) itself: ``embed + attn.sum() + mlp.sum() + bias``
    #: the model soft-caps its logits: ``total`` is the logit before the cap (the cap is not linear)
    capped: bool = False
    _run: Run | None = field(default=None, repr=False, compare=False)
    _readout: torch.Tensor | None = field(default=None, repr=False, compare=False)
    _final: Frozen | None = field(default=None, repr=False, compare=False)
    _heads: list[tuple[torch.Tensor, Frozen]] = field(default_factory=list, repr=False, compare=False)

    def of(self, vector: torch.Tensor) -> torch.Tensor:
        """The direct attribution of any vector(s) ``[..., d_model]`` added to the final residual stream."""
        return self._final.linear(vector.to(self._readout.device)) @ self._readout

    def head_share(self, layer: int, head: int, z: torch.Tensor) -> float:
        """What head ``layer.head`` would directly add to the logit (difference) if its ``z`` (``[d_head]``) were
        ``z``, everything else frozen as in this run (the norms' scales included)."""
        w_o, chain = self._heads[layer]
        d = self._run.model.d_head
        vector = w_o[:, head * d : (head + 1) * d] @ z.float()
        return float(self.of(self._run.model.arch.attn_scale * chain.linear(vector)))

    def neurons(self, layer: int) -> torch.Tensor:
        """``[d_mlp]``: each MLP neuron of ``layer``'s share at this position (their sum is ``mlp[layer]`` less the
        down projection's bias)."""
        model, run = self._run.model, self._run
        if model.arch.moe or model.arch.mlp_down is None:
            raise ValueError("this model's MLP is a mixture of experts: it has no single layer of neurons")
        hooks = [f"blocks.{layer}.mlp.hook_post", f"blocks.{layer}.hook_mlp_out"]
        acts = _captured(run, hooks)
        block = model.hf.get_submodule(model.arch.blocks)[layer]
        down = block.get_submodule(model.arch.mlp_down)
        post = acts[hooks[0]][self.position].float()
        per_neuron = post[:, None] * _weight(down, post.shape[0]).T  # [d_mlp, d_model]
        mlp_end = block.get_submodule(model.arch.mlp_end)
        out = _projected(down, post)
        chain = _chain(mlp_end, out, acts[hooks[1]][self.position] / model.arch.mlp_scale)
        return self.of(model.arch.mlp_scale * chain.linear(per_neuron))


def _weight(projection: nn.Module, width_in: int) -> torch.Tensor:
    """A projection's weight as ``[out, in]`` (a Conv1D stores ``[in, out]``)."""
    w = projection.weight.detach().float()
    return w.T if type(projection).__name__ == "Conv1D" or (w.shape[0] == width_in and w.shape[1] != width_in) else w


def _projected(projection: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return projection(x[None].to(projection.weight.dtype))[0].float()


def _chain(end: nn.Module, projected: torch.Tensor, ended: torch.Tensor) -> Frozen:
    """What turns a projection's output into its branch's output: nothing, or a norm (scale frozen)."""
    if torch.allclose(projected, ended.float(), atol=1e-5 * (1 + float(projected.abs().max())), rtol=1e-4):
        return Frozen(None, projected)
    return Frozen(end, projected)


def _captured(run: Run, hooks: list[str]) -> dict[str, torch.Tensor]:
    if all(h in run for h in hooks):
        return {h: run[h] for h in hooks}
    return run.model.run(run.token_ids, run.interventions, capture=hooks).result.cache


def direct_logit_attribution(
    run: Run, target: int | str, foil: int | str | None = None, position: int = -1
) -> Attribution:
    """Each component's direct share of the logit of ``target`` (a token id, or a string: the one token that
    would follow the prompt up to ``position``, see :func:`resolve_token`), or of ``target`` minus ``foil``, at
    ``position``: embeddings, every attention output and head, every MLP output (``.neurons(layer)`` for one
    layer's neurons), and the bias no component owns. The final norm's scale (and any post-attention or post-MLP
    norm's) is frozen at its value in this run, so the shares add up to the logit exactly. On a model that
    soft-caps its logits, ``total`` is the logit before the cap (``capped``)."""
    model = run.model
    arch = model.arch
    if not model.has_unembed:
        raise ValueError("this model has no unembedding: there is no logit to attribute")
    if not arch.additive:
        raise ValueError("this model's blocks normalise the residual stream (post-norm): it is not a sum of components")
    if getattr(model, "weightless", False):
        raise ValueError(
            "direct logit attribution reads the final norm's and the unembedding's weights, which are on NDIF only "
            "for this model; load the weights (remote=False)"
        )
    position = check_position(position, len(run.token_ids))
    prompt = run.token_ids[: position + 1]  # a string target is the token that would follow it
    target = resolve_token(model, target, prompt)
    foil = None if foil is None else resolve_token(model, foil, prompt)
    layers = range(model.n_layers)
    hooks = ["blocks.0.hook_resid_pre", f"blocks.{model.n_layers - 1}.hook_resid_post"]
    hooks += [f"blocks.{layer}.{t}" for layer in layers for t in ("attn.hook_z", "hook_attn_out", "hook_mlp_out")]
    acts = {h: v[position] for h, v in _captured(run, hooks).items()}
    final = acts[hooks[1]].float()
    norm = model.hf.get_submodule(arch.final_norm) if arch.final_norm is not None else None
    frozen = Frozen(norm, final)
    unembed = model.hf.get_submodule(arch.unembed)
    weight = model.unembedding().float()
    readout = weight[target] - (weight[foil] if foil is not None else 0)
    unembed_bias = getattr(unembed, "bias", None)
    unembed_bias = unembed_bias.detach().float() if isinstance(unembed_bias, torch.Tensor) else None
    b_u = 0.0
    if isinstance(unembed_bias, torch.Tensor):
        b_u = float(unembed_bias[target] - (unembed_bias[foil] if foil is not None else 0))
    scale, capped = _logit_scale(run, position, frozen, weight, unembed_bias)
    readout = readout * scale
    of = lambda v: frozen.linear(v.to(readout.device)) @ readout  # noqa: E731

    heads, attn, attn_bias, mlp, maps = [], [], [], [], []
    blocks = model.hf.get_submodule(arch.blocks)
    for layer in layers:
        block = blocks[layer]
        z = acts[f"blocks.{layer}.attn.hook_z"].float()  # [heads, d_head]
        projection = block.get_submodule(arch.attn_proj)
        flat = z.reshape(-1)
        w_o = _weight(projection, flat.shape[0])  # [d_model, heads * d_head]
        per_head = torch.stack([w_o[:, h * arch.d_head : (h + 1) * arch.d_head] @ z[h] for h in range(arch.n_heads)])
        out = acts[f"blocks.{layer}.hook_attn_out"].float()
        chain = _chain(block.get_submodule(arch.attn_end), _projected(projection, flat), out / arch.attn_scale)
        head_shares = of(arch.attn_scale * chain.linear(per_head))
        maps.append((w_o, chain))
        heads.append(head_shares)
        attn.append(float(of(out)))
        attn_bias.append(attn[-1] - float(head_shares.sum()))
        mlp.append(float(of(acts[f"blocks.{layer}.hook_mlp_out"].float())))
    embed = float(of(acts["blocks.0.hook_resid_pre"].float()))
    bias = float(frozen.offset(final.shape[-1]).to(readout.device) @ readout) + b_u * scale
    total = embed + sum(attn) + sum(mlp) + bias
    return Attribution(
        target, foil, position, embed, torch.tensor(attn), torch.tensor(mlp), torch.stack(heads),
        torch.tensor(attn_bias), bias, total, capped, run, readout, frozen, maps,
    )  # fmt: skip


def _logit_scale(run: Run, position: int, frozen: Frozen, weight, bias) -> tuple[float, bool]:
    """The factor the model applies to its logits after the unembedding (Cohere, Granite), and whether it
    soft-caps them instead (Gemma 2): the unembedding's output compared with the model's logits."""
    final = run.model.run(run.token_ids, run.interventions, capture=[]) if run.logits_at(position) is None else run
    actual = final.logits_at(position).float()
    raw = (frozen.linear(_final_resid(run, position)) + frozen.offset(weight.shape[1])) @ weight.T
    if isinstance(bias, torch.Tensor):
        raw = raw + bias.float()
    k = float((actual * raw).sum() / raw.pow(2).sum().clamp_min(1e-12))
    if torch.allclose(actual, k * raw, atol=1e-4 * (1 + float(actual.abs().max())), rtol=1e-3):
        return (1.0 if abs(k - 1) < 1e-4 else k), False
    return 1.0, True


def _final_resid(run: Run, position: int) -> torch.Tensor:
    hook = f"blocks.{run.model.n_layers - 1}.hook_resid_post"
    return _captured(run, [hook])[hook][position].float()


def resolve_token(model: Model, token: int | str, prompt: Sequence[int]) -> int:
    """The id of ``token``: a token id, or a string read as the token that would follow ``prompt`` (token ids).

    A string is appended to the prompt's text, after a space unless it starts with one or the prompt ends with
    one, and the new token is taken: ``"Mary"`` after ``"... gave a drink to"`` is ``" Mary"`` on a byte-level
    BPE tokenizer (SmolLM2, GPT-2) and ``"mary"`` on a word-level one. Refused, with the tokens it makes, when that
    is more than one token, an unknown token, or merges with the prompt's last token. One resolver for every
    string target: logit differences, direct logit attribution, Hydra.
    """
    if not isinstance(token, str):
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < model.vocab_size:
            raise ValueError(
                f"token must be a token id in 0..{model.vocab_size - 1} or a string of one token, got {token!r:.40}"
            )
        return token
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError(f"{token!r} is a string and this model has no tokenizer: give its token id")
    if not token:
        raise ValueError("an empty string is no token: give a token (such as ' Mary') or its id")
    text = tokenizer.decode(list(prompt))
    space = "" if token[0].isspace() or not text or text[-1].isspace() else " "
    base = tokenizer.encode(text, add_special_tokens=False)
    full = tokenizer.encode(text + space + token, add_special_tokens=False)
    new = full[len(base) :]
    pieces = ", ".join(repr(tokenizer.decode([i])) for i in new[:6])
    unknown = getattr(tokenizer, "unk_token_id", None)
    if full[: len(base)] != base:
        problem = "merges with the prompt's last token"
    elif len(new) != 1:
        problem = f"is {len(new)} tokens there ({pieces})"
    elif new[0] == unknown and token.strip() != tokenizer.unk_token:
        problem = "is an unknown token to this tokenizer"
    else:
        return new[0]
    raise ValueError(f"{space + token!r} after the prompt {problem}: give one token (or its id)")


def token_label(model: Model, token: int) -> str:
    """``' Mary'#5329``: a token id with its text, as metric names show it."""
    text = model.tokenizer.decode([token]) if model.tokenizer is not None else ""
    return f"{text!r}#{token}" if text else f"#{token}"


def check_position(position: int, n: int) -> int:
    """``position`` (negative from the end) as an index into ``n`` tokens, or a one-line error."""
    if not isinstance(position, int) or isinstance(position, bool) or not -n <= position < n:
        raise ValueError(f"position {position!r:.20} is outside the {n} tokens of this prompt (use 0..{n - 1} or -1)")
    return position % n
