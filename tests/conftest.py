"""Tiny random-initialised models of each supported architecture, built from transformers' configs."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers as T

VOCAB = 64
WORDS = ["<unk>", "<bos>"] + [f"w{i}" for i in range(VOCAB - 2)]


#: the sizes every tiny model shares (GPT-2 names them differently)
SIZES = dict(
    num_hidden_layers=4, num_attention_heads=4, hidden_size=32, intermediate_size=48,
    vocab_size=VOCAB, max_position_embeddings=48,
)  # fmt: skip


def _gpt2():
    return T.GPT2LMHeadModel(T.GPT2Config(n_layer=4, n_head=4, n_embd=32, vocab_size=VOCAB, n_positions=48))


def _llama():  # grouped-query attention: 4 query heads share 2 key/value heads
    return T.LlamaForCausalLM(T.LlamaConfig(num_key_value_heads=2, **SIZES))


def _mistral():  # a sliding window shorter than the test inputs
    return T.MistralForCausalLM(T.MistralConfig(num_key_value_heads=2, sliding_window=5, **SIZES))


def _neox():
    return T.GPTNeoXForCausalLM(T.GPTNeoXConfig(**SIZES))


def _bert():
    return T.BertModel(T.BertConfig(**SIZES))


BUILDERS = {"gpt2": _gpt2, "llama": _llama, "mistral": _mistral, "neox": _neox, "bert": _bert}
CAUSAL = [name for name in BUILDERS if name != "bert"]


def build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = BUILDERS[name]().eval()
    assert model.config._attn_implementation == "sdpa", "tests must exercise the transformers default"
    return model


@pytest.fixture(scope="session")
def hf_models() -> dict[str, torch.nn.Module]:
    return {name: build(name) for name in BUILDERS}


@pytest.fixture(params=list(BUILDERS))
def arch_name(request) -> str:
    return request.param


@pytest.fixture(params=CAUSAL)
def causal_name(request) -> str:
    return request.param


def eager_copy(model: torch.nn.Module) -> torch.nn.Module:
    other = copy.deepcopy(model)
    other.set_attn_implementation("eager")
    return other


def word_tokenizer():
    """A word-level fast tokenizer over WORDS, made here (nothing downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return T.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<bos>")


@pytest.fixture(scope="session")
def tokenizer():
    return word_tokenizer()


def ids(n: int, seed: int = 1) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, VOCAB, (n,), generator=g).tolist()


def long_context_model(n_positions: int = 2048, n_layer: int = 2, n_head: int = 2):
    """A random GPT-2 that takes ``n_positions`` tokens, with the word tokenizer: for long-prompt views."""
    import repwidget as rw

    torch.manual_seed(0)
    config = T.GPT2Config(vocab_size=VOCAB, n_positions=n_positions, n_embd=32, n_layer=n_layer, n_head=n_head)
    return rw.load(T.GPT2LMHeadModel(config).eval(), tokenizer=word_tokenizer())
