"""`python -m examples`: clear one-line errors, atomic writes, failures that erase nothing,
and no CPU run ever written over a GPU capture."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

import examples.__main__ as runner
from snippets.captures import CAPTURES_DIR, ROOT, load_capture, write_capture


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "examples", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["no_such_example"], "unknown example 'no_such_example'"),
    (["--device", "tpu9"], "is not a device torch knows"),
    (["optimizer_state", "--size", "smoke", "--out", str(CAPTURES_DIR)], "docs/captures/ takes only full-size CUDA runs"),
])
@pytest.mark.claim("The runner refuses to write anything but a full-size CUDA run into docs/captures/",
                   page="measured.md#refreshing-them")
def test_bad_input_gives_one_line_and_exit_2(args, message):
    result = _run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_size_is_refused_by_argparse():
    result = _run_cli("--size", "huge")
    assert result.returncode == 2 and "invalid choice: 'huge'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_asked_for_without_cuda_is_refused():
    result = _run_cli("--device", "cuda")
    assert result.returncode == 2 and "torch sees no CUDA GPU" in result.stderr


@pytest.mark.claim("A failing example is reported in one line and leaves every other capture as it was",
                   page="measured.md#refreshing-them")
def test_a_failing_example_is_reported_and_erases_nothing(tmp_path, monkeypatch, capsys):
    kept = {"name": "zero_grad", "size": "smoke", "data": {"kept": True}, "provenance": {}}
    write_capture(kept, tmp_path)
    real_run_one = runner.run_one

    def run_one(name, device, size):
        if name == "zero_grad":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_run_one(name, device, size)

    monkeypatch.setattr(runner, "run_one", run_one)
    status = runner.main(["optimizer_state", "zero_grad", "--size", "smoke", "--device", "cpu", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1
    assert "[2/2] zero_grad ... FAILED" in out and "RuntimeError: CUDA out of memory (simulated)" in out
    assert "1 captured, 1 failed" in out
    assert load_capture("zero_grad", tmp_path) == kept  # the earlier capture survives
    assert load_capture("optimizer_state", tmp_path)["provenance"]["device"] == "cpu"


def test_write_is_atomic_and_refuses_nan(tmp_path):
    good = {"name": "x", "size": "smoke", "data": {"v": 1.0}, "provenance": {}}
    write_capture(good, tmp_path)
    with pytest.raises(ValueError):
        write_capture({**good, "data": {"v": math.nan}}, tmp_path)
    assert json.loads((tmp_path / "x.json").read_text()) == good
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left behind


def test_list_names_every_example():
    result = _run_cli("--list")
    assert result.returncode == 0
    from examples import EXAMPLES
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(EXAMPLES)


@pytest.mark.claim("On a GPU without bitsandbytes, mixed_precision fails at once in one line naming the "
                   "extra to install, and the other examples still run", page="measured.md#refreshing-them")
def test_a_missing_optional_package_is_named_with_the_extra_that_installs_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(runner.REQUIREMENTS, "mixed_precision", {"no_such_package_xyz": 'pip install -e ".[gpu]"'})
    cuda = torch.device("cuda")
    with pytest.raises(runner.MissingRequirement, match=r'mixed_precision needs no_such_package_xyz on a GPU; '
                                                       r'install it: pip install -e "\.\[gpu\]"'):
        runner.check_requirements("mixed_precision", cuda)
    runner.check_requirements("mixed_precision", torch.device("cpu"))   # a CPU smoke run needs none
    runner.check_requirements("zero_grad", cuda)
    monkeypatch.setattr(runner, "_resolve", lambda args: (["mixed_precision"], cuda, "full", tmp_path))
    monkeypatch.setattr(runner.torch.cuda, "get_device_name", lambda device: "a GPU")
    assert runner.main(["mixed_precision"]) == 1
    out = capsys.readouterr().out
    assert 'FAILED after 0.0 s: mixed_precision needs no_such_package_xyz on a GPU; install it: pip install -e ".[gpu]"' in out
    assert list(tmp_path.iterdir()) == []


def test_the_gpu_extra_names_what_requirements_ask_for():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for needs in runner.REQUIREMENTS.values():
        for module, how in needs.items():
            extra = how.split('".[')[1].split("]")[0]
            assert any(req.startswith(module) for req in extras[extra]), (module, extra)
