"""Models by name or config: Hugging Face configs (written here, no network)
and torchvision names, built on the meta device and traced; the trace takes
CUDA's branches; a missing package or an offline Hub name is one line."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from snippets.memcalc.families import PRESETS, hf_config_dict, parameter_count
from snippets.memcalc.sources import (SourceError, cuda_branches,
                                      estimate_model, hf_case, model_case,
                                      require)
from snippets.memcalc.tracer import estimate

LLAMA_GQA = dict(model_type="llama", vocab_size=1000, hidden_size=256,
                 intermediate_size=688, num_hidden_layers=2,
                 num_attention_heads=8, num_key_value_heads=2,
                 max_position_embeddings=512)


@pytest.mark.claim("Traced on the CPU, Hugging Face Llama with grouped-query heads in fp32 takes CUDA's "
                   "branch: SDPA with enable_gqa, the math kernel",
                   page="memory-calculator.md#models-by-name")
def test_llama_gqa_in_fp32_takes_cudas_branch_to_the_math_kernel():
    build, loss_fn = hf_case(LLAMA_GQA, batch=2, seq=128)
    with cuda_branches():
        on_cuda = estimate(build, loss_fn)
    assert on_cuda.attention == {"math": 2}
    # Without it, transformers sees fake tensors as a compiled graph,
    # builds a mask, repeats the heads and gets a fused kernel: the
    # divergence the GPU measured (-47.5 %).
    traced_plainly = estimate(build, loss_fn)
    assert traced_plainly.attention == {"efficient": 2}
    assert on_cuda.peak > traced_plainly.peak
    assert estimate_model(LLAMA_GQA, batch=2, seq=128,
                          precision="bf16").attention == {"cudnn": 2}


def test_a_config_object_a_path_and_a_dict_give_the_same_estimate(tmp_path):
    transformers = require("transformers")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_GQA), encoding="utf-8")
    config = transformers.AutoConfig.for_model(**LLAMA_GQA)
    peaks = {estimate_model(m, batch=1, seq=64).peak
             for m in (LLAMA_GQA, path, tmp_path, config)}
    assert len(peaks) == 1


@pytest.mark.claim("A preset's parameter count is the count of the model transformers builds from the "
                   "same config", page="memory-calculator.md#models-by-name")
@pytest.mark.parametrize("name", PRESETS)
def test_families_count_what_transformers_builds(name):
    config = hf_config_dict(PRESETS[name])
    build, _, _ = model_case(config, batch=1, seq=8)
    with torch.device("meta"):
        model = build()
    assert sum(p.numel() for p in model.parameters()) == \
        parameter_count(PRESETS[name])


def test_a_torchvision_model_by_name():
    e = estimate_model("torchvision:resnet18", batch=2, image_size=64)
    assert e.parameters == 11_689_512
    with pytest.raises(SourceError, match="no classifier 'resnet5'"):
        estimate_model("torchvision:resnet5")


def test_an_offline_hub_name_fails_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError) as error:
        estimate_model("meta-llama/Llama-3.1-8B")
    message = str(error.value)
    assert "\n" not in message and "path to its config.json" in message


@pytest.mark.parametrize("package", ["transformers", "torchvision"])
def test_a_missing_package_is_named_with_its_extra(monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)   # import fails
    with pytest.raises(SourceError) as error:
        require(package)
    extra = {"transformers": "hf", "torchvision": "vision"}[package]
    assert str(error.value) == (f"{package} is not installed: "
                                f'pip install -e ".[{extra}]"')


def test_bad_sources_are_refused_in_one_line(tmp_path):
    for model, words in [("no such thing", "neither a config.json"),
                         (tmp_path / "missing.json", "no such config"),
                         ({"vocab_size": 3}, "no model_type")]:
        with pytest.raises(SourceError, match=words):
            estimate_model(model)
