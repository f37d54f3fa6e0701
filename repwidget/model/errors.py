"""Models that cannot be used: one clear line each."""

from __future__ import annotations

from itertools import chain

from torch import nn


class ModelLoadError(ValueError):
    """A model could not be loaded; the message says what to pass instead."""


def check_materialised(model: nn.Module) -> None:
    """Refuse a model whose weights are on the ``meta`` device: built under ``torch.device("meta")`` or
    ``init_empty_weights``, it has shapes but no values. Models placed by accelerate (``device_map``, which
    may keep offloaded weights on ``meta`` and load them layer by layer) are left to accelerate."""
    if getattr(model, "hf_device_map", None) is not None:
        return
    tensors = chain(model.named_parameters(), model.named_buffers())
    empty = next((name for name, t in tensors if t.is_meta), None)
    if empty is not None:
        raise ModelLoadError(
            f"this model's weights are on the meta device ({empty} has a shape but no values), so it cannot run. "
            "Load real weights first: AutoModelForCausalLM.from_pretrained(...), or model.to_empty(device='cpu') "
            "followed by model.load_state_dict(...)."
        )


class UnsupportedOnBackendError(ValueError):
    """An intervention or request this backend cannot run; raised when the pass is planned, before it runs."""
