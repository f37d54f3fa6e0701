"""The architecture matrix: one tiny random-initialised model per architecture, built from transformers' configs.

Every model is seeded, fp32, in eval mode, with transformers' default attention implementation, 4 layers, 4 heads,
``d_model`` 32 and the word vocabulary of ``conftest`` (64 ids), so a forward pass takes milliseconds. Config options
that make an architecture hard to get right are switched on: sliding windows shorter than ``TEST_LENGTH``, Gemma 2's
attention and final logit soft-capping, Granite's residual, embedding, attention and logit multipliers, Cohere's
logit scale, grouped-query attention, query/key norms, mixture-of-experts MLPs. ``initializer_range`` is raised from
0.02 so that attention patterns are far from uniform and the soft caps bite.

``ARCHITECTURES[name]`` gives the builder and what kind of block the model has (``Spec``); ``build(name)`` makes one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import transformers as T

from conftest import VOCAB

#: tokens in the matrix's test inputs; every sliding window is shorter
TEST_LENGTH = 20
WINDOW = 6
INIT = 0.1  # initializer_range: large enough for peaked attention and soft caps that bite

#: the sizes every model shares (a few configs name them differently)
SIZES = dict(
    num_hidden_layers=4, num_attention_heads=4, hidden_size=32, intermediate_size=64,
    vocab_size=VOCAB, max_position_embeddings=64, initializer_range=INIT, bos_token_id=1, eos_token_id=2,
)  # fmt: skip
SPECIAL = dict(bos_token_id=1, eos_token_id=2)  # ids of the word vocabulary, for configs that do not take SIZES


@dataclass(frozen=True)
class Spec:
    """One architecture of the matrix: how to build it and what kind of blocks it has."""

    build: Callable[[], torch.nn.Module]
    parallel: bool = False  #: attention and MLP both read the block's input (no resid_mid)
    moe: bool = False  #: the MLP is a mixture of experts
    post_norm: bool = False  #: the block normalises each sublayer's output before adding it to the residual
    encoder: bool = False  #: bidirectional, post-LN (BERT)


def _gpt2():
    return T.GPT2LMHeadModel(
        T.GPT2Config(
            n_layer=4, n_head=4, n_embd=32, vocab_size=VOCAB, n_positions=64, initializer_range=INIT, **SPECIAL
        )
    )


def _gptj():  # parallel attention + MLP sharing one LayerNorm; rotary on part of each head (interleaved pairs)
    return T.GPTJForCausalLM(
        T.GPTJConfig(
            n_layer=4,
            n_head=4,
            n_embd=32,
            rotary_dim=4,
            vocab_size=VOCAB,
            n_positions=64,
            initializer_range=INIT,
            **SPECIAL,
        )
    )


def _neox(parallel: bool):
    return lambda: T.GPTNeoXForCausalLM(T.GPTNeoXConfig(use_parallel_residual=parallel, **SIZES))


def _llama():  # grouped-query attention: 4 query heads share 2 key/value heads
    return T.LlamaForCausalLM(T.LlamaConfig(num_key_value_heads=2, **SIZES))


def _mistral():
    return T.MistralForCausalLM(T.MistralConfig(num_key_value_heads=2, sliding_window=WINDOW, **SIZES))


def _mixtral():  # 4 experts, 2 per token
    return T.MixtralForCausalLM(
        T.MixtralConfig(num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, **SIZES)
    )


def _qwen2():  # biases on q, k, v
    return T.Qwen2ForCausalLM(T.Qwen2Config(num_key_value_heads=2, **SIZES))


def _qwen3():  # per-head query/key RMSNorm
    return T.Qwen3ForCausalLM(T.Qwen3Config(num_key_value_heads=2, head_dim=8, **SIZES))


def _gemma():  # embeddings scaled by sqrt(d_model), RMSNorm with (1 + weight), multi-query attention
    return T.GemmaForCausalLM(T.GemmaConfig(num_key_value_heads=1, head_dim=8, **SIZES))


def _gemma2():  # post-attention/-feedforward norms, alternating sliding windows, attention and logit soft caps
    config = T.Gemma2Config(
        num_key_value_heads=2, head_dim=8, sliding_window=WINDOW, query_pre_attn_scalar=16,
        attn_logit_softcapping=2.0, final_logit_softcapping=1.5, **SIZES,
    )  # fmt: skip
    return T.Gemma2ForCausalLM(config)


def _gemma3():  # Gemma 2's norms plus query/key norms, local and global rotary bases; text-only causal LM
    config = T.Gemma3TextConfig(
        num_key_value_heads=2, head_dim=8, sliding_window=WINDOW, query_pre_attn_scalar=16,
        layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"], **SIZES,
    )  # fmt: skip
    return T.Gemma3ForCausalLM(config)


def _olmo2():  # post-norm: each sublayer's output is normalised before the residual add; query/key norms
    return T.Olmo2ForCausalLM(T.Olmo2Config(**SIZES))  # multi-head (TransformerLens converts no GQA here)


def _phi():  # parallel attention + MLP, LayerNorm, rotary on half of each head
    return T.PhiForCausalLM(T.PhiConfig(partial_rotary_factor=0.5, **SIZES))


def _phi3():  # fused qkv and gate/up projections, sliding window
    return T.Phi3ForCausalLM(T.Phi3Config(num_key_value_heads=2, sliding_window=WINDOW, pad_token_id=0, **SIZES))


def _falcon():  # parallel attention + MLP, multi-query attention, rotary
    config = T.FalconConfig(
        num_hidden_layers=4, num_attention_heads=4, hidden_size=32, vocab_size=VOCAB, max_position_embeddings=64,
        initializer_range=INIT, parallel_attn=True, multi_query=True, new_decoder_architecture=False, alibi=False,
        **SPECIAL,
    )  # fmt: skip
    return T.FalconForCausalLM(config)


def _opt():  # learned positions offset by 2, LayerNorm before each sublayer
    config = T.OPTConfig(
        num_hidden_layers=4, num_attention_heads=4, hidden_size=32, ffn_dim=64, word_embed_proj_dim=32,
        vocab_size=VOCAB, max_position_embeddings=64, init_std=INIT, pad_token_id=0, **SPECIAL,
    )  # fmt: skip
    return T.OPTForCausalLM(config)


def _bert():  # post-LN encoder with its masked-LM head (the logits)
    return T.BertForMaskedLM(T.BertConfig(**SIZES))


def _granite():  # scaled embeddings, residual branches, attention scores and logits
    config = T.GraniteConfig(
        num_key_value_heads=2, embedding_multiplier=4.0, residual_multiplier=0.5, attention_multiplier=0.25,
        logits_scaling=2.5, **SIZES,
    )  # fmt: skip
    return T.GraniteForCausalLM(config)


def _cohere():  # parallel attention + MLP after one LayerNorm, logits scaled by logit_scale
    return T.CohereForCausalLM(T.CohereConfig(num_key_value_heads=2, logit_scale=0.5, **SIZES))


ARCHITECTURES: dict[str, Spec] = {
    "gpt2": Spec(_gpt2),
    "gptj": Spec(_gptj, parallel=True),
    "neox": Spec(_neox(parallel=True), parallel=True),
    "neox_sequential": Spec(_neox(parallel=False)),
    "llama": Spec(_llama),
    "mistral": Spec(_mistral),
    "mixtral": Spec(_mixtral, moe=True),
    "qwen2": Spec(_qwen2),
    "qwen3": Spec(_qwen3),
    "gemma": Spec(_gemma),
    "gemma2": Spec(_gemma2, post_norm=True),
    "gemma3": Spec(_gemma3, post_norm=True),
    "olmo2": Spec(_olmo2, post_norm=True),
    "phi": Spec(_phi, parallel=True),
    "phi3": Spec(_phi3),
    "falcon": Spec(_falcon, parallel=True),
    "opt": Spec(_opt),
    "bert": Spec(_bert, encoder=True),
    "granite": Spec(_granite),
    "cohere": Spec(_cohere, parallel=True),
}


def build(name: str, seed: int = 0) -> torch.nn.Module:
    """The matrix's model ``name``: seeded, fp32, eval, with the attention implementation transformers picks."""
    torch.manual_seed(seed)
    return ARCHITECTURES[name].build().float().eval()


def matrix_ids(n: int = TEST_LENGTH, seed: int = 3) -> list[int]:
    """``n`` random token ids (no special ids 0-2), the same for every architecture."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (n,), generator=g).tolist()
