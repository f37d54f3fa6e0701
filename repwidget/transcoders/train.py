"""Train transcoders: every requested layer at once, on the MLP inputs and outputs of one pass per batch of text."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from tqdm.auto import tqdm

from ..sae import harvest
from ..sae.train import variance_explained
from .cross_layer import CrossLayerTranscoder
from .model import INPUT_HOOK, OUTPUT_HOOK, Transcoder, TranscoderSet

ACTIVATIONS = ("topk", "jumprelu", "relu")
#: bytes the harvested inputs and outputs may take together (more tokens are left out)
HARVEST_BYTES = 1 << 30


def _layers(model: Any, layers: Any, cross_layer: bool) -> list[int]:
    n = model.n_layers
    if isinstance(layers, str) and layers == "all":
        chosen = list(range(n))
    elif isinstance(layers, int) and not isinstance(layers, bool):
        chosen = [layers]
    elif isinstance(layers, (list, tuple)) and layers and all(isinstance(x, int) and not isinstance(x, bool)
                                                               for x in layers):  # fmt: skip
        chosen = sorted(set(layers))
    else:
        raise ValueError(f"layers must be 'all', a layer or a list of layers, got {layers!r:.60}")
    if not all(0 <= x < n for x in chosen):
        raise ValueError(f"layers must be in 0..{n - 1}, got {chosen}")
    if cross_layer and chosen != list(range(n)):
        raise ValueError("a cross-layer transcoder covers every layer: use layers='all'")
    return chosen


def harvest_mlp(model: Any, texts: Iterable[Any], layers: list[int], max_tokens: int) -> tuple[torch.Tensor, ...]:
    """``(inputs, outputs)``, each ``[len(layers), tokens, d_model]``: ``mlp.hook_in`` and ``hook_mlp_out`` of every
    layer, read together in one pass per batch of texts (``<bos>`` left out), at most ``max_tokens`` tokens."""
    hooks = [f"blocks.{layer}.{t}" for layer in layers for t in (INPUT_HOOK, OUTPUT_HOOK)]
    xs, ys, total = [], [], 0
    for _, acts in harvest.activations_at(model, hooks, texts):
        take = max_tokens - total
        xs.append(torch.stack([acts[f"blocks.{layer}.{INPUT_HOOK}"][:take].float().cpu() for layer in layers]))
        ys.append(torch.stack([acts[f"blocks.{layer}.{OUTPUT_HOOK}"][:take].float().cpu() for layer in layers]))
        total += xs[-1].shape[1]
        if total >= max_tokens:
            break
    if total == 0:
        raise ValueError("no tokens to train on: give texts of at least two tokens")
    return torch.cat(xs, 1), torch.cat(ys, 1)


class _Weights:
    """The trainable weights of every layer, stacked ``[layers, ...]``, in normalised units."""

    def __init__(self, n: int, d: int, d_tc: int, skip: bool, cross: bool, y_mean: torch.Tensor, g) -> None:
        self.cross = cross
        self.W_enc = (torch.randn(n, d_tc, d, generator=g) / math.sqrt(d)).requires_grad_()
        self.b_enc = torch.zeros(n, d_tc, requires_grad=True)
        if cross:
            self.W_dec = [_unit(torch.randn(d_tc, n - s, d, generator=g) / math.sqrt(n - s)) for s in range(n)]
        else:
            self.W_dec = [_unit(torch.randn(n, d_tc, d, generator=g))]
        for w in self.W_dec:
            w.requires_grad_()
        self.b_dec = y_mean.clone().requires_grad_()
        self.W_skip = torch.zeros(n, d, d, requires_grad=True) if skip else None

    def params(self) -> list[torch.Tensor]:
        return [self.W_enc, self.b_enc, self.b_dec, *self.W_dec] + ([self.W_skip] if self.W_skip is not None else [])

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.b_enc[:, None], x, self.W_enc.transpose(1, 2))

    def decode(self, acts: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.cross:
            out = self.b_dec[:, None].expand(-1, acts.shape[1], -1)
            for s, w in enumerate(self.W_dec):  # layer s's features write to layers s..n-1
                out = out + torch.nn.functional.pad(torch.einsum("bf,ftd->tbd", acts[s], w), (0, 0, 0, 0, s, 0))
        else:
            out = torch.baddbmm(self.b_dec[:, None], acts, self.W_dec[0])
        if self.W_skip is not None:
            out = out + torch.bmm(x, self.W_skip.transpose(1, 2))
        return out

    @torch.no_grad()
    def normalise(self) -> None:
        for w in self.W_dec:
            w /= w.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, *([1] * (w.dim() - 1)))

    def snapshot(self) -> dict[str, Any]:
        return {k: [t.detach().clone() for t in v] if isinstance(v, list) else None if v is None else v.detach().clone()
                for k, v in vars(self).items() if k != "cross"}  # fmt: skip


def _unit(w: torch.Tensor) -> torch.Tensor:
    return w / w.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, *([1] * (w.dim() - 1)))


def _activate(pre: torch.Tensor, activation: str, k: int, threshold: torch.Tensor | None) -> torch.Tensor:
    """Training activations ``[layers, batch, d_tc]``: TopK per token; JumpReLU is trained as BatchTopK (the
    ``k * batch`` largest of each layer's batch, Bussmann et al. 2024) unless a threshold is given; ReLU."""
    if activation == "topk":
        top = pre.topk(k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
    if activation == "relu":
        return pre.relu()
    if threshold is not None:
        return pre.relu() * (pre > threshold[:, None, None])
    flat = pre.relu().flatten(1)
    top = flat.topk(k * pre.shape[1], dim=-1, sorted=False)
    return torch.zeros_like(flat).scatter(-1, top.indices, top.values).view_as(pre)


@torch.no_grad()
def _batch_threshold(w: _Weights, x: torch.Tensor, k: int) -> torch.Tensor:
    """Per layer, the JumpReLU threshold that keeps ``k`` features per token on average over ``x``: the smallest of
    the ``k * tokens`` largest activations."""
    flat = w.pre(x).relu().flatten(1)
    return flat.topk(k * x.shape[1], dim=-1, sorted=False).values.min(-1).values


def train_transcoder(
    model: Any,
    texts: Iterable[Any],
    layers: Any = "all",
    d_tc: int | None = None,
    activation: str = "topk",
    k: int = 16,
    skip: bool = False,
    cross_layer: bool = False,
    steps: int | None = None,
    batch_size: int = 1024,
    lr: float = 2e-3,
    l1: float = 3e-3,
    seed: int = 0,
    max_tokens: int = 200_000,
    epochs: float = 20.0,
    patience: int = 5,
) -> TranscoderSet | CrossLayerTranscoder | Transcoder | list[Transcoder]:
    """Train transcoders from each layer's MLP input (``mlp.hook_in``) to its output (``hook_mlp_out``).

    Every layer of ``layers`` (``"all"``, one layer or a list) is trained at once on the activations of one pass per
    batch of ``texts`` (``<bos>`` left out; a tenth held back). ``d_tc`` features per layer (default 4 x d_model);
    ``activation``: ``"topk"`` (``k`` per token), ``"jumprelu"`` (trained as BatchTopK, ``k`` per token on average,
    then one threshold per layer: files circuit-tracer reads the same) or ``"relu"`` (an L1 penalty ``l1`` on
    activations times decoder norms); ``skip`` adds a linear skip ``W_skip``; ``cross_layer`` trains one
    cross-layer transcoder (each layer's features write to every later MLP output). Inputs and outputs are scaled
    to unit mean square per layer while training, the scales folded back into the weights. Adam, decoder rows of
    unit norm (TopK, JumpReLU), ``epochs`` passes over the data (200-3,000 steps) unless ``steps`` is given,
    stopping once the held-back explained variance has not improved for ``patience`` checks (every 100 steps).

    Returns a :class:`TranscoderSet` when every layer is trained (a :class:`CrossLayerTranscoder` with
    ``cross_layer``), one :class:`Transcoder` for an int ``layers``, else a list. ``stats`` hold each layer's
    held-back explained variance of the MLP output, mean L0 and dead-feature fraction.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r:.40}")
    chosen = _layers(model, layers, cross_layer)
    d = model.d_model
    d_tc = 4 * d if d_tc is None else d_tc
    if isinstance(d_tc, bool) or not isinstance(d_tc, int) or d_tc < 1:
        raise ValueError(f"d_tc must be a positive int, got {d_tc!r:.40}")
    if activation != "relu" and not (isinstance(k, int) and 0 < k <= d_tc):
        raise ValueError(f"k must be an int in 1..{d_tc}, got {k!r:.40}")
    max_tokens = min(max_tokens, max(1, HARVEST_BYTES // (8 * len(chosen) * d)))
    g = torch.Generator().manual_seed(seed)
    x, y = harvest_mlp(model, texts, chosen, max_tokens)
    order = torch.randperm(x.shape[1], generator=g)
    x, y = x[:, order], y[:, order]
    scale_x = (d / x.pow(2).sum(-1).mean(-1)).sqrt()  # per layer: inputs and outputs to unit mean square
    scale_y = (d / y.pow(2).sum(-1).mean(-1).clamp_min(1e-12)).sqrt()
    x, y = x * scale_x[:, None, None], y * scale_y[:, None, None]
    n_test = max(1, min(4096, x.shape[1] // 10))
    (x_test, x_train), (y_test, y_train) = x.split([n_test, x.shape[1] - n_test], 1), y.split(
        [n_test, x.shape[1] - n_test], 1)  # fmt: skip
    if x_train.shape[1] < 2 * k:
        raise ValueError(f"only {x.shape[1]} tokens from these texts; give more text to train transcoders")
    w = _Weights(len(chosen), d, d_tc, skip, cross_layer, y_train.mean(1), g)
    if steps is None:
        steps = int(min(3000, max(200, epochs * x_train.shape[1] / batch_size)))
    optimizer = torch.optim.Adam(w.params(), lr=lr)
    kind = "cross-layer transcoder" if cross_layer else f"transcoders on {len(chosen)} layers"
    bar = tqdm(range(steps), desc=f"training {activation} {kind}")
    best, best_weights, since, step = -math.inf, None, 0, 0
    for step in bar:
        idx = torch.randint(x_train.shape[1], (batch_size,), generator=g)
        xb, yb = x_train[:, idx], y_train[:, idx]
        acts = _activate(w.pre(xb), activation, k, None)
        loss = (w.decode(acts, xb) - yb).pow(2).sum(-1).mean()
        if activation == "relu":
            norms = torch.stack([wd.flatten(1).norm(dim=1) for wd in w.W_dec]) if cross_layer else w.W_dec[0].norm(
                dim=-1)  # fmt: skip
            loss = loss + l1 * (acts * norms[:, None]).sum(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if activation != "relu":
            w.normalise()
        if step % 100 == 99 or step == steps - 1:
            threshold = _batch_threshold(w, x_train[:, :4096], k) if activation == "jumprelu" else None
            ev = _explained(w, x_test, y_test, activation, k, threshold)
            bar.set_postfix(loss=f"{loss.item():.4f}", held_out_ev=f"{ev.mean().item():.3f}")
            if ev.mean().item() > best + 1e-4:
                best, best_weights, since = ev.mean().item(), (w.snapshot(), threshold), 0
            else:
                since += 1
                if since >= patience:
                    break
    if best_weights is not None:
        for name, value in best_weights[0].items():
            setattr(w, name, value)
    threshold = best_weights[1] if best_weights is not None else None
    training = {"steps": step + 1, "seed": seed, "tokens": int(x.shape[1]), "activation": activation}
    result = _result(w, chosen, x_test, y_test, activation, k, threshold, scale_x, scale_y, training)
    if cross_layer:
        return result
    if isinstance(layers, int):
        return result[0]
    if chosen == list(range(model.n_layers)):
        stats = {key: value for key, value in result[0].stats.items()}
        stats = {key: [t.stats[key] for t in result] for key in stats}
        return TranscoderSet(result, metadata={"training": training, "stats": stats})
    return result


@torch.no_grad()
def _explained(w: _Weights, x: torch.Tensor, y: torch.Tensor, activation: str, k: int, threshold) -> torch.Tensor:
    recon = w.decode(_activate(w.pre(x), activation, k, threshold), x)
    return torch.tensor([variance_explained(y[i], recon[i]) for i in range(len(y))])


@torch.no_grad()
def _result(w: _Weights, layers, x_test, y_test, activation, k, threshold, scale_x, scale_y, training):
    """The trained weights in the model's units (the scales folded in), with each layer's held-back stats: a list of
    :class:`Transcoder` (or one :class:`CrossLayerTranscoder`)."""
    acts = _activate(w.pre(x_test), activation, k, threshold)
    ev = _explained(w, x_test, y_test, activation, k, threshold)
    active = acts > 0
    stats = {
        "layers": list(layers),
        "explained_variance": ev.tolist(),
        "l0": active.float().sum(-1).mean(-1).tolist(),
        "dead_fraction": (1 - active.any(1).float().mean(-1)).tolist(),
    }
    _report(stats)
    n, d_tc = w.b_enc.shape
    thresholds = None if activation != "jumprelu" else threshold[:, None].expand(n, d_tc)
    top = k if activation == "topk" else None
    enc = w.W_enc * scale_x[:, None, None]
    skip = None if w.W_skip is None else w.W_skip * (scale_x / scale_y)[:, None, None]  # out += x @ skip[l].T
    metadata = {"training": training, "stats": stats}
    if w.cross:
        dec = [wd / scale_y[s:][None, :, None] for s, wd in enumerate(w.W_dec)]
        skip = None if skip is None else skip.transpose(1, 2)  # circuit-tracer's CLT skip: out += x @ W_skip[l]
        return CrossLayerTranscoder(enc, w.b_enc, dec, w.b_dec / scale_y[:, None], threshold=thresholds, k=top,
                                    W_skip=skip, metadata=metadata)  # fmt: skip
    out = []
    for i, layer in enumerate(layers):
        t = Transcoder(layer, enc[i], w.b_enc[i], w.W_dec[0][i] / scale_y[i], w.b_dec[i] / scale_y[i],
                       threshold=None if thresholds is None else thresholds[i], k=top,
                       W_skip=None if skip is None else skip[i])  # fmt: skip
        t.stats = {key: value[i] for key, value in stats.items() if key != "layers"}
        t.metadata = {"training": training}
        out.append(t)
    return out


def _report(stats: dict) -> None:
    ev = ", ".join(f"{layer}: {v:.3f}" for layer, v in zip(stats["layers"], stats["explained_variance"], strict=True))
    print(f"transcoders' held-out explained variance by layer: {ev}")
