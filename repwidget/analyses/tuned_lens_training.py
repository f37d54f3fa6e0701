"""Training a :class:`~repwidget.analyses.tuned_lens.TunedLens`: every layer's residual stream harvested once in
padded batches, the translators started at identity or at a ridge least-squares fit of the last layer's residual
stream, then trained with Adam to minimise KL(output || lens) through the model's frozen final norm and unembedding."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from ..options import options
from ..texts import token_ids
from .lens import kl_to_final

INITS = ("least_squares", "identity")


def train(
    model: Any,
    texts: Any,
    steps: int = 300,
    lr: float = 1e-3,
    batch_tokens: int = 256,
    max_tokens: int | None = None,
    init: str = "least_squares",
    ridge: float = 1e-2,
    held_out: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Train a tuned lens of ``model`` on the tokens of ``texts`` (``<bos>`` left out).

    Every layer's ``hook_resid_post`` is read in padded batches (at most ``max_tokens`` tokens: by default as many
    as half of ``rw.options.max_capture_bytes`` holds), a ``held_out`` share is kept back. ``init="least_squares"``
    starts each translator at the ridge fit (``ridge`` times the mean squared activation) of the last layer's
    residual stream from that layer's; ``"identity"`` at the logit lens. Then ``steps`` Adam steps (``lr``) on
    ``batch_tokens`` random tokens each minimise the sum over layers of the mean KL(output || lens). Per layer the
    translator (the fit or the trained one) with the lower held-out KL is kept; ``lens.training`` records the
    held-out KL of the logit lens and of the tuned lens per layer. Returns the translators' weight and bias and
    that record (``rw.TunedLens.train`` makes them a lens).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    for name, value in (("steps", steps), ("batch_tokens", batch_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "steps" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'steps' else 'positive'} int, got {value!r}")
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a fraction between 0 and 1, got {held_out!r}")
    readout = frozen_readout(model)
    generator = torch.Generator().manual_seed(seed)
    resids = harvest(model, texts, max_tokens, progress)  # [layer, tokens, d]
    order = torch.randperm(resids.shape[1], generator=generator)
    n_test = max(1, int(held_out * len(order)))
    if len(order) - n_test < 2:
        raise ValueError(f"only {resids.shape[1]} tokens in these texts: give more text to train a tuned lens")
    test, fit = resids[:, order[:n_test]], resids[:, order[n_test:]]
    device = model.device
    n, d = model.n_layers, model.d_model
    if init == "least_squares":
        weight, bias = least_squares(fit, ridge)
    else:
        weight, bias = torch.zeros(n - 1, d, d), torch.zeros(n - 1, d)
    start = Affine(weight, bias)
    weight, bias = weight.to(device, copy=True).requires_grad_(), bias.to(device, copy=True).requires_grad_()
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    bar = tqdm(range(steps), desc="training a tuned lens", disable=not progress or steps == 0)
    for _ in bar:
        rows = torch.randint(fit.shape[1], (min(batch_tokens, fit.shape[1]),), generator=generator)
        batch = fit[:, rows].to(device)
        with torch.no_grad():
            final = readout(batch[-1]).log_softmax(-1)
        total = torch.zeros((), device=device)
        for layer in range(n - 1):
            x = batch[layer]
            lens = readout(x + x @ weight[layer].T + bias[layer]).log_softmax(-1)
            total = total + (final.exp() * (final - lens)).sum(-1).mean()
        grads = torch.autograd.grad(total, [weight, bias])  # only the translators': nothing lands on the model
        for tensor, grad in zip((weight, bias), grads, strict=True):
            tensor.grad = grad
        optimizer.step()
        bar.set_postfix(kl_per_layer=f"{total.item() / (n - 1):.4f}")
    trained = Affine(weight.detach().cpu().clone(), bias.detach().cpu().clone())
    logit, tuned = _held_out_kl(model, test, None), _held_out_kl(model, test, trained)
    if steps:  # per layer, the fit if training made it worse on held-out tokens
        started = _held_out_kl(model, test, start)
        worse = started < tuned
        trained.weight[worse[:-1]] = start.weight[worse[:-1]]
        trained.bias[worse[:-1]] = start.bias[worse[:-1]]
        tuned = torch.minimum(started, tuned)
    training = {
        "tokens": int(resids.shape[1]),
        "held_out_tokens": int(n_test),
        "steps": steps,
        "lr": lr,
        "batch_tokens": batch_tokens,
        "init": init,
        "ridge": ridge,
        "seed": seed,
        "held_out_kl_logit": [round(float(x), 5) for x in logit],
        "held_out_kl_tuned": [round(float(x), 5) for x in tuned],
    }
    return trained.weight, trained.bias, training


def frozen_readout(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logits of ``[..., d_model]`` residual streams through a float32 copy of ``model``'s final norm and its
    unembedding, in the autograd graph (``model.logits_from_resid`` is not), checked to equal that readout."""
    if not model.has_unembed:
        raise ValueError("this model has no unembedding, so its residual stream has no lens to tune")
    if getattr(model, "weightless", False):
        raise ValueError(
            "this model's weights are on NDIF only: a tuned lens trains through its final norm and "
            "unembedding, which must be here (load the weights, remote=False)"
        )
    arch = model.arch
    if not arch.plain_readout:
        raise ValueError(
            "this model's logits are not its unembedding of its final norm (it soft-caps or scales "
            "them), which a tuned lens trains through; train one for a model without"
        )
    hf = model.hf
    norm = copy.deepcopy(hf.get_submodule(arch.final_norm)).float() if arch.final_norm is not None else None
    if norm is not None:
        norm.requires_grad_(False)
    unembed = hf.get_submodule(arch.unembed)
    weight = unembed.weight.detach().float()
    bias = unembed.bias.detach().float() if getattr(unembed, "bias", None) is not None else None

    def readout(resid: torch.Tensor) -> torch.Tensor:
        x = norm(resid.float()) if norm is not None else resid.float()
        return torch.nn.functional.linear(x, weight, bias)

    sample = torch.randn(4, model.d_model, generator=torch.Generator().manual_seed(1)).to(model.device)
    ours, theirs = readout(sample), model.logits_from_resid(sample).float()
    if not torch.allclose(ours, theirs, rtol=2e-2, atol=2e-2 * float(theirs.abs().max())):
        raise ValueError(
            "this model's final norm and unembedding, applied as modules, do not give its logits: "
            "a tuned lens cannot be trained through them"
        )
    return readout


def harvest(model: Any, texts: Any, max_tokens: int | None, progress: bool = True) -> torch.Tensor:
    """``[layer, tokens, d_model]`` float32 residual streams after every block (CPU), at most ``max_tokens``."""
    n, d = model.n_layers, model.d_model
    most = max(1, options.max_capture_bytes // (2 * 4 * n * d))
    max_tokens = most if max_tokens is None else max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 0 < max_tokens <= most:
        raise ValueError(
            f"max_tokens must be an int in 1..{most} (half of rw.options.max_capture_bytes holds "
            f"{most} tokens of every layer), got {max_tokens!r}"
        )
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(n)]
    parts, total = [], 0
    for _, acts in model.iter_capture(token_ids(model, texts), hooks, progress=progress):
        take = min(len(acts[hooks[0]]) - 1, max_tokens - total)  # <bos> left out
        parts.append(torch.stack([acts[h][1 : 1 + take].float().cpu() for h in hooks]))
        total += take
        if total >= max_tokens:
            break
    if total == 0:
        raise ValueError("these texts have no tokens after <bos> to train a tuned lens on")
    return torch.cat(parts, 1)


def least_squares(resids: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Translators that map each layer's residual stream to the last layer's by ridge least squares:
    ``h + h A^T + b ~ h_last``, the ridge ``ridge`` times the mean squared activation (float64 normal equations)."""
    n, tokens, d = resids.shape
    weights, biases = torch.zeros(n - 1, d, d), torch.zeros(n - 1, d)
    target = resids[-1].double()
    for layer in range(n - 1):
        x = torch.cat([resids[layer].double(), torch.ones(tokens, 1, dtype=torch.float64)], 1)
        gram = x.T @ x
        scale = float(gram.diagonal()[:d].mean()) * ridge
        gram[:d, :d] += scale * torch.eye(d, dtype=torch.float64)
        solution = torch.linalg.solve(gram, x.T @ (target - x[:, :d]))  # [d + 1, d]
        weights[layer] = solution[:d].T.float()
        biases[layer] = solution[d].float()
    return weights, biases


class Affine:
    """Translators being trained, read like a tuned lens's (:func:`~repwidget.analyses.lens.kl_to_final`)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight, self.bias = weight, bias

    def translate(self, layer: int, resid: torch.Tensor) -> torch.Tensor:
        if layer == len(self.weight):
            return resid
        x = resid.float()
        return (x + x @ self.weight[layer].T.to(x.device) + self.bias[layer].to(x.device)).to(resid.dtype)


def _held_out_kl(model: Any, test: torch.Tensor, lens: Affine | None) -> torch.Tensor:
    """``[layer]``: the mean KL(output || lens) over the held-out tokens."""
    with torch.no_grad():
        return kl_to_final(model, list(test), lens).mean(1)
