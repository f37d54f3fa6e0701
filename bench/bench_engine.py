"""Engine benchmark: capture and re-run cost against plain transformers, TransformerLens and nnsight.

A GPT-2-small-sized random model (12 layers, 12 heads, d_model 768), CPU, 2 threads, 64 and 256
tokens, everything timed in one process on the same weights. Run by hand:

    pip install "transformer_lens>=3" "nnsight>=0.8,<0.9"    # after torch==2.13.0
    python bench/bench_engine.py [--tokens 64 256] [--repeat 15] [--out docs/bench_engine.md]

Ratios are against the plain Hugging Face forward (``model(ids).logits``, SDPA attention).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
import transformers as T

import repwidget as rw

HEAD = 5  # the head ablated in every "ablate" case


def paired(base: Callable[[], object], fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median seconds of ``base`` and ``fn``, called alternately (so drift in the machine hits both)."""
    for _ in range(2):
        base(), fn()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for f, bucket in ((base, times[0]), (fn, times[1])):
            start = time.perf_counter()
            f()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def gpt2_small() -> T.GPT2LMHeadModel:
    torch.manual_seed(0)
    return T.GPT2LMHeadModel(T.GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024)).eval()


def repwidget_cases(hf, ids) -> dict[str, Callable[[], object]]:
    model = rw.load(hf)
    clean = model.run(ids)
    last, mid = model.n_layers - 1, model.n_layers // 2
    return {
        "repwidget: capture resid + patterns, all logits": lambda: model.run(ids).logits,
        "repwidget: capture resid + patterns, last-position logits": lambda: model.run(ids).logits_at(-1),
        "repwidget: full run, head ablated (layer 11), all logits": lambda: (
            model.run(ids, rw.Ablate(last, head=HEAD)).logits
        ),
        "repwidget: rerun, head ablated in last layer, last-position logits": lambda: clean.rerun(
            rw.Ablate(last, head=HEAD)
        ).logits_at(-1),
        "repwidget: rerun, head ablated in last layer, all logits": lambda: (
            clean.rerun(rw.Ablate(last, head=HEAD)).logits
        ),
        "repwidget: rerun, head ablated in middle layer, last-position logits": lambda: clean.rerun(
            rw.Ablate(mid, head=HEAD)
        ).logits_at(-1),
        "repwidget: rerun, head ablated in middle layer, all logits": lambda: (
            clean.rerun(rw.Ablate(mid, head=HEAD)).logits
        ),
    }


def transformer_lens_cases(hf, ids, tokenizer_dir) -> dict[str, Callable[[], object]]:
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=12,
        d_model=768,
        n_ctx=1024,
        d_head=64,
        n_heads=12,
        d_mlp=3072,
        d_vocab=50257,
        act_fn="gelu_new",
        normalization_type="LN",
        device="cpu",
    )
    torch.manual_seed(0)
    tl = HookedTransformer(cfg).eval()
    tokens = torch.tensor([ids])
    wanted = lambda name: name.endswith(("hook_resid_pre", "hook_resid_post", "hook_pattern"))  # noqa: E731

    def zero_head(z, hook):
        z[:, :, HEAD] = 0
        return z

    cases = {
        "TL HookedTransformer: plain forward": lambda: tl(tokens),
        "TL HookedTransformer: run_with_cache (resid + patterns)": lambda: tl.run_with_cache(
            tokens, names_filter=wanted
        ),
        "TL HookedTransformer: hook_z head ablation (layer 11)": lambda: tl.run_with_hooks(
            tokens, fwd_hooks=[("blocks.11.attn.hook_z", zero_head)]
        ),
    }
    try:
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(tokenizer_dir, hf_model=hf, device="cpu")
        cases.update(
            {
                "TL TransformerBridge: plain forward": lambda: bridge(tokens),
                "TL TransformerBridge: run_with_cache (resid + patterns)": lambda: bridge.run_with_cache(
                    tokens, names_filter=wanted
                ),
                "TL TransformerBridge: hook_z head ablation (layer 11)": lambda: bridge.run_with_hooks(
                    tokens, fwd_hooks=[("blocks.11.attn.hook_z", zero_head)]
                ),
            }
        )
    except Exception as e:  # report, do not hide: the table says it could not run
        print(f"TransformerBridge could not be built here: {type(e).__name__}: {e}")
    return cases


def nnsight_cases(hf, ids) -> dict[str, Callable[[], object]]:
    from nnsight import NNsight

    wrapped = NNsight(hf)
    tokens = torch.tensor([ids])

    # nnsight runs the with-block's source in its own frame: results go through a dict
    def save_all():
        out = {}
        with wrapped.trace(tokens):
            out["blocks"] = [block.output.save() for block in wrapped.transformer.h]
            out["logits"] = wrapped.output.save()
        return out

    def ablate():
        out = {}
        with wrapped.trace(tokens):
            z = wrapped.transformer.h[11].attn.c_proj.input
            z[:, :, HEAD * 64 : (HEAD + 1) * 64] = 0
            out["logits"] = wrapped.output.save()
        return out

    return {"nnsight: trace saving every block output": save_all, "nnsight: edit c_proj input (layer 11)": ablate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", default=None, help="write the markdown table here as well")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)  # every tool measured without autograd
    hf = gpt2_small()
    tmp = tempfile.mkdtemp()
    hf.config.save_pretrained(tmp)  # TransformerBridge wants a name to read the config from
    lines = [
        f"torch {torch.__version__}, transformers {T.__version__}, {torch.get_num_threads()} threads; each case "
        f"timed alternately with the plain HF forward, median of {args.repeat} pairs",
        "",
    ]
    for n in args.tokens:
        ids = torch.randint(0, 50257, (n,), generator=torch.Generator().manual_seed(n)).tolist()
        plain = lambda ids=ids: hf(torch.tensor([ids])).logits  # noqa: E731
        cases = repwidget_cases(hf, ids)
        # each peer wraps its own copy of the same weights (the TransformerBridge rewires the model it wraps)
        peers = (
            lambda ids=ids: transformer_lens_cases(copy.deepcopy(hf), ids, tmp),
            lambda ids=ids: nnsight_cases(copy.deepcopy(hf), ids),
        )
        for extra in peers:
            try:
                cases.update(extra())
            except ImportError as e:
                print(f"skipped: {e}")
        lines += [f"### {n} tokens", "", "| case | ms | HF forward, ms | x HF forward |", "|---|---:|---:|---:|"]
        for name, fn in cases.items():
            base, t = paired(plain, fn, args.repeat)
            lines.append(f"| {name} | {t * 1e3:.1f} | {base * 1e3:.1f} | {t / base:.2f} |")
            print(lines[-1], flush=True)
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
