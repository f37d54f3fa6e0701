"""How well a model does the demo tasks."""

from __future__ import annotations

import torch

from . import tasks


def prompt(example: tasks.Example, task: str) -> str:
    """The text whose next word should be ``example.target`` (sentiment asks for the verdict)."""
    return example.text + (" verdict :" if task == "sentiment" else "")


@torch.no_grad()
def accuracy(hf_model, tokenizer, task: str, n: int = 100, seed: int = 0) -> float:
    """Top-1 next-word accuracy of a Hugging Face model on ``n`` held-out examples of ``task``."""
    examples = tasks.dataset(task, n, seed)
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        batch = tokenizer([prompt(e, task) for e in examples], return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = side
    batch = {k: v.to(hf_model.device) for k, v in batch.items()}
    logits = hf_model(**batch).logits
    last = batch["attention_mask"].sum(1) - 1
    predicted = logits[torch.arange(len(examples)), last].argmax(-1).cpu()
    targets = torch.tensor(tokenizer.convert_tokens_to_ids([e.target for e in examples]))
    return (predicted == targets).float().mean().item()
