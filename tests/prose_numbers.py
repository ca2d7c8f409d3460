"""Every number typed into a page's prose must be one the page's executed code shows.

"Prose" is everything outside fenced code blocks, HTML comments and link targets, above the
page's `## Sources` heading: sentences, tables, headings, inline code and math included. A number
there is *bound* when the same number (thousands separators dropped) appears in a code block of
the same page, its doctest output, or a snippet section the page includes: those run under the
test suite, so a claim that drifts from them fails. A measured number is never typed: prose writes
`{{ capture/value }}` and the build inserts it from the capture (hooks/captures.py).

Exempt, with the reason the rule gives:

* a single digit (a count such as "two tensors" or "Chapter 3"; too common in code to bind by
  matching, so a claim about one is checked by a doctest in the sentence's section);
* a year (1990-2035), a version after a product name ("torch 2.7", "Python 3.11", "CUDA 13.0"),
  a reference number ("arXiv 1604.06174", "PR 143710", "#92731", "Eq. 1", "§3.2"), a numbered
  heading ("## 6.1 ..."), a format's name ("16-bit");
* numbers listed in an explicit comment on the same line, with a reason:
  `<!-- exempt 0.4 1.0: what torch 0.4 and 1.0 did, history -->`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.docblocks import INCLUDE, included_lines

FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
# A number as prose writes it: 0.9711, 576, 35{,}594, 117,510,154, 1e-8, 2\,048. Not part of a
# word (fp32, bf16, x86_64), an exponent (10^{-8}) or an anchor (#92731).
NUMBER = re.compile(
    r"(?<![\w.^{#§/\\-])(?:\\,)?"
    r"(\d{1,3}(?:(?:,|\{,\}|\\,|_)\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:e-?\d+)?)(?![\w^]|\.\d)"
)
SEPARATORS = re.compile(r",|\{,\}|\\,|_")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
EXEMPT = re.compile(r"<!--\s*exempt\s+(?P<numbers>[^:]+?)\s*:\s*(?P<reason>[^>]*?)\s*-->")
VALUE = re.compile(r"\{\{\s*[a-z0-9_]+/[a-z0-9_]+\s*\}\}")
LINK_TARGET = re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+")
PRODUCTS = (r"torch|PyTorch|Python|CUDA|cu|MkDocs|mkdocs|Material|Sybil|pytest|Playwright|Chromium|"
            r"transformers|NumPy|numpy|Node|Node\.js|bitsandbytes|torchao|accelerate|mkdocs-jupyter|"
            r"DeepSpeed|Megatron|nbclient|jupytext|KaTeX|version|versions|release")
VERSION = re.compile(rf"(?:\b(?:{PRODUCTS})[ \t]*(?:[<>=≥≤]+[ \t]*)?v?)(?P<v>\d+(?:\.\d+){{1,2}}(?:\+\w+)?)")
REFERENCE = re.compile(r"(?:\barXiv:?\s*|\bPRs?\s+|\bissues?\s+|\bpull\s+|\bEqs?\.\s*|\bEquation\s+|"
                       r"\bAlgorithm\s+|\bAppendix\s+|\bFigure\s+|\bTable\s+|\bSection\s+|\b[Cc]hapters?\s+)"
                       r"(?P<ref>\d+(?:\.\d+)*)")
HEADING_NUMBER = re.compile(r"^#{1,6}\s+(?P<n>\d+(?:\.\d+)*[a-z]?)\b")
FORMAT_NAME = re.compile(r"(?<![\w.])(?P<n>\d+)-bit\b")  # "16-bit", "8-bit": a format's name


@dataclass(frozen=True)
class Unbound:
    page: str
    line: int
    number: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: '{self.number}' is in the prose but in no code or output on the page"


def normalise(token: str) -> str:
    return SEPARATORS.sub("", token)


def split_page(text: str) -> tuple[list[tuple[int, str]], list[str]]:
    """(prose lines with their numbers, code lines) of a page; prose stops at '## Sources'."""
    prose: list[tuple[int, str]] = []
    code: list[str] = []
    fence = None
    in_sources = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if opening and fence is None:
            fence = opening[1]
            continue
        if opening and fence is not None and opening[1][0] == fence[0] and len(opening[1]) >= len(fence) \
                and not line.strip()[len(opening[1]):].strip():
            fence = None
            continue
        if fence is not None:
            include = INCLUDE.match(line)
            code.extend(included_lines(include["target"])[2] if include else [line])
            continue
        if re.match(r"^#{2}\s+Sources\b", line):
            in_sources = True
        if not in_sources:
            prose.append((lineno, line))
    return prose, code


def shown_numbers(code: list[str]) -> set[str]:
    return {normalise(m) for m in NUMBER.findall("\n".join(code))}


def _exempt_spans(line: str) -> list[tuple[int, int]]:
    spans = [m.span("v") for m in VERSION.finditer(line)]
    spans += [m.span("ref") for m in REFERENCE.finditer(line)]
    spans += [m.span("n") for m in FORMAT_NAME.finditer(line)]
    heading = HEADING_NUMBER.match(line)
    if heading:
        spans.append(heading.span("n"))
    return spans


def prose_numbers(line: str) -> list[str]:
    """The non-exempt numbers of one prose line, as typed."""
    exempt_listed: set[str] = set()
    for match in EXEMPT.finditer(line):
        if not match["reason"].strip():
            raise ValueError(f"an exemption needs a reason: {match[0]!r}")
        exempt_listed.update(normalise(n) for n in match["numbers"].replace(",", " ").split())
    text = COMMENT.sub(lambda m: " " * len(m[0]), line)
    text = VALUE.sub(lambda m: " " * len(m[0]), text)
    text = LINK_TARGET.sub(lambda m: " " * len(m[0]), text)
    spans = _exempt_spans(text)
    found = []
    for match in NUMBER.finditer(text):
        token = match[1]
        value = normalise(token)
        if any(start <= match.start(1) < end for start, end in spans):
            continue
        if re.fullmatch(r"\d", value):  # a single digit
            continue
        if re.fullmatch(r"(19[9]\d|20[0-3]\d)", value):  # a year
            continue
        if value in exempt_listed:
            continue
        found.append(token)
    return found


def unbound_numbers(page: Path, root: Path | None = None) -> list[Unbound]:
    text = page.read_text(encoding="utf-8")
    prose, code = split_page(text)
    shown = shown_numbers(code)
    name = page.relative_to(root).as_posix() if root else page.name
    return [Unbound(name, lineno, token) for lineno, line in prose for token in prose_numbers(line)
            if normalise(token) not in shown]


def mutate(token: str) -> str:
    """The same number with its last digit changed (9 -> 0, else +1)."""
    last = token[-1]
    return token[:-1] + str((int(last) + 1) % 10)
