"""Guards for the page tests: no Python block is silently skipped, skips are few and explained,
and a failure names the file and line to fix."""

from __future__ import annotations

import traceback
import unittest
from pathlib import Path

import pytest
from sybil import Document
from sybil.parsers.markdown import SkipParser

from tests.docblocks import (
    DOCS, BindingParser, IncludeError, PageCodeBlockParser, PagePythonParser, bound_value_matches,
    count_python_fences, skip_directives,
)

MAX_SKIPS = 3
PAGES = sorted(DOCS.glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_python_fence_on_a_page_is_collected(page):
    text = page.read_text(encoding="utf-8")
    # one region per fence (the doctest split into statements happens after this parser)
    collected = len(list(PageCodeBlockParser()(Document(text, str(page)))))
    fences = count_python_fences(text)
    assert collected == fences, f"{page.name}: {fences} Python fences, but Sybil collected {collected}"


def test_skips_are_few_and_each_gives_a_reason():
    skips = []
    for page in PAGES:
        for arguments in skip_directives(page.read_text(encoding="utf-8")):
            action, _, reason = arguments.partition(" ")
            skips.append((page.name, action, reason.strip()))
    unexplained = [s for s in skips if s[1] in {"next", "start"} and not s[2].strip("\"' ")]
    assert not unexplained, f"skips without a reason: {unexplained}"
    counted = [s for s in skips if s[1] in {"next", "start"}]
    assert len(counted) <= MAX_SKIPS, f"{len(counted)} skipped blocks site-wide (at most {MAX_SKIPS}): {counted}"


def _evaluate(tmp_path: Path, text: str):
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    document = Document.parse(str(page), PagePythonParser(), SkipParser(), BindingParser())
    for example in document.examples():
        example.evaluate()
    return page, document


def test_fences_with_attributes_and_short_names_run(tmp_path):
    _, document = _evaluate(tmp_path, (
        '```python title="a.py" hl_lines="1"\nran = ["title"]\n```\n\n'
        '```py\nran.append("py")\n```\n\n'
        '```python3\nran.append("python3")\n```\n'
    ))
    assert document.namespace["ran"] == ["title", "py", "python3"]


def test_a_raising_block_names_the_page_and_line(tmp_path):
    with pytest.raises(ZeroDivisionError) as failure:
        _evaluate(tmp_path, "# Page\n\n```python\nx = 1\ny = x / 0\n```\n")
    frame = traceback.extract_tb(failure.value.__traceback__)[-1]
    assert (Path(frame.filename).name, frame.lineno) == ("page.md", 5)


def test_included_code_runs_under_its_own_file_and_line(tmp_path):
    # count_params is defined in snippets/accounting.py: calling it with a non-module fails inside it
    with pytest.raises(AttributeError) as failure:
        _evaluate(tmp_path, '```python\nfrom torch import nn\n--8<-- "snippets/accounting.py:count_params"\n\ncount_params(None)\n```\n')
    frames = traceback.extract_tb(failure.value.__traceback__)
    assert any(f.filename.endswith("snippets/accounting.py") for f in frames)


@pytest.mark.parametrize("target, message", [
    ("snippets/no_such_file.py:x", "does not exist"),
    ("snippets/accounting.py:no_such_section", "no_such_section"),
])
def test_a_broken_include_names_the_page_and_line(tmp_path, target, message):
    with pytest.raises(IncludeError, match=message) as failure:
        _evaluate(tmp_path, f'# Page\n\n```python\nx = 1\n--8<-- "{target}"\n```\n')
    assert "page.md:5:" in str(failure.value)


def test_skip_with_a_reason_skips(tmp_path):
    with pytest.raises(unittest.SkipTest) as skipped:
        _evaluate(tmp_path, '<!-- skip: next "needs a GPU" -->\n\n```python\nraise RuntimeError\n```\n')
    assert "needs a GPU" in str(skipped.value)


def test_a_value_binding_passes_fails_at_its_line_and_may_name_what_comes_later(tmp_path):
    code = "```python\nlr = 0.1\nsteps = 2000\n```\n"
    _evaluate(tmp_path, "lr 0.1 <!-- bind 0.1: lr -->\n\n" + code)      # lr is defined further down
    _evaluate(tmp_path, code + "\n2,000 steps <!-- bind 2,000: steps; 0.1: lr -->\n")
    with pytest.raises(AssertionError, match=r"page.md:6: the prose says 0.2, bound to `lr`, which is 0.1"):
        _evaluate(tmp_path, code + "\nlr 0.2 <!-- bind 0.2: lr -->\n")
    with pytest.raises(AssertionError, match=r"page.md:1: binding `rate`: name 'rate' is not defined"):
        _evaluate(tmp_path, "lr 0.1 <!-- bind 0.1: rate -->\n\n" + code)


@pytest.mark.parametrize("typed, value, ok", [
    ("0.1", 0.10000000149011612, True),    # a float32 0.1, as typed
    ("0.1", 0.2, False),
    ("1.11", 1.1111, True),
    ("1.11", 1.116, False),
    ("16", 16, True),
    ("16", 17, False),
    ("35{,}594", 35594, True),
    ("6.6e-4", 0.000655, True),
    ("6.6e-4", 0.00068, False),
    ("0.90000001", 0.9000000099999999, True),
    ("2,048", "2048 bytes", True),
    ("2,048", "2049 bytes", False),
])
def test_a_bound_value_matches_to_the_precision_typed(typed, value, ok):
    assert bound_value_matches(typed, value) is ok
