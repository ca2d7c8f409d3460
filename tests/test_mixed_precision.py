"""Chapter 7 on the CPU: the bytes of each precision recipe and optimizer,
what bf16 rounding loses and how Kahan summation and stochastic rounding
keep it, GradScaler's dynamic loss scaling, and the 8-bit quantiser."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from examples.mixed_precision import TokenMLP, run
from snippets.loss_scaling import scale_trace
from snippets.low_precision_updates import (
    ROUNDINGS, Bf16AdamW, apply_update_, bf16_floor, kahan_add_,
    regression_run, steps_to_reach, stochastic_round_,
)
from snippets.precision import (
    RECIPES, AutocastCasts, MasterWeights, bytes_per_param, forward_context,
    prepare, state_tensor_nbytes,
)
from snippets.quantized_state import (
    ADAM8BIT_SHARED_NBYTES, BLOCK, MIN_8BIT_SIZE, adam8bit_state_nbytes,
    adam_moments, dequantize_blockwise, dynamic_map, linear_map,
    quantisation_error, quantize_blockwise,
)
from snippets.small_states import adafactor_state_nbytes, muon_and_adamw
from tests.docblocks import DOCS


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))


def _optimizer_for(recipe: str):
    if recipe == "pure bf16 + Kahan":
        return lambda params: Bf16AdamW(params, rounding="kahan")
    return lambda params: torch.optim.AdamW(params)


def _state_tensors(optimizer) -> list[torch.Tensor]:
    return [v for s in optimizer.state.values() for k, v in s.items()
            if torch.is_tensor(v) and k != "step"]


@pytest.mark.claim("Each recipe built on the CPU holds exactly its bytes per "
                   "parameter in weights, gradients, master copies and state",
                   page="mixed-precision.md#where-the-bytes-go")
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_each_recipe_holds_bytes_per_param(recipe):
    model, stepper = prepare(recipe, small_net(), _optimizer_for(recipe))
    P = sum(p.numel() for p in model.parameters())
    x = torch.randn(16, 32)
    if not recipe.startswith(("fp32", "autocast")):
        x = x.to(torch.bfloat16)
    with forward_context(recipe, "cpu"):
        loss = model(x).float().pow(2).mean()
    loss.backward()
    grads = sum(p.grad.nbytes for p in model.parameters())
    stepper.step()
    optimizer = (stepper.optimizer if isinstance(stepper, MasterWeights)
                 else stepper)
    master = (sum(m.nbytes for m in stepper.master)
              if isinstance(stepper, MasterWeights) else 0)
    state = sum(t.nbytes for t in _state_tensors(optimizer))
    expected = bytes_per_param(recipe, "AdamW")
    assert sum(p.nbytes for p in model.parameters()) == expected["params"] * P
    assert grads == expected["grads"] * P
    assert master == expected["master"] * P
    assert state == (expected["state"] + expected["kahan"]) * P
    assert expected["total"] == sum(expected[k] for k in
                                    ("params", "grads", "master", "state",
                                     "kahan"))


@pytest.mark.claim("AdamW keeps 16 bytes per parameter in fp32, under "
                   "autocast and with fp32 master weights; 8 in pure bf16, "
                   "10 with Kahan",
                   page="mixed-precision.md#where-the-bytes-go")
def test_the_headline_bytes_per_parameter():
    totals = {r: bytes_per_param(r)["total"] for r in RECIPES}
    assert totals == {"fp32": 16, "autocast bf16": 16,
                      "bf16 + fp32 master": 16, "pure bf16": 8,
                      "pure bf16 + Kahan": 10, "autocast fp16": 16}
    assert bytes_per_param("autocast bf16")["autocast_copies"] == 2
    assert bytes_per_param("fp32", "Adam8bit")["state"] == 2 * (1 + 4 / 256)
    assert bytes_per_param("fp32", "Muon")["state"] == 4
    assert bytes_per_param("pure bf16", "Muon")["state"] == 2
    assert bytes_per_param("fp32", "Adafactor")["state"] == 0


SHAPES = [(64, 32), (32,), (4, 6, 8), (1,)]


@pytest.mark.claim("The state bytes per shape are what torch's AdamW, SGD "
                   "with momentum, Adafactor and Muon keep",
                   page="mixed-precision.md#smaller-optimizer-states")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", ["AdamW", "SGD momentum", "Adafactor",
                                  "Muon"])
def test_state_tensor_nbytes_is_what_torch_keeps(name, dtype):
    shapes = [s for s in SHAPES if name != "Muon" or len(s) == 2]
    params = [nn.Parameter(torch.randn(s, dtype=dtype)) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = {
        "AdamW": lambda: torch.optim.AdamW(params),
        "SGD momentum": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        "Adafactor": lambda: torch.optim.Adafactor(params),
        "Muon": lambda: torch.optim.Muon(params),
    }[name]()
    optimizer.step()
    for p in params:
        held = sorted(t.nbytes for t in optimizer.state[p].values()
                      if torch.is_tensor(t))
        assert held == sorted(state_tensor_nbytes(
            name, p.shape, p.element_size())), (name, p.shape)


@pytest.mark.claim("Adafactor keeps m + n numbers for an m × n matrix and a "
                   "full second moment for a vector",
                   page="mixed-precision.md#smaller-optimizer-states")
def test_adafactor_keeps_rows_plus_columns():
    assert adafactor_state_nbytes((4096, 4096), 4) == [4 * 4096, 4 * 4096]
    assert adafactor_state_nbytes((3, 5, 7), 2) == [2 * 15, 2 * 21]
    assert adafactor_state_nbytes((10,), 4) == [40]


@pytest.mark.claim("Muon takes the 2-D hidden weights only; AdamW takes the "
                   "embedding, the head, the norms and the biases",
                   page="mixed-precision.md#smaller-optimizer-states")
def test_muon_gets_hidden_matrices_and_adamw_the_rest():
    model = TokenMLP(vocab=50, width=16, layers=2)
    muon, adamw = muon_and_adamw(model)
    names = {id(p): n for n, p in model.named_parameters()}
    in_muon = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    in_adamw = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert in_muon == {f"blocks.{i}.{m}.weight" for i in range(2)
                       for m in ("up", "down")}
    assert in_muon.isdisjoint(in_adamw)
    assert in_muon | in_adamw == set(names.values())
    assert "embed.weight" in in_adamw and "head.weight" in in_adamw
    with pytest.raises(ValueError, match="2D"):
        torch.optim.Muon([nn.Parameter(torch.ones(3))])


@pytest.mark.claim("Autocast casts each weight once per region and keeps the "
                   "bf16 copies of matmul weights until backward",
                   page="mixed-precision.md#what-autocast-keeps-while-a-step-runs")
def test_autocast_caches_each_weight_once_per_region():
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 16), nn.ReLU(),
                          nn.Linear(16, 8))
    tokens = torch.randint(0, 10, (4, 5))
    linear_bytes = 2 * sum(p.numel() for p in model[1:].parameters())
    for cache, casts_expected in ((True, 4), (False, 8)):
        casts = AutocastCasts(model)
        with casts, torch.autocast("cpu", dtype=torch.bfloat16,
                                   cache_enabled=cache):
            loss = model(tokens).float().sum() + model(tokens).float().sum()
            inside = casts.alive_nbytes()
        assert len(casts.copies) == casts_expected
        if cache:
            assert inside == linear_bytes
        kept = casts.alive_nbytes()
        loss.backward()
        # after autocast exits, autograd holds the weights (not biases)
        weights = 2 * (8 * 16 + 16 * 8)
        assert kept == weights * (1 if cache else 2)
        assert casts.alive_nbytes() == 0


@pytest.mark.claim("The cast cache lasts until the outermost autocast region "
                   "exits: a new region casts again",
                   page="mixed-precision.md#what-autocast-keeps-while-a-step-runs")
def test_a_new_autocast_region_casts_again():
    model = nn.Linear(8, 8)
    casts = AutocastCasts(model)
    with casts:
        for _ in range(2):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(torch.randn(2, 8))
    assert len(casts.copies) == 4


@pytest.mark.claim("In bf16 an update under half a spacing, 2⁻⁸ at 1, rounds "
                   "away", page="mixed-precision.md#what-pure-bf16-loses")
def test_an_update_under_half_a_spacing_vanishes_in_bf16():
    w = nn.Parameter(torch.ones(2, dtype=torch.bfloat16))
    w.grad = torch.tensor([-0.003, -0.005], dtype=torch.bfloat16)
    torch.optim.SGD([w], lr=1.0).step()
    assert w.tolist() == [1.0, 1.0 + 2**-7]
    assert 0.003 < 2**-8 < 0.005


@pytest.mark.claim("Rounded to nearest, the bf16 run stops at step 87, at "
                   "fp32's loss of step 50: its last 313 steps (78 %) change "
                   "nothing; Kahan (6.6e-4) and stochastic rounding (4.9e-4) "
                   "end within three times the bf16 floor (2.4e-4)",
                   page="mixed-precision.md#what-pure-bf16-loses")
def test_pure_bf16_loses_the_run_and_both_remedies_keep_it():
    runs = {r: regression_run(r) for r in ROUNDINGS}
    floor = bf16_floor()
    final = {r: run["losses"][-1] for r, run in runs.items()}
    assert runs["nearest"]["last_change"] == 87
    assert len(runs["nearest"]["losses"]) == 400
    assert 400 - 87 == 313 and f"{313 / 400:.0%}" == "78%"
    assert [f"{final[r]:.1e}" for r in ("kahan", "stochastic")] == \
        ["6.6e-04", "4.9e-04"]
    assert f"{floor:.1e}" == "2.4e-04"
    assert steps_to_reach(runs["fp32"]["losses"], final["nearest"]) == 50
    assert final["nearest"] > 100 * floor
    for remedy in ("kahan", "stochastic"):
        assert final[remedy] < 3 * floor, remedy
        assert runs[remedy]["last_change"] == 399
    assert final["fp32"] < floor   # fp32 can represent the solution


@pytest.mark.claim("Kahan summation keeps what each bf16 rounding drops",
                   page="mixed-precision.md#what-pure-bf16-loses")
def test_kahan_summation_keeps_what_rounding_drops():
    w = torch.ones(1, dtype=torch.bfloat16)
    plain = w.clone()
    compensation = torch.zeros(1, dtype=torch.bfloat16)
    for _ in range(1000):
        kahan_add_(w, torch.tensor([1e-3]), compensation)
        apply_update_(plain, torch.tensor([1e-3]), "nearest")
    assert plain.item() == 1.0
    total = w.float() + compensation.float()
    assert abs(total.item() - 2.0) < 2**-7   # within one bf16 spacing


@pytest.mark.claim("Stochastic rounding is unbiased",
                   page="mixed-precision.md#what-pure-bf16-loses")
@pytest.mark.parametrize("x", [1 + 2**-9, -3.3, 1e-3 + 1e-6, 0.7])
def test_stochastic_rounding_is_unbiased(x):
    n = 200_000
    target = torch.empty(n, dtype=torch.bfloat16)
    stochastic_round_(target, torch.full((n,), x),
                      torch.Generator().manual_seed(1))
    values = sorted(set(target.float().tolist()))
    assert len(values) <= 2                       # the two neighbours only
    low, high = values[0], values[-1]
    assert low <= x <= high
    p = 0.0 if high == low else (x - low) / (high - low)
    standard_error = (high - low) * math.sqrt(p * (1 - p) / n)
    assert abs(target.float().double().mean().item() - x) \
        <= 4 * standard_error + 1e-12


def test_stochastic_rounding_leaves_bf16_values_alone():
    exact = torch.tensor([1.0, -2.5, 0.0078125, 3.0]).to(torch.bfloat16)
    target = torch.empty_like(exact)
    stochastic_round_(target, exact.float(), torch.Generator().manual_seed(0))
    assert torch.equal(target, exact)


@pytest.mark.claim("Kahan adds one bf16 buffer per parameter (2 bytes); "
                   "stochastic rounding adds none",
                   page="mixed-precision.md#what-pure-bf16-loses")
def test_bf16_adamw_keeps_a_compensation_buffer_only_with_kahan():
    for rounding, tensors in (("kahan", 3), ("stochastic", 2),
                              ("nearest", 2)):
        p = nn.Parameter(torch.randn(8, 4, dtype=torch.bfloat16))
        p.grad = torch.randn_like(p)
        optimizer = Bf16AdamW([p], rounding=rounding)
        optimizer.step()
        state = [t for t in optimizer.state[p].values() if torch.is_tensor(t)]
        assert len(state) == tensors
        assert all(t.dtype == torch.bfloat16 for t in state)
        assert sum(t.nbytes for t in state) == sum(state_tensor_nbytes(
            f"Bf16AdamW {rounding}", p.shape, 2))


@pytest.mark.claim("fp32 master weights keep the small updates that bf16 "
                   "weights lose", page="mixed-precision.md#deeper")
def test_master_weights_keep_small_updates():
    w = nn.Parameter(torch.ones(1, dtype=torch.bfloat16))
    master = MasterWeights([w], lambda ps: torch.optim.SGD(ps, lr=1.0))
    for _ in range(10):
        w.grad = torch.tensor([-1e-3], dtype=torch.bfloat16)
        master.step()
    assert abs(master.master[0].item() - 1.01) < 1e-4
    assert w.item() == 1.0078125            # the master, rounded to bf16
    assert w.grad is None and master.master[0].grad is None


@pytest.mark.claim("`GradScaler` skips the step and halves the scale on "
                   "overflow, and doubles it after `growth_interval` clean "
                   "steps", page="mixed-precision.md#fp16-and-loss-scaling")
def test_grad_scaler_backs_off_skips_and_grows():
    trace = scale_trace()
    scales = [t["scale"] for t in trace]
    skipped = [t["skipped"] for t in trace]
    assert skipped[:5] == [True] * 5 and scales[:6] == [2.0**e for e in
                                                       range(20, 14, -1)]
    for i in range(len(trace) - 1):
        if skipped[i]:
            assert scales[i + 1] == scales[i] / 2      # back-off
    clean_run = 0
    for i in range(len(trace) - 1):
        clean_run = 0 if skipped[i] else clean_run + 1
        if clean_run == 4:                              # growth_interval
            assert scales[i + 1] == 2 * scales[i]
            clean_run = 0
        elif not skipped[i]:
            assert scales[i + 1] == scales[i]
    assert sum(skipped) == 8


@pytest.mark.claim("1e-8 rounds to zero in fp16 but not in bf16, which has "
                   "fp32's exponent range; fp16 tops out at 65504",
                   page="mixed-precision.md#fp16-and-loss-scaling")
def test_fp16_underflows_where_bf16_does_not():
    tiny = torch.tensor(1e-8)
    assert tiny.half().item() == 0.0
    assert abs(tiny.bfloat16().item() - 1e-8) < 1e-8 * 2**-8
    assert torch.finfo(torch.bfloat16).tiny == torch.finfo(torch.float32).tiny
    assert torch.finfo(torch.float16).max == 65504


def test_dynamic_map_has_256_sorted_codes_from_0_to_1():
    for signed in (True, False):
        codes = dynamic_map(signed)
        assert codes.shape == (256,) and torch.equal(codes, codes.sort()[0])
        assert codes[-1] == 1.0 and (codes == 0).any()
        assert codes.min() >= (-1.0 if signed else 0.0)
    assert dynamic_map(True).min() > -1.0     # bitsandbytes: no -1 code


@pytest.mark.claim("8-bit state stores uint8 codes and one absmax per 256 "
                   "values, value ≈ code × absmax",
                   page="mixed-precision.md#smaller-optimizer-states")
def test_quantiser_round_trip():
    torch.manual_seed(0)
    x = torch.randn(3 * BLOCK + 17) * torch.exp(2 * torch.randn(3 * BLOCK + 17))
    code = dynamic_map(True)
    index, absmax = quantize_blockwise(x, code)
    assert index.dtype == torch.uint8 and index.shape == x.shape
    assert absmax.shape == (4,)                    # the last block is short
    blocks = torch.nn.functional.pad(x, (0, BLOCK - 17)).view(4, BLOCK)
    assert torch.equal(absmax, blocks.abs().amax(dim=1))
    back = dequantize_blockwise(index, absmax, code, x.shape)
    # nearest code: the error is at most half the widest gap, times absmax
    gap = (code[1:] - code[:-1]).max()
    scale = absmax.repeat_interleave(BLOCK)[: x.numel()]
    assert ((back - x).abs() <= gap / 2 * scale * (1 + 1e-5)).all()
    # a block's largest value comes back exactly when it is positive (the
    # signed map has the code 1 but not -1, as bitsandbytes' has)
    for b in range(4):
        i = blocks[b].abs().argmax()
        if x[b * BLOCK + i] > 0:
            assert back[b * BLOCK + i] == x[b * BLOCK + i]
        else:
            assert back[b * BLOCK + i] == code[0] * absmax[b]


@pytest.mark.claim("Dynamic 8-bit codes round no second moment to zero and "
                   "keep Adam's update; linear int8 codes do not",
                   page="mixed-precision.md#smaller-optimizer-states")
def test_dynamic_codes_keep_adams_update_and_linear_ones_do_not():
    m, v = adam_moments()
    dynamic = quantisation_error(m, v, dynamic_map(True), dynamic_map(False))
    linear = quantisation_error(m, v, linear_map(True), linear_map(False))
    assert dynamic["v_zeroed"] == 0 and dynamic["update"] < 0.05
    assert linear["v_zeroed"] > 0.01 and linear["update"] > 10


@pytest.mark.claim("8-bit Adam keeps a byte per value and 4 bytes per 256 "
                   "values for each moment; tensors under 4096 elements stay "
                   "fp32", page="mixed-precision.md#smaller-optimizer-states")
def test_adam8bit_bytes():
    assert adam8bit_state_nbytes(MIN_8BIT_SIZE - 1) == [4 * 4095] * 2
    assert adam8bit_state_nbytes(4096) == [4096, 4096, 64, 64]
    assert adam8bit_state_nbytes(257) == [4 * 257] * 2
    assert adam8bit_state_nbytes(5000) == [5000, 5000, 4 * 20, 4 * 20]


def test_quantiser_and_bytes_match_bitsandbytes():
    """Where bitsandbytes is importable (PYTHONPATH with the unpacked
    wheel): the same code books, and Adam8bit's state on the CPU is the
    formula, tensor for tensor."""
    bnb = pytest.importorskip("bitsandbytes",
                              reason="bitsandbytes is not installed here")
    import bitsandbytes.functional as bnbf

    for signed in (True, False):
        assert torch.equal(dynamic_map(signed),
                           bnbf.create_dynamic_map(signed=signed))
    params = [nn.Parameter(torch.randn(s)) for s in [(64, 80), (100,),
                                                     (4096,), (33, 257)]]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = bnb.optim.Adam8bit(params)
    optimizer.step()
    for p in params:
        held = [t.nbytes for k, t in optimizer.state[p].items()
                if torch.is_tensor(t) and not k.startswith("qmap")]
        assert sorted(held) == sorted(adam8bit_state_nbytes(p.numel()))
    maps = {id(t): t.nbytes for s in optimizer.state.values()
            for k, t in s.items() if k.startswith("qmap")}
    assert sorted(maps.values()) == ADAM8BIT_SHARED_NBYTES


def test_the_example_fails_loudly_on_cuda_without_bitsandbytes(monkeypatch):
    import examples.mixed_precision as example

    monkeypatch.setattr(example, "bitsandbytes_available", lambda: False)
    with pytest.raises(RuntimeError, match="bitsandbytes is not importable"):
        run(torch.device("cuda"), "smoke")


def test_the_smoke_run_records_none_for_bitsandbytes_when_missing(
        monkeypatch):
    import examples.mixed_precision as example

    monkeypatch.setattr(example, "bitsandbytes_available", lambda: False)
    monkeypatch.setitem(example.SIZES, "smoke",
                        dict(example.SIZES["smoke"], repeat=1))
    monkeypatch.setattr(example, "CONFIGS", [("fp32", "AdamW"),
                                             ("autocast bf16", "Adam8bit")])
    data = run(torch.device("cpu"), "smoke")
    assert data["rows"][1] == {"recipe": "autocast bf16",
                               "optimizer": "Adam8bit",
                               "skipped": "no bitsandbytes"}
    assert data["quantiser"] is None and data["bitsandbytes"] is None
    assert data["rows"][0]["state_bytes"] is None       # no allocator here


@pytest.mark.claim("Autograd keeps a weight's bf16 copy only where the layer's "
                   "input requires grad: a first layer fed raw data frees its "
                   "copy when autocast exits",
                   page="mixed-precision.md#what-autocast-keeps-while-a-step-runs")
@pytest.mark.parametrize("input_requires_grad", [False, True])
def test_autocast_keeps_a_copy_only_where_the_input_requires_grad(
        input_requires_grad):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64))
    x = torch.randn(8, 64, requires_grad=input_requires_grad)
    casts = AutocastCasts(mlp)
    with casts, torch.autocast("cpu", dtype=torch.bfloat16):
        loss = mlp(x).float().pow(2).mean()
    second = 2 * 256 * 64
    expected = 2 * second if input_requires_grad else second
    assert casts.alive_nbytes() == expected
    loss.backward()
    assert casts.alive_nbytes() == 0


@pytest.mark.claim("Pure bf16 torch.optim.AdamW drops decoupled weight decay "
                   "(lr 1e-3, λ 0.1, 200 steps: no weight changes; fp32 "
                   "shrinks them 2 %); Kahan and stochastic rounding keep it",
                   page="mixed-precision.md#what-pure-bf16-loses")
def test_pure_bf16_adamw_drops_weight_decay_and_the_remedies_keep_it():
    from snippets.bf16_decay import LR, STEPS, WEIGHT_DECAY, decay_only

    def adamw(params):
        return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)

    assert (LR, WEIGHT_DECAY, STEPS) == (1e-3, 0.1, 200)
    # the relative change a step is under half of bf16's smallest relative
    # spacing (2^-8 of the binade's lower end, halved)
    assert LR * WEIGHT_DECAY < 2**-9
    changed, shrunk = decay_only(adamw, torch.float32)
    assert changed == 1.0 and round(shrunk, 3) == 0.020
    assert shrunk == pytest.approx(1 - (1 - LR * WEIGHT_DECAY) ** STEPS,
                                   rel=1e-3)
    assert decay_only(adamw, torch.bfloat16) == (0.0, 0.0)
    for rounding in ("kahan", "stochastic"):
        _, kept = decay_only(lambda params: Bf16AdamW(
            params, lr=LR, weight_decay=WEIGHT_DECAY, rounding=rounding))
        assert round(kept, 3) == 0.020, rounding
    _, nearest = decay_only(lambda params: Bf16AdamW(
        params, lr=LR, weight_decay=WEIGHT_DECAY, rounding="nearest"))
    assert nearest == 0.0


@pytest.mark.claim("GradScaler works over fp32 weights (autocast); on "
                   "model.half() weights scaler.step raises 'Attempting to "
                   "unscale FP16 gradients'",
                   page="mixed-precision.md#fp16-and-loss-scaling")
def test_grad_scaler_refuses_fp16_weights():
    torch.manual_seed(0)
    for half in (True, False):
        model = nn.Linear(4, 4)
        model = model.half() if half else model
        scaler = torch.amp.GradScaler("cpu")
        sgd = torch.optim.SGD(model.parameters(), lr=0.1)
        with torch.autocast("cpu", dtype=torch.float16, enabled=not half):
            x = torch.randn(2, 4, dtype=torch.float16 if half else None)
            out = model(x).float().sum()
        scaler.scale(out).backward()
        if half:
            with pytest.raises(ValueError,
                               match="Attempting to unscale FP16 gradients"):
                scaler.step(sgd)
        else:
            assert model.weight.grad.dtype == torch.float32
            scaler.step(sgd)
            scaler.update()


@pytest.mark.claim("A Muon step runs 15 matrix products per weight: 5 "
                   "Newton-Schulz iterations of 3",
                   page="mixed-precision.md#smaller-optimizer-states")
def test_muon_runs_fifteen_matrix_products_per_weight_per_step():
    import inspect

    from snippets.muon_cost import muon_products_per_step

    assert inspect.signature(torch.optim.Muon).parameters[
        "ns_steps"].default == 5
    assert muon_products_per_step() == 15
    assert muon_products_per_step(shape=(32, 64)) == 15   # wide: transposed
    assert muon_products_per_step(ns_steps=3) == 9
    assert muon_products_per_step(shape=(16, 16), ns_steps=1) == 3


@pytest.mark.claim("The capture's Muon row uses one partition: the hidden 2-D "
                   "matrices to Muon, the embedding, head, biases and norms to "
                   "AdamW, in the optimizer and in its prediction",
                   page="mixed-precision.md#smaller-optimizer-states")
def test_the_captures_muon_prediction_uses_the_optimizers_partition():
    model = TokenMLP(vocab=50, width=16, layers=2)
    muon, _ = muon_and_adamw(model)
    names = {id(p): n for n, p in model.named_parameters()}
    in_muon = {names[id(p)] for p in muon.param_groups[0]["params"]}
    # examples/mixed_precision.py predicts Muon's state over these names
    hidden = {n for n, p in model.named_parameters()
              if p.ndim == 2 and n.startswith("blocks.")}
    assert in_muon == hidden
    text = " ".join((DOCS / "mixed-precision.md").read_text(
        encoding="utf-8").split())
    assert ("**hidden 2-D matrices go to Muon; embeddings, the output head, "
            "biases and norms go to AdamW**") in text


@pytest.mark.parametrize("name", ["bytes", "lost_updates", "loss_scale"])
def test_no_text_of_chapter_7s_figures_runs_past_the_figure(name):
    """Everything drawn (labels, ticks, legends) lies inside the figure: the
    bytes chart's legend once ran past both edges with three columns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from examples.render.figures_mixed_precision import FIGURES

    fig = FIGURES[name]().figure
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())   # inches
    width, height = fig.get_size_inches()
    slack = 0.01
    assert drawn.x0 >= -slack and drawn.y0 >= -slack, drawn
    assert drawn.x1 <= width + slack and drawn.y1 <= height + slack, drawn
