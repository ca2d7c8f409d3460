"""Build the site (or a copy of the project) with `mkdocs build --strict`, for the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a build reads: copy these to build a mutated project in a scratch folder.
BUILD_INPUTS = ("mkdocs.yml", "docs", "snippets", "hooks", "examples", "tests")


def mkdocs_command() -> Path:
    """The `mkdocs` console script of this interpreter's environment, as a user types it."""
    return Path(sys.executable).with_name("mkdocs")


def build(project: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of the project. The repository itself is built by the plain
    `mkdocs` command from its root, exactly as typed in the venv (no PYTHONPATH: the hooks must
    find `snippets` and `examples` as installed); a copy, which the install does not point at, is
    built with its own folder first on the path."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env.pop("PYTHONPATH", None)
    if project.resolve() == ROOT:
        command = [str(mkdocs_command())]
    else:
        command = [sys.executable, "-m", "mkdocs"]
        env["PYTHONPATH"] = str(project)
        env["OASM_NOTEBOOK_EXECUTE"] = "false"   # a throwaway copy: its notebook's outputs are not read
    return subprocess.run(
        command + ["build", "--strict", "--config-file", str(project / "mkdocs.yml"), "--site-dir", str(site_dir)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )


def copy_project(destination: Path) -> Path:
    destination.mkdir(parents=True)
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, destination / name)
    return destination
