"""Tokens: ids from text, token ids, a ``BatchEncoding`` or chat messages; BOS handling; tokens as people read them."""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..prompts import prompt_ids

TokensLike = str | Sequence[int] | torch.Tensor | np.ndarray | Mapping[str, Any]

#: a byte shown as itself, e.g. ``<0xF0>``: the form SentencePiece byte-fallback pieces already have
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _hex_bytes(error: UnicodeDecodeError) -> tuple[str, int]:
    return "".join(f"<0x{b:02X}>" for b in error.object[error.start : error.end]), error.end


codecs.register_error("repwidget-hexbytes", _hex_bytes)


def to_ids(
    tokenizer: Any,
    value: TokensLike | None = None,
    messages: Sequence[Mapping[str, Any]] | None = None,
) -> list[int]:
    """Token ids for a text, token ids, a tokenizer's output (``BatchEncoding`` / dict with ``input_ids``)
    or chat ``messages`` (the tokenizer's chat template, with the generation prompt).

    Text gets the special tokens its tokenizer adds (a BOS where it adds one), never a second BOS
    when it already starts with one. Ids without the BOS the tokenizer adds to text get a warning.
    """
    if messages is not None:
        if value is not None:
            raise TypeError("give a text (or token ids) or messages=, not both")
        return from_messages(tokenizer, messages)
    if value is None:
        raise TypeError("give a text, token ids or messages=[{'role': 'user', 'content': ...}]")
    if isinstance(value, str):
        return from_text(tokenizer, value)
    if isinstance(value, Mapping) or (hasattr(value, "keys") and hasattr(value, "__getitem__")):
        if "input_ids" not in value:
            raise TypeError(f"a tokenizer output needs 'input_ids'; this one has {sorted(value.keys())}")
        value = value["input_ids"]
    ids = ids_from(value)
    _warn_missing_bos(tokenizer, ids)
    return ids


def from_text(tokenizer: Any, text: str) -> list[int]:
    """The tokenizer's ids for ``text`` (its defaults), with a BOS that the text already starts with kept once."""
    if tokenizer is None:
        raise TypeError(
            "this model was loaded without a tokenizer: pass token ids (a list of ints), "
            "or rw.load(model, tokenizer=...)"
        )
    if not text:
        raise ValueError("the text is empty; give at least one token")
    ids = prompt_ids(tokenizer, text)  # quiet, and warns when most words are unknown (<unk>)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and len(ids) > 1 and ids[0] == ids[1] == bos and adds_bos(tokenizer):
        ids = ids[1:]  # the text starts with the BOS text (a chat template's output): not a second one
    return ids


def from_messages(tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """``messages`` through the tokenizer's chat template (``add_generation_prompt=True``), as transformers does."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "this model's tokenizer has no chat template, so messages= cannot be used: pass the text, "
            "or set model.tokenizer.chat_template"
        )
    if (
        isinstance(messages, (str, Mapping))
        or not isinstance(messages, Sequence)
        or not messages
        or not all(isinstance(m, Mapping) and "role" in m and "content" in m for m in messages)
    ):
        raise TypeError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    try:
        encoded = tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=True, return_dict=True
        )
    except Exception as e:  # jinja's TemplateError ("roles must alternate ...") and the like
        raise ValueError(f"the chat template refused these messages: {_one_line(e)}") from None
    return ids_from(encoded["input_ids"])


def ids_from(value: Any) -> list[int]:
    """One sequence of ints from a list, a ``[pos]`` or ``[1, pos]`` tensor or array, or a batch of one list."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"token ids must be integers, got a tensor of {value.dtype}")
        if value.dim() == 2 and value.shape[0] == 1:
            value = value[0]
        if value.dim() != 1:
            raise ValueError(f"token ids must be one sequence, shape [pos] or [1, pos]; got {tuple(value.shape)}")
        return value.tolist()
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"token ids must be integers, got an array of {value.dtype}")
        return ids_from(torch.from_numpy(value.astype(np.int64)))
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if (
            len(value) == 1
            and isinstance(value[0], (Sequence, torch.Tensor, np.ndarray))
            and not isinstance(value[0], (str, bytes))
        ):
            return ids_from(value[0])  # a batch of one
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in value):
            raise TypeError("token ids must be a sequence of ints")
        return [int(i) for i in value]
    raise TypeError(f"expected a text (str), token ids or a tokenizer's output, got {type(value).__name__}")


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts its BOS token in front of text (Llama, Gemma; not GPT-2 or SmolLM2)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if tokenizer is None or bos is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos


def _warn_missing_bos(tokenizer: Any, ids: list[int]) -> None:
    if ids and adds_bos(tokenizer) and ids[0] != tokenizer.bos_token_id:
        bos = tokenizer.bos_token_id
        warnings.warn(
            f"these token ids do not start with {tokenizer.bos_token!r} (id {bos}), which this model's tokenizer "
            f"puts before every text; without it results can differ from model.run(text). Prepend it: [{bos}, *ids]",
            stacklevel=_caller_level(),
        )


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside repwidget, so that a warning names the user's line."""
    import os
    import sys
    from pathlib import Path

    package = str(Path(__file__).resolve().parents[1]) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


# -- tokens as people read them ----------------------------------------------------------------
def str_tokens(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Each token as text, decoded alone; a piece that is not whole UTF-8 (part of an emoji or a CJK
    character) shows its bytes, e.g. ``' <0xF0><0x9F>'``, so that different tokens never read the same.
    Without a tokenizer, each id as a string."""
    if tokenizer is None:
        return [str(i) for i in ids]
    return [_readable(tokenizer, int(i)) for i in ids]


def _readable(tokenizer: Any, token_id: int) -> str:
    text = tokenizer.decode([token_id])
    if "\ufffd" not in text:
        return text
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if not isinstance(piece, str):
        return text
    data = _piece_bytes(piece)
    if data is None or data.decode("utf-8", errors="replace") != text:
        return piece  # not a byte-level piece we can read: the tokenizer's own spelling, distinct per token
    return data.decode("utf-8", errors="repwidget-hexbytes")


def _piece_bytes(piece: str) -> bytes | None:
    """The bytes of a byte-level BPE piece (GPT-2's byte-to-character map) or of a ``<0xNN>`` byte piece."""
    match = _BYTE_PIECE.fullmatch(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    decoder = _byte_decoder()
    if all(c in decoder for c in piece):
        return bytes(decoder[c] for c in piece)
    return None


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's map from the printable characters byte-level BPE writes back to the bytes they stand for."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


# -- what each token is ----------------------------------------------------------------------
def kinds(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Per token: ``"bos"`` for a BOS token at position 0, ``"special"`` for the tokenizer's special tokens
    (a chat template's ``<|im_start|>``, ``<eos>``), else ``""``."""
    if tokenizer is None:
        return ["" for _ in ids]
    special = _special_ids(tokenizer)
    bos = getattr(tokenizer, "bos_token_id", None)
    return [
        "bos" if pos == 0 and i == bos else "special" if i in special else "" for pos, i in enumerate(map(int, ids))
    ]


def _special_ids(tokenizer: Any) -> set[int]:
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", ()) if i is not None}
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    ids.update(int(i) for i, token in added.items() if getattr(token, "special", False))
    return ids


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def max_positions(config: Any) -> int | None:
    """The longest input a model of ``config`` takes (its position embeddings' length), if it says."""
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def pad_id(tokenizer: Any, config: Any, vocab_size: int) -> int:
    """The id that pads a batch (the tokenizer's pad token, else the config's, else 0)."""
    for value in (getattr(tokenizer, "pad_token_id", None), getattr(config, "pad_token_id", None)):
        if isinstance(value, int) and 0 <= value < vocab_size:
            return value
    return 0


def checked_ids(ids: list[int], vocab_size: int, limit: int | None) -> list[int]:
    """``ids`` if a model with ``vocab_size`` ids taking at most ``limit`` tokens can run them, else a ValueError."""
    if not ids:
        raise ValueError("the input is empty; give at least one token")
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"token id {bad[0]} is out of range; this model's vocabulary is 0..{vocab_size - 1}")
    if limit is not None and len(ids) > limit:
        raise ValueError(f"the input has {len(ids)} tokens; this model takes at most {limit}. Shorten the text.")
    return ids
