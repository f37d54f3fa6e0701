"""The demo: a small language model trained here on six tasks with known circuits, shipped in the package.

``rw.demo_model()`` loads it like any other model; ``rw.demo.dataset(task)`` gives held-out examples.
"""

from __future__ import annotations

from pathlib import Path

from .tasks import TASKS, Example, dataset

MODEL_DIR = Path(__file__).parent / "model"

__all__ = ["MODEL_DIR", "TASKS", "Example", "dataset", "demo_model"]


def demo_model(device: str | None = None):
    """The shipped demo model (4 layers, 4 heads, d_model 128, word-level tokenizer), via ``rw.load``."""
    from ..model import ModelLoadError, load

    if not (MODEL_DIR / "model.safetensors").is_file():
        raise ModelLoadError(
            f"the demo model is missing from {MODEL_DIR}; rebuild it with `python -m repwidget.demo.train`"
        )
    return load(MODEL_DIR, device=device)
