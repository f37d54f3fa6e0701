"""Tokens as people read them: byte pieces shown as bytes, BOS added once, chat messages, tokenizer outputs."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch
import transformers as T
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

import repwidget as rw
from repwidget.model import tokens

from smollm2 import smollm2_tokenizer

#: emoji (4 bytes), CJK (3 bytes), accented Latin (2 bytes): byte-level BPE splits them across tokens
SENTENCE = "I love 🍕 and 寿司 in Zürich 🎉!"
WORDS = ["<unk>", "<bos>", "<eos>", "user", "assistant"] + [f"w{i}" for i in range(27)]
CHAT = (
    "{% for m in messages %}<bos>{{ m['role'] }} {{ m['content'] }} <eos> {% endfor %}"
    "{% if add_generation_prompt %}<bos>assistant {% endif %}"
)


def byte_bpe() -> T.PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (like GPT-2's) trained here, that merges 寿司 and ü but not the emoji."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["I love sushi: 寿司 寿司 in Zürich, Zürich"] * 20, trainer)
    return T.PreTrainedTokenizerFast(tokenizer_object=bpe)


def word_tokenizer(adds_bos: bool) -> T.PreTrainedTokenizerFast:
    """Word-level over WORDS; with ``adds_bos``, it puts <bos> before every text (as Llama's and Gemma's do)."""
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if adds_bos:
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return T.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<bos>", eos_token="<eos>")


def tiny_model(tokenizer) -> rw.Model:
    torch.manual_seed(0)
    config = T.GPT2Config(
        n_layer=2, n_head=2, n_embd=16, vocab_size=len(tokenizer), n_positions=64, bos_token_id=None, eos_token_id=None
    )
    return rw.load(T.GPT2LMHeadModel(config).eval(), tokenizer=tokenizer)


def as_bytes(shown: str) -> bytes:
    """Read a shown token back: ``<0xNN>`` is that byte, any other character its UTF-8."""
    return b"".join(
        bytes([int(part[3:5], 16)]) if re.fullmatch(r"<0x[0-9A-F]{2}>", part) else part.encode()
        for part in re.split(r"(<0x[0-9A-F]{2}>)", shown)
        if part
    )


def check_readable(tokenizer) -> list[str]:
    """Distinct tokens read distinctly, whole characters as themselves, and the bytes add up to the text."""
    ids = tokenizer(SENTENCE)["input_ids"]
    shown = tokens.str_tokens(tokenizer, ids)
    by_id = dict(zip(ids, shown, strict=True))
    assert len(set(by_id.values())) == len(by_id), f"different tokens read the same: {shown}"
    assert not any("\ufffd" in s for s in shown)
    assert b"".join(as_bytes(s) for s in shown) == SENTENCE.encode()
    for i, s in by_id.items():  # a token that is whole UTF-8 reads as the tokenizer decodes it
        if "\ufffd" not in tokenizer.decode([i]):
            assert s == tokenizer.decode([i])
    return shown


def test_a_byte_level_bpe_shows_pieces_of_characters_as_bytes():
    shown = check_readable(byte_bpe())
    assert len(shown) >= 14 and "寿司" in "".join(shown) and "ü" in "".join(shown)
    assert "<0xF0><0x9F>" in "".join(shown)  # the emoji, split: its bytes
    assert shown[0] == "I" and any(s.startswith(" ") for s in shown)  # leading spaces stay


@pytest.mark.real_model
def test_smollm2_tokens_of_emoji_and_cjk_read_distinctly():
    tok = smollm2_tokenizer()
    shown = check_readable(tok)
    assert shown[:2] == ["I", " love"] and " <0xF0><0x9F>" in shown and "ü" in shown
    ids = tok(SENTENCE)["input_ids"]
    assert len(set(ids)) >= 14 and len(set(shown)) == len(set(ids))


def test_byte_fallback_pieces_show_as_their_bytes():
    class ByteFallback:  # the piece SentencePiece's byte fallback uses for one byte, decoded alone
        def decode(self, ids):
            return "\ufffd"

        def convert_ids_to_tokens(self, i):
            return "<0xE5>"

    assert tokens.str_tokens(ByteFallback(), [7]) == ["<0xE5>"]


def test_views_and_export_carry_the_readable_tokens(tmp_path):
    model = tiny_model(byte_bpe())
    ex = rw.explore(model, SENTENCE)
    assert ex.tokens == model.to_str_tokens(ex.run.token_ids) and "<0xF0><0x9F>" in "".join(ex.tokens)
    ex.save_html(tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    saved = json.loads(re.search(r'<script type="application/json" id="rw-snapshot">(.*?)</script>', page, re.S)[1])
    assert saved["state"]["tokens"] == ex.tokens and saved["state"]["token_kinds"] == ex.token_kinds


# -- BOS ---------------------------------------------------------------------------------------
def test_text_gets_the_bos_its_tokenizer_adds_once():
    model = tiny_model(word_tokenizer(adds_bos=True))
    assert model.run("w1 w2").token_ids == [1, 6, 7]  # the tokenizer's BOS
    assert model.run("<bos> w1 w2").token_ids == [1, 6, 7]  # already there (a chat template's output): kept once
    assert model.run("<bos>w1 w2").token_ids == [1, 6, 7]
    no_bos = tiny_model(word_tokenizer(adds_bos=False))
    assert no_bos.run("w1 w2").token_ids == [6, 7] and no_bos.run("<bos> w1").token_ids == [1, 6]


def test_ids_without_the_bos_a_model_needs_get_a_warning():
    model = tiny_model(word_tokenizer(adds_bos=True))
    with pytest.warns(UserWarning, match=r"do not start with '<bos>' \(id 1\).*Prepend it: \[1, \*ids\]") as caught:
        model.run([6, 7])
    assert caught[0].filename == __file__  # it names the caller's line, not repwidget's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.run([1, 6, 7])
        tiny_model(word_tokenizer(adds_bos=False)).run([6, 7])  # a tokenizer that adds none: no warning


def test_the_tokens_view_is_told_which_token_is_bos_and_which_are_special():
    model = tiny_model(word_tokenizer(adds_bos=True))
    assert rw.TokensView(model.run("w1 w2 <eos>")).token_kinds == ["bos", "", "", "special"]
    assert rw.TokensView(tiny_model(word_tokenizer(adds_bos=False)).run("w1")).token_kinds == [""]
    assert rw.TokensView(model.run("w1 <bos>")).token_kinds == ["bos", "", "special"]  # BOS only at position 0


# -- chat --------------------------------------------------------------------------------------
def test_messages_apply_a_chat_template_string():
    tok = word_tokenizer(adds_bos=True)
    tok.chat_template = CHAT
    model = tiny_model(tok)
    messages = [{"role": "user", "content": "w1 w2"}]
    run = model.run(messages=messages)
    # the template's text, BOS from the template only (not a second from the tokenizer), the generation prompt
    assert run.tokens == ["<bos>", "user", "w1", "w2", "<eos>", "<bos>", "assistant"]
    encoded = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    assert model.run(encoded).token_ids == run.token_ids  # a BatchEncoding (transformers 5) is accepted
    pt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_tensors="pt")
    assert model.run(pt).token_ids == run.token_ids
    torch.testing.assert_close(model.run(encoded).logits, run.logits, atol=0, rtol=0)
    ex = rw.explore(model, messages=messages)
    assert ex.token_kinds == ["bos", "", "", "", "special", "special", ""]
    assert "model.run(messages=[{'role': 'user', 'content': 'w1 w2'}]" in ex.code()


def test_bad_chat_input_gets_one_clear_line():
    model = tiny_model(word_tokenizer(adds_bos=True))
    with pytest.raises(ValueError, match="has no chat template"):
        model.run(messages=[{"role": "user", "content": "w1"}])
    model.tokenizer.chat_template = CHAT
    with pytest.raises(TypeError, match=r"list of \{'role'"):
        model.run(messages="w1 w2")
    with pytest.raises(TypeError, match="not both"):
        model.run("w1", messages=[{"role": "user", "content": "w1"}])
    with pytest.raises(TypeError, match="needs 'input_ids'"):
        model.run({"attention_mask": [1, 1]})
    model.tokenizer.chat_template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(ValueError, match="chat template refused these messages: roles must alternate"):
        model.run(messages=[{"role": "user", "content": "w1"}])


@pytest.mark.real_model
def test_smollm2_chat_template_and_its_special_tokens():
    tok = smollm2_tokenizer()
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokens.to_ids(tok, messages=messages)
    assert ids == list(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)["input_ids"])
    assert tokens.to_ids(tok, tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)) == ids
    kinds = tokens.kinds(tok, ids)
    shown = tokens.str_tokens(tok, ids)
    marked = [s for s, k in zip(shown, kinds, strict=True) if k]
    assert marked == ["<|im_start|>", "<|im_end|>", "<|im_start|>", "<|im_end|>", "<|im_start|>"]
    assert kinds[0] == "bos"  # SmolLM2's BOS token is <|im_start|>
    assert "".join(shown[-3:]) == "assistant\n" and shown[-1] == "\n"  # the generation prompt; its newline
    assert not tokens.adds_bos(tok)  # SmolLM2's tokenizer adds no BOS to text, so ids never warn


def test_a_feature_dashboard_reads_tokens_the_same_way():
    model = tiny_model(byte_bpe())
    d = model.d_model
    torch.manual_seed(0)  # a ReLU SAE whose feature 0 fires on every token (a positive bias)
    sae = rw.SAE(
        torch.randn(d, 4), torch.ones(4) * 10, torch.randn(4, d), torch.zeros(d), hook="blocks.1.hook_resid_pre"
    )
    dashboard = rw.feature_dashboard(model, sae, 0, [SENTENCE], k=1)
    assert dashboard.contexts[0].tokens == model.to_str_tokens(model.to_ids(SENTENCE))
    assert "&lt;0xF0&gt;" in dashboard._repr_html_() and "\ufffd" not in dashboard._repr_html_()


def test_a_saved_page_shows_bytes_bos_and_special_tokens_in_chromium(tmp_path):
    from browser import chromium, require_browser

    require_browser()
    tok = word_tokenizer(adds_bos=True)
    tok.chat_template = CHAT
    chat = rw.explore(tiny_model(tok), messages=[{"role": "user", "content": "w1 w2"}])
    emoji = rw.explore(tiny_model(byte_bpe()), SENTENCE)
    with chromium() as browser:
        page = browser.new_page()
        page.goto(chat.save_html(tmp_path / "chat.html").as_uri())
        page.locator("body[data-rw-ready]").wait_for(timeout=20_000)
        tokens = page.locator(".rw-tokens-view [data-rw-token]")
        assert tokens.nth(0).get_attribute("title") == "position 0 · id 1 · BOS (beginning of sequence)"
        assert page.locator(".rw-tokens-view .rw-bos-note").is_visible()
        special = page.locator(".rw-tokens-view .rw-special")
        assert [special.nth(i).get_attribute("data-rw-token") for i in range(special.count())] == ["0", "4", "5"]
        tokens.nth(4).click()  # a special token is a token like any other: it selects
        page.locator('.rw-tokens-view [data-rw-token="4"].rw-selected').wait_for(timeout=5_000)

        page.goto(emoji.save_html(tmp_path / "emoji.html").as_uri())
        page.locator("body[data-rw-ready]").wait_for(timeout=20_000)
        shown = page.locator(".rw-tokens-view [data-rw-token]").all_inner_texts()
        assert len(shown) == len(emoji.tokens) and "<0xF0>" in shown and "寿司" in "".join(shown)
        assert page.locator(".rw-tokens-view .rw-bos-note").count() == 0
