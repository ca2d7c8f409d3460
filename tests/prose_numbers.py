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

Token binding cannot tell two numbers the page really shows apart: where prose says 0.1 and the
code shows both 0.1 and 0.0, a typo 0.1 -> 0.0 still matches. Such a number takes a *value
binding* on its line, `<!-- bind 0.1: lr -->` (several: `<!-- bind 0.1: lr; 0.9: mu -->`): Sybil
evaluates the expression in the page's namespace and fails unless it equals the number as typed
(tests/docblocks.py), and the guard fails when the line no longer shows the bound number. Each
entry binds one occurrence. `tests/test_pages.py` changes every digit of every number by +1 and
-1 and requires the guard to notice, or the number to be exempt.

Everything outside code and comments is read: headings, tables, the titles of folds (`??? note
"..."`, `!!! tip "..."`, `<summary>`) and the indented prose inside folds and admonitions.
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
BIND = re.compile(r"<!--\s*bind\s+(?P<entries>.*?)\s*-->", re.DOTALL)
BIND_ENTRY = re.compile(r"^\s*(?P<number>[^:;\s]+)\s*:\s*(?P<expression>[^;]+?)\s*$")
VALUE = re.compile(r"\{\{\s*[a-z0-9_]+/[a-z0-9_]+\s*\}\}")
LINK_TARGET = re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+")
PRODUCTS = (r"torch|PyTorch|Python|CUDA|cu|MkDocs|mkdocs|Material|Sybil|pytest|Playwright|Chromium|"
            r"transformers|NumPy|numpy|Node|Node\.js|bitsandbytes|torchao|accelerate|mkdocs-jupyter|"
            r"DeepSpeed|Megatron|nbclient|jupytext|KaTeX|version|versions|release")
VERSION = re.compile(rf"(?:\b(?:{PRODUCTS})[ \t]*(?:[<>=≥≤]+[ \t]*)?v?)(?P<v>\d+(?:\.\d+){{1,2}}(?:\+\w+)?)")
REFERENCE = re.compile(r"(?:\barXiv:?\s*|\bPRs?\s+|\bissues?\s+|\bpull\s+|\bEqs?\.\s*|\bEquation\s+|"
                       r"\bAlgorithm\s+|\bAppendix\s+|\bFigure\s+|\bTable\s+|\bSection\s+|\b[Cc]hapters?\s+)"
                       r"(?P<ref>\d+(?:\.\d+)*)")
HEADING_NUMBER = re.compile(r"^#{1,6}\s+(?P<n>\d+(?:\.\d+)*[a-z]?)(?=\.?(?:\s|$))")
FORMAT_NAME = re.compile(r"(?<![\w.])(?P<n>\d+)-bit\b")  # "16-bit", "8-bit": a format's name


@dataclass(frozen=True)
class Unbound:
    page: str
    line: int
    number: str
    orphan: bool = False   # a value binding whose number the line no longer shows

    def __str__(self) -> str:
        if self.orphan:
            return f"{self.page}:{self.line}: the line binds '{self.number}' but no longer shows it"
        return f"{self.page}:{self.line}: '{self.number}' is in the prose but in no code or output on the page"


@dataclass(frozen=True)
class Binding:
    number: str       # as typed in the comment
    expression: str   # Python, evaluated in the page's namespace


def bindings(line: str) -> list[Binding]:
    """The value bindings of one line: `<!-- bind 0.1: lr; 0.9: mu -->`."""
    found = []
    for match in BIND.finditer(line):
        for entry in match["entries"].split(";"):
            parsed = BIND_ENTRY.match(entry)
            if not parsed or not NUMBER.fullmatch(parsed["number"]):
                raise ValueError(f"a binding is 'NUMBER: expression': {entry.strip()!r} in {match[0]!r}")
            found.append(Binding(parsed["number"], parsed["expression"]))
    return found


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
    return [match[1] for match in _number_matches(line)]


def _number_matches(line: str) -> list[re.Match]:
    """The regex matches of the non-exempt numbers of one prose line (positions in `line`)."""
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
        if token == value and re.fullmatch(r"(199\d|20[0-3]\d)", value):  # a year; never "2,000"
            continue
        if value in exempt_listed:
            continue
        found.append(match)
    return found


def line_problems(line: str, shown: set[str]) -> list[tuple[str, bool]]:
    """(number, orphan) for each number of a prose line that is not bound: not value-bound and
    not shown by the page's code, or value-bound but gone from the line."""
    unbound: list[tuple[str, bool]] = []
    pending = [normalise(b.number) for b in bindings(line)]
    for token in prose_numbers(line):
        value = normalise(token)
        if value in pending:
            pending.remove(value)   # each binding entry covers one occurrence
        elif value not in shown:
            unbound.append((token, False))
    return unbound + [(number, True) for number in pending]


def unbound_numbers(page: Path, root: Path | None = None) -> list[Unbound]:
    text = page.read_text(encoding="utf-8")
    prose, code = split_page(text)
    shown = shown_numbers(code)
    name = page.relative_to(root).as_posix() if root else page.name
    return [Unbound(name, lineno, token, orphan) for lineno, line in prose
            for token, orphan in line_problems(line, shown)]


def exempt_numbers(line: str) -> set[str]:
    return {normalise(n) for m in EXEMPT.finditer(line) for n in m["numbers"].replace(",", " ").split()}


def digit_changes(token: str) -> list[str]:
    """The token with one digit changed by +1 or -1, for every digit (no new leading zero)."""
    changed = []
    for i, char in enumerate(token):
        if not char.isdigit():
            continue
        for step in (1, -1):
            digit = int(char) + step
            if not 0 <= digit <= 9:
                continue
            new = token[:i] + str(digit) + token[i + 1:]
            if re.match(r"0\d", new) or new == token:
                continue
            changed.append(new)
    return changed


def uncaught_changes(page: Path) -> list[str]:
    """'page:line: 'N' -> 'M'' for every one-digit change of a prose number the guard would miss
    (exempt numbers excepted)."""
    prose, code = split_page(page.read_text(encoding="utf-8"))
    shown = shown_numbers(code)
    missed = []
    for lineno, line in prose:
        exempt = exempt_numbers(line)
        for match in _number_matches(line):
            token = match[1]
            if normalise(token) in exempt:
                continue
            for new in digit_changes(token):
                changed = line[:match.start(1)] + new + line[match.end(1):]
                if not line_problems(changed, shown):
                    missed.append(f"{page.name}:{lineno}: '{token}' -> '{new}'")
    return missed
