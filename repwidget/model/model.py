"""Model: an adapter over any Hugging Face transformer and the one place that runs forward passes."""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import hook_names
from ..interventions import Intervention, as_tuple
from ..options import options
from ..placement import input_device
from ..prompts import prompt_ids
from ..run import Run
from . import edits as edits_mod
from .architecture import Architecture, discover
from .execute import Plan, execute

TokensLike = str | Sequence[int] | torch.Tensor | np.ndarray


class CaptureBudgetError(ValueError):
    """A run would capture more than ``rw.options.max_capture_bytes``; raised before anything is allocated."""


class Model:
    """A Hugging Face model and tokenizer, with its architecture discovered once.

    Build one with :func:`repwidget.load`. ``model.hf`` is the wrapped model, left as it was:
    every hook repwidget installs is removed when the run that needed it ends.
    """

    def __init__(self, hf_model: nn.Module, tokenizer: Any = None) -> None:
        if not isinstance(hf_model, nn.Module) or not hasattr(hf_model, "config"):
            raise TypeError(f"expected a Hugging Face PreTrainedModel, got {type(hf_model).__name__}")
        self.hf = hf_model
        self.tokenizer = tokenizer
        embeddings = hf_model.get_input_embeddings()
        self.vocab_size: int = int(embeddings.num_embeddings)
        self.arch: Architecture = discover(hf_model, self.vocab_size)
        self.reference: edits_mod.Reference | None = None
        self._sources: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        params = inspect.signature(hf_model.forward).parameters
        self._forward_kwargs = {"use_cache": False} if "use_cache" in params else {}

    # -- shape ---------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.arch.n_layers

    @property
    def n_heads(self) -> int:
        return self.arch.n_heads

    @property
    def d_model(self) -> int:
        return self.arch.d_model

    @property
    def d_head(self) -> int:
        return self.arch.d_head

    @property
    def d_mlp(self) -> int:
        return self.arch.d_mlp

    @property
    def has_unembed(self) -> bool:
        return self.arch.unembed is not None

    @property
    def max_tokens(self) -> int | None:
        """The longest input the model takes (its position embeddings' length), if it says."""
        config = self.hf.config
        for key in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def device(self) -> torch.device:
        return input_device(self.hf)

    def hook_names(self) -> list[str]:
        """Every hook name this model's runs can capture."""
        return hook_names.all_names(self.n_layers)

    def __repr__(self) -> str:
        return (
            f"<rw.Model {type(self.hf).__name__}: {self.n_layers} layers, {self.n_heads} heads, "
            f"d_model {self.d_model}, d_mlp {self.d_mlp}, on {self.device}>"
        )

    # -- tokens --------------------------------------------------------------------------
    def to_ids(self, text_or_ids: TokensLike) -> list[int]:
        """Token ids for a text (tokenizer defaults, special tokens included) or a sequence of ids."""
        if isinstance(text_or_ids, str):
            if self.tokenizer is None:
                raise TypeError(
                    "this model was loaded without a tokenizer: pass token ids (a list of ints), "
                    "or rw.load(model, tokenizer=...)"
                )
            if not text_or_ids:
                raise ValueError("the text is empty; give at least one token")
            ids = prompt_ids(self.tokenizer, text_or_ids)  # warns when most words are unknown (<unk>)
        else:
            ids = _ids_from(text_or_ids)
        if not ids:
            raise ValueError("the input is empty; give at least one token")
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is out of range; this model's vocabulary is 0..{self.vocab_size - 1}")
        limit = self.max_tokens
        if limit is not None and len(ids) > limit:
            raise ValueError(f"the input has {len(ids)} tokens; this model takes at most {limit}. Shorten the text.")
        return ids

    def to_str_tokens(self, ids: Iterable[int]) -> list[str]:
        """Each token as text (decoded alone), or its id as a string without a tokenizer."""
        ids = list(ids)
        if self.tokenizer is None:
            return [str(i) for i in ids]
        return [self.tokenizer.decode([i]) for i in ids]

    # -- runs ----------------------------------------------------------------------------
    def run(
        self,
        text_or_ids: TokensLike,
        interventions: Intervention | Iterable[Intervention] = (),
        capture: str | Iterable[str] | None = None,
    ) -> Run:
        """One forward pass. ``capture`` takes hook names or globs (default: residual streams and patterns)."""
        return self._execute(self.to_ids(text_or_ids), interventions, capture)

    def capture(self, text_or_ids: TokensLike, hooks: str | Iterable[str]) -> dict[str, torch.Tensor]:
        """Only the activations at ``hooks`` (names or globs), ending the pass once they are all taken.

        What harvesting loops want: capturing ``blocks.2.hook_resid_pre`` runs blocks 0-1 and stops.
        """
        ids = self.to_ids(text_or_ids)
        names = hook_names.expand(hooks, self.n_layers)
        if not names:
            raise ValueError("capture needs at least one hook name")
        self._check_budget(names, len(ids))
        plan = Plan(ids=torch.tensor([ids], device=self.device), capture=names, stop_early=True)
        return execute(self.hf, self.arch, plan, self._forward_kwargs).cache

    def set_reference(self, texts: Iterable[TokensLike]) -> None:
        """Texts whose activations give the statistics for ``mode="mean"`` and ``"resample"`` ablations."""
        if isinstance(texts, str):
            texts = [texts]
        self.reference = edits_mod.Reference(self, [self.to_ids(t) for t in texts])

    def _execute(self, ids: Sequence[int], interventions, capture, base: Run | None = None) -> Run:
        ivs = as_tuple(interventions)
        names = hook_names.expand(capture, self.n_layers)
        n = len(ids)
        for iv in ivs:
            edits_mod.check(self, iv, n)
        self._check_budget(names, n)
        if self.reference is not None:
            self.reference.prepare([iv.hook for iv in ivs if getattr(iv, "mode", "zero") != "zero"])
        plan = Plan(ids=torch.tensor([list(ids)], device=self.device), capture=names)
        for iv in ivs:
            hook, edit = edits_mod.build(self, iv, n)
            plan.edits.setdefault(hook, []).append(edit)

        first_edit = min((iv.layer for iv in ivs), default=self.n_layers)
        if base is not None:
            # reuse the base's blocks before the first edit, if it has every capture they need
            start = min(first_edit, base.clean_prefix)
            missing = [hook_names.parse(h, self.n_layers)[0] for h in names if h not in base._cache]
            start = min([start, *missing])
            if start > 0:
                plan.start, plan.reuse = start, base._block_outputs
        result = execute(self.hf, self.arch, plan, self._forward_kwargs)
        cache = result.cache
        if plan.start:
            inherited = {h: base[h] for h in names if hook_names.parse(h, self.n_layers)[0] < plan.start}
            cache = {h: (inherited[h] if h in inherited else cache[h]) for h in names}
            for layer in range(plan.start):
                result.block_outputs[layer] = base._block_outputs[layer]
        return Run(
            self,
            list(ids),
            ivs,
            cache,
            result.block_outputs,
            result.final_hidden,
            result.logits,
            clean_prefix=first_edit,
        )

    def hook_width(self, name: str, n_tokens: int = 1) -> int:
        """Values per token at hook ``name`` (``attn.hook_z`` flattened over heads; patterns ``heads * n_tokens``)."""
        template = hook_names.parse(name, self.n_layers)[1]
        widths = {
            "attn.hook_pattern": self.n_heads * n_tokens,
            "attn.hook_z": self.n_heads * self.d_head,
            "mlp.hook_post": self.d_mlp,
        }
        return widths.get(template, self.d_model)

    def _check_budget(self, names: list[str], n: int) -> None:
        """Fail before allocating when the captured tensors would exceed ``options.max_capture_bytes``."""
        item = next(self.hf.parameters()).element_size()
        total = sum(self.hook_width(h, n) for h in names) * n * item
        total += self.n_layers * n * self.d_model * item  # block outputs kept for reruns
        if total > options.max_capture_bytes:
            raise CaptureBudgetError(
                f"capturing {len(names)} hooks over {n} tokens needs about {_size(total)}, over the "
                f"budget of {_size(options.max_capture_bytes)}. Capture fewer hooks (capture="
                f"'blocks.3.attn.hook_pattern'), use a shorter text, or raise rw.options.max_capture_bytes."
            )

    def _unembed(self, final_hidden: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.hf.get_submodule(self.arch.unembed)(final_hidden)

    def logits_from_resid(self, resid: torch.Tensor) -> torch.Tensor:
        """Read a residual stream ``[..., d_model]`` through the final norm and the unembedding (the logit lens)."""
        if self.arch.unembed is None:
            raise ValueError("this model has no unembedding, so its residual stream has no logit lens")
        with torch.no_grad():
            hidden = resid.to(self.device)
            if self.arch.final_norm is not None:
                hidden = self.hf.get_submodule(self.arch.final_norm)(hidden)
            return self.hf.get_submodule(self.arch.unembed)(hidden)

    def _source_activation(self, source: tuple[int, ...], hook: str) -> torch.Tensor:
        """The clean activation at ``hook`` on ``source`` ids (a small cache serves repeated patches)."""
        key = (source, hook)
        if key not in self._sources:
            self._sources[key] = self.run(list(source), capture=[hook])[hook]
            if len(self._sources) > 16:
                self._sources.popitem(last=False)
        return self._sources[key]


def _ids_from(value: Any) -> list[int]:
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"token ids must be integers, got a tensor of {value.dtype}")
        if value.dim() == 2 and value.shape[0] == 1:
            value = value[0]
        if value.dim() != 1:
            raise ValueError(f"token ids must be one sequence, shape [pos] or [1, pos]; got {tuple(value.shape)}")
        return value.tolist()
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"token ids must be integers, got an array of {value.dtype}")
        return _ids_from(torch.from_numpy(value.astype(np.int64)))
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in value):
            raise TypeError("token ids must be a sequence of ints")
        return [int(i) for i in value]
    raise TypeError(f"expected a text (str) or token ids, got {type(value).__name__}")


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError
