"""Run examples and write their captures: `python -m examples [NAME ...] [--size smoke] [--out DIR]`.

Full-size runs on CUDA write docs/captures/<name>.json; anything else (a CPU, a smoke size) goes
to a scratch folder, so a CPU run can never overwrite a GPU capture. Each capture is written
atomically; a failing example is reported in one line and leaves every other capture as it was.
Exit status: 0 when all ran, 1 when any failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

from examples import AWAITING_CAPTURE, EXAMPLES, REQUIREMENTS
from snippets.captures import CAPTURES_DIR, ROOT, source_digests, source_files, source_sha256, write_capture

SMOKE_DIR = ROOT / ".captures-smoke"


class UsageError(Exception):
    pass


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"examples to run (default: all): {', '.join(EXAMPLES)}")
    parser.add_argument("--size", choices=("full", "smoke"), help="default: full on CUDA, smoke on a CPU")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--out", type=Path, help=f"default: docs/captures for full CUDA runs, else {SMOKE_DIR.name}/")
    parser.add_argument("--traceback", action="store_true", help="print the traceback of a failing example")
    parser.add_argument("--list", action="store_true", help="list the examples and exit")
    return parser.parse_args(argv)


def _resolve(args: argparse.Namespace) -> tuple[list[str], torch.device, str, Path]:
    unknown = [n for n in args.names if n not in EXAMPLES]
    if unknown:
        raise UsageError(f"unknown example {', '.join(map(repr, unknown))} (known: {', '.join(EXAMPLES)})")
    names = list(dict.fromkeys(args.names)) or list(EXAMPLES)
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise UsageError(f"'{args.device}' is not a device torch knows (try cuda or cpu)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA GPU here")
    size = args.size or ("full" if device.type == "cuda" else "smoke")
    is_capture = device.type == "cuda" and size == "full"
    out = (args.out or (CAPTURES_DIR if is_capture else SMOKE_DIR)).resolve()
    if out == CAPTURES_DIR.resolve() and not is_capture:
        raise UsageError(f"docs/captures/ takes only full-size CUDA runs, not {size} on {device.type}; pass --out DIR")
    return names, device, size, out


def _provenance(name: str, device: torch.device, wall_s: float, sha: str, digests: dict) -> dict:
    cuda = device.type == "cuda"
    return {
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 2),
        "source_sha256": sha,
        "sources": [p.relative_to(ROOT).as_posix() for p in source_files(name)],
        "source_digests": digests,
    }


class MissingRequirement(Exception):
    """An optional package the example needs on the GPU is not installed: the message says which."""


def check_requirements(name: str, device: torch.device) -> None:
    if device.type != "cuda":
        return   # on a CPU the examples run without their optional packages
    for module, how in REQUIREMENTS.get(name, {}).items():
        if importlib.util.find_spec(module) is None:
            raise MissingRequirement(f"{name} needs {module} on a GPU; install it: {how}")


def run_one(name: str, device: torch.device, size: str) -> tuple[dict, float]:
    """Run examples.<name> and wrap its data as a capture (not yet written)."""
    check_requirements(name, device)
    sha, digests = source_sha256(name), source_digests(name)  # what is about to run, before it runs
    module = importlib.import_module(f"examples.{name}")
    start = time.perf_counter()
    data = module.run(device, size)
    wall_s = time.perf_counter() - start
    json.dumps(data, allow_nan=False)  # plain data only: fail here, not in a half-written file
    return {"name": name, "size": size, "data": data, "provenance": _provenance(name, device, wall_s, sha, digests)}, wall_s


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse(sys.argv[1:] if argv is None else argv)
        if args.list:
            print("\n".join(f"{n}  (awaiting its first GPU capture: {AWAITING_CAPTURE[n]})"
                            if n in AWAITING_CAPTURE else n for n in EXAMPLES))
            return 0
        names, device, size, out = _resolve(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{len(names)} example(s), {size} size, on {where}, writing to {out}", flush=True)
    failed, total_start = [], time.perf_counter()
    for i, name in enumerate(names, start=1):
        print(f"[{i}/{len(names)}] {name} ...", end=" ", flush=True)
        start = time.perf_counter()
        try:
            capture, wall_s = run_one(name, device, size)
            path = write_capture(capture, out)
        except Exception as error:  # one example failing must not stop or erase the others
            failed.append(name)
            message = str(error).splitlines()[0] if str(error) else ""
            kind = "" if isinstance(error, MissingRequirement) else f"{type(error).__name__}: "
            print(f"FAILED after {time.perf_counter() - start:.1f} s: {kind}{message}", flush=True)
            if args.traceback:
                traceback.print_exc()
            continue
        print(f"ok in {wall_s:.1f} s -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
    total = time.perf_counter() - total_start
    print(f"{len(names) - len(failed)} captured, {len(failed)} failed, in {total:.1f} s"
          + (f" (failed: {', '.join(failed)}; rerun with --traceback for details)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
