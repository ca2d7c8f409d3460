"""optimizer-memory: answers for good input, one line and status 2 for bad."""

from __future__ import annotations

import subprocess
import sys

import pytest

from snippets.memcalc.cli import main
from snippets.memcalc.optimizers import OPTIMIZERS
from snippets.memcalc.transformer import PRECISIONS
from tests.docblocks import ROOT

SHAPE = ["--layers", "4", "--hidden", "256", "--heads", "4",
         "--vocab", "1000", "--seq", "128"]


def run(capsys, *args):
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_shapes_give_the_breakdown_the_peak_and_its_phase(capsys):
    status, out, err = run(capsys, *SHAPE, "--batch", "4")
    assert status == 0 and not err
    assert "parameters: 4 layers, hidden 256, 4 heads" in out
    assert "peak" in out and "(in the " in out and "persistent" in out


def test_a_parameter_count_picks_gpt3_proportions(capsys):
    status, out, _ = run(capsys, "--params", "7e9", "--seq", "4096",
                         "--precision", "bf16-mixed", "--checkpointing",
                         "full", "--zero-stage", "3", "--ranks", "8")
    assert status == 0
    first = out.splitlines()[0]          # "N parameters: L layers, hidden H"
    count = int(first.split()[0].replace(",", ""))
    layers = int(first.split(": ")[1].split()[0])
    assert f"{layers} layers, hidden {128 * layers}, {layers} heads" in first
    assert abs(count - 7e9) / 7e9 < 0.1


def test_a_budget_gives_the_largest_micro_batch(capsys):
    status, out, _ = run(capsys, *SHAPE, "--budget", "2GiB")
    assert status == 0
    assert "budget 2.00 GiB: fits; largest micro-batch that fits: " in out


@pytest.mark.parametrize("args,words", [
    (["--layers", "-3"], "positive whole number, not '-3'"),
    (["--hidden", "lots"], "positive whole number, not 'lots'"),
    (["--batch", "2.5"], "positive whole number, not '2.5'"),
    (["--optimizer", "lion"], "choose from " + ", ".join(
        repr(o) for o in OPTIMIZERS)),
    (["--precision", "fp16"], "choose from " + ", ".join(
        repr(p) for p in PRECISIONS)),
    (["--zero-stage", "2"], "give --ranks 2 or more"),
    (["--zero-stage", "5", "--ranks", "8"], "choose from 0, 1, 2, 3"),
    (["--budget", "a lot"], "must be a size such as 80GiB"),
    (["--budget", "-4GiB"], "must be a size such as 80GiB"),
    (["--optimizer", "adafactor", "--implementation", "fused"],
     "choose foreach or for-loop"),
    (["--heads", "5"], "hidden must be a multiple of heads"),
    # a prefix of --micro-batches must not be taken for it (argparse's abbreviations are off)
    (["--micro-batch", "8"], "unrecognized arguments: --micro-batch 8"),
])
@pytest.mark.claim("Bad input to the command gets one line naming the valid choices and exit status 2",
                   page="memory-calculator.md#the-command")
def test_bad_input_gets_one_line_naming_the_choices_and_status_2(
        capsys, args, words):
    base = [a for a in SHAPE]
    for flag in args[::2]:               # the bad value replaces the good
        if flag in base:
            i = base.index(flag)
            del base[i:i + 2]
    status, out, err = run(capsys, *base, *args)
    assert status == 2 and not out
    assert err.count("\n") == 1 and err.startswith("optimizer-memory: error:")
    assert words in err
    assert "Traceback" not in err


def test_missing_shapes_are_named(capsys):
    status, _, err = run(capsys, "--layers", "2")
    assert status == 2 and "missing: --hidden, --heads" in err


def test_python_dash_m_runs_the_command():
    ok = subprocess.run([sys.executable, "-m", "snippets.memcalc", *SHAPE],
                        cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and "peak" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "snippets.memcalc",
                          "--optimizer", "lion"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr


def test_help_exits_cleanly(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0 and "--optimizer" in out


def test_a_model_by_preset_gives_the_per_rank_breakdown(capsys):
    status, out, err = run(capsys, "--model", "llama-3-8b", "--strategy",
                           "fsdp2", "--ranks", "8", "--precision",
                           "bf16-mixed", "--checkpointing", "full")
    assert status == 0 and not err
    assert out.startswith("8,030,261,248 parameters: llama-3-8b")
    assert "fsdp2 on 8 rank(s), per rank:" in out and "peak" in out


@pytest.mark.claim("A plan for a 70 B model on 8 GPUs takes under 10 s on this 2-core machine",
                   page="memory-calculator.md#a-plan-of-what-fits")
def test_a_70b_plan_is_fast_and_lists_what_fits(capsys):
    import time
    start = time.process_time()
    status, out, _ = run(capsys, "plan", "--model", "llama-3.1-70b",
                         "--gpus", "8", "--budget", "80GiB")
    assert time.process_time() - start < 10
    assert status == 0 and "options fit" in out
    assert all(len(line) <= 80 for line in out.splitlines())


@pytest.mark.parametrize("args,words", [
    (["--model", "llama-3-8b", "--strategy", "ring"], "invalid choice: 'ring'"),
    (["--model", "llama-3-8b", "--offload", "disk"], "invalid choice: 'disk'"),
    (["--model", "llama-3-8b", "--reshard-after-forward", "maybe"],
     "invalid choice: 'maybe'"),
    (["--model", "llama-3-8b", "--strategy", "fsdp2"], "give ranks >= 2"),
    (["--model", "llama-3-8b", "--strategy", "ddp", "--ranks", "8",
      "--offload", "optimizer"], "offload needs zero1"),
    (["--model", "nope"], "neither a config.json nor"),
    (["--model", "llama-3-8b", "--layers", "2"], "not both"),
    (["--layers", "2", "--hidden", "64", "--heads", "4", "--strategy",
      "fsdp2", "--ranks", "8"], "need --model"),
    (["plan", "--model", "llama-3-8b", "--gpus", "0", "--budget", "8GiB"],
     "positive whole number, not '0'"),
    (["plan", "--model", "llama-3-8b", "--gpus", "8", "--budget", "lots"],
     "must be a size"),
    (["plan", "--model", "torchvision:resnet18", "--gpus", "8",
      "--budget", "8GiB"], "plan needs a decoder"),
    (["plan", "--gpus", "8", "--budget", "8GiB"], "--model"),
])
def test_bad_input_to_the_new_options_is_one_line_and_status_2(
        capsys, args, words):
    status, out, err = run(capsys, *args)
    assert status == 2 and not out
    assert err.count("\n") == 1 and "Traceback" not in err
    assert words in err


@pytest.mark.claim("A plan lists the standard recipe first: bf16-mixed before fp32 before pure "
                   "bf16, AdamW before 8-bit Adam, Adafactor and SGD; within a recipe the most "
                   "tokens per unit of compute", page="memory-calculator.md#a-plan-of-what-fits")
def test_a_plan_puts_the_standard_recipe_first():
    from snippets.memcalc.families import PRESETS
    from snippets.memcalc.plan import OPTIMIZERS, PRECISIONS, plan
    options = plan(PRESETS["llama-3-8b"], 8, 80 * 2**30)
    assert (options[0].precision, options[0].optimizer) == ("bf16-mixed", "adamw")
    order = [name for name, _ in OPTIMIZERS]
    keys = [(PRECISIONS.index(o.precision), order.index(o.optimizer), -o.score) for o in options]
    assert keys == sorted(keys)
    assert {o.precision for o in options} == set(PRECISIONS)
