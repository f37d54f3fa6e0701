"""Tiny random-initialised models of each supported architecture, built from transformers' configs."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers as T
from tiers import (  # noqa: F401  (the tiers and the durations file: tests/tiers.py)
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_sessionfinish,
    pytest_xdist_make_scheduler,
)

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


def _state(model) -> dict:
    """What a test that only reads the shared demo model must leave as it was: its weights (their version and a
    checksum), the hooks on its modules and its reference."""
    hf = model.hf
    return {
        "weights_version": model.weights_version(),
        "checksum": [float(p.detach().double().sum()) for p in hf.state_dict().values()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in hf.modules()),
        "reference": id(getattr(model, "reference", None)),
    }


_SHARED: dict = {}  # the shared demo model and its state when built


@pytest.fixture(scope="session")
def demo():
    """The demo model, shared by every test that only reads it (a test that changes it takes ``fresh_demo``):
    after each test its weights, hooks and reference are checked unchanged."""
    import repwidget as rw

    model = rw.demo_model()
    _SHARED.update(model=model, state=_state(model))
    yield model
    _SHARED.clear()


@pytest.fixture(autouse=True)
def _shared_demo_unchanged(request):
    yield
    if _SHARED and _state(_SHARED["model"]) != _SHARED["state"]:
        _SHARED["state"] = _state(_SHARED["model"])  # one failure names the test, the next ones do not repeat it
        pytest.fail(f"{request.node.nodeid} changed the shared demo model: give it `fresh_demo`", pytrace=False)


@pytest.fixture
def fresh_demo():
    """A demo model of the test's own, to change."""
    import repwidget as rw

    return rw.demo_model()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One JupyterLab for the session's JupyterLab tests: each opens its own notebook in its own workspace (and
    its own page of the shared Chromium, ``browser.chromium``)."""
    from browser import LAB_SETTINGS, Lab, require_browser

    require_browser()
    server = Lab(tmp_path_factory.mktemp("lab"), settings=LAB_SETTINGS)
    yield server
    server.close()
