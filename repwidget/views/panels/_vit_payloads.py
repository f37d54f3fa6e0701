"""What the ViT views of the image explorer send, as plain functions of image runs (the panels answer with them).

- :func:`attention_on_image`: one head's attention from one query position (CLS or a patch) laid on the patch grid.
- :func:`head_sharpness`: every head's attention entropy from that query, for the layer x head picker.
- :func:`class_lens_table`: the class lens (CLS through the final norm and classifier after each block), clean and
  intervened, as a layer x class table over the classes that matter.
- :func:`saliency_overlay`: a pixel saliency map of a class (gradient or integrated gradients) as ``[H, W]`` in
  ``[-1, 1]`` with its scale and, for integrated gradients, the completeness error.

Positions are the run's token positions: the prefix (CLS, and a DeiT's distillation token) then the patches row by
row; :func:`patch_grid` says how many of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ...analyses.lens import logit_lens
from ...analyses.vision import METHODS, class_index, saliency

#: classes shown by the class lens: the union of each layer's top ``LENS_TOP`` (clean and intervened)
LENS_TOP = 3
#: integrated gradients' steps in the saliency overlay (the issue's completeness bound is stated at 64)
IG_STEPS = 64


@dataclass(frozen=True)
class PatchGrid:
    """A ViT's token layout: ``prefix`` tokens (CLS first) then ``rows`` x ``cols`` patches, row by row."""

    prefix: int
    rows: int
    cols: int

    @property
    def tokens(self) -> int:
        return self.prefix + self.rows * self.cols

    def position(self, row: int, col: int) -> int:
        """The token position of the patch at ``(row, col)``."""
        return self.prefix + row * self.cols + col


def patch_grid(model: Any) -> PatchGrid:
    """The patch grid of a ViT image classifier: from its config's patch size and its input's height and width,
    or a square grid of the non-CLS tokens when the config does not say."""
    if getattr(model, "kind", None) != "vit":
        raise ValueError(f"the patch grid is a vision transformer's; this model is a {getattr(model, 'kind', '?')}")
    tokens = model.arch.shapes[0][0]
    _, height, width = model.arch.input_shape
    size = getattr(getattr(model.hf, "config", None), "patch_size", None)
    size = size[0] if isinstance(size, (tuple, list)) else size
    if isinstance(size, int) and size > 0 and 0 < (height // size) * (width // size) < tokens:
        rows, cols = height // size, width // size
    else:
        rows = cols = math.isqrt(tokens - 1)
    if rows * cols < 1 or rows * cols >= tokens:
        raise ValueError(f"cannot lay {tokens} tokens out as a prefix and a patch grid")
    return PatchGrid(tokens - rows * cols, rows, cols)


def _check_query(grid: PatchGrid, query: int) -> int:
    if isinstance(query, bool) or not isinstance(query, int) or not 0 <= query < grid.tokens:
        raise ValueError(
            f"query must be a token position in 0..{grid.tokens - 1} (0: CLS; patches from {grid.prefix}), "
            f"got {query!r:.40}"
        )
    return query


def attention_on_image(run: Any, layer: int, head: int, query: int) -> dict[str, Any]:
    """Head ``layer.head``'s attention from position ``query`` (0: CLS): ``grid`` ``[rows, cols]`` on the patches,
    ``prefix`` ``[prefix]`` on CLS (and any other prefix token); together they sum to 1."""
    model = run.model
    grid = patch_grid(model)
    _check_query(grid, query)
    if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < model.n_heads:
        raise ValueError(f"head must be in 0..{model.n_heads - 1}, got {head!r:.40}")
    row = run[f"blocks.{layer}.attn.hook_pattern"][head, query].float().cpu()
    return {
        "grid": row[grid.prefix :].reshape(grid.rows, grid.cols).contiguous(),
        "prefix": row[: grid.prefix].contiguous(),
        "layer": layer,
        "head": head,
        "query": query,
        "rows": grid.rows,
        "cols": grid.cols,
    }


def head_sharpness(run: Any, query: int) -> torch.Tensor:
    """``[layer, head]``: the entropy in nats of each head's attention from ``query`` (low: a sharp head)."""
    _check_query(patch_grid(run.model), query)
    rows = torch.stack([run[f"blocks.{layer}.attn.hook_pattern"][:, query] for layer in range(run.model.n_layers)])
    p = rows.float().clamp_min(0)
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def class_lens_table(clean_run: Any, run: Any, k: int = LENS_TOP) -> dict[str, Any]:
    """The class lens of the clean and the intervened run: ``probs`` ``[2, layer, column]`` (row 0 clean) over the
    ``classes`` columns (the union of every layer's top ``k``, the clean prediction's first, then by clean final
    probability), ``top`` ``[2, layer]`` each layer's most probable class, and the columns' ``names``."""
    model = clean_run.model
    if model.arch.classifier is None:
        raise ValueError("this model's logits are not its classifier on the CLS token, so it has no class lens")
    full = []
    for r in (clean_run, run):
        resid = torch.stack([r[f"blocks.{layer}.hook_resid_post"][0] for layer in range(model.n_layers)])
        full.append(model.logits_from_resid(resid).float().softmax(-1).cpu())
    both = torch.stack(full)  # [2, layer, classes]
    k = min(k, both.shape[-1])
    wanted = set(both.topk(k, dim=-1).indices.flatten().tolist())
    final = both[0, -1]
    columns = sorted(wanted, key=lambda c: (-float(final[c]), c))
    ids = torch.tensor(columns, dtype=torch.int32)
    lens = [logit_lens(r, k=1).ids[:, 0, 0] for r in (clean_run, run)]  # the engine's class lens: the top class
    return {
        "classes": ids,
        "names": [model.classes[c] for c in columns],
        "probs": both[:, :, ids.long()].contiguous(),
        "top": torch.stack(lens).to(torch.int32),
        "top_names": [[model.classes[int(c)] for c in row] for row in torch.stack(lens)],
    }


def saliency_overlay(run: Any, target: int | str | None = None, method: str = "gradient", steps: int = IG_STEPS):
    """A saliency map of ``target``'s logit (default: the run's top class) over the image: ``map`` ``[H, W]`` (the
    attributions summed over channels, divided by ``scale``, their largest magnitude, so in ``[-1, 1]``);
    integrated gradients add ``completeness_error`` and ``delta`` (logit(image) - logit(baseline))."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r:.40}")
    c = int(run.logits.argmax()) if target is None else class_index(run.model, target)
    result = saliency(run, c, method=method, steps=steps)
    heat = result.map.float().cpu()
    scale = float(heat.abs().max())
    out: dict[str, Any] = {
        "map": (heat / scale if scale > 0 else heat).contiguous(),
        "scale": scale,
        "target": c,
        "target_name": run.model.classes[c],
        "method": method,
    }
    if result.completeness_error is not None:
        out |= {"completeness_error": result.completeness_error, "delta": result.delta, "steps": steps}
    return out
