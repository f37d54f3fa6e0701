"""Train the demo model: a word-level tokenizer and a small GPT-2 on the six demo tasks.

    python -m repwidget.demo.train [--steps 7000] [--out repwidget/demo/model]

Deterministic given ``--seed``, CPU only (2 threads), about 14 minutes. Writes ``config.json``,
``model.safetensors`` and ``tokenizer.json`` (loadable with ``rw.load(dir)`` and
``AutoTokenizer.from_pretrained(dir)``), and prints the held-out accuracy of every task.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import tasks
from .evaluate import accuracy

SPECIAL = ["<pad>", "<bos>", "<unk>"]
DEFAULT_OUT = Path(__file__).parent / "model"


def build_tokenizer():
    """A word-level fast tokenizer over the tasks' vocabulary that starts every text with ``<bos>``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + tasks.vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>", model_max_length=64
    )


def build_model(vocab_size: int, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=64,
        n_embd=128,
        n_layer=4,
        n_head=4,
        n_inner=512,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    return GPT2LMHeadModel(config)


def copy_targets(ids: torch.Tensor) -> torch.Tensor:
    """``[pos]`` mask of the tokens copying can predict: those whose previous token occurred before.

    Random word sequences are only learnable where they repeat; training on the other (random)
    tokens adds noise that delays the induction circuit, so their loss is left out.
    """
    keep = torch.zeros_like(ids, dtype=torch.bool)
    seen: set[int] = set()
    for p in range(1, len(ids)):
        keep[p] = int(ids[p - 1]) in seen
        seen.add(int(ids[p - 1]))
    return keep


#: the layer-1 head that keeps the copying when the others are weaned off it (``specialize``)
INDUCTION_HEAD = (1, 0)


def training_batch(rng: random.Random, tokenizer, batch_size: int):
    """``(batch, labels, copying)``: a mixed batch, its labels (copying documents only on the tokens
    copying can predict) and which rows are copying documents."""
    pairs = [tasks.training_example(rng) for _ in range(batch_size)]
    batch = tokenizer([tasks.document(ex, task) for task, ex in pairs], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    copying = torch.tensor([task == "induction" for task, _ in pairs])
    for i in copying.nonzero().flatten().tolist():
        labels[i] = labels[i].masked_fill(~copy_targets(batch["input_ids"][i]), -100)
    return batch, labels, copying


def _step(model, optimizer, batch, labels) -> float:
    loss = model(**batch, labels=labels).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


def specialize(model, tokenizer, rng: random.Random, steps: int, batch_size: int, lr: float, decay: float) -> None:
    """Wean the other heads off copying: for ``steps`` steps, copying documents see only layer 0's
    heads and :data:`INDUCTION_HEAD` (the other heads' outputs are zeroed for those rows), while the
    other tasks see every head; strong weight decay shrinks what the others no longer use.

    Trained together, all four layer-1 heads become induction heads and back each other up (one
    ablated: +0.0004 nats on the repeat); after this, ablating :data:`INDUCTION_HEAD` breaks copying.
    """
    n_heads, width = model.config.n_head, model.config.n_embd
    d_head = width // n_heads
    rows: dict[str, torch.Tensor | None] = {"copying": None}
    handles = []
    for layer, block in enumerate(model.transformer.h):
        seen = torch.zeros(width)
        for head in range(n_heads):
            if layer == 0 or (layer, head) == INDUCTION_HEAD:
                seen[head * d_head : (head + 1) * d_head] = 1

        def only_seen(_module, args, seen=seen):
            scale = torch.where(rows["copying"][:, None, None], seen, torch.ones_like(seen))
            return (args[0] * scale,)

        handles.append(block.attn.c_proj.register_forward_pre_hook(only_seen))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay, betas=(0.9, 0.98))
    try:
        bar = tqdm(range(steps), desc="one induction head")
        for step in bar:
            batch, labels, rows["copying"] = training_batch(rng, tokenizer, batch_size)
            loss = _step(model, optimizer, batch, labels)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss:.3f}")
    finally:
        for handle in handles:
            handle.remove()


def train(
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    out: Path,
    evaluate: bool = True,
    specialize_steps: int = 1200,
    specialize_decay: float = 0.8,
) -> dict[str, float]:
    """Train and save the demo model; return the held-out accuracy of every task (empty if not ``evaluate``).

    ``steps`` of the task mix (induction heads form), then ``specialize_steps`` of :func:`specialize`
    at half the learning rate with weight decay ``specialize_decay``.
    """
    torch.set_num_threads(2)
    tokenizer = build_tokenizer()
    tokenizer.padding_side = "right"
    model = build_model(len(tokenizer), seed)
    model.train()
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 30)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="training the demo model")
    for step in bar:
        batch, labels, _ = training_batch(rng, tokenizer, batch_size)
        loss = _step(model, optimizer, batch, labels)
        schedule.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")
    if specialize_steps:
        specialize(model, tokenizer, rng, specialize_steps, batch_size, lr / 2, specialize_decay)
    model.eval()
    scores = {task: accuracy(model, tokenizer, task) for task in tasks.TASKS} if evaluate else {}
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"trained {steps} + {specialize_steps} steps in {time.perf_counter() - start:.0f} s; saved to {out}")
    for task, score in scores.items():
        print(f"  {task:20s} held-out top-1 accuracy {score:.3f}")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description="Train repwidget's demo model (CPU, deterministic).")
    parser.add_argument("--steps", type=int, default=7000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--specialize-steps", type=int, default=1200, help="steps weaning heads off copying")
    parser.add_argument("--specialize-decay", type=float, default=0.8, help="weight decay during those steps")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    train(
        args.steps, args.batch_size, args.lr, args.seed, args.out,
        specialize_steps=args.specialize_steps, specialize_decay=args.specialize_decay,
    )  # fmt: skip


if __name__ == "__main__":
    main()
