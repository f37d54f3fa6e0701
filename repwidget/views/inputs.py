"""The inputs every view shares, checked against the model: SAEs and probes."""

from __future__ import annotations

from collections.abc import Sequence

from .. import hook_names
from ..model.model import Model
from ..probes import Probes
from ..sae import SAE


def check_saes(model: Model, saes: Sequence[SAE]) -> list[SAE]:
    """The SAEs as a list, each checked to read a hook of ``model`` of its width."""
    saes = list(saes)
    for sae in saes:
        if not isinstance(sae, SAE):
            raise TypeError(f"saes must be rw.SAE values (rw.SAE.load(path)), got {type(sae).__name__}")
        sae.check_fits(model)
    return saes


def check_probes(model: Model, probes: Sequence[Probes]) -> list[Probes]:
    """The probes as a list, each checked to read layers and a width this model has."""
    probes = list(probes)
    for p in probes:
        if not isinstance(p, Probes):
            raise TypeError(f"probes must be rw.Probes values (rw.train_probes(...)), got {type(p).__name__}")
        width = model.hook_width(hook_names.hook_for(p.site, 0))
        if max(p.layers) >= model.n_layers or p.d_model != width:
            raise ValueError(
                f"these probes read {p.d_model}-wide {p.site} at layers {p.layers}; this model has "
                f"{model.n_layers} layers of width {width}"
            )
    return probes
