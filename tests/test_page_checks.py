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
    ("(glossary.md#optimizer-state)", "(glossary.md#no-such-anchor)", "has no anchor '#no-such-anchor'"),
    ("(glossary.md#optimizer-state)", "(no-such-page.md)", "no file docs/no-such-page.md"),
], ids=["missing-section", "missing-file", "broken-anchor", "broken-link"])
def test_build_fails_naming_file_and_line(tmp_path, old, new, expected):
    result, line = _break(tmp_path, old, new)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-3000:]
    assert f"docs/memory.md:{line}:" in result.stderr, result.stderr[-3000:]
