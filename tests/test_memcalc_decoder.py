"""The decoder families' closed form against the trace of transformers' own
models (Llama and Qwen2 from configs written here), across precisions,
grouped-query heads and checkpointing; and fast at 70 B."""

from __future__ import annotations

import itertools
import time

import pytest

from snippets.memcalc.decoder import estimate_decoder
from snippets.memcalc.families import PRESETS, Decoder
from snippets.memcalc.sharding import Sharding
from snippets.memcalc.sources import cuda_branches, hf_case
from snippets.memcalc.tracer import estimate

LLAMA = dict(mlp="swiglu", norm="rmsnorm", linear_bias=False,
             positions="rotary", tied=False)
GRID = list(itertools.product(
    ["llama", "qwen2"], ["fp32", "bf16", "bf16-mixed", "bf16-autocast"],
    [8, 2], ["none", "full"]))


@pytest.mark.claim("The decoder closed form follows the trace of Hugging Face Llama and Qwen2 within 3 %",
                   page="memory-calculator.md#models-by-name")
@pytest.mark.parametrize("family,precision,kv,ckpt", GRID)
def test_the_decoder_closed_form_follows_the_trace(family, precision, kv,
                                                   ckpt):
    config = dict(model_type=family, vocab_size=4096, hidden_size=256,
                  intermediate_size=688, num_hidden_layers=2,
                  num_attention_heads=8, num_key_value_heads=kv,
                  max_position_embeddings=512, tie_word_embeddings=False)
    build, loss_fn = hf_case(config, batch=2, seq=256, checkpointing=ckpt)
    with cuda_branches():
        traced = estimate(build, loss_fn, precision=precision)
    d = Decoder(vocab=4096, hidden=256, layers=2, heads=8, kv_heads=kv,
                ffn=688, qkv_bias=family == "qwen2", **LLAMA)
    closed = estimate_decoder(d, batch=2, seq=256, precision=precision,
                              checkpointing=ckpt)
    assert closed["parameters"] == traced.parameters
    assert abs(closed["peak"] - traced.peak) / traced.peak < 0.03
    assert closed["persistent"] == traced.persistent


@pytest.mark.claim("A 70 B estimate takes under 10 s on this 2-core machine",
                   page="memory-calculator.md#the-command")
def test_a_70b_estimate_is_fast():
    start = time.process_time()
    result = estimate_decoder(PRESETS["llama-3.1-70b"], batch=1, seq=8192,
                              checkpointing="full",
                              sharding=Sharding("fsdp2", 64))
    assert result["parameters"] == 70_553_706_496
    assert time.process_time() - start < 10


def test_a_mixture_holds_every_expert_and_routes_top_k():
    mixtral = PRESETS["mixtral-8x7b"]
    dense = Decoder(**{**mixtral.__dict__, "experts": 0, "top_k": 0})
    sharding = Sharding("fsdp2", 64)
    moe = estimate_decoder(mixtral, batch=1, seq=4096, sharding=sharding)
    one = estimate_decoder(dense, batch=1, seq=4096, sharding=sharding)
    assert moe["parameters"] > 5 * one["parameters"]
    assert moe["breakdown"]["optimizer_state"] > \
        5 * one["breakdown"]["optimizer_state"]
