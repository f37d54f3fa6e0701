"""Prompts to token ids, quietly, with one warning when most of a prompt is words the tokenizer does not
know: those all become its unknown token (``<unk>``), and the model reads nothing of them."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

#: a prompt is "mostly unknown" when at least this share of its tokens (special tokens aside) are ``<unk>``
UNKNOWN_SHARE = 0.3
#: the unknown words a warning names before "and N more"
SHOWN_WORDS = 10
_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


class UnknownWordsWarning(UserWarning):
    """Most of a prompt became the tokenizer's unknown token."""


def prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` (tokenizer defaults, special tokens included); warns
    :class:`UnknownWordsWarning` when the prompt is mostly unknown words. transformers' "sequence length
    is longer than the specified maximum" log line is left out: the model's own limit is checked after,
    with one clear error."""
    ids = list(tokenizer(text, verbose=False)["input_ids"])
    note = unknown_words_note(tokenizer, text, ids)
    if note:
        warnings.warn(note, UnknownWordsWarning, stacklevel=_caller_level())
    return ids


def unknown_words_note(tokenizer: Any, text: str, ids: list[int] | None = None) -> str:
    """One line naming the unknown words when at least :data:`UNKNOWN_SHARE` of the prompt's tokens are
    the unknown token (and where to find the words the model knows); ``""`` otherwise."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not isinstance(text, str) or not text:
        return ""
    if ids is None:
        ids = list(tokenizer(text, verbose=False)["input_ids"])
    special = set(getattr(tokenizer, "all_special_ids", ())) - {unk}
    read = [i for i in ids if i not in special]
    if not read or ids.count(unk) < UNKNOWN_SHARE * len(read):  # a quick bound before looking closer
        return ""
    spans = _unknown_spans(tokenizer, text)
    if len(spans) < UNKNOWN_SHARE * len(read):
        return ""
    words = list(dict.fromkeys(spans))
    shown = ", ".join(repr(w) for w in words[:SHOWN_WORDS])
    more = f" and {len(words) - SHOWN_WORDS} more" if len(words) > SHOWN_WORDS else ""
    token = tokenizer.unk_token
    if _is_demo(tokenizer):
        where = f"; rw.demo.vocabulary() lists the {_known_words(tokenizer)} words the demo model knows"
        whose = "the demo model does not know"
    else:
        where, whose = "", "this model's tokenizer does not know"
    return (
        f"{len(spans)} of the prompt's {len(read)} tokens are words {whose}, all read as {token}: {shown}{more}{where}"
    )


def unknown_words(tokenizer: Any, text: str) -> list[str]:
    """The words of ``text`` that ``tokenizer`` turns into its unknown token, in order, each once."""
    return list(dict.fromkeys(_unknown_spans(tokenizer, text)))


def _unknown_spans(tokenizer: Any, text: str) -> list[str]:
    """The text of each unknown token (``<unk>`` typed as such is not unknown)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    try:
        encoded = tokenizer(text, return_offsets_mapping=True, verbose=False)
        pairs = zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        found = [text[a:b] for i, (a, b) in pairs if i == unk]
    except (NotImplementedError, KeyError, TypeError, ValueError):  # a slow tokenizer has no offsets
        found = [w for w in text.split() if unk in tokenizer(w, add_special_tokens=False, verbose=False)["input_ids"]]
    return [w for w in found if w.strip() and w != tokenizer.unk_token]


def _is_demo(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` is the demo model's: ``rw.demo_model()`` marks it ``repwidget_source = "demo"``."""
    return getattr(tokenizer, "repwidget_source", None) == "demo"


def _known_words(tokenizer: Any) -> int:
    """How many words ``tokenizer`` knows, its special tokens aside (``len(rw.demo.vocabulary())`` for the demo)."""
    return len(set(tokenizer.get_vocab()) - set(getattr(tokenizer, "all_special_tokens", ())))


def _caller_level() -> int:
    """``stacklevel`` for a warning that points at the user's line: the first frame outside repwidget
    (and outside IPython, which runs ``%explore``)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE) or f"{os.sep}IPython{os.sep}" in frame.f_code.co_filename
    ):
        frame, level = frame.f_back, level + 1
    return level
