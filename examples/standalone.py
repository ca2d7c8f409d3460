"""`python -m examples.<name> [full|smoke]`: run one example alone and print its data as JSON.

This writes no capture (that is `python -m examples <name>`); it is for looking at one measurement.
"""

from __future__ import annotations

import json
import sys
from typing import Callable

import torch


def standalone(run: Callable[[torch.device, str], dict], sizes: dict) -> None:
    size = sys.argv[1] if len(sys.argv) > 1 else "smoke"
    if size not in sizes:
        sys.exit(f"error: size must be one of {', '.join(sizes)}, not {size!r}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(json.dumps(run(device, size), indent=1))
