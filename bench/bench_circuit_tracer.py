"""repwidget's attribution graph against circuit-tracer 0.5's on SmolLM2-135M: the same model files, the same
transcoders (256 features per layer, fitted as ``bench_graphs.py`` fits them, saved in circuit-tracer's layout), the
same token ids, the same settings (``max_feature_nodes=500``, ``batch_size=64``, 10 logits up to p=0.95), one
thread, each run in a fresh process; results in ``docs/graphs.md``.

Both tools load the dequantised model from one local Hugging Face directory and the transcoders from one directory.
Reported: the graph call's seconds, the whole process's wall and CPU time and peak resident memory (``os.wait4``'s
``ru_maxrss``), and how far the two graphs' adjacencies differ (relative to the largest edge). circuit-tracer runs
in ``.venv-ct`` (``scripts/setup_circuit_tracer.sh``) through ``circuit_tracer_graph.py``.

    python bench/bench_circuit_tracer.py                 # prepare, then 16, 64 and 256 tokens, both tools
    python bench/bench_circuit_tracer.py 16 64           # some lengths
    python bench/bench_circuit_tracer.py --ours 64 OUT   # one run of repwidget (used by the above)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = ROOT / "artifacts" / "bench_circuit_tracer"
VENV_CT = Path(os.environ.get("REPWIDGET_VENV_CT", ROOT / ".venv-ct"))
MAX_FEATURES, BATCH, D_TC = 500, 64, 256


def prepare() -> None:
    """The model as a local HF directory (readable by transformers 4.57 too), the transcoders, the prompt's ids."""
    import repwidget as rw

    sys.path.insert(0, str(HERE))
    from bench_graphs import fit

    if (WORK / "ids.json").is_file():
        return
    torch.set_num_threads(1)
    model = rw.load(rw.demo.smollm2_gguf())
    model_dir = WORK / "model"
    texts = [e.text for task in rw.demo.tasks.TASKS for e in rw.demo.tasks.dataset(task, 30)]
    fit(model, texts, D_TC, 2.0).save(WORK / "transcoders")
    hf = model.hf  # dequantised to float32 on load: saved as a plain checkpoint
    hf.hf_quantizer = None
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.save_pretrained(model_dir)
    model.tokenizer.save_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    rope = config.get("rope_parameters") or {}
    config.setdefault("rope_theta", rope.get("rope_theta", 10000.0))  # transformers 4 reads rope_theta only
    config["torch_dtype"] = "float32"
    (model_dir / "config.json").write_text(json.dumps(config, indent=1))
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"  # transformers 5's TokenizersBackend, in 4's name
    (model_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    from repwidget.graphs.replacement import special_first

    ids = special_first(model.tokenizer, model.to_ids(" ".join(rw.demo.reference_texts())))
    (WORK / "ids.json").write_text(json.dumps(ids))


def ours(n_tokens: int, out: str) -> None:
    """One repwidget graph (in this process), written like circuit_tracer_graph.py writes circuit-tracer's."""
    import repwidget as rw

    torch.set_num_threads(1)
    model = rw.load(WORK / "model")
    transcoders = rw.TranscoderSet.load(WORK / "transcoders")
    ids = json.loads((WORK / "ids.json").read_text())[:n_tokens]
    start, cpu_start = time.perf_counter(), time.process_time()
    graph = rw.attribution_graph(model, ids, transcoders, max_feature_nodes=MAX_FEATURES, batch_size=BATCH,
                                 progress=False)  # fmt: skip
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    torch.save({"adjacency": graph.adjacency, "active_features": graph.active_features, "ids": graph.ids,
                "selected_features": graph.selected_features, "logit_ids": graph.logit_ids, "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "stats": graph.stats}, out)  # fmt: skip


def measured(command: list[str], log: Path) -> tuple[float, float, float]:
    """Run ``command`` at nice 10; its wall seconds, CPU seconds (user + system: what other sessions' load changes
    least) and peak RSS in MiB (``os.wait4``: this child's own)."""
    start = time.perf_counter()
    with open(log, "w") as f:
        child = subprocess.Popen(["nice", "-n", "10", *command], stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise RuntimeError(f"{command[:3]} failed; see {log}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def compare(n_tokens: int) -> dict:
    ids = json.loads((WORK / "ids.json").read_text())[:n_tokens]
    ours_out, theirs_out = WORK / f"ours_{n_tokens}.pt", WORK / f"theirs_{n_tokens}.pt"
    ours_wall, ours_cpu, ours_rss = measured([sys.executable, __file__, "--ours", str(n_tokens), str(ours_out)],
                                   WORK / f"ours_{n_tokens}.log")  # fmt: skip
    theirs_cmd = [str(VENV_CT / "bin" / "python"), str(HERE / "circuit_tracer_graph.py"), str(WORK / "model"),
                  str(WORK / "transcoders"), ",".join(map(str, ids)), str(theirs_out),
                  "--max-feature-nodes", str(MAX_FEATURES), "--batch-size", str(BATCH)]  # fmt: skip
    theirs_wall, theirs_cpu, theirs_rss = measured(theirs_cmd, WORK / f"theirs_{n_tokens}.log")
    a, b = torch.load(ours_out), torch.load(theirs_out)
    same = torch.equal(a["selected_features"], b["selected_features"]) and a["adjacency"].shape == b["adjacency"].shape
    diff = float((a["adjacency"] - b["adjacency"]).abs().max() / b["adjacency"].abs().max()) if same else None
    return {
        "tokens": len(ids),
        "active_features": len(a["active_features"]),
        "nodes": len(a["adjacency"]),
        "same_logits": a["logit_ids"].tolist() == b["logit_ids"].tolist(),
        "same_selection": same,
        "adjacency_relative_difference": diff,
        "ours_graph_s": round(a["seconds"], 1),
        "theirs_graph_s": round(b["seconds"], 1),
        "ours_graph_cpu_s": round(a.get("cpu_seconds", float("nan")), 1),
        "theirs_graph_cpu_s": round(b.get("cpu_seconds", float("nan")), 1),
        "ours_process_s": round(ours_wall, 1),
        "theirs_process_s": round(theirs_wall, 1),
        "ours_process_cpu_s": round(ours_cpu, 1),
        "theirs_process_cpu_s": round(theirs_cpu, 1),
        "ours_peak_rss_MiB": round(ours_rss),
        "theirs_peak_rss_MiB": round(theirs_rss),
        "time_ratio": round(a["seconds"] / b["seconds"], 2),
        "cpu_ratio": round(a.get("cpu_seconds", float("nan")) / b.get("cpu_seconds", float("nan")), 2),
        "rss_ratio": round(ours_rss / theirs_rss, 2),
        "load_average": os.getloadavg()[0],
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--ours"]:
        ours(int(sys.argv[2]), sys.argv[3])
        sys.exit()
    WORK.mkdir(parents=True, exist_ok=True)
    prepare()
    for n in [int(x) for x in sys.argv[1:]] or [16, 64, 256]:
        print(json.dumps(compare(n)), flush=True)
