"""Which lines of a Markdown page lie outside its fenced code blocks.

The site's build hooks (hooks/*.py) read markers and links in the prose
only: a ``` or ~~~ fence opens a block that the same character, at least
as many times, closes."""

from __future__ import annotations

import re
from collections.abc import Iterator

FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")


def outside_fences(lines: list[str]) -> Iterator[int]:
    """The index of every line that is neither a fence nor inside a
    fenced block."""
    fence = None
    for i, line in enumerate(lines):
        opening = FENCE.match(line)
        if opening and fence is None:
            fence = opening[1]
        elif (opening and opening[1][0] == fence[0]
              and len(opening[1]) >= len(fence)):
            fence = None
        elif fence is None:
            yield i
