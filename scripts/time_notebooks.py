"""Time the shipped notebooks cell by cell: wall-clock seconds and the kernel's CPU seconds (``time.process_time``
in the kernel, all its threads: less sensitive than wall time to other jobs on the machine).

    .venv/bin/python scripts/time_notebooks.py                 # every notebook, a table per notebook and a summary
    .venv/bin/python scripts/time_notebooks.py quickstart 04   # the notebooks whose names contain these
    .venv/bin/python scripts/time_notebooks.py --json times.json

Each notebook runs top to bottom in a fresh kernel (as Run All after opening it), from ``notebooks/``, importing
this checkout's repwidget; the kernel's start is timed apart. The figures the notebooks and docs/notebooks.md state
come from this script (note the machine's cores and load: ``os.getloadavg`` is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CPU = "__import__('time').process_time()"


def run_notebook(path: Path, timeout: float = 1200) -> dict:
    """Run ``path``'s code cells in a fresh kernel; each cell's wall and kernel CPU seconds, and the kernel start."""
    import nbformat
    from jupyter_client.manager import start_new_kernel

    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(path.parent), env=env)
    start = time.perf_counter() - started
    cells = []
    try:
        cpu_before = _cpu(kc, "pass", timeout)[0]
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t0 = time.perf_counter()
            cpu_after, error = _cpu(kc, cell.source, timeout)
            wall = time.perf_counter() - t0
            first = cell.source.strip().split("\n")[0][:60]
            cells.append({"cell": index, "wall": wall, "cpu": cpu_after - cpu_before, "source": first, "error": error})
            cpu_before = cpu_after
            if error:
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return {"notebook": path.name, "kernel_start": start, "cells": cells}


def _cpu(kc, code: str, timeout: float) -> tuple[float, str | None]:
    """Run ``code``; the kernel's CPU seconds so far once it ran, and its error (ename: evalue) if it raised."""
    msg_id = kc.execute(code, user_expressions={"cpu": CPU}, allow_stdin=False)
    deadline = time.time() + timeout
    while True:  # drain the outputs until the kernel is idle again
        msg = kc.get_iopub_msg(timeout=max(1.0, deadline - time.time()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    content = reply["content"]
    if content["status"] != "ok":
        return 0.0, f"{content.get('ename')}: {content.get('evalue')}"
    value = content["user_expressions"]["cpu"]["data"]["text/plain"]
    return float(value), None


def table(result: dict, top: int = 4) -> str:
    cells = result["cells"]
    wall, cpu = sum(c["wall"] for c in cells), sum(c["cpu"] for c in cells)
    lines = [
        f"{result['notebook']}: {wall:.0f} s wall, {cpu:.0f} s kernel CPU in its cells "
        f"(+ {result['kernel_start']:.1f} s kernel start)"
    ]
    for c in sorted(cells, key=lambda c: -c["cpu"])[:top]:
        lines.append(f"    cell {c['cell']:2d}: {c['wall']:6.1f} s wall {c['cpu']:6.1f} s CPU  {c['source']}")
    lines += [f"    ERROR in cell {c['cell']}: {c['error']}" for c in cells if c["error"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run the notebooks whose file names contain one of these")
    parser.add_argument("--json", help="also write every cell's times to this file")
    args = parser.parse_args(argv)
    paths = [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if not args.names or any(n in p.name for n in args.names)]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    results = []
    for path in paths:
        results.append(run_notebook(path))
        print(table(results[-1]), flush=True)
    print("\n| notebook | wall (s) | kernel CPU (s) |\n|---|---|---|")
    for r in results:
        wall, cpu = sum(c["wall"] for c in r["cells"]), sum(c["cpu"] for c in r["cells"])
        print(f"| {r['notebook']} | {wall:.0f} | {cpu:.0f} |")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if any(c["error"] for r in results for c in r["cells"]) else 0


if __name__ == "__main__":
    sys.exit(main())
