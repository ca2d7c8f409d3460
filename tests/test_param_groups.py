"""snippets/param_groups.py: the study plan's name filter misfires; the shape-and-type builder partitions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snippets.models import TinyMLP
from snippets.param_groups import (
    NORM_TYPES, TrapNet, build_param_groups, check_partition, describe_groups, names_of, seed_param_groups,
)


def sizes(groups):
    """(tensors, scalars) per group."""
    return [(len(g["params"]), sum(p.numel() for p in g["params"])) for g in groups]


def decayed_names(model, groups):
    return names_of(model, groups[0]["params"])


def test_trapnet_runs_and_has_the_parameters_the_page_counts():
    model = TrapNet()
    assert model(torch.randn(3, 16)).shape == (3, 4)
    assert sum(p.numel() for p in model.parameters()) == 660


@pytest.mark.claim("On TrapNet the name filter decays `layer_scale`, `rms.weight` and "
                   "`head.weight` and spares two weight matrices",
                   page="param-groups.md#where-it-misfires")
def test_seed_filter_misfires_on_trapnet():
    model = TrapNet()
    groups = seed_param_groups(model, 0.1)
    assert sizes(groups) == [(3, 96), (6, 564)]
    assert decayed_names(model, groups) == ["layer_scale", "rms.weight", "head.weight"]


@pytest.mark.claim("The builder decays the three weight matrices, 576 scalars, and leaves the six "
                   "other tensors, 84 scalars",
                   page="param-groups.md#a-builder-that-decides-by-shape-and-module-type")
def test_builder_on_trapnet():
    model = TrapNet()
    groups = build_param_groups(model, 0.1)
    check_partition(model, groups)
    assert sizes(groups) == [(3, 576), (6, 84)]
    assert groups[0]["param_names"] == ["subnet.weight", "controlnet.weight", "head.weight"]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(len(g["params"]) == len(g["param_names"]) for g in groups)


@pytest.mark.claim("On TinyMLP the name filter decays the two weight matrices (35,328 scalars) "
                   "and spares the biases (266)",
                   page="param-groups.md#the-study-plans-filter-names")
@pytest.mark.parametrize("build", [seed_param_groups, build_param_groups])
def test_tiny_mlp_split_is_right_either_way(build):
    model = TinyMLP()
    assert sizes(build(model, 0.01)) == [(2, 128 * 256 + 256 * 10), (2, 256 + 10)]


@pytest.mark.claim("By shape and module type: weight matrices, convolutions and embeddings decay; "
                   "norms, even multi-dimensional ones, do not",
                   page="param-groups.md#a-builder-that-decides-by-shape-and-module-type")
@pytest.mark.parametrize("module, decayed", [
    (nn.LayerNorm((4, 8)), []),
    (nn.RMSNorm((4, 8)), []),
    (nn.GroupNorm(2, 4), []),
    (nn.BatchNorm2d(4), []),
    (nn.Conv2d(3, 4, 3), ["weight"]),
    (nn.Embedding(10, 4), ["weight"]),
    (nn.Linear(4, 2), ["weight"]),
    (nn.MultiheadAttention(8, 2), ["in_proj_weight", "out_proj.weight"]),
])
def test_decisions_by_shape_and_type(module, decayed):
    groups = build_param_groups(module, 0.1)
    check_partition(module, groups)
    assert groups[0]["param_names"] == decayed


def test_norm_types_are_all_modules_with_parameters():
    assert all(issubclass(t, nn.Module) for t in NORM_TYPES)
    assert nn.RMSNorm in NORM_TYPES and nn.LayerNorm in NORM_TYPES


@pytest.mark.claim("A tied or shared parameter lands in exactly one group",
                   page="param-groups.md#deeper")
def test_tied_and_shared_parameters_land_once():
    embedding = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    shared = nn.Linear(4, 4)
    model = nn.ModuleDict({"wte": embedding, "lm_head": head, "a": shared, "b": shared})
    groups = build_param_groups(model, 0.1)
    check_partition(model, groups)
    assert sizes(groups) == [(2, 40 + 16), (1, 4)]
    torch.optim.AdamW(groups)  # torch would raise on a parameter in two groups


@pytest.mark.claim("Frozen parameters go in no group, and `check_partition` accepts that",
                   page="param-groups.md#deeper")
def test_frozen_parameters_go_in_no_group():
    model = TrapNet()
    model.ln_f.requires_grad_(False)
    groups = build_param_groups(model, 0.1)
    check_partition(model, groups)
    assert "ln_f.weight" not in groups[1]["param_names"]
    assert sizes(groups) == [(3, 576), (4, 52)]
    with pytest.raises(AssertionError, match="frozen or foreign"):
        check_partition(model, [groups[0], dict(groups[1], params=groups[1]["params"] + [model.ln_f.weight])])


@pytest.mark.claim("`check_partition` catches a trainable parameter in no group and one in two "
                   "groups", page="param-groups.md#every-trainable-parameter-in-exactly-one-group")
def test_check_partition_catches_omissions_and_duplicates():
    model = TrapNet()
    groups = build_param_groups(model, 0.1)
    with pytest.raises(AssertionError, match="1 trainable parameter"):
        check_partition(model, [dict(groups[0], params=groups[0]["params"][1:]), groups[1]])
    with pytest.raises(AssertionError, match="more than one group"):
        check_partition(model, [groups[0], dict(groups[1], params=groups[1]["params"] + [model.head.weight])])


@pytest.mark.claim("torch refuses a parameter in two groups but accepts one left out of every "
                   "group", page="param-groups.md#every-trainable-parameter-in-exactly-one-group")
def test_torch_refuses_duplicates_but_accepts_omissions():
    model = TrapNet()
    groups = build_param_groups(model, 0.1)
    torch.optim.AdamW([{"params": groups[0]["params"][1:]}, {"params": groups[1]["params"]}])
    with pytest.raises(ValueError, match="more than one parameter group"):
        torch.optim.AdamW([{"params": groups[0]["params"]}, {"params": groups[1]["params"] + [model.head.weight]}])


@pytest.mark.claim("One AdamW step on zero gradients multiplies the decayed matrices by 0.99 and "
                   "leaves the rest bitwise unchanged", page="param-groups.md#using-the-groups")
def test_a_zero_gradient_step_decays_only_the_decay_group():
    model = TrapNet()
    groups = build_param_groups(model, 0.1)
    optimizer = torch.optim.AdamW(groups, lr=0.1)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in model.named_parameters():
        if name in groups[0]["param_names"]:
            assert torch.equal(p, before[name] * 0.99), name
        else:
            assert torch.equal(p, before[name]), name


def test_describe_groups_prints_counts_and_names():
    model = TinyMLP()
    text = describe_groups(model, build_param_groups(model, 0.01))
    assert text.splitlines() == [
        "weight_decay=0.01: 2 tensors, 35328 scalars",
        "  net.0.weight, net.2.weight",
        "weight_decay=0.0: 2 tensors, 266 scalars",
        "  net.0.bias, net.2.bias",
    ]
    assert describe_groups(model, [{"params": [], "weight_decay": 0.0}]) == (
        "weight_decay=0.0: 0 tensors, 0 scalars\n  (none)")


def test_describe_groups_fits_the_column():
    model = TrapNet()
    for groups in (seed_param_groups(model, 0.1), build_param_groups(model, 0.1)):
        assert max(map(len, describe_groups(model, groups).splitlines())) <= 80
