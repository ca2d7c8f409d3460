"""The shape of every page, checked on its Markdown source (the browser tests check the result).

* every number in the prose is bound to the page's executed code (tests/prose_numbers.py), and
  the guard really catches a changed digit;
* no page names a GPU model: the provenance line under a capture does;
* code fits the column: no line of a fence, or of a snippet file a page shows, over CODE_COLUMNS;
* a chapter opens with "In one minute" (at most ten lines) and the questions it answers, and its
  main path, outside folded blocks, reads in about ten minutes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mkdocs.config import load_config

from tests.docblocks import DOCS, ROOT
from tests.prose_numbers import FENCE, uncaught_changes, unbound_numbers

PAGES = sorted(DOCS.glob("*.md"))
CODE_COLUMNS = 80           # what a code block shows at 1280 px without scrolling
IN_ONE_MINUTE_LINES = 10
QUESTIONS_MAX = 6
MAIN_PATH_WORDS = 2200      # "about 2,000 words": ten minutes at ~200 words a minute
GPU_MODEL = re.compile(r"\b(?:[AHBLV]100|H200|GH200|B200|A10G?|A30|A40|L4|L40S?|T4|RTX\s?\d{4}|MI\d{3}X?)\b")
CHAPTER_TITLE = re.compile(r"^(?:\d+[a-z]?|[A-Z]) · ")


def _nav() -> list[tuple[str, str]]:
    config = load_config(str(ROOT / "mkdocs.yml"))
    pages: list[tuple[str, str]] = []

    def walk(items):
        for item in items:
            if isinstance(item, dict):
                (title, value), = item.items()
                walk(value) if isinstance(value, list) else pages.append((title, value))
            else:
                pages.append(("", item))

    walk(config["nav"])
    return pages


CHAPTERS = [DOCS / src for title, src in _nav() if CHAPTER_TITLE.match(title)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_number_in_the_prose_is_bound_to_the_pages_code(page):
    unbound = unbound_numbers(page, DOCS)
    assert not unbound, "\n".join(map(str, unbound)) + (
        "\nShow the number in a block's output, insert it from a capture with {{ name/value }}, "
        "or exempt it on its line: <!-- exempt NUMBER: reason -->")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_guard_catches_a_changed_digit_in_every_number(page):
    """Change every digit of every prose number by +1 and by -1, one at a time (fold titles, folded
    prose, tables and headings included): the guard must flag each changed line. A number whose
    changed value the page's code also shows needs a value binding (or an exemption)."""
    missed = uncaught_changes(page)
    assert not missed, (
        "a changed digit would go unnoticed; bind the number on its line, <!-- bind N: expression -->, "
        "or exempt it with a reason:\n" + "\n".join(missed))


def test_the_guard_flags_a_changed_number_and_honours_exemptions(tmp_path):
    page = tmp_path / "page.md"
    body = "```python\n>>> 0.9711\n0.9711\n```\n"
    page.write_text("Predict 0.9711.\n\n" + body, encoding="utf-8")
    assert unbound_numbers(page) == []
    page.write_text("Predict 0.9712.\n\n" + body, encoding="utf-8")
    assert [u.number for u in unbound_numbers(page)] == ["0.9712"]
    page.write_text("In torch 0.4 and 2016, with 35{,}594 and 1,024:\n\n```python\n>>> 35594, 1024\n"
                    "(35594, 1024)\n```\n", encoding="utf-8")
    assert unbound_numbers(page) == []
    page.write_text("It took 117.5 s. <!-- exempt 117.5: a story, not a claim -->\n", encoding="utf-8")
    assert unbound_numbers(page) == []
    page.write_text("It took 117.5 s. <!-- exempt 117.5: -->\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs a reason"):
        unbound_numbers(page)
    page.write_text("A captured {{ zero_grad/workspace }} is not typed; 40 is.\n", encoding="utf-8")
    assert [u.number for u in unbound_numbers(page)] == ["40"]


@pytest.mark.parametrize("prose", [
    '??? note "Proof: checked on all 2,001 moves"\n\n    Fine.\n',       # a fold's title
    '!!! tip "Checked on 2,001 moves"\n\n    Fine.\n',                  # an admonition's title
    "<details markdown>\n<summary>2,001 moves</summary>\n\nFine.\n</details>\n",
    '??? info "Deeper"\n\n    Every tensor takes whole 513-byte blocks.\n',  # folded prose
    '??? info "Deeper"\n\n    | blocks | 513 |\n    |---|---|\n',          # a folded table
    "## 2,001 moves\n",                                                    # a heading
])
def test_the_guard_reads_folds_tables_and_headings(tmp_path, prose):
    page = tmp_path / "page.md"
    page.write_text(prose + "\n```python\n>>> 2000, 512\n(2000, 512)\n```\n", encoding="utf-8")
    assert [u.number for u in unbound_numbers(page)] in (["2,001"], ["513"])


def test_a_value_binding_covers_a_number_the_code_shows_twice_and_fails_when_it_is_gone(tmp_path):
    page = tmp_path / "page.md"
    code = "\n```python\nlr, wd = 0.1, 0.0\n```\n"
    page.write_text("With lr 0.1 and decay 0.0.\n" + code, encoding="utf-8")
    assert unbound_numbers(page) == []
    assert "'0.1' -> '0.0'" in "\n".join(uncaught_changes(page))     # token binding cannot see it
    page.write_text("With lr 0.1 <!-- bind 0.1: lr; 0.0: wd --> and decay 0.0.\n" + code, encoding="utf-8")
    assert uncaught_changes(page) == []
    page.write_text("With lr 0.0 <!-- bind 0.1: lr; 0.0: wd --> and decay 0.0.\n" + code, encoding="utf-8")
    assert [(u.number, u.orphan) for u in unbound_numbers(page)] == [("0.1", True)]
    page.write_text("With lr 0.1 <!-- bind 0.1 lr -->.\n" + code, encoding="utf-8")
    with pytest.raises(ValueError, match="a binding is 'NUMBER: expression'"):
        unbound_numbers(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_names_a_gpu_model(page):
    named = [f"{page.name}:{i}: {m[0]}" for i, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
             for m in GPU_MODEL.finditer(line)]
    assert not named, ("a page names a GPU model; say 'the GPU' and let the capture's provenance "
                       "line name the card:\n" + "\n".join(named))


def _shown_snippet_files() -> set[Path]:
    files = set()
    for page in PAGES:
        for target in re.findall(r"""--8<--\s+["']([^"':]+)""", page.read_text(encoding="utf-8")):
            files.add(ROOT / target)
    return files


def test_code_fits_the_column():
    long = []
    for page in PAGES:
        fence = None
        for i, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            opening = FENCE.match(line)
            if opening and fence is None:
                fence, indent = opening[1], len(line) - len(line.lstrip())
                continue
            if opening and fence is not None and opening[1][0] == fence[0] and len(opening[1]) >= len(fence):
                fence = None
                continue
            if fence is not None and len(line) - indent > CODE_COLUMNS:
                long.append(f"docs/{page.name}:{i} ({len(line) - indent} characters)")
    for file in sorted(_shown_snippet_files()):
        for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if len(line) > CODE_COLUMNS:
                long.append(f"{file.relative_to(ROOT)}:{i} ({len(line)} characters)")
    assert not long, f"code lines over {CODE_COLUMNS} characters (they scroll sideways):\n" + "\n".join(long)


def _folded(lines: list[str]) -> list[bool]:
    """Which lines sit inside a collapsed block: `??? ...` (indented body) or <details>...</details>."""
    folded, inside_admonition, depth = [], None, 0
    for line in lines:
        stripped = line.strip()
        if inside_admonition is not None:
            if stripped and len(line) - len(line.lstrip()) <= inside_admonition:
                inside_admonition = None
            else:
                folded.append(True)
                continue
        if re.match(r"^\s*\?\?\?\+?\s", line):
            inside_admonition = len(line) - len(line.lstrip())
            folded.append(True)
            continue
        if re.match(r"^\s*<details\b", line):
            depth += 1
        folded.append(depth > 0)
        if re.search(r"</details>\s*$", line):
            depth = max(0, depth - 1)
    return folded


def main_path_words(text: str) -> int:
    # HTML comments are not read: blank them, keeping the lines (folds are found by indentation)
    text = re.sub(r"<!--.*?-->", lambda m: "\n" * m[0].count("\n"), text, flags=re.S)
    lines = text.split("\n")
    words = 0
    for line, folded in zip(lines, _folded(lines)):
        if re.match(r"^#{2}\s+Sources\b", line):
            break
        if not folded and not line.lstrip().startswith("<!--"):
            words += len(re.findall(r"[^\W_]+", line))
    return words


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.name)
def test_a_chapter_opens_with_in_one_minute_and_its_questions(page):
    lines = page.read_text(encoding="utf-8").split("\n")
    body = [l for l in lines[1:] if l.strip()]
    assert lines[0].startswith("# "), f"{page.name}: the first line is the chapter's title"
    assert body and re.match(r'^!!! abstract "In one minute"\s*$', body[0]), (
        f'{page.name}: the first block after the title must be !!! abstract "In one minute"')
    start = lines.index(body[0]) + 1
    summary = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("    "):
            break
        if line.strip():
            summary.append(line)
    questions = [l for l in summary if re.match(r"^\s{4}\*\*Questions", l)]
    assert questions, f"{page.name}: 'In one minute' ends with **Questions it answers:** and a list"
    rules = summary[: summary.index(questions[0])]
    asked = [l for l in summary[summary.index(questions[0]) + 1:] if re.match(r"^\s{4}[-*\d]", l)]
    assert len(rules) <= IN_ONE_MINUTE_LINES, f"{page.name}: 'In one minute' has {len(rules)} lines before the questions"
    assert 1 <= len(asked) <= QUESTIONS_MAX, f"{page.name}: {len(asked)} questions (1 to {QUESTIONS_MAX})"


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.name)
def test_a_chapters_main_path_reads_in_ten_minutes(page):
    words = main_path_words(page.read_text(encoding="utf-8"))
    assert words <= MAIN_PATH_WORDS, (f"{page.name}: {words} words outside folded blocks "
                                      f"(at most {MAIN_PATH_WORDS}); fold proofs and forensics")


def test_folded_blocks_are_recognised():
    text = "a b\n\n??? note \"Proof\"\n\n    c d e\n\n    f\n\ng\n<details markdown>\nh i\n</details>\nj"
    assert main_path_words(text) == 4  # a, b, g, j: the folded title and body do not count
