"""The local executor's machinery: one forward pass of the wrapped model with capture hooks, edits and
attention sinks, for a batch of sequences; every change to the model undone in ``finally`` (``changes.py``: each
undo step queued before its change, the undo retried when an interrupt stops it).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from ..hook_names import SITE_OF, parse
from . import attention
from .architecture import Architecture
from .changes import Changes, remove_tagged, restore_attention, restore_forward, restore_training
from .plan import EditStep, Plan, Result


class NotAppliedError(RuntimeError):
    """An intervention's hook never ran: the intervention would silently do nothing."""


class NonFiniteError(ValueError):
    """An intervention made an activation NaN or infinite."""


def part(model: nn.Module, arch: Architecture, layer: int, name: str) -> nn.Module:
    block = model.get_submodule(arch.blocks)[layer]
    return block if name == "block" else block.get_submodule(getattr(arch, name))


class _Captured(Exception):  # control flow, not an error
    """Raised inside a hook to end a pass whose captures are all taken."""


def first_tensor(output: object) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output[0]


def replace_first(output: object, x: torch.Tensor) -> object:
    if isinstance(output, torch.Tensor):
        return x
    return (x, *output[1:]) if isinstance(output, tuple) else type(output)([x, *output[1:]])


class _Pass:
    """The hooks of one pass: what they capture, and the edits they make, per sequence of the batch."""

    def __init__(self, arch: Architecture, plan: Plan) -> None:
        self.arch, self.plan = arch, plan
        self.wanted = {h for h in plan.capture if not h.endswith("attn.hook_pattern")}  # patterns go to sinks
        self.sinks: list[attention.Sink] = []
        self.caches: list[dict[str, torch.Tensor]] = [{} for _ in range(plan.batch)]
        self.outputs: list[object | None] = [None] * arch.n_layers
        self.inputs: dict[int, torch.Tensor] = {}  # each block's (edited) input, for resid_mid
        self.final: torch.Tensor | None = None
        self.fired: set[str] = set()

    def done(self) -> bool:
        """Whether a pass that stops early has everything it was asked for."""
        return self.plan.stop_early and all(s.filled for s in self.sinks) and self.wanted.issubset(self.caches[0])

    @property
    def whole(self) -> bool:
        """One sequence, no padding: edits and captures see the activation itself."""
        return self.plan.batch == 1 and self.plan.lengths is None

    def _segments(self, x: torch.Tensor):
        for i in range(self.plan.batch):
            yield i, x if self.whole else x[i : i + 1, self.plan.span(i)]

    def _edit(self, name: str, steps: list[EditStep], x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        for i, segment in self._segments(x):
            for step in steps:
                if step.edits[i] is None:
                    continue
                segment = step.edits[i](segment)
                if not bool(torch.isfinite(segment).all()):
                    raise NonFiniteError(
                        f"{step.label}: the edited activation at {name} holds NaN or infinite values "
                        f"(too large for {segment.dtype}); use a smaller scale or vector"
                    )
            if self.whole:
                x = segment
            else:
                x[i : i + 1, self.plan.span(i)] = segment
        return x

    def _capture(self, name: str, template: str, x: torch.Tensor) -> None:
        for i, segment in self._segments(x):
            value = segment[0]
            if template == "attn.hook_z":
                value = value.view(value.shape[0], self.arch.n_heads, self.arch.d_head)
            self.caches[i][name] = value
        if self.done():
            raise _Captured

    def visit(self, layer: int, template: str, x: torch.Tensor) -> torch.Tensor:
        """Edit, then capture, the activation of ``template`` at ``layer`` (``[batch, pos, width]``)."""
        name = f"blocks.{layer}.{template}"
        steps = self.plan.edits.get(name)
        if steps:
            x = self._edit(name, steps, x)
            self.fired.add(name)
        if name in self.wanted:
            self._capture(name, template, x)
            if self.plan.grad and self.whole:  # the pass goes on from what was captured: gradients reach it
                x = self.caches[0][name].reshape(x.shape)
        return x

    def residual(self, layer: int, templates: list[str], y: torch.Tensor, scale: float) -> torch.Tensor:
        """A branch's output ``y``: hook_attn_out / hook_mlp_out is ``scale * y``; hook_resid_mid is the block's
        input plus it. Edits of either are taken back into ``y``."""
        base = self.inputs.get(layer)
        y3 = y.reshape(base.shape) if base is not None and y.dim() == 2 else y  # flattened [batch * pos, d] (OPT)
        changed = False
        for template in templates:
            name = f"blocks.{layer}.{template}"
            if name not in self.wanted and name not in self.plan.edits:
                continue
            mid = template == "hook_resid_mid"
            value = base + scale * y3 if mid else scale * y3
            edited = self.visit(layer, template, value)
            if edited is not value or self.plan.grad:  # with gradients, the pass goes through what was captured
                y3, changed = ((edited - base) if mid else edited) / scale, True
        return y3.reshape(y.shape) if changed else y

    def pre_hook(self, layer: int, where: str, templates: list[str]):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            shape = x.shape
            flat = x.dim() == 2  # [batch * pos, width] inside some MLPs (OPT)
            if flat:
                x = x.reshape(self.plan.batch, self.plan.ids.shape[1], -1)
            for template in templates:
                x = self.visit(layer, template, x)
            if where == "block":
                self.inputs[layer] = x
            x = x.reshape(shape) if flat else x
            if args:
                return (x, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": x}

        hook._repwidget = self.token
        return hook

    def post_hook(self, layer: int, where: str, templates: list[str]):
        def hook(module, args, output):
            y = first_tensor(output)
            if where == "block":
                x = self.bypass(layer, y)
                for template in templates:
                    x = self.visit(layer, template, x)
            else:
                scale = self.arch.attn_scale if where == "attn_end" else self.arch.mlp_scale
                x = self.residual(layer, templates, y, scale)
            output = replace_first(output, x) if x is not y else output
            if where == "block" and self.plan.record:
                self.outputs[layer] = output
            return output

        hook._repwidget = self.token
        return hook

    def bypass(self, layer: int, y: torch.Tensor) -> torch.Tensor:
        """Block ``layer``'s output, with its (edited) input instead for the sequences that skip it."""
        rows = self.plan.skips.get(layer)
        if not rows or not any(rows):
            return y
        x = self.inputs[layer].reshape(y.shape)
        if all(rows):
            return x
        out = y.clone()
        chosen = [i for i, skip in enumerate(rows) if skip]
        out[chosen] = x[chosen]
        return out

    def grad_hook(self):
        def hook(module, args, output):
            return output if output.requires_grad else output.detach().requires_grad_()

        hook._repwidget = self.token
        return hook

    def pattern_hook(self, sink: attention.Sink, feed: bool):
        """After an attention layer with a sink: without the attention interface, the whole layer's
        probabilities go to the sink in one block; a pass that stops early stops once every sink is filled."""

        def hook(module, args, output):
            if feed:
                attention.feed(sink, output[self.arch.pattern_index])
            if self.done():
                raise _Captured

        hook._repwidget = self.token
        return hook


def execute(model: nn.Module, arch: Architecture, plan: Plan, forward_kwargs: dict, interface: bool) -> list[Result]:
    """Run ``model`` once under ``plan``; one result per sequence.

    ``interface``: the model's attention goes through transformers' attention interface, so sinks are fed a
    block of rows at a time; otherwise patterns come from an eager pass, a layer at a time.
    """
    n_layers = arch.n_layers
    by_site: dict[tuple[int, str, str], list[str]] = defaultdict(list)
    sinks: dict[int, attention.Sink] = dict(plan.sinks)
    full: dict[str, attention.Full] = {}
    for name in sorted({*plan.capture, *plan.edits}, key=lambda h: _order(h, n_layers)):
        layer, template = parse(name, n_layers)
        if layer < plan.start:
            continue
        if template == "attn.hook_pattern":
            full[name] = sink = attention.Full()
            sinks[layer] = attention.Sinks(sinks[layer], sink) if layer in sinks else sink
            continue
        site = SITE_OF[template]
        by_site[(layer, site.part, site.when)].append(template)
    run_layers = list(range(plan.start, n_layers))
    state = _Pass(arch, plan)
    state.token = token = object()
    blocks = model.get_submodule(arch.blocks)
    for layer in run_layers:  # every block's output (and call) is recorded; resid_mid needs each block's input
        by_site.setdefault((layer, "block", "pre"), [])
        by_site.setdefault((layer, "block", "post"), [])
    modules = [part(model, arch, layer, where) for layer, where, _ in by_site]
    modules += [part(model, arch, layer, "attn") for layer in (*sinks, *plan.knockouts)]
    offsets = [plan.span(i).start for i in range(plan.batch)]
    layers = {layer for layer in (*sinks, *plan.knockouts) if layer in run_layers}
    table = {
        part(model, arch, layer, "attn"): attention.Layer(sinks.get(layer), plan.knockouts.get(layer), offsets)
        for layer in layers
    }
    state.sinks = [entry.sink for entry in table.values() if entry.sink is not None]
    config = model.config
    loaded = getattr(config, "_attn_implementation", None) or "eager"
    missing = object()
    changes = Changes()
    try:
        changes.queue(torch.set_grad_enabled, torch.is_grad_enabled())
        torch._C._set_grad_enabled(plan.grad)
        training = [m for m in model.modules() if m.training]
        changes.queue(restore_training, training)
        for m in training:
            m.training = False
        if table:
            use = attention.NAME if interface else "eager"
            changes.queue(restore_attention, config, getattr(config, "_attn_implementation", None))
            config._attn_implementation = use
        changes.queue(remove_tagged, modules, token)
        for (layer, where, when), templates in by_site.items():
            module = part(model, arch, layer, where)
            if when == "pre":
                module.register_forward_pre_hook(state.pre_hook(layer, where, templates), with_kwargs=True)
            else:
                module.register_forward_hook(state.post_hook(layer, where, templates))
        for module, entry in table.items():
            if entry.sink is not None:
                module.register_forward_hook(state.pattern_hook(entry.sink, not interface))
        for layer in range(plan.start):
            output = plan.reuse[layer]
            changes.queue(restore_forward, blocks[layer], blocks[layer].__dict__.get("forward", missing), missing)
            blocks[layer].forward = lambda *a, _o=output, **k: _o
        if plan.grad:  # the graph must start at the input, whether or not the weights take gradients
            embeddings = model.get_input_embeddings()
            modules.append(embeddings)
            changes.queue(remove_tagged, [embeddings], token)
            embeddings.register_forward_hook(state.grad_hook())
        if arch.plain_logits and arch.unembed is not None:  # with gradients too: the final state keeps its graph
            unembed = model.get_submodule(arch.unembed)
            original = unembed.forward

            def lazy_unembed(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
                state.final = x
                return original(x[:, :0], *args, **kwargs)  # an empty result of the right type: logits come later

            changes.queue(restore_forward, unembed, unembed.__dict__.get("forward", missing), missing)
            unembed.forward = lazy_unembed
        changes.queue(attention.activate, attention.active())
        attention.activate((table, loaded))
        output = _forward(model, arch, plan, forward_kwargs, bool(table) and not interface)
    except _Captured:  # every hook asked for is captured: the rest of the pass is not needed
        output = None
    finally:
        while changes.steps:  # every change undone, even when an interrupt lands on this call (changes.py)
            try:
                changes.undo()
            except BaseException as e:
                changes.error = changes.error if changes.error is not None else e
        changes.reraise()
    if output is not None and any(not entry.applied for entry in table.values() if entry.knock):
        raise NotAppliedError("a knockout was never applied: the attention did not go through repwidget's attention")
    return _results(arch, plan, state, output, full)


def _order(name: str, n_layers: int) -> tuple[int, int]:
    from ..hook_names import HOOK_TEMPLATES

    layer, template = parse(name, n_layers)
    return layer, HOOK_TEMPLATES.index(template)


def _forward(model, arch: Architecture, plan: Plan, forward_kwargs: dict, eager_patterns: bool):
    return model(**forward_inputs(model, arch, plan, forward_kwargs, eager_patterns))


def forward_inputs(model, arch: Architecture, plan: Plan, forward_kwargs: dict, eager_patterns: bool) -> dict:
    """The keyword arguments of the model's forward for ``plan``: ids, the batch's mask and positions, a KV cache."""
    kwargs = {**forward_kwargs, **plan.forward}
    if eager_patterns:
        kwargs.update(arch.pattern_kwargs)
    if plan.lengths is not None and plan.batch > 1:
        mask = torch.zeros_like(plan.ids)
        for i in range(plan.batch):
            mask[i, plan.span(i)] = 1
        kwargs["attention_mask"] = mask
        if plan.left and "position_ids" in _parameters(model):
            kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp_min(0)
    return {"input_ids": plan.ids, **kwargs}


def _kv_cache(output: object) -> object:
    """The KV cache a forward returned (``cache`` in transformers 5.2x, ``past_key_values`` before)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def _parameters(model: nn.Module) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _results(arch: Architecture, plan: Plan, state: _Pass, output, full: dict[str, attention.Full]) -> list[Result]:
    if output is not None:
        missing = {h for h in plan.edits if parse(h, arch.n_layers)[0] >= plan.start} - state.fired
        if missing:
            raise NotAppliedError(
                f"the edits of {sorted(missing)[:3]} were never applied: the model did not compute those activations"
            )
    logits = None
    if output is not None and not arch.plain_logits:
        raw = getattr(output, "logits", None)
        logits = raw if isinstance(raw, torch.Tensor) and arch.unembed is not None else None
    check = logits if logits is not None else state.final
    # one check of the whole batch; only if it fails, each sequence's real tokens (padding may be NaN)
    suspect = bool(plan.edits) and check is not None and output is not None and not bool(torch.isfinite(check).all())
    results = []
    for i in range(plan.batch):
        span = plan.span(i)
        if suspect and not bool(torch.isfinite(check[i, span]).all()):
            labels = sorted({s.label for steps in plan.edits.values() for s in steps})
            raise NonFiniteError(
                f"the interventions ({', '.join(labels)[:200]}) made the model's output NaN or infinite"
            )
        cache = state.caches[i]
        for name, sink in full.items():
            if sink.pattern is not None:
                cache[name] = sink.pattern[i, :, span, span]
        final = state.final[i, span] if state.final is not None else None
        row_logits = logits[i, span] if logits is not None else None
        outputs = state.outputs if state.whole else [None] * arch.n_layers
        past = _kv_cache(output) if plan.forward.get("use_cache") else None
        captured = {h: cache[h] for h in plan.capture if h in cache}
        results.append(Result(captured, list(outputs), final, row_logits, past))
    return results
