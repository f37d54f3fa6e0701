"""Hook names (TransformerLens style) and capture patterns."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Per-block hook templates, in the order they run inside a block.
HOOK_TEMPLATES: tuple[str, ...] = (
    "hook_resid_pre",
    "attn.hook_pattern",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "mlp.hook_in",
    "mlp.hook_post",
    "hook_mlp_out",
    "hook_resid_post",
)

#: What a run captures when ``capture=None``: the residual stream. Attention patterns are computed when first read
#: (``run["blocks.3.attn.hook_pattern"]``), a layer at a time; capture them to keep them.
DEFAULT_CAPTURE: tuple[str, ...] = (
    "blocks.*.hook_resid_pre",
    "blocks.*.hook_resid_post",
)


@dataclass(frozen=True)
class Site:
    """Where a hook template is read in a block, for every executor: ``part`` (``"block"`` or the name of an
    :class:`~repwidget.model.architecture.Architecture` field: ``attn``, ``attn_proj``, ``attn_end``,
    ``mlp_in``, ``mlp_down``, ``mlp_end``), ``when`` (``"pre"``: the part's input, ``"post"``: its output,
    ``"pattern"``: the attention's probabilities) and ``rank``, the order in which a block computes them."""

    part: str
    when: str
    rank: int


#: the one site table: where each hook template attaches (the hook executor and the nnsight executor both read it)
SITE_OF: dict[str, Site] = {
    "hook_resid_pre": Site("block", "pre", 0),
    "attn.hook_z": Site("attn_proj", "pre", 1),
    "attn.hook_pattern": Site("attn", "pattern", 2),
    "hook_attn_out": Site("attn_end", "post", 3),
    "hook_resid_mid": Site("attn_end", "post", 3),
    "mlp.hook_in": Site("mlp_in", "pre", 4),
    "mlp.hook_post": Site("mlp_down", "pre", 5),
    "hook_mlp_out": Site("mlp_end", "post", 6),
    "hook_resid_post": Site("block", "post", 7),
}

#: short names of the activations probes read, by the hook template they name
SHORT_NAMES: dict[str, str] = {
    "resid_pre": "hook_resid_pre",
    "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "mlp.hook_post": "mlp.hook_post",
}

_NAME = re.compile(r"blocks\.(0|[1-9][0-9]*)\.([a-z_.]+)", re.ASCII)
_LOOSE = re.compile(r"blocks\.(\d+)\.(.+)")


class HookNameError(KeyError):
    """An unknown or uncaptured hook name; the message lists what is valid."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


def parse(name: str, n_layers: int | None = None) -> tuple[int, str]:
    """Split ``blocks.{l}.{template}`` into ``(l, template)``, or raise HookNameError.

    The one place hook names are checked: the whole string must be the canonical name (ASCII
    digits without leading zeros, no whitespace), so that a name that looks right can never
    silently match nothing. ``blocks.02.hook_resid_pre`` is refused with the canonical spelling
    suggested, not normalised: the name is what hooks are looked up by. With ``n_layers`` the
    layer must also be in range.
    """
    m = _NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None or m.group(2) not in HOOK_TEMPLATES or (n_layers is not None and int(m.group(1)) >= n_layers):
        layers = f" with layer in 0..{n_layers - 1}" if n_layers is not None else ""
        hint = _suggest(name)
        raise HookNameError(
            f"unknown hook name {name!r}{f' (did you mean {hint!r}?)' if hint else ''}. Valid names are "
            f"blocks.{{layer}}.{{hook}}{layers} and hook one of: {', '.join(HOOK_TEMPLATES)}"
        )
    return int(m.group(1)), m.group(2)


def _suggest(name: object) -> str | None:
    """The canonical spelling of a name that differs only in whitespace or digits (``blocks.02``, ``blocks.٢``)."""
    if not isinstance(name, str):
        return None
    m = _LOOSE.fullmatch(name.strip())
    if m is None or m.group(2).strip() not in HOOK_TEMPLATES:
        return None
    canonical = f"blocks.{int(m.group(1))}.{m.group(2).strip()}"
    return canonical if canonical != name else None


def all_names(n_layers: int) -> list[str]:
    """Every valid hook name of a model with ``n_layers`` blocks, in execution order."""
    return [f"blocks.{layer}.{t}" for layer in range(n_layers) for t in HOOK_TEMPLATES]


def expand(patterns: str | Iterable[str] | None, n_layers: int, names: list[str] | None = None) -> list[str]:
    """Expand hook names and glob patterns into concrete hook names, in execution order.

    ``names`` are the hooks a model has (all of them by default); a glob matches only those.
    """
    if patterns is None:
        patterns = DEFAULT_CAPTURE
    if isinstance(patterns, str):
        patterns = [patterns]
    names = all_names(n_layers) if names is None else names
    chosen: set[str] = set()
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f"capture takes hook names or glob patterns (str), got {type(pattern).__name__}")
        if any(c in pattern for c in "*?["):
            hits = fnmatch.filter(names, pattern)
            if not hits:
                raise HookNameError(
                    f"capture pattern {pattern!r} matches no hook. Hooks are blocks.{{layer}}.{{hook}} with "
                    f"layer in 0..{n_layers - 1} and hook one of: {', '.join(HOOK_TEMPLATES)}"
                )
            chosen.update(hits)
        else:
            parse_any(pattern, n_layers)  # a block's hook, or a CNN stage's
            chosen.add(pattern)
    return [n for n in names if n in chosen]


def hook_for(site: str, layer: int) -> str:
    """``resid_post`` -> ``blocks.{layer}.hook_resid_post``; ``mlp.hook_post`` -> ``blocks.{layer}.mlp.hook_post``."""
    if site not in SHORT_NAMES:
        raise ValueError(f"site must be one of {', '.join(SHORT_NAMES)}, got {site!r:.40}")
    name = f"blocks.{layer}.{SHORT_NAMES[site]}"
    parse(name)  # a layer that is not a plain int (2.0, True) makes no valid name
    return name


def same_activation(hook: str, site: str, layer: int) -> bool:
    """Whether ``hook`` reads the activation ``site`` names at ``layer`` (resid_post L is resid_pre L+1)."""
    return hook == hook_for(site, layer) or (site == "resid_post" and hook == f"blocks.{layer + 1}.hook_resid_pre")


#: the hook family of a CNN's stages, beside ``blocks``: ``stages.{stage}.hook_out`` is a stage's output feature map
#: ``[channels, h, w]`` (interventions see it as ``[h * w positions, channels]``)
STAGE_TEMPLATES: tuple[str, ...] = ("hook_out",)
_STAGE_NAME = re.compile(r"stages\.(0|[1-9][0-9]*)\.([a-z_.]+)", re.ASCII)


def parse_stage(name: str, n_stages: int | None = None) -> int:
    """The stage of ``stages.{stage}.hook_out`` (a CNN's hook), or raise HookNameError listing the valid names."""
    m = _STAGE_NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None or m.group(2) not in STAGE_TEMPLATES or (n_stages is not None and int(m.group(1)) >= n_stages):
        stages = f" with stage in 0..{n_stages - 1}" if n_stages is not None else ""
        raise HookNameError(
            f"unknown hook name {name!r}. A CNN's hooks are stages.{{stage}}.{{hook}}{stages} and hook one of: "
            f"{', '.join(STAGE_TEMPLATES)}"
        )
    return int(m.group(1))


def parse_any(name: str, n_layers: int | None = None) -> tuple[int, str]:
    """``(layer, template)`` of a block hook (:func:`parse`) or a CNN stage hook (``stages.L.hook_out``)."""
    if isinstance(name, str) and name.startswith("stages."):
        return parse_stage(name, n_layers), STAGE_TEMPLATES[0]
    return parse(name, n_layers)


def stage_names(n_stages: int) -> list[str]:
    """Every hook name of a CNN with ``n_stages`` stages, in execution order."""
    return [f"stages.{stage}.{t}" for stage in range(n_stages) for t in STAGE_TEMPLATES]
