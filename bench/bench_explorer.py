"""Explorer benchmarks: bytes sent for the first render, and click-to-repaint latency in a real browser.

    python bench/bench_explorer.py bytes     # needs circuitsvis and bertviz (pip install circuitsvis bertviz)
    python bench/bench_explorer.py latency   # needs the test extras (JupyterLab, playwright) and /usr/bin/chromium
    python bench/bench_explorer.py export    # ex.save_html sizes (needs circuitsvis)
    python bench/bench_explorer.py projector # a lasso of 5,000 points: message bytes, kernel time, layer change

``bytes``: a GPT-2-small-shaped random model (12 layers, 12 heads, d_model 768) on 256 and 512
tokens. repwidget's first render is the widget state plus the answers to the requests the front end
makes on mount (the same five the JS unit test checks: overview, one pattern, the lens window,
predictions, top neurons), JSON and binary buffers counted. CircuitsVis ``attention_patterns`` of
the same 144 heads (offline HTML, what Jupyter shows without internet; and the CDN variant) and
BertViz ``model_view`` HTML of the same attention are measured on the same tensors.

``latency``: JupyterLab + headless Chromium; clicks a head and times, in the page, from the click
to the repainted predictions view; compares with the kernel's re-run time for the same ablation.
Results: ``docs/bench_explorer.md``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def gpt2_small(n_positions: int = 1024):
    import transformers as T

    import repwidget as rw

    torch.manual_seed(0)
    config = T.GPT2Config(n_positions=n_positions)  # 12 layers, 12 heads, d_model 768, vocab 50257
    return rw.load(T.GPT2LMHeadModel(config).eval())


def first_render_bytes(model, ids: list[int]) -> dict[str, int]:
    """JSON + buffer bytes of the widget state and of the answers to the front end's first requests."""
    import repwidget as rw

    ex = rw.explore(model, ids)
    state = ex.get_state()
    state_bytes = len(json.dumps({k: v for k, v in state.items() if k not in ("_esm", "_css")}))
    esm = len(Path(ex._esm).read_bytes()) if isinstance(ex._esm, Path) else len(str(ex._esm))
    sel, n = ex.selection, len(ids)
    requests = [
        {"what": "overview"},
        {"what": "pattern", "layer": sel["layer"], "head": sel["head"]},
        {"what": "lens", "start": max(0, n - 16), "stop": n},
        {"what": "predictions", "position": sel["token"]},
        {"what": "neurons", "layer": sel["layer"], "position": sel["token"]},
    ]
    sent: list[tuple[dict, list]] = []
    ex.send = lambda content, buffers=None: sent.append((content, buffers or []))
    for i, request in enumerate(requests):
        ex._on_message(ex, {"type": "get", "id": i, **request}, [])
    assert all(content["type"] == "reply" for content, _ in sent), sent
    replies = sum(len(json.dumps(c)) + sum(len(b) for b in bufs) for c, bufs in sent)
    return {"state": state_bytes, "replies": replies, "total": state_bytes + replies, "bundle": esm}


def bench_bytes() -> None:
    import bertviz
    import circuitsvis as cv

    model = gpt2_small()
    rows = []
    for n in (256, 512):
        ids = torch.randint(0, model.vocab_size, (n,), generator=torch.Generator().manual_seed(n)).tolist()
        ours = first_render_bytes(model, ids)
        run = model.run(ids, capture="blocks.*.attn.hook_pattern")
        patterns = [run[f"blocks.{layer}.attn.hook_pattern"] for layer in range(model.n_layers)]
        tokens = [f"t{i}" for i in ids]
        start = time.perf_counter()
        html = cv.attention.attention_patterns(tokens=tokens, attention=torch.cat(patterns))
        cv_seconds = time.perf_counter() - start
        cv_local, cv_cdn = len(html.local_src), len(html.cdn_src)
        start = time.perf_counter()
        bv = bertviz.model_view([p[None] for p in patterns], tokens, html_action="return")
        bv_seconds = time.perf_counter() - start
        bv_bytes = len(bv.data)
        rows.append((n, ours, cv_local, cv_cdn, cv_seconds, bv_bytes, bv_seconds))
        print(f"{n} tokens: repwidget {ours}, circuitsvis {cv_local} / {cv_cdn}, bertviz {bv_bytes}", flush=True)
    mb = 1e6
    columns = ["tokens", "repwidget first render", "CircuitsVis offline HTML", "CircuitsVis CDN HTML", "BertViz HTML"]
    print("\n| " + " | ".join(columns) + " |")
    print("|---:|---:|---:|---:|---:|")
    for n, ours, cv_local, cv_cdn, cv_s, bv, bv_s in rows:
        t = ours["total"]
        print(
            f"| {n} | {t / mb:.2f} MB | {cv_local / mb:.1f} MB ({cv_local / t:.0f}x ours; built in {cv_s:.1f} s) "
            f"| {cv_cdn / mb:.1f} MB ({cv_cdn / t:.0f}x) "
            f"| {bv / mb:.1f} MB ({bv / t:.0f}x ours; built in {bv_s:.1f} s) |"
        )
    print(f"\nrepwidget's front-end bundle, loaded once per page: {rows[0][1]['bundle'] / 1e3:.1f} kB")


LATENCY_CELLS = [
    """import time, torch, transformers as T
import repwidget as rw
demo = rw.demo_model()
small = rw.explore(demo, "when mary and john went to the store , john gave a drink to")
small""",
    """torch.manual_seed(0)
big_model = rw.load(T.GPT2LMHeadModel(T.GPT2Config(n_positions=1024)).eval())
big = rw.explore(big_model, torch.randint(0, 50257, (256,), generator=torch.Generator().manual_seed(1)).tolist())
big""",
    """def rerun_ms(ex, layer, head, repeats=7):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ex.clean_run.rerun([rw.Ablate(layer, head=head)], capture=ex.session.capture)
        times.append(1000 * (time.perf_counter() - start))
    return sorted(times)[len(times) // 2]""",
]

CLICK_AND_WAIT = """async ([index, selector]) => {
  const root = document.querySelectorAll('.rw-root')[index];
  const view = root.querySelector('[data-rw-predictions]');
  const before = view.dataset.rwPainted;
  const painted = new Promise((resolve) => {
    const observer = new MutationObserver(() => {
      if (view.dataset.rwPainted !== before) { observer.disconnect(); resolve(); }
    });
    observer.observe(view, { attributes: true, attributeFilter: ['data-rw-painted'] });
  });
  const start = performance.now();
  root.querySelector(selector).click();
  await painted;  // the new predictions are in the DOM
  await new Promise((r) => requestAnimationFrame(r));  // and the browser is about to paint them
  return performance.now() - start;
}"""


def bench_latency() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import tempfile

    from browser import Kernel, Lab, chromium, notebook, open_and_run

    cases = [(0, "small", "3.0"), (0, "small", "1.2"), (1, "big", "11.3"), (1, "big", "5.7")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bench.ipynb").write_text(json.dumps(notebook(LATENCY_CELLS)))
        lab = Lab(root)
        try:
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1400, "height": 1800})
                kernel = Kernel(lab, open_and_run(page, lab, "bench.ipynb"))
                page.locator(".rw-root").nth(1).locator("[data-rw-predictions] [data-rw-column]").first.wait_for(
                    timeout=300_000
                )
                kernel.wait_for("print('rerun_ms' in dir())", "True")
                print("| explorer | head | click to repainted predictions, ms | kernel re-run, ms | difference, ms |")
                print("|---|---|---:|---:|---:|")
                for index, name, head in cases:
                    layer, h = map(int, head.split("."))
                    clicks = []
                    for _ in range(5):  # ablate, then remove again: both are clicks that re-run
                        for _ in range(2):
                            page.wait_for_timeout(1500)  # the views have refetched what the last click changed
                            clicks.append(page.evaluate(CLICK_AND_WAIT, [index, f'[data-rw-head="{head}"]']))
                    click = statistics.median(clicks)
                    rerun = float(kernel.run(f"print(rerun_ms({name}, {layer}, {h}))"))
                    print(f"| {name} | {head} | {click:.1f} | {rerun:.1f} | {click - rerun:+.1f} |", flush=True)
                # the same round trip with no re-run: a token click asks for the predictions at that position
                for index, name in ((0, "small"), (1, "big")):
                    clicks = []
                    for token in (1, 2, 3, 4, 5) * 2:
                        page.wait_for_timeout(500)
                        clicks.append(page.evaluate(CLICK_AND_WAIT, [index, f'.rw-token[data-rw-token="{token}"]']))
                    print(f"| {name} | token click (no re-run) | {statistics.median(clicks):.1f} | 0 | |", flush=True)
                kernel.close()
        finally:
            lab.close()


def bench_export() -> None:
    """``ex.save_html`` sizes and times, beside CircuitsVis's offline HTML of the same attention."""
    import tempfile

    import circuitsvis as cv

    import repwidget as rw

    demo = rw.demo_model()
    big = gpt2_small()
    ids = torch.randint(0, big.vocab_size, (256,), generator=torch.Generator().manual_seed(256)).tolist()
    cases = [
        ("demo, IOI prompt (16 tokens)", demo, "when mary and john went to the store , john gave a drink to"),
        ("GPT-2-small shape, 256 tokens", big, ids),
    ]
    print("| explorer | budget | file | answers saved | saved in | CircuitsVis offline HTML of its attention |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, text in cases:
            ex = rw.explore(model, text, [rw.Ablate(1, head=1)])
            run = model.run(text, capture="blocks.*.attn.hook_pattern")
            patterns = torch.cat([run[f"blocks.{layer}.attn.hook_pattern"] for layer in range(model.n_layers)])
            cv_bytes = len(cv.attention.attention_patterns(tokens=run.tokens, attention=patterns).local_src)
            for budget in (0, 8_000_000):
                start = time.perf_counter()
                path = ex.save_html(Path(tmp) / "ex.html", max_bytes=budget)
                seconds = time.perf_counter() - start
                size = path.stat().st_size
                text_ = path.read_text()
                answers = text_.count('"request":')
                print(
                    f"| {name} | {budget / 1e6:.0f} MB | {size / 1e6:.2f} MB | {answers} | {seconds:.2f} s "
                    f"| {cv_bytes / 1e6:.1f} MB ({cv_bytes / size:.0f}x) |"
                )


def bench_projector(lassoed: int = 5_000, repeats: int = 7) -> None:
    """A lasso of ``lassoed`` of the projector's points in the selection: the bytes of the selection message the
    browser sends and of what the kernel sends back, the kernel's time to take it, and a layer change (the selection
    with the lasso, then the projector's answer at the new layer). Run with ``PYTHONPATH`` at an older checkout to
    measure it (it sends [text, position] pairs; this one also the bitset the front end now sends)."""
    import numpy as np

    import repwidget as rw
    from repwidget.views import codec

    model = rw.demo_model()
    points = [(e.text, t) for t in ("sentiment", "ioi", "induction") for e in rw.demo.dataset(t, 400, seed=0)]
    jx = rw.explore(model, "review : the film was superb .", points=points)
    start = time.perf_counter()
    first = jx.session.answer("projector", {"layer": 0, "colour": 0, "feature": 0})
    print(f"first projector answer (reads the texts at every layer): {time.perf_counter() - start:.1f} s")
    n = len(first["text"])
    rng = np.random.default_rng(0)
    lassos = [np.sort(rng.choice(n, lassoed, replace=False)) for _ in range(2)]  # two, so that each is a change
    forms = {"pairs": [np.stack([first["text"].numpy()[r], first["pos"].numpy()[r]], 1).tolist() for r in lassos]}
    if hasattr(codec, "encode_rows"):
        forms["bitset"] = [codec.encode_rows(r, n) for r in lassos]
    sent: list[dict] = []
    jx._send = lambda msg, buffers=None: sent.append(msg)
    print(f"{lassoed:,} of {n:,} points lassoed; medians of {repeats}")
    print("| sent as | browser -> kernel | kernel -> browser | kernel takes a new lasso, ms | layer change, ms |")
    print("|---|---:|---:|---:|---:|")
    for name, (a, b) in forms.items():
        times, layer_times, back = [], [], []
        for i in range(repeats):
            selection = {**jx.selection, "tokens": [1, 2], "points": a if i % 2 else b}
            sent.clear()
            start = time.perf_counter()
            jx.set_state({"selection": selection})
            times.append(1e3 * (time.perf_counter() - start))
            back.append(sum(len(json.dumps(m, default=str)) for m in sent))
            layer = (jx.selection["layer"] + 1) % model.n_layers  # the lasso kept, as the slider sends it
            start = time.perf_counter()
            jx.set_state({"selection": {**selection, "layer": layer}})
            jx.session.handle({"type": "get", "id": i, "what": "projector", "layer": layer, "colour": 0, "feature": 0})
            layer_times.append(1e3 * (time.perf_counter() - start))
        assert len(jx.selection["points"]) == lassoed, "the kernel kept another lasso"
        print(
            f"| {name} | {len(json.dumps(selection)):,} B | {max(back):,} B | {statistics.median(times):.1f} "
            f"| {statistics.median(layer_times):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    benches = {"bytes": bench_bytes, "latency": bench_latency, "export": bench_export, "projector": bench_projector}
    benches[sys.argv[1] if len(sys.argv) > 1 else "bytes"]()
