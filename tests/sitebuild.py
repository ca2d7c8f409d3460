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


def build(project: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(project))
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(project / "mkdocs.yml"),
         "--site-dir", str(site_dir)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
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
