"""DDP, ZeroRedundancyOptimizer and FSDP2 on two CPU processes over gloo (snippets/sharded_training.py).

One spawn of two ranks (module fixture) trains every setup of CPU_CONFIG for three AdamW steps on
its half of one global batch, and accumulates one step of K = 4 micro-batches under DDP and FSDP2.
Checked here, under torch 2.13 on the CPU:

* every fp32 setup ends with the parameters of one process trained on the whole batch, within
  fp32 rounding;
* what each rank holds, counted with Tensor.nbytes (FSDP2: the local shards), equals
  snippets.zero_formulas.zero_bytes_per_rank exactly, family by family, for fp32 and bf16;
* the collectives of one step and of one accumulated step, counted and sized;
* FSDP2 gathers the next unit before the current unit's backward runs (prefetch);
* the torchrun entry point runs the same code.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time

import pytest
import torch.distributed as dist

from examples.render import zero_fsdp as render
from examples.zero_fsdp import summarize
from snippets.captures import ROOT
from snippets.sharded_training import ACCUMULATIONS, CPU_CONFIG, spawn
from snippets.zero_formulas import RECIPES, communication_per_step, paper_volume, zero_bytes_per_rank
from tests.test_captures import check_chart

N = 2
WIDTH, DEPTH = CPU_CONFIG["width"], CPU_CONFIG["depth"]
P = DEPTH * (WIDTH * WIDTH + WIDTH)
K = CPU_CONFIG["micro_batches"]
# fp32 rounding: the runs differ from the reference only in the order of the sums
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def ranks():
    start = time.perf_counter()
    results = spawn(N, CPU_CONFIG)
    return results, time.perf_counter() - start


def _runs(ranks, setup, recipe="fp32"):
    results, _ = ranks
    return [next(r for r in rank["runs"] if (r["setup"], r["recipe"]) == (setup, recipe))
            for rank in results]


def _accumulation(ranks, name):
    results, _ = ranks
    return [next(a for a in rank["accumulation"] if a["name"] == name) for rank in results]


def test_the_spawn_is_quick_clean_and_warning_free(ranks):
    results, seconds = ranks
    assert [r["rank"] for r in results] == [0, 1]
    assert all(r["backend"] == "gloo" and r["world_size"] == N for r in results)
    assert all(r["warnings"] == [] for r in results)  # and the workers made warnings errors
    assert seconds < 60  # about 7 s on two cores
    assert not dist.is_initialized()


@pytest.mark.claim("DDP, ZeroRedundancyOptimizer and FSDP2 on two ranks end with the parameters of "
                   "one process trained on the whole batch, within fp32 rounding",
                   page="zero-fsdp.md#verified-on-two-cpu-processes")
@pytest.mark.parametrize("setup", ["ddp", "ddp_bucket_view", "zero1", "fsdp2"])
def test_each_setup_matches_one_process_on_the_whole_batch(ranks, setup):
    for run in _runs(ranks, setup):
        assert run["max_difference"] < TOLERANCE
        assert run["reference_moved"] > 1e3 * TOLERANCE  # training moved the weights far more


@pytest.mark.parametrize("name", sorted(ACCUMULATIONS))
def test_each_accumulation_matches_one_process_on_the_whole_batch(ranks, name):
    for result in _accumulation(ranks, name):
        assert result["max_difference"] < TOLERANCE < 1e-3 * result["reference_moved"]


@pytest.mark.claim("Per-rank bytes of DDP (stage 0), ZeroRedundancyOptimizer (stage 1) and FSDP2 "
                   "(stage 3) equal the ZeRO formula, family by family, in fp32 and bf16",
                   page="zero-fsdp.md#verified-on-two-cpu-processes")
@pytest.mark.parametrize("setup,stage,recipe", [
    ("ddp", 0, "fp32"), ("ddp_bucket_view", 0, "fp32"), ("zero1", 1, "fp32"), ("fsdp2", 3, "fp32"),
    ("ddp", 0, "bf16"), ("zero1", 1, "bf16"), ("fsdp2", 3, "bf16")])
def test_held_bytes_equal_the_formula(ranks, setup, stage, recipe):
    formula = zero_bytes_per_rank(P, N, stage, RECIPES[recipe])
    for run in _runs(ranks, setup, recipe):
        held = run["held"]
        assert run["stage"] == stage
        assert (held["params"], held["grads"], held["state"]) == tuple(formula)


def test_step_counters_per_rank(ranks):
    """Not in the formula: a 0-d fp32 `step` per parameter tensor the rank steps. FSDP2 steps a
    shard of every tensor, ZeroRedundancyOptimizer whole tensors, half of them here."""
    tensors = 2 * DEPTH
    for run in _runs(ranks, "ddp") + _runs(ranks, "fsdp2"):
        assert run["held"]["step_counters"] == 4 * tensors
    for run in _runs(ranks, "zero1"):
        assert run["held"]["step_counters"] == 4 * tensors // N


@pytest.mark.claim("DDP keeps its gradient buckets as a second gradient-sized copy; with "
                   "gradient_as_bucket_view the gradients are views into them",
                   page="zero-fsdp.md#what-pytorch-implements")
def test_ddp_buckets_are_a_second_gradient_copy_unless_viewed(ranks):
    for run in _runs(ranks, "ddp") + _runs(ranks, "zero1"):
        ddp = run["ddp"]
        assert ddp["bucket_bytes"] == run["held"]["grads"] == 4 * P
        assert ddp["grad_storages"] == 2 * DEPTH  # one storage per gradient, beside the bucket
    for run in _runs(ranks, "ddp_bucket_view"):
        ddp = run["ddp"]
        assert ddp["bucket_bytes"] == run["held"]["grads"]
        assert ddp["grad_storages"] == ddp["buckets"]  # the gradients live in the buckets


@pytest.mark.claim("FSDP2 with bf16 compute and reduce_dtype=torch.float32 keeps fp32 shards: 4 + 4 + 8 "
                   "bytes per parameter over N, the same total as the paper's 2 + 2 + 12",
                   page="zero-fsdp.md#what-pytorch-implements")
def test_fsdp2_bf16_compute_keeps_fp32_shards_with_the_papers_total(ranks):
    paper = zero_bytes_per_rank(P, N, 3, RECIPES["mixed"])
    for run in _runs(ranks, "fsdp2", "mixed"):
        held = run["held"]
        assert (held["params"], held["grads"], held["state"]) == (4 * P // N, 4 * P // N, 8 * P // N)
        assert held["params"] + held["grads"] + held["state"] == paper.total


def _elements(collectives: dict) -> dict:
    """kind: elements of fp32 covered (bytes / 4)."""
    return {kind: nbytes // 4 for kind, (_, nbytes) in collectives.items()}


@pytest.mark.claim("Per step, DDP all-reduces P elements, FSDP2 all-gathers 2P and reduce-scatters "
                   "P (the paper's 3P), ZeroRedundancyOptimizer all-reduces P and broadcasts P",
                   page="zero-fsdp.md#what-is-communicated")
def test_what_one_step_communicates(ranks):
    for run in _runs(ranks, "ddp") + _runs(ranks, "ddp_bucket_view"):
        assert _elements(run["collectives"]) == communication_per_step(P, 0)
    for run in _runs(ranks, "fsdp2"):
        assert _elements(run["collectives"]) == communication_per_step(P, 3)
        assert run["collectives"]["all-gather"][0] == 2 * DEPTH  # each unit, forward and backward
        assert run["collectives"]["reduce-scatter"][0] == DEPTH
    for run in _runs(ranks, "zero1"):
        # PyTorch's stage 1 is not the paper's reduce-scatter + all-gather (2P): DDP all-reduces
        # every gradient, then each parameter is broadcast from the rank that stepped it
        assert _elements(run["collectives"]) == {"all-reduce": P, "broadcast": P}
        assert run["collectives"]["broadcast"][0] == 2 * DEPTH
        assert paper_volume(_elements(run["collectives"])) == 3 * P


@pytest.mark.claim("Accumulating K micro-batches: DDP's no_sync all-reduces once per effective "
                   "batch; FSDP2 with set_requires_gradient_sync(False) reduce-scatters once but "
                   "still all-gathers every unit twice per micro-batch",
                   page="zero-fsdp.md#gradient-accumulation")
def test_accumulation_communicates_once_per_effective_batch(ranks):
    counts = {name: [{k: n for k, (n, _) in a["collectives"].items()} for a in _accumulation(ranks, name)]
              for name in ACCUMULATIONS}
    for name, expected in {
        "ddp_every_micro_batch": {"all-reduce": K},
        "ddp_no_sync": {"all-reduce": 1},  # one bucket, reduced once
        "fsdp2_every_micro_batch": {"all-gather": 2 * K * DEPTH, "reduce-scatter": K * DEPTH},
        "fsdp2_no_sync": {"all-gather": 2 * K * DEPTH, "reduce-scatter": DEPTH},
        "fsdp2_no_sync_unsharded": {"all-gather": (K + 1) * DEPTH, "reduce-scatter": DEPTH},
    }.items():
        assert counts[name] == [expected] * N, name
    no_sync = _accumulation(ranks, "ddp_no_sync")[0]["collectives"]
    assert no_sync["all-reduce"][1] == 4 * P  # the whole gradient, once


@pytest.mark.claim("With gradient sync off, FSDP2 keeps full-size, unsharded gradients between "
                   "micro-batches: P elements a rank instead of P/N", page="zero-fsdp.md#gradient-accumulation")
def test_fsdp2_without_sync_holds_unsharded_gradients(ranks):
    """Read from FSDP2's private per-parameter state (torch 2.13's layout)."""
    results, _ = ranks
    for rank in results:
        assert rank["unsynced_gradients"] == {"sharded_grads_nbytes": 0,
                                              "unsharded_grads_nbytes": 4 * P}


@pytest.mark.claim("In backward, FSDP2 has gathered the next unit before the current unit's "
                   "backward runs: two units unsharded at once", page="zero-fsdp.md#what-pytorch-implements")
def test_fsdp2_prefetches_the_next_unit_in_backward(ranks):
    results, _ = ranks
    log = results[0]["prefetch"]
    assert results[1]["prefetch"] == log
    forward = log[: log.index("backward 3")]
    assert forward[:8] == ["all-gather", "forward 0", "all-gather", "forward 1", "all-gather",
                           "forward 2", "all-gather", "forward 3"]
    backward = log[log.index("forward 3") + 1:]
    assert backward == ["all-gather", "all-gather", "backward 3", "reduce-scatter",
                        "all-gather", "backward 2", "reduce-scatter",
                        "all-gather", "backward 1", "reduce-scatter",
                        "backward 0", "reduce-scatter"]


def test_the_renderer_draws_a_cpu_run(ranks):
    """The capture's renderer on these CPU results: tables, figure and values, allocator '—'."""
    results, _ = ranks
    capture = {"name": "zero_fsdp", "size": "smoke",
               "data": summarize(CPU_CONFIG, N, "gloo", results)}
    json.dumps(capture, allow_nan=False)
    table = render.per_rank(capture)
    assert table.count("\n|") == 2 + len(CPU_CONFIG["runs"]) * N
    assert "| FSDP2 | 0 | 8,704 | 8,736 | — | — |" in table
    assert render.accumulation(capture).count("\n|") == 2 + len(ACCUMULATIONS)
    check_chart(render.per_rank_figure(capture), "zero_fsdp/per_rank_chart")
    assert render.VALUES["world_size"](capture) == "2"
    assert render.VALUES["no_sync_extra_peak"](capture) == "—"
    one_rank = {**capture, "data": {**capture["data"], "world_size": 1}}
    assert "World size 1: nothing is sharded" in render.per_rank(one_rank)


def test_the_renderer_shows_allocator_readings_where_a_gpu_gave_them(ranks):
    """A CPU run with made-up allocator readings (here only, never in a capture): every reading
    reaches the table, the figure draws all four series, and the values are numbers."""
    results, _ = ranks
    data = copy.deepcopy(summarize(CPU_CONFIG, N, "gloo", results))
    for rank in data["ranks"]:
        rank["outside_allocator_before_process_group_bytes"] = 500 * 2**20
        rank["outside_allocator_after_bytes"] = 800 * 2**20
        for run in rank["runs"] + rank["accumulation"]:
            run.update(allocated_after_step_bytes=1000, peak_allocated_bytes=2000)
        rank["accumulation"][3]["peak_allocated_bytes"] = 2000 + 3 * 2**20
    capture = {"name": "zero_fsdp", "size": "smoke", "data": data}
    assert "| FSDP2 | 0 | 8,704 | 8,736 | 1,000 | 2,000 |" in render.per_rank(capture)
    chart = render.per_rank_figure(capture)
    assert len(chart.figure.axes[0].get_legend().get_texts()) == 4
    assert render.VALUES["outside_allocator_growth"](capture) == "300.0 MiB"
    assert render.VALUES["no_sync_extra_peak"](capture) == "3.0 MiB"


@pytest.mark.claim("The same script runs under torchrun, one process per rank",
                   page="zero-fsdp.md#the-scripts")
def test_torchrun_runs_the_module(tmp_path):
    config = {"runs": [["fsdp2", "fp32"]]}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(N),
         "-m", "snippets.sharded_training", "--out", str(tmp_path), "--config", json.dumps(config)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-2000:]
    for rank in range(N):
        data = json.loads((tmp_path / f"rank{rank}.json").read_text())
        run, = data["runs"]
        assert data["rank"] == rank and data["world_size"] == N
        held = run["held"]
        assert (held["params"], held["grads"], held["state"]) == \
            tuple(zero_bytes_per_rank(P, N, 3, RECIPES["fp32"]))
        assert run["max_difference"] < TOLERANCE
