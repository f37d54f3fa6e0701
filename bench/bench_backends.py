"""Bytes moved per explorer click between the executor and the kernel: the local hook executor vs the nnsight
executor (and, for a remote pass, the request nnsight would send and the result it would get back), and the
same click on the model loaded without local weights (``rw.load(path, backend="nnsight", remote=True)``: meta
tensors here), its passes run by ``tests/fake_ndif.py`` (nnsight's request format, deserialised with repwidget
hidden against a separate model holding the weights, the result sent back as NDIF does: torch.save + zstd).

A GPT-2-small-shaped random model (12 layers, 12 heads, d_model 768, vocabulary 50,257), 512 tokens, one
explorer on each backend, one click (ablate head 5.1) answered with its predictions, then the logit lens window
the view asks for, as the browser does. Every pass is recorded with what it hands to the kernel. Run by hand:

    python bench/bench_backends.py [--tokens 512] [--out docs/bench_backends.md]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers as T
import zstandard

import repwidget as rw
from repwidget.interventions import to_json
from repwidget.model.nnsight_executor import NNsightExecutor
from repwidget.model.plan import Plan, Result


def result_bytes(result: Result) -> int:
    """The bytes of the tensors a result hands over (captures, block outputs, final hidden state, logits)."""
    tensors = [*result.cache.values(), result.final_hidden, result.logits]
    tensors += [o if isinstance(o, torch.Tensor) else (o[0] if o is not None else None) for o in result.block_outputs]
    return sum(t.nelement() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def wire_bytes(result: Result) -> int:
    """What NDIF would send back for the result: torch.save of its tensors, zstd-compressed (nnsight's default)."""
    buffer = io.BytesIO()
    torch.save({"cache": result.cache, "final": result.final_hidden, "logits": result.logits}, buffer)
    return len(zstandard.ZstdCompressor(level=6).compress(buffer.getvalue()))


def click(model: rw.Model, ids: list[int], opened=None) -> tuple[list[tuple[Plan, object]], float]:
    """One explorer click (head 5.1 ablated, its predictions asked for) and the lens window the view then asks
    for, every pass they made recorded with what it brought back (``opened()`` is called once the explorer is)."""
    ex = rw.explore(model, ids)
    if opened is not None:
        opened()
    passes: list[tuple[Plan, object]] = []
    executor = model.executor
    names = ("execute", "lens", "compare", "logits_rows")
    originals = {name: getattr(executor, name) for name in names if hasattr(executor, name)}

    def recording(name: str):
        def recorded(plan: Plan, *args):
            out = originals[name](plan, *args)
            passes.append((plan, out))
            return out

        return recorded

    for name in originals:
        setattr(executor, name, recording(name))
    ex.send = lambda content, buffers=None: None
    n = len(ids)
    start = time.perf_counter()
    message = {"id": "a-1", "type": "set", "view": "a", "seq": 1, "interventions": [to_json(rw.Ablate(5, head=1))],
               "then": {"type": "get", "id": "a-2", "what": "predictions", "position": n - 1}}  # fmt: skip
    ex._on_message(ex, message, [])
    ex._on_message(ex, {"id": "b-1", "type": "get", "what": "lens", "start": n - 16, "stop": n}, [])
    seconds = time.perf_counter() - start
    for name in originals:
        delattr(executor, name)
    assert ex.interventions == [rw.Ablate(5, head=1)] and not ex.error, ex.error
    return passes, seconds


def brought_back(out: object) -> int:
    """Bytes of what one recorded pass returned: results, or the lens's top tokens."""
    if isinstance(out, list):
        return sum(result_bytes(r) for r in out)
    values = out.values() if isinstance(out, dict) else out if isinstance(out, tuple) else [out]
    return sum(t.nelement() * t.element_size() for t in values)


def on_the_wire(out: object) -> int:
    if isinstance(out, list):
        return sum(wire_bytes(r) for r in out)
    buffer = io.BytesIO()
    torch.save(out, buffer)
    return len(zstandard.ZstdCompressor(level=6).compress(buffer.getvalue()))


def weightless(hf: T.PreTrainedModel, ids: list[int]) -> dict:
    """The click on ``hf`` saved and loaded with ``remote=True`` (no weights here), its passes run by FakeNDIF."""
    import nnsight
    from nnsight.modeling import huggingface
    from tokenizers import Tokenizer, models, pre_tokenizers

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from fake_ndif import FakeNDIF

    words = Tokenizer(models.WordLevel({f"w{i}": i for i in range(hf.config.vocab_size)}, unk_token="w0"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = T.PreTrainedTokenizerFast(tokenizer_object=words, unk_token="w0")
    with tempfile.TemporaryDirectory() as path:
        hf.save_pretrained(path)
        tokenizer.save_pretrained(path)
        huggingface._ID_CACHE[path] = "openai-community/gpt2"  # the hub id NDIF knows (no hub here)
        model = rw.load(path, backend="nnsight", remote=True)
        assert all(p.is_meta for p in model.hf.parameters())
        fake = model.executor.backend = FakeNDIF(nnsight.TransformersModel(hf, tokenizer=tokenizer))
        mark = []
        _, seconds = click(model, ids, opened=lambda: mark.append(len(fake.sent)))
    first = mark[0]
    return {"backend": "nnsight, no local weights", "passes": len(fake.sent) - first,
            "moved": sum(fake.raw[first:]), "request": sum(fake.sent[first:]),
            "wire": sum(fake.received[first:]), "seconds": seconds}  # fmt: skip


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    hf = T.GPT2LMHeadModel(T.GPT2Config(n_positions=max(1024, args.tokens))).eval()
    ids = torch.randint(100, 50_000, (args.tokens,), generator=torch.Generator().manual_seed(1)).tolist()
    rows = []
    for backend in ("local", "nnsight"):
        model = rw.load(hf, backend=backend)
        passes, seconds = click(model, ids)
        moved = sum(brought_back(out) for _, out in passes)
        row = {"backend": backend, "passes": len(passes), "moved": moved, "seconds": seconds}
        if isinstance(model.executor, NNsightExecutor):
            lens = (len(ids) - 16, len(ids), 1)
            row["request"] = sum(
                len(model.executor.request(plan, None if isinstance(out, list) else lens)) for plan, out in passes
            )
            row["wire"] = sum(on_the_wire(out) for _, out in passes)
        rows.append(row)
    rows.append(weightless(hf, ids))
    lines = [
        f"# Bytes per explorer click: local hook executor vs nnsight ({args.tokens} tokens, GPT-2-small shape)",
        "",
        "`python bench/bench_backends.py`: one click (ablate head 5.1, its predictions asked for) on an open "
        "explorer, then the logit lens window (16 positions) the view asks for; every pass is recorded. "
        "*Moved*: the tensors the executor hands to the kernel (captures, block outputs kept for reruns, final "
        "hidden states; on nnsight the lens's top tokens, reduced in the trace). For nnsight, *request*: "
        "the payloads nnsight would send to NDIF (its own request format, zstd), *result on the wire*: "
        "torch.save of what comes back, zstd-compressed, as NDIF returns it. *nnsight, no local weights*: "
        "`rw.load(path, backend='nnsight', remote=True)` (every parameter on meta here), each pass run by "
        "`tests/fake_ndif.py` against a separate model holding the weights; *moved* is then the uncompressed "
        "result NDIF sends (torch.save), request and wire as measured. CPU, 2 threads.",
        "",
        "| backend | passes | moved | request | result on the wire | click (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        request = f"{r['request'] / 1024:.1f} KiB" if "request" in r else "-"
        wire = _size(r["wire"]) if "wire" in r else "-"
        lines.append(f"| {r['backend']} | {r['passes']} | {_size(r['moved'])} | {request} | {wire} | "
                     f"{r['seconds']:.2f} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
