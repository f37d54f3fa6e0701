"""Prompts the model cannot read: mostly unknown words get one warning naming them (in Python and in the
explorer), and an over-long prompt one clear error without transformers' log line."""

from __future__ import annotations

import logging
import warnings

import pytest

import repwidget as rw
from repwidget.prompts import UnknownWordsWarning, unknown_words, unknown_words_note

from conftest import word_tokenizer

DINOSAUR = "my favourite dinosaur is a stegosaurus and it eats plants"  # 7 of 10 words unknown


def test_a_mostly_unknown_prompt_warns_once_naming_the_words(demo):
    with pytest.warns(UnknownWordsWarning) as caught:
        run = demo.run(DINOSAUR)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message
    assert "7 of the prompt's 10 tokens" in message
    for word in ("'my'", "'favourite'", "'dinosaur'", "'stegosaurus'", "'it'", "'eats'", "'plants'"):
        assert word in message
    assert "'is'" not in message and "'and'" not in message  # known words are not named
    assert "rw.demo.vocabulary()" in message
    assert caught[0].filename == __file__  # points at the line that ran the prompt, not at repwidget
    assert run.tokens.count("<unk>") == 7


def test_known_and_mostly_known_prompts_do_not_warn(demo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        demo.run("when mary and john went to the store , john gave a drink to")
        demo.run("when mary and john went to the store , john gave a pterodactyl to")  # 1 of 15 unknown
        demo.run("<unk> <unk> the")  # typed <unk> tokens are not unknown words
        demo.run("<unk> <unk> <unk> the zzz")  # nor counted as such (1 of 5)
        demo.run([1, 2, 2, 2])  # token ids: nothing to name


def test_the_threshold_is_a_share_of_the_tokens(tokenizer):  # the test tokenizer knows w0 .. w61
    assert unknown_words_note(tokenizer, "w1 w2 zzz w3 w4") == ""  # 1 of 5 (20%)
    note = unknown_words_note(tokenizer, "w1 yyy w2 zzz w3")  # 2 of 5 (40%)
    assert note.startswith("2 of the prompt's 5 tokens are words this model's tokenizer does not know")
    assert note.endswith("'yyy', 'zzz'") and "rw.demo" not in note
    many = " ".join(f"x{i}" for i in range(14))
    assert unknown_words(tokenizer, f"{many} x0 w1") == [f"x{i}" for i in range(14)]  # each once, in order
    assert unknown_words_note(tokenizer, many).endswith("'x9' and 4 more")


def test_demo_vocabulary_is_what_the_demo_model_reads(demo):
    words = rw.demo.vocabulary()
    assert len(words) == len(set(words)) == len(demo.tokenizer) - len(demo.tokenizer.all_special_ids)
    assert "mary" in words and "march" in words and "stegosaurus" not in words
    ids = demo.tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    assert demo.tokenizer.unk_token_id not in ids and len(ids) == len(words)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        demo.to_ids(" ".join(words[:60]))


def test_an_over_long_prompt_is_one_clear_error_without_transformers_log(fresh_demo):
    model = fresh_demo  # a fresh tokenizer: transformers logs its length warning once per tokenizer
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    transformers_log = logging.getLogger("transformers")  # it does not propagate to the root logger
    transformers_log.addHandler(handler)
    try:
        with pytest.raises(ValueError, match=r"^the input has 81 tokens; this model takes at most 64\. Shorten"):
            model.run(" ".join(["the"] * 80))
    finally:
        transformers_log.removeHandler(handler)
    assert not [m for m in logged if "sequence length" in m], logged


def test_the_explorer_shows_the_warning_above_the_tokens(demo):
    with pytest.warns(UnknownWordsWarning):
        ex = rw.explore(demo, DINOSAUR)
    assert "'stegosaurus'" in ex.warning and "rw.demo.vocabulary()" in ex.warning
    ex.interventions = [rw.Ablate(1, head=0)]
    assert "'stegosaurus'" in ex.warning  # about the prompt: clicks do not clear it
    assert rw.explore(demo, "two months after march is").warning == ""


def test_a_saved_page_keeps_the_warning(demo, tmp_path):
    with pytest.warns(UnknownWordsWarning):
        ex = rw.explore(demo, DINOSAUR)
    page = ex.save_html(tmp_path / "own.html").read_text()
    assert "stegosaurus" in page  # only the warning names it: the tokens are <unk>


def test_a_tokenizer_without_unknown_token_never_warns():
    tok = word_tokenizer()
    tok.unk_token = None
    assert unknown_words_note(tok, "zzz yyy xxx") == "" and unknown_words(tok, "zzz yyy") == []
