"""Captures: what an example measured on a GPU, as JSON with its provenance.

A capture is `docs/captures/<name>.json`:

    {"name": ..., "size": "full",
     "data": {...what examples/<name>.py returned...},
     "provenance": {"device": "cuda", "gpu": ..., "torch": ..., "cuda": ...,
                    "python": ..., "date": ..., "wall_s": ...,
                    "source_sha256": ..., "sources": [...]}}

`source_sha256` hashes the example's source and every module of this
repository it imports (snippets.*, examples.*), found by reading the import
statements, so a capture is stale as soon as the code that produced it
changes; `source_digests` holds each file's own hash, so a stale capture
names the files that changed. An example may declare modules that only
*predict* what it measures (`examples.PREDICTION_SOURCES`): pages recompute
those predictions from the current code and never show the captured ones,
so only the files that measure (`measurement_files`) keep such a capture
fresh. Pages read captures with `load_capture`; the site shows
`provenance_line` under every table and figure made from one.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# OASM_CAPTURES_DIR points pages and the build at other captures (a smoke
# run, while an example is being written): for development only, CI never
# sets it.
CAPTURES_DIR = Path(
    os.environ.get("OASM_CAPTURES_DIR") or ROOT / "docs" / "captures"
)
LOCAL_PACKAGES = ("snippets", "examples")


class CaptureError(Exception):
    """A capture that is missing or unreadable.

    The message says which, and what to run."""


def refresh_command(name: str) -> str:
    return f"PYTHONPATH=. python3 -m examples {name}   # on a CUDA machine"


def _module_path(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] not in LOCAL_PACKAGES:
        return None
    as_file = ROOT.joinpath(*parts).with_suffix(".py")
    as_package = ROOT.joinpath(*parts, "__init__.py")
    return (
        as_file
        if as_file.is_file()
        else as_package
        if as_package.is_file()
        else None
    )


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    ):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
        ):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def source_files(name: str, stop_at: tuple[str, ...] = ()) -> list[Path]:
    """examples/<name>.py and every local module it imports, transitively,
    sorted. Modules in `stop_at` (repository paths) are left out, and so is
    whatever only they import."""
    start = ROOT / "examples" / f"{name}.py"
    if not start.is_file():
        raise CaptureError(
            f"no example named '{name}' (expected {start.relative_to(ROOT)})"
        )
    seen, todo = {start}, [start]
    while todo:
        for module in _imported_modules(todo.pop()):
            path = _module_path(module)
            if path is None or path in seen:
                continue
            if path.relative_to(ROOT).as_posix() in stop_at:
                continue
            seen.add(path)
            todo.append(path)
    return sorted(seen)


def _digest(path: Path) -> str:
    return hashlib.sha256(
        path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def source_digests(name: str) -> dict[str, str]:
    """{repository path: sha256} of every file source_files(name) lists."""
    return {p.relative_to(ROOT).as_posix(): _digest(p)
            for p in source_files(name)}


def measurement_files(name: str,
                      prediction_sources: tuple[str, ...]) -> list[Path]:
    """The files that make an example's measurements: its sources, less the
    modules that only predict (and what only they import)."""
    return source_files(name, stop_at=prediction_sources)


def changed_sources(capture: dict,
                    prediction_sources: tuple[str, ...] = ()) -> list[str]:
    """The files whose change makes `capture` stale, [] while it is fresh.

    Without prediction sources every source counts, through the recorded
    hash of them all; with them, only the measurement files, each through
    its own recorded digest."""
    name, p = capture["name"], capture["provenance"]
    if not prediction_sources:
        if p["source_sha256"] == source_sha256(name):
            return []
        recorded = p.get("source_digests") or {}
        now = source_digests(name)
        changed = sorted(f for f in set(recorded) | set(now)
                         if recorded.get(f) != now.get(f))
        return changed or [f.relative_to(ROOT).as_posix()
                           for f in source_files(name)]
    recorded = p.get("source_digests")
    if recorded is None:
        raise CaptureError(f"capture '{name}' records no per-file digests; "
                           f"refresh it: {refresh_command(name)}")
    return [f.relative_to(ROOT).as_posix()
            for f in measurement_files(name, prediction_sources)
            if recorded.get(f.relative_to(ROOT).as_posix()) != _digest(f)]


def source_sha256(name: str) -> str:
    digest = hashlib.sha256()
    for path in source_files(name):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()


def capture_path(name: str, directory: Path | None = None) -> Path:
    return (directory or CAPTURES_DIR) / f"{name}.json"


def load_capture(name: str, directory: Path | None = None) -> dict:
    path = capture_path(name, directory)
    if not path.is_file():
        raise CaptureError(
            f"capture '{name}' is missing ({path}); "
            f"make it with: {refresh_command(name)}"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CaptureError(
            f"capture '{name}' is not valid JSON ({path}: {error})"
        ) from None


def write_capture(capture: dict, directory: Path) -> Path:
    """Write atomically: a reader (or a crash) never sees half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = capture_path(capture["name"], directory)
    text = json.dumps(capture, indent=1, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(
        prefix=f".{capture['name']}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def provenance_line(capture: dict) -> str:
    """'<GPU> · torch 2.11.0+cu130 · CUDA 13.0 · 2026-11-26 · full size ·
    run 5.6 s' (or the CPU's equivalent)."""
    p = capture["provenance"]
    where = (
        p["gpu"]
        if p["device"] == "cuda"
        else f"CPU ({p['device']}), not a GPU"
    )
    cuda = f" · CUDA {p['cuda']}" if p.get("cuda") else ""
    return (
        f"{where} · torch {p['torch']}{cuda} · {p['date'][:10]} · "
        f"{capture['size']} size · run {p['wall_s']:.1f} s"
    )
