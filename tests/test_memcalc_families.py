"""The decoder families' parameter counts: the published totals of each preset, to the scalar."""

from __future__ import annotations

import pytest

from snippets.memcalc.families import (PRESETS, Decoder, active_parameter_count, parameter_count,
                                       parameter_shapes, preset, with_options)

# The totals the models' own releases report (model cards, or the sum over the published
# safetensors index), which a count from config.json must reproduce exactly.
PUBLISHED = {
    "gpt2": 124_439_808,
    "llama-3.2-1b": 1_235_814_400,
    "llama-2-7b": 6_738_415_616,
    "llama-3-8b": 8_030_261_248,
    "llama-3.1-70b": 70_553_706_496,
    "mistral-7b": 7_241_732_096,
    "qwen2-7b": 7_615_616_512,
    "mixtral-8x7b": 46_702_792_704,
}


@pytest.mark.claim("Llama-3-8B has 8,030,261,248 parameters, counted from its config's shapes",
                   page="memory-calculator.md")
@pytest.mark.parametrize("name", PUBLISHED)
def test_every_preset_has_its_published_parameter_count(name):
    assert parameter_count(PRESETS[name]) == PUBLISHED[name]


def test_untying_the_head_adds_one_embedding_and_learned_positions_add_a_table():
    llama = PRESETS["llama-3-8b"]
    tied = with_options(llama, tied=True)
    assert parameter_count(llama) - parameter_count(tied) == llama.vocab * llama.hidden
    gpt2 = PRESETS["gpt2"]
    assert parameter_count(gpt2) - parameter_count(with_options(gpt2, positions="rotary", max_positions=0)) \
        == 1024 * 768


def test_a_mixture_routes_each_token_through_top_k_experts():
    mixtral = PRESETS["mixtral-8x7b"]
    dense = with_options(mixtral, experts=0, top_k=0)
    expert = 3 * mixtral.hidden * mixtral.ffn
    router = mixtral.experts * mixtral.hidden
    assert parameter_count(mixtral) == parameter_count(dense) + mixtral.layers * (7 * expert + router)
    assert active_parameter_count(mixtral) == parameter_count(dense) + mixtral.layers * (expert + router)


def test_shapes_are_listed_in_module_order():
    shapes = parameter_shapes(PRESETS["llama-3-8b"])
    assert shapes[0] == (128256, 4096)                      # embed_tokens
    assert shapes[1:4] == [(4096, 4096), (1024, 4096), (1024, 4096)]  # q, k, v
    assert shapes[-2:] == [(4096,), (128256, 4096)]          # final norm, untied head


@pytest.mark.parametrize("changes, message", [
    (dict(heads=5), "multiple of heads"),
    (dict(kv_heads=5), "kv_heads must divide"),
    (dict(mlp="relu"), "unknown mlp 'relu'"),
    (dict(experts=8, top_k=0), "top_k must be between"),
    (dict(layers=0), "layers must be a positive"),
])
def test_impossible_shapes_are_refused_in_one_line(changes, message):
    with pytest.raises(ValueError, match=message):
        with_options(PRESETS["llama-3-8b"], **changes)
    with pytest.raises(ValueError, match="unknown model 'llama-9'"):
        preset("llama-9")
    assert isinstance(preset("gpt2"), Decoder)
