"""Hostile GGUF files (issue 28, item 7): declared sizes checked against the file before anything is built.

Each file is written here with the ``gguf`` package's writer, then hand-edited. A refused file must fail in
``check_gguf`` with one line: transformers is never asked to build it (``_auto_model`` is replaced by a trap).
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path

import numpy as np
import pytest

import repwidget as rw
from repwidget.file_checks import GGUF_MAX_STRING, check_gguf, check_gguf_metadata
from repwidget.model import loading

DESCRIPTION = "a tiny llama written by the test"


def _tiny(path: Path, declared_blocks: int = 1, hidden: int = 8, tensor_hidden: int = 8, ffn: int = 16, **extra):
    """A one-block llama GGUF file of width ``tensor_hidden`` whose metadata may say otherwise (about 4 KB)."""
    import gguf

    vocab = 6
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_block_count(declared_blocks)
    w.add_context_length(32)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hidden // 2)
    w.add_vocab_size(vocab)
    w.add_description(extra.get("description", DESCRIPTION))
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "c", "d", "<s>", "</s>"])
    w.add_token_types([1] * vocab)
    rng = np.random.default_rng(0)
    h = tensor_hidden

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", weight(vocab, h))
    w.add_tensor("output_norm.weight", np.ones(h, np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(h, np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(h, np.float32))
    for name in ("attn_q", "attn_v", "attn_output"):
        w.add_tensor(f"blk.0.{name}.weight", weight(h, h))
    w.add_tensor("blk.0.attn_k.weight", weight(extra.get("k_rows", h), h))
    w.add_tensor("blk.0.ffn_up.weight", weight(ffn, h))
    w.add_tensor("blk.0.ffn_gate.weight", weight(ffn, h))
    w.add_tensor("blk.0.ffn_down.weight", weight(h, ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _patch(path: Path, offset: int, value: int, fmt: str = "<Q") -> None:
    """Overwrite the little-endian integer (uint64 unless ``fmt`` says otherwise) at ``offset``."""
    data = bytearray(path.read_bytes())
    data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))


def _after(path: Path, needle: bytes) -> int:
    """The offset just after ``needle``'s first occurrence in the file."""
    return path.read_bytes().index(needle) + len(needle)


@pytest.fixture
def never_built(monkeypatch):
    """Fail the test if transformers is asked to build the model: refusals must come before that."""

    def trap(*args, **kwargs):
        raise AssertionError("the model was built: the file should have been refused before")

    monkeypatch.setattr(loading, "_auto_model", trap)


def test_a_gguf_file_loads_with_no_progress_bar_and_the_bars_switch_restored(tmp_path, capfd):
    from transformers.utils import logging

    path = _tiny(tmp_path / "tiny.gguf")
    capfd.readouterr()
    rw.load(path)
    out, err = capfd.readouterr()
    assert "de-quantizing" not in err + out and "it/s]" not in err + out  # no tqdm bar above the explorer
    assert logging.is_progress_bar_enabled()
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    assert not isinstance(gguf_utils.tqdm, functools.partial)  # the reader's own bar put back


def test_a_small_valid_gguf_file_passes_the_checks_and_loads(tmp_path):
    path = _tiny(tmp_path / "ok.gguf")
    check_gguf(path)
    model = rw.load(path)
    assert model.run([1, 2, 3]).logits.shape == (3, 6)


def _refused(path: Path, match: str) -> str:
    with pytest.raises(rw.ModelLoadError, match=match) as error:
        rw.load(path)
    message = str(error.value)
    assert "\n" not in message and path.name in message
    return message


def test_metadata_that_declares_100000_blocks_in_a_4_kb_file(tmp_path, never_built):
    path = _tiny(tmp_path / "blocks.gguf", declared_blocks=100_000)
    assert path.stat().st_size < 5_000
    _refused(path, r"llama.block_count = 100,000 but the number of tensor blocks \(blk.N\) is 1")


def test_header_counts_larger_than_the_file_can_hold(tmp_path, never_built):
    path = _tiny(tmp_path / "tensors.gguf")
    _patch(path, 8, 100_000)  # the tensor count
    _refused(path, r"tensor count \(100,000 tensors\) declares 2,400,000 bytes .* past the end")
    path = _tiny(tmp_path / "metadata.gguf")
    _patch(path, 16, 10**15)  # the metadata count
    _refused(path, r"metadata count \(1,000,000,000,000,000 entries\) .* past the end")


def test_a_16_mb_string_declared_in_a_small_file_and_a_real_one_over_the_limit(tmp_path, never_built):
    path = _tiny(tmp_path / "declared.gguf")
    _patch(path, path.read_bytes().index(DESCRIPTION.encode()) - 8, 16_000_000)  # the string's length
    _refused(path, r"'general.description' declares a string of 16,000,000 bytes")
    path = _tiny(tmp_path / "long.gguf", description="x" * (GGUF_MAX_STRING + 1))  # transformers: ~1.3 s a MiB
    _refused(path, r"'general.description' declares a string of 1,048,577 bytes \(at most 1,048,576\)")


def test_an_array_longer_than_the_file(tmp_path, never_built):
    path = _tiny(tmp_path / "array.gguf")
    _patch(path, _after(path, b"tokenizer.ggml.tokens") + 8, 10**12)  # after the value type and the item type
    _refused(path, r"metadata 'tokenizer.ggml.tokens' declares 8,000,000,000,000 bytes .* past the end")


def test_tensor_data_past_the_end_of_a_truncated_file(tmp_path, never_built):
    path = _tiny(tmp_path / "truncated.gguf")
    path.write_bytes(path.read_bytes()[:-100])
    _refused(path, r"tensor 'blk.0.ffn_down.weight' \(16x8\) declares 512 bytes at offset .* past the end")


def test_tensors_whose_shapes_disagree_with_the_metadata(tmp_path, never_built):
    _refused(_tiny(tmp_path / "width.gguf", hidden=16), r"llama.embedding_length = 16 but token_embd's width is 8")
    path = _tiny(tmp_path / "ffn.gguf")
    _patch(path, _after(path, b"llama.feed_forward_length") + 4, 64, "<I")  # after the value type: a uint32
    _refused(path, r"llama.feed_forward_length = 64 but blk.0.ffn_up's width is 16")
    path = _tiny(tmp_path / "fused.gguf")  # Phi-3 fuses the gate and up projections: ffn_up is twice as wide
    _patch(path, _after(path, b"llama.feed_forward_length") + 4, 8, "<I")
    check_gguf_metadata(path, check_gguf(path))
    path = _tiny(tmp_path / "vocab.gguf")
    _patch(path, _after(path, b"llama.vocab_size") + 4, 50_000, "<I")
    _refused(path, r"llama.vocab_size = 50,000 but token_embd's number of rows is 6")


def test_a_mismatch_the_checks_do_not_know_is_one_line_from_transformers(tmp_path):
    """A key projection of the wrong shape passes the header checks; transformers' refusal becomes one line."""
    path = _tiny(tmp_path / "k.gguf", k_rows=4)
    message = _refused(path, r"transformers could not build a model from 'k.gguf': its tensors do not fit")
    assert "ignore_mismatched_sizes" in message or "size" in message
