"""Find the Python blocks of the site's pages and run them as the built site shows them.

Used by docs/conftest.py (Sybil) and by the tests that guard it. Three things plain Sybil does not do:

* collect fences whose info line carries attributes (```python title="x.py" hl_lines="2"),
  and the `py` / `python3` spellings, which Sybil would skip without a word;
* expand pymdownx.snippets includes (`--8<-- "snippets/accounting.py:count_params"`) before running,
  executing the included lines under the snippet file's own name and line numbers, so a failure
  inside included code points at `snippets/accounting.py:NN`, and checking that the expansion is
  exactly what the build shows (pymdownx's own preprocessor is asked);
* count skips: `<!-- skip: next "reason" -->` is honoured by Sybil's SkipParser, and the
  guard test limits how many there are and that each has a reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import markdown
from pymdownx.snippets import SnippetPreprocessor
from sybil import Document, Example
from sybil.evaluators.python import pad
from sybil.parsers.abstract.codeblock import AbstractCodeBlockParser, PythonDocTestOrCodeBlockParser
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

PYTHON_INFO = re.compile(r"(?P<language>python3?|py)(?:[ \t]+(?P<attributes>[^\n]*?))?[ \t]*$\n", re.MULTILINE)
INCLUDE = re.compile(r"""^(?P<indent>[ \t]*)-{1,}8<-{1,}[ \t]+(["'])(?P<target>.+?)\2[ \t]*$""")
SECTION = re.compile(r"-{1,}8<-{1,}[ \t]+\[[ \t]*(?P<kind>start|end)[ \t]*:[ \t]*(?P<name>[a-z][-_0-9a-z]*)[ \t]*\]")
SKIP = re.compile(r"<!--+\s*skip:?[ \t]*(?P<arguments>.*?)[ \t]*-->")


class IncludeError(Exception):
    """An include line that names no file or section, or expands unlike the build."""


def _build_preprocessor() -> SnippetPreprocessor:
    # The same settings as mkdocs.yml: base path = repository root, check_paths on.
    config = {
        "base_path": [str(ROOT)], "restrict_base_path": True, "encoding": "utf-8",
        "check_paths": True, "auto_append": [], "url_download": False, "url_max_size": 0,
        "url_timeout": 0, "url_request_headers": {}, "dedent_subsections": False,
        "max_retries": 0, "backoff_factor": 0,
    }
    return SnippetPreprocessor(config, markdown.Markdown())


_PREPROCESSOR = _build_preprocessor()


def included_lines(target: str) -> tuple[Path, int, list[str]]:
    """The lines an include target names, as they stand in the file: (file, first line number, lines)."""
    path, _, section = target.partition(":")
    file = ROOT / path
    if not file.is_file():
        raise IncludeError(f"include target '{path}' does not exist")
    lines = file.read_text(encoding="utf-8").split("\n")
    if not section:
        return file, 1, lines
    marks = [(i, m["kind"]) for i, l in enumerate(lines) if (m := SECTION.search(l)) and m["name"] == section]
    if [kind for _, kind in marks] != ["start", "end"]:
        raise IncludeError(f"'{path}' needs exactly one '[start:{section}]' followed by one '[end:{section}]'")
    (start, _), (end, _) = marks
    return file, start + 2, lines[start + 1 : end]


def check_expansion(line: str, target: str, body: list[str]) -> None:
    """Fail unless pymdownx.snippets (what the build uses) expands `line` to exactly `body`."""
    try:
        built = _PREPROCESSOR.run([line.strip()])
    except Exception as error:  # pymdownx's SnippetMissingError and friends, reported as ours
        raise IncludeError(str(error)) from None
    if built != [l for l in body if not SECTION.search(l)]:
        raise IncludeError(f"include '{target}' would run other code than the built page shows")


def run_python_block(example: Example) -> None:
    """Evaluate one fenced block, its includes expanded, under the right file names and lines."""
    __tracebackhide__ = True
    source = str(example.parsed)
    first_line = example.line + example.parsed.line_offset  # the fence line; the code starts after it
    chunk: list[str] = []
    chunk_start = first_line

    def flush() -> None:
        if any(l.strip() for l in chunk):
            code = compile(pad("\n".join(chunk), chunk_start), example.path, "exec", dont_inherit=True)
            exec(code, example.namespace)
        chunk.clear()

    for offset, line in enumerate(source.split("\n")):
        include = INCLUDE.match(line)
        if include is None:
            if not chunk:
                chunk_start = first_line + offset
            chunk.append(line)
            continue
        flush()
        try:
            file, start, body = included_lines(include["target"])
            check_expansion(line, include["target"], body)
        except IncludeError as error:
            raise IncludeError(f"{example.path}:{first_line + offset + 1}: {error}") from None
        # Nested section markers are blanked, not dropped, so line numbers match the file.
        runnable = "\n".join("" if SECTION.search(l) else l for l in body)
        code = compile(pad(runnable, start - 1), str(file), "exec", dont_inherit=True)
        exec(code, example.namespace)
    flush()
    example.namespace.pop("__builtins__", None)


class PageCodeBlockParser(AbstractCodeBlockParser):
    language = "python"

    def __init__(self, language: str | None = None, evaluator=None) -> None:
        super().__init__(
            [RawFencedCodeBlockLexer(info_pattern=PYTHON_INFO, mapping={"language": "arguments", "source": "source"})],
            "python",
            run_python_block,
        )

    def __call__(self, document: Document):
        for region in self.lexers(document):
            region.parsed = region.lexemes["source"]
            region.evaluator = run_python_block
            yield region


class PagePythonParser(PythonDocTestOrCodeBlockParser):
    """Code blocks run as above; a block that starts with `>>>` runs as a doctest."""

    codeblock_parser_class = PageCodeBlockParser


def count_python_fences(text: str) -> int:
    """Count fences a reader would take for Python, by a plain scan (the guard against silent skips)."""
    count, fence = 0, None
    for line in text.splitlines():
        m = re.match(r"^[ \t]*(`{3,}|~{3,})[ \t]*(\S*)", line)
        if not m:
            continue
        if fence is None:
            fence = m[1]
            count += m[2].lower() in {"python", "py", "python3"}
        elif m[1][0] == fence[0] and len(m[1]) >= len(fence) and not m[2]:
            fence = None
    return count


def skip_directives(text: str) -> list[str]:
    """The argument strings of every `<!-- skip: ... -->` comment on a page."""
    return [m["arguments"] for m in SKIP.finditer(text)]


# --- value bindings: `<!-- bind 0.1: lr -->` in the prose ----------------------------------------

BIND_COMMENT = re.compile(r"<!--\s*bind\s+.*?-->", re.DOTALL)
DEFERRED = "__deferred_bindings__"


def bound_value_matches(typed: str, value) -> bool:
    """Whether `value` is the number typed in the prose, to the precision it was typed with:
    '0.1' takes 0.1000000015 (a float32), '16' takes 16 exactly from an int, '6.6e-4' takes 0.000655,
    and a string value must show the same number."""
    from tests.prose_numbers import NUMBER, normalise

    if hasattr(value, "item") and callable(value.item):   # a 0-d tensor or a NumPy scalar
        value = value.item()
    plain = normalise(typed)
    if isinstance(value, str):
        return plain in {normalise(n) for n in NUMBER.findall(value)}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a binding's expression must give a number or a string, not {type(value).__name__}")
    mantissa, _, exponent = plain.lower().partition("e")
    if isinstance(value, int) and "." not in mantissa and not exponent:
        return value == int(mantissa)
    decimals = len(mantissa.partition(".")[2])
    unit = 10.0 ** (int(exponent or 0) - decimals)
    return abs(value - float(plain)) <= unit / 2 * (1 + 1e-9)


def _check_binding(example: Example, line: int, number: str, expression: str) -> None:
    __tracebackhide__ = True
    value = eval(compile(expression, f"{example.path}:{line} (bind)", "eval"), example.namespace)
    if not bound_value_matches(number, value):
        raise AssertionError(f"{example.path}:{line}: the prose says {number}, bound to `{expression}`, "
                             f"which is {value!r}")


def run_bindings(example: Example) -> None:
    """Check one comment's bindings now, or at the page's end if a name is defined further down."""
    __tracebackhide__ = True
    line, entries = example.parsed
    for entry in entries:
        try:
            _check_binding(example, line, entry.number, entry.expression)
        except NameError:
            example.namespace.setdefault(DEFERRED, []).append((line, entry))


def run_deferred_bindings(example: Example) -> None:
    __tracebackhide__ = True
    for line, entry in example.namespace.pop(DEFERRED, []):
        try:
            _check_binding(example, line, entry.number, entry.expression)
        except NameError as error:
            raise AssertionError(f"{example.path}:{line}: binding `{entry.expression}`: {error}") from None


class BindingParser:
    """Every `<!-- bind N: expression -->` in a page is an example (tests/prose_numbers.py says why)."""

    def __call__(self, document: Document):
        from sybil import Region

        from tests.prose_numbers import bindings

        found = False
        for match in BIND_COMMENT.finditer(document.text):
            line = document.text.count("\n", 0, match.start()) + 1
            found = True
            yield Region(match.start(), match.end(), (line, bindings(match[0])), run_bindings)
        if found:   # the names a binding needs may be defined after it: check those at the end
            end = len(document.text)
            yield Region(end, end, None, run_deferred_bindings)
