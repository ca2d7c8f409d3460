"""The strict build fails on a broken include, link or anchor, naming the page and the line."""

from __future__ import annotations

import pytest

from tests.sitebuild import build, copy_project

pytestmark = pytest.mark.build


def _break(tmp_path, old: str, new: str):
    project = copy_project(tmp_path / "project")
    page = project / "docs" / "memory.md"
    text = page.read_text(encoding="utf-8")
    assert old in text, f"the test's anchor text {old!r} is no longer on docs/memory.md"
    lines_before = text[: text.index(old)].count("\n") + 1
    page.write_text(text.replace(old, new, 1), encoding="utf-8")
    return build(project, tmp_path / "site"), lines_before


@pytest.mark.parametrize("old, new, expected", [
    ('--8<-- "snippets/models.py:tiny_mlp"', '--8<-- "snippets/models.py:no_such_section"', "no section 'no_such_section'"),
    ('--8<-- "snippets/models.py:tiny_mlp"', '--8<-- "snippets/gone.py:tiny_mlp"', "'snippets/gone.py' does not exist"),
], ids=["missing-section", "missing-file"])
def test_build_fails_naming_file_and_line(tmp_path, old, new, expected):
    result, line = _break(tmp_path, old, new)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-3000:]
    assert f"docs/memory.md:{line}:" in result.stderr, result.stderr[-3000:]


def test_broken_links_and_anchors_each_name_their_file_and_line(tmp_path):
    """Links are checked once every page is rendered, so one build reports both (one build, not two)."""
    project = copy_project(tmp_path / "project")
    page = project / "docs" / "memory.md"
    text = page.read_text(encoding="utf-8")
    old = "(glossary.md#optimizer-state)"
    assert text.count(old) >= 2, f"the test needs two links {old!r} on docs/memory.md"
    first = text.index(old)
    second = text.index(old, first + 1)
    lines = [text[:at].count("\n") + 1 for at in (first, second)]
    text = (text[:first] + "(glossary.md#no-such-anchor)" + text[first + len(old):second]
            + "(no-such-page.md)" + text[second + len(old):])
    page.write_text(text, encoding="utf-8")
    result = build(project, tmp_path / "site")
    assert result.returncode != 0
    assert f"docs/memory.md:{lines[0]}: link 'glossary.md#no-such-anchor'" in result.stderr, result.stderr[-3000:]
    assert "has no anchor '#no-such-anchor'" in result.stderr
    assert f"docs/memory.md:{lines[1]}: link 'no-such-page.md': no file docs/no-such-page.md" in result.stderr, \
        result.stderr[-3000:]
