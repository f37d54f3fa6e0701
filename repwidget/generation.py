"""Generation with interventions: the text a model writes when steered or ablated at every step.

:func:`generate` (``model.generate``) runs the prompt once and then one token at a time with the model's KV
cache, each step a planned pass (``plan.StepEdits``) run by the model's executor, so interventions apply exactly
as in ``model.run``: on the prompt and on every generated position (those naming positions only there).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch

from .interventions import Intervention, as_tuple
from .model.plan import plan_steps

if TYPE_CHECKING:
    from .model.model import Model
    from .run import Run

Stop = Callable[["Generation"], bool] | str | int | Sequence[str | int] | None


@dataclasses.dataclass(frozen=True)
class Alternative:
    """One of the likeliest tokens at a step: its id, its text and its log-probability."""

    token_id: int
    token: str
    logprob: float


class Generation:
    """What :meth:`repwidget.Model.generate` wrote: the prompt, the new tokens, each chosen token's
    log-probability and the likeliest alternatives at each step, and (``.run``) a :class:`repwidget.Run` over
    prompt and continuation with the same interventions, so every analysis and view applies to it.

    ``stopped`` says why generation ended: ``"max_new_tokens"``, ``"eos"``, ``"stop"`` or ``"interrupted"``.
    """

    def __init__(self, model: Model, prompt_ids: list[int], interventions: tuple[Intervention, ...], seed: int):
        self.model = model
        self.prompt_ids = list(prompt_ids)
        self.interventions = interventions
        self.seed = seed
        self.stopped = "max_new_tokens"
        #: one entry per generated token: (id, log-probability, top ids, their log-probabilities), appended at once
        self._steps: list[tuple[int, float, list[int], list[float]]] = []

    @property
    def new_token_ids(self) -> list[int]:
        return [step[0] for step in self._steps]

    @property
    def token_ids(self) -> list[int]:
        """Prompt and continuation."""
        return self.prompt_ids + self.new_token_ids

    @property
    def prompt_tokens(self) -> list[str]:
        return self.model.to_str_tokens(self.prompt_ids)

    @property
    def new_tokens(self) -> list[str]:
        return self.model.to_str_tokens(self.new_token_ids)

    @property
    def logprobs(self) -> list[float]:
        """The model's log-probability (temperature 1, before top-p) of each chosen token."""
        return [step[1] for step in self._steps]

    @property
    def top(self) -> list[tuple[Alternative, ...]]:
        """The likeliest tokens at each step, most likely first."""
        out = []
        for _, _, ids, values in self._steps:
            texts = self.model.to_str_tokens(ids)
            out.append(tuple(Alternative(*item) for item in zip(ids, texts, values, strict=True)))
        return out

    @property
    def text(self) -> str:
        return self._decode(self.token_ids)

    @property
    def new_text(self) -> str:
        return self._decode(self.new_token_ids)

    def _decode(self, ids: list[int]) -> str:
        tokenizer = self.model.tokenizer
        if tokenizer is None:
            return " ".join(map(str, ids))
        return tokenizer.decode(ids, skip_special_tokens=True)

    @cached_property
    def run(self) -> Run:
        """One forward pass over prompt and continuation with the same interventions (those naming positions
        past the end left out)."""
        n = len(self.token_ids)
        return self.model.run(self.token_ids, within(self.interventions, n))

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        shown = self.new_text if len(self.new_text) <= 60 else self.new_text[:57] + "..."
        return f"<rw.Generation: {len(self)} new tokens ({self.stopped}) {shown!r}>"


def within(interventions: tuple[Intervention, ...], n_tokens: int) -> tuple[Intervention, ...]:
    """``interventions`` for a sequence of ``n_tokens``: positions past its end left out (an intervention left
    with none dropped)."""
    out = []
    for iv in interventions:
        positions = getattr(iv, "positions", None)
        if positions is None or all(p < n_tokens for p in positions):
            out.append(iv)
        elif any(p < n_tokens for p in positions):
            out.append(dataclasses.replace(iv, positions=tuple(p for p in positions if p < n_tokens)))
    return tuple(out)


def generate(
    model: Model,
    text_or_ids: Any,
    interventions: Intervention | Iterable[Intervention] = (),
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop: Stop = None,
    *,
    alternatives: int = 5,
    on_token: Callable[[Generation], None] | None = None,
) -> Generation:
    """Continue ``text_or_ids`` by up to ``max_new_tokens`` tokens with ``interventions`` at every step.

    ``temperature=0`` is greedy; otherwise tokens are sampled at ``temperature`` from the smallest set whose
    probability reaches ``top_p``, reproducibly from ``seed``. Generation ends at the model's end-of-sequence
    token, or at ``stop``: a string (or token id, or a list of them) the new text ends with, or a function of the
    :class:`Generation` so far returning True. ``on_token`` is called after each token. A KeyboardInterrupt ends
    generation and returns what was generated (``stopped == "interrupted"``); the model is left unchanged.
    """
    stream = Stream(model, text_or_ids, interventions, max_new_tokens, temperature, top_p, seed, stop, alternatives)
    try:
        while stream.step():
            if on_token is not None:
                on_token(stream.generation)
    except KeyboardInterrupt:
        stream.generation.stopped = "interrupted"
        stream.done = True
    return stream.generation


class Stream:
    """A generation advanced one token per :meth:`step` (what :func:`generate` loops over; the explorer's
    continuation panel streams one a few tokens per request). Between steps the model holds nothing of it: the
    KV cache is the stream's own."""

    def __init__(
        self,
        model: Model,
        text_or_ids: Any,
        interventions: Intervention | Iterable[Intervention] = (),
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Stop = None,
        alternatives: int = 5,
    ) -> None:
        _check_args(max_new_tokens, temperature, top_p, seed, alternatives)
        if model.arch.unembed is None:
            raise ValueError("this model has no unembedding, so it cannot generate")
        if not model.arch.causal:
            raise ValueError("this model is not causal (it attends both ways), so it cannot generate")
        ids = model.to_ids(text_or_ids)
        limit = model.max_tokens
        if limit is not None and len(ids) + max_new_tokens > limit:
            raise ValueError(
                f"the prompt has {len(ids)} tokens and max_new_tokens={max_new_tokens} would reach "
                f"{len(ids) + max_new_tokens}, beyond this model's context of {limit}; ask for at most "
                f"{max(0, limit - len(ids))} new tokens or shorten the prompt"
            )
        ivs = as_tuple(interventions)
        self.model = model
        self.max_new_tokens, self.temperature, self.top_p, self.alternatives = (
            max_new_tokens, temperature, top_p, alternatives,
        )  # fmt: skip
        self._edits = plan_steps(model, ivs, len(ids) + max_new_tokens)
        self._should_stop = _stopper(stop, model)
        self._eos = _eos_ids(model)
        seed = int(torch.randint(0, 2**62, (1,)).item()) if seed is None else seed
        self._generator: torch.Generator | None = None
        self.generation = Generation(model, ids, ivs, seed)
        self._pending, self._offset, self._past = list(ids), 0, None
        self.done = False
        self._unchecked = False  # the last token's stop conditions are still to be read

    def step(self) -> bool:
        """Generate one more token; False (and nothing done) once generation has ended. A step that raises (a
        KeyboardInterrupt in the forward pass, say) leaves the stream as it was before it: its KV cache, sampler
        and tokens, so the next step writes what an uninterrupted stream would."""
        if self._unchecked:  # the last step was interrupted while its stop conditions were read
            self._check_stop()
        if self.done:
            return False
        model, out = self.model, self.generation
        restore = _checkpoint(self._past)
        sampler = None if self._generator is None else self._generator.get_state()
        try:
            result = model.executor.execute(self._edits.plan(self._pending, self._offset, self._past))[0]
            logits = result.logits if result.logits is not None else model.unembed(result.final_hidden[-1:])
            logits = logits[-1]
            logprobs = torch.log_softmax(logits.float(), -1)
            if self.temperature == 0:
                token = int(torch.argmax(logits).item())
            else:
                if self._generator is None:
                    self._generator = torch.Generator(device=logits.device).manual_seed(out.seed)
                token = _sample(logits.float(), self.temperature, self.top_p, self._generator)
            top = torch.topk(logprobs, min(self.alternatives, logprobs.shape[-1]))
            steps = [*out._steps, (token, float(logprobs[token]), top.indices.tolist(), top.values.tolist())]
        except BaseException:
            self._past = restore()
            if sampler is None:
                self._generator = None
            else:
                self._generator.set_state(sampler)
            raise
        # the step taken, in one statement (no call an interrupt could land in)
        self._past, out._steps, self._offset, self._pending, self._unchecked = (
            result.past, steps, self._offset + len(self._pending), [token], True,
        )  # fmt: skip
        self._check_stop()
        return True

    def _check_stop(self) -> None:
        """Whether the last token ends generation (end of sequence, ``stop``, ``max_new_tokens``)."""
        out = self.generation
        if out.new_token_ids[-1] in self._eos:
            out.stopped, self.done = "eos", True
        elif self._should_stop(out):
            out.stopped, self.done = "stop", True
        elif len(out) >= self.max_new_tokens:
            self.done = True
        self._unchecked = False


def _checkpoint(past: object) -> Callable[[], object]:
    """What puts the KV cache ``past`` back as it is now, after a step that was cut short. transformers' dynamic
    caches replace their tensors when they grow (never write into them): their attributes are restored; another
    cache is copied (None and legacy tuples are never changed)."""
    if past is None or isinstance(past, tuple):
        return lambda: past
    from transformers import DynamicCache

    if type(past) is DynamicCache and all(type(layer).update in _replacing() for layer in past.layers):
        layers = list(past.layers)
        kept = dict(vars(past)), [dict(vars(layer)) for layer in layers]

        def restore() -> object:
            for layer, attributes in zip(layers, kept[1], strict=True):
                vars(layer).clear()
                vars(layer).update(attributes)
            vars(past).clear()
            vars(past).update(kept[0])
            past.layers = list(layers)
            return past

        return restore
    saved = copy.deepcopy(past)
    return lambda: saved


@functools.cache
def _replacing() -> frozenset:
    """The dynamic cache layers' ``update`` methods, which replace their tensors (``torch.cat``) rather than write."""
    from transformers import cache_utils

    names = ("DynamicLayer", "DynamicSlidingWindowLayer")
    return frozenset(getattr(cache_utils, n).update for n in names if hasattr(cache_utils, n))


#: the smallest temperature sampled at (smaller ones overflow the logits; 0 is greedy decoding)
MIN_TEMPERATURE = 1e-6


def _check_args(max_new_tokens: Any, temperature: Any, top_p: Any, seed: Any, alternatives: Any) -> None:
    if type(max_new_tokens) is not int or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r:.40}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0: greedy), got {temperature!r:.40}")
    if not math.isfinite(temperature):
        raise ValueError(f"temperature must be finite, got {temperature!r}")
    if 0 < temperature < MIN_TEMPERATURE:  # logits / temperature would overflow to inf, the probabilities to nan
        raise ValueError(f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {temperature!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be a number in (0, 1], got {top_p!r:.40}")
    if seed is not None and type(seed) is not int:
        raise ValueError(f"seed must be an int or None, got {seed!r:.40}")
    if type(alternatives) is not int or alternatives < 0:
        raise ValueError(f"alternatives must be an int >= 0, got {alternatives!r:.40}")


def _eos_ids(model: Model) -> set[int]:
    config = getattr(model.hf, "generation_config", None) or model.hf.config
    value = getattr(config, "eos_token_id", None)
    values = value if isinstance(value, (list, tuple)) else [value]
    return {v for v in values if isinstance(v, int)}


def _stopper(stop: Stop, model: Model) -> Callable[[Generation], bool]:
    """``stop`` as a function of the generation so far."""
    if stop is None:
        return lambda gen: False
    if callable(stop):
        return stop
    items = [stop] if isinstance(stop, (str, int)) else list(stop) if isinstance(stop, Sequence) else None
    if items is None or not items or any(isinstance(s, bool) or not isinstance(s, (str, int)) for s in items):
        raise ValueError(f"stop must be a function, a string, a token id or a list of them, got {stop!r:.60}")
    texts = [s for s in items if isinstance(s, str) and s]
    ids = {s for s in items if isinstance(s, int)}

    def should_stop(gen: Generation) -> bool:
        if gen.new_token_ids[-1] in ids:
            return True
        return bool(texts) and any(gen.new_text.endswith(t) for t in texts)

    return should_stop


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    probs = torch.softmax(logits / temperature, -1)
    if top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_probs, -1) - sorted_probs  # probability of the tokens ranked above
        sorted_probs[before >= top_p] = 0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator).item())
