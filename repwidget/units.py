"""Units: what a top-examples harvest (``rw.top_examples``) reads at every token. A unit names the hook it reads and
how one value per token comes out of that hook's activations: an MLP neuron, an attention head (the norm of its
output), an SAE feature, or any direction (a probe's, a steering vector). Small frozen values, read many at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .hook_names import hook_for, parse

#: a head's scores: the norm of what it writes through the attention output projection, or of its ``z``
HEAD_SCORES = ("out_norm", "z_norm")


def _int(value: Any, what: str, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (high is not None and value >= high):
        valid = f"0..{high - 1}" if high is not None else "a non-negative int"
        raise ValueError(f"{what} must be an int in {valid}, got {value!r:.40}")
    return value


@dataclass(frozen=True)
class Neuron:
    """MLP neuron ``index`` of block ``layer`` (its activation at ``blocks.{layer}.mlp.hook_post``)."""

    layer: int
    index: int

    def hook(self) -> str:
        return f"blocks.{self.layer}.mlp.hook_post"

    @property
    def label(self) -> str:
        return f"neuron {self.layer}.{self.index}"

    def spec(self) -> dict[str, Any]:
        return {"kind": "neuron", "layer": self.layer, "index": self.index}


@dataclass(frozen=True)
class Head:
    """Attention head ``head`` of block ``layer``, scored per token by ``score``: ``"out_norm"`` (the norm of what the
    head writes through the attention output projection, before any post-attention norm) or ``"z_norm"`` (the norm
    of its mixed values, ``attn.hook_z``)."""

    layer: int
    head: int
    score: str = "out_norm"

    def __post_init__(self) -> None:
        if self.score not in HEAD_SCORES:
            raise ValueError(f"a head's score must be one of {', '.join(HEAD_SCORES)}, got {self.score!r:.40}")

    def hook(self) -> str:
        return f"blocks.{self.layer}.attn.hook_z"

    @property
    def label(self) -> str:
        return f"head {self.layer}.{self.head} ({self.score})"

    def spec(self) -> dict[str, Any]:
        return {"kind": "head", "layer": self.layer, "head": self.head, "score": self.score}


@dataclass(frozen=True)
class Feature:
    """Feature ``index`` of ``sae`` (a :class:`repwidget.SAE`), read at the SAE's hook."""

    sae: Any
    index: int

    def hook(self) -> str:
        return self.sae.require_hook()

    @property
    def label(self) -> str:
        return f"feature {self.index} of {self.sae.name}"

    def spec(self) -> dict[str, Any]:
        return {"kind": "feature", "sae": self.sae.name, "hook": self.hook(), "index": self.index}


@dataclass(frozen=True, eq=False)
class Direction:
    """The projection of the activation at ``hook`` on ``vector`` (``x @ vector``: scale the vector to taste), e.g. a
    probe's direction (:meth:`of_probe`) or a steering vector. Compared by identity (it holds a tensor)."""

    vector: torch.Tensor = field(repr=False)
    hook_name: str
    name: str = "direction"

    def __post_init__(self) -> None:
        vector = torch.as_tensor(self.vector, dtype=torch.float32).detach().cpu()
        if vector.dim() != 1 or not len(vector) or not bool(torch.isfinite(vector).all()):
            raise ValueError(f"a direction must be a 1-D vector of finite numbers, got shape {tuple(vector.shape)}")
        parse(self.hook_name)
        object.__setattr__(self, "vector", vector)

    @classmethod
    def of_probe(cls, probes: Any, layer: int, toward: str | None = None) -> Direction:
        """The direction of ``probes`` at ``layer`` raising class ``toward`` (unit norm; see ``Probes.direction``)."""
        vector = probes.direction(layer, toward)
        cls_name = toward if toward is not None else probes.classes[min(1, len(probes.classes) - 1)]
        return cls(vector, hook_for(probes.site, layer), f"probe toward {cls_name} at layer {layer}")

    def hook(self) -> str:
        return self.hook_name

    @property
    def label(self) -> str:
        return f"{self.name} at {self.hook_name}"

    def spec(self) -> dict[str, Any]:
        return {"kind": "direction", "hook": self.hook_name, "name": self.name}


@dataclass(frozen=True)
class TranscoderFeature:
    """Feature ``index`` of layer ``layer`` of ``transcoders`` (an ``rw.TranscoderSet`` or
    ``rw.CrossLayerTranscoder``): its encoder read at that layer's MLP input (``blocks.{layer}.mlp.hook_in``)."""

    transcoders: Any = field(repr=False)
    layer: int
    index: int

    def hook(self) -> str:
        return f"blocks.{self.layer}.{self.transcoders.input_hook}"

    @property
    def label(self) -> str:
        return f"transcoder feature {self.layer}.{self.index}"

    def spec(self) -> dict[str, Any]:
        return {"kind": "transcoder_feature", "layer": self.layer, "index": self.index, "hook": self.hook()}

    def encode(self, acts: torch.Tensor) -> torch.Tensor:
        """This layer's every feature activation ``[pos, d_tc]`` of MLP inputs ``acts`` ``[pos, d_model]``."""
        ts = self.transcoders
        one = ts[self.layer] if hasattr(ts, "__getitem__") else ts  # a set's layer, or the cross-layer transcoder
        x = acts.to(one.device, one.dtype)
        return one.encode(x) if one is not ts else ts.encode(self.layer, x)


Unit = Neuron | Head | Feature | Direction | TranscoderFeature


def neurons(layer: int, indices: Sequence[int] | range) -> list[Neuron]:
    """``Neuron(layer, i)`` for each of ``indices`` (every neuron of a layer: ``range(model.d_mlp)``)."""
    return [Neuron(layer, int(i)) for i in indices]


def features(sae: Any, indices: Sequence[int] | range | None = None) -> list[Feature]:
    """``Feature(sae, i)`` for each of ``indices`` (default every feature of ``sae``)."""
    return [Feature(sae, int(i)) for i in (range(sae.d_sae) if indices is None else indices)]


def transcoder_features(transcoders: Any, layer: int, indices: Sequence[int] | range | None = None) -> list[Any]:
    """``TranscoderFeature(transcoders, layer, i)`` for each of ``indices`` (default every feature of the layer)."""
    indices = range(transcoders.d_tc) if indices is None else indices
    return [TranscoderFeature(transcoders, layer, int(i)) for i in indices]


def as_unit(value: Any) -> Unit:
    """A unit from itself or a tuple: ``("neuron", layer, index)``, ``("head", layer, head[, score])``,
    ``("feature", sae, index)``, ``("direction", vector, hook)``, ``("transcoder_feature", transcoders, layer, i)``."""
    if isinstance(value, (Neuron, Head, Feature, Direction, TranscoderFeature)):
        return value
    kinds = {"neuron": Neuron, "head": Head, "feature": Feature, "direction": Direction,
             "transcoder_feature": TranscoderFeature}  # fmt: skip
    if isinstance(value, tuple) and value and value[0] in kinds:
        try:
            return kinds[value[0]](*value[1:])
        except TypeError:
            pass
    raise TypeError(
        f"a unit is rw.units.Neuron(layer, i), Head(layer, h), Feature(sae, i) or Direction(vector, hook), or a "
        f"tuple ('neuron', layer, i) / ('head', layer, h) / ('feature', sae, i); got {value!r:.60}"
    )


class Reader:
    """Reads ``units`` from one pass's captures: :meth:`values` is ``[pos, len(units)]`` float32, column ``j`` the
    value of ``units[j]`` at each token. Checked against ``model`` when built; units sharing a hook are read together
    (one gather, one matrix product, one SAE encoding)."""

    def __init__(self, model: Any, units: Sequence[Any]) -> None:
        self.units: list[Unit] = [as_unit(u) for u in units]
        if not self.units:
            raise ValueError("no units: give at least one (e.g. rw.units.Neuron(0, 5))")
        self.model = model
        groups: dict[tuple, list[int]] = {}
        for j, unit in enumerate(self.units):
            groups.setdefault(self._check(unit), []).append(j)
        self.hooks: list[str] = list(dict.fromkeys(key[1] for key in groups))
        self._groups = [
            (key, torch.tensor(cols), self._reader(key, [self.units[c] for c in cols])) for key, cols in groups.items()
        ]
        #: bytes per token the readers' intermediates take at their peak (an SAE's features, a head's outputs)
        self.bytes_per_token = 4 * len(self.units) + max(self._extra_width(key) for key in groups) * 4

    def _check(self, unit: Unit) -> tuple:
        model = self.model
        hook = unit.hook()
        model.check_hook(hook)
        width = model.hook_width(hook)
        if isinstance(unit, Neuron):
            _int(unit.index, f"{unit.label}: index", model.d_mlp)
            return ("neuron", hook)
        if isinstance(unit, Head):
            _int(unit.head, f"{unit.label}: head", model.n_heads)
            return ("head", hook, unit.score)
        if isinstance(unit, Feature):
            unit.sae.check_fits(model)
            _int(unit.index, f"{unit.label}: index", unit.sae.d_sae)
            return ("feature", hook, id(unit.sae))
        if isinstance(unit, TranscoderFeature):
            unit.transcoders.check_fits(model)
            _int(unit.layer, f"{unit.label}: layer", unit.transcoders.n_layers)
            _int(unit.index, f"{unit.label}: index", unit.transcoders.d_tc)
            return ("transcoder", hook, id(unit.transcoders))
        if len(unit.vector) != width:
            raise ValueError(f"{unit.label} is {len(unit.vector)} wide, but {hook} of this model is {width} wide")
        return ("direction", hook)

    def _extra_width(self, key: tuple) -> int:
        if key[0] == "feature":
            return next(u.sae.d_sae for u in self.units if isinstance(u, Feature) and id(u.sae) == key[2])
        if key[0] == "transcoder":
            return next(u.transcoders.d_tc for u in self.units if isinstance(u, TranscoderFeature))
        return self.model.n_heads * self.model.d_model if key[0] == "head" else 0

    def _reader(self, key: tuple, units: list[Unit]) -> Callable[[torch.Tensor], torch.Tensor]:
        kind, model = key[0], self.model
        if kind == "neuron":
            columns = torch.tensor([u.index for u in units])
            if torch.equal(columns, torch.arange(model.d_mlp)):  # every neuron in order: no gather
                return lambda acts: acts.float()
            return lambda acts: acts[:, columns.to(acts.device)].float()
        if kind == "direction":
            matrix = torch.stack([u.vector for u in units], 1)  # [width, units]
            return lambda acts: acts.float() @ matrix.to(acts.device)
        if kind == "feature":
            sae = units[0].sae
            columns = torch.tensor([u.index for u in units])
            return lambda acts: _encoded(sae, acts, columns)
        if kind == "transcoder":
            columns = torch.tensor([u.index for u in units])
            first = units[0]

            def transcoded(acts: torch.Tensor) -> torch.Tensor:
                encoded = first.encode(acts)
                return encoded[:, columns.to(encoded.device)].float().to(acts.device)

            return transcoded
        heads = torch.tensor([u.head for u in units])
        n_heads, d_head = model.n_heads, model.d_head
        if key[2] == "z_norm":
            return lambda acts: acts.float().reshape(len(acts), n_heads, d_head)[:, heads.to(acts.device)].norm(dim=-1)
        from .analyses.attribution import _weight

        layer = parse(key[1])[0]
        arch = model.arch
        projection = model.hf.get_submodule(arch.blocks)[layer].get_submodule(arch.attn_proj)
        w_o = _weight(projection, n_heads * d_head).reshape(-1, n_heads, d_head)[:, heads]  # [d_model, units, d_head]
        w_o = (arch.attn_scale * w_o).permute(1, 2, 0).contiguous()  # [units, d_head, d_model]

        def out_norm(acts: torch.Tensor) -> torch.Tensor:
            z = acts.float().reshape(len(acts), n_heads, d_head)[:, heads.to(acts.device)]  # [pos, units, d_head]
            return torch.einsum("pud,udm->pum", z, w_o.to(acts.device)).norm(dim=-1)

        return out_norm

    def values(self, cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[pos, units]`` float32 (on the captures' device) from one text's captures ``{hook: activations}``."""
        first = cache[self.hooks[0]]
        if len(self._groups) == 1:  # one hook, one kind: its columns are the units in order
            return self._groups[0][2](first.reshape(len(first), -1))
        out = torch.empty(len(first), len(self.units), dtype=torch.float32, device=first.device)
        for key, cols, read in self._groups:
            acts = cache[key[1]]
            out[:, cols.to(out.device)] = read(acts.reshape(len(acts), -1))
        return out


def _encoded(sae: Any, acts: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    step = sae.rows_per_block()
    parts = [sae.encode(acts[i : i + step])[:, columns.to(acts.device)].float() for i in range(0, len(acts), step)]
    return torch.cat(parts) if parts else acts.new_zeros(0, len(columns), dtype=torch.float32)
