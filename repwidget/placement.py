"""Where tensors live: the model's devices for interventions, the CPU for the front end."""

from __future__ import annotations

import torch
from torch import nn


def like(value: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """``value`` on the device and in the dtype of ``activation`` (the tensor it will edit).

    Under ``device_map`` each block can sit on its own device, so a value is placed when its
    hook fires, next to the activation, never on a device fixed in advance.
    """
    if value.device == activation.device and value.dtype == activation.dtype:
        return value
    return value.to(device=activation.device, dtype=activation.dtype)


def input_device(model: nn.Module) -> torch.device:
    """The device token ids must be on: the input embedding's (the CPU for a model without local weights, on
    ``meta``, whose passes run on NDIF)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and getattr(embeddings, "weight", None) is not None:
        device = embeddings.weight.device
    else:
        device = next(model.parameters()).device
    return torch.device("cpu") if device.type == "meta" else device


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """A detached CPU copy (no copy when it already is on the CPU), for the front end."""
    return tensor.detach().to("cpu")
