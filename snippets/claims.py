"""The ledger of verified claims, read from the tests themselves.

A test that checks something a page says carries the marker

    @pytest.mark.claim("AdamW keeps 8 bytes of state per fp32 parameter",
                       page="adam.md#state-per-optimizer", capture=None)

`page` is the page (and anchor) that makes the claim; `capture` names the
capture whose data the test checks (the claim was then verified on that
capture's GPU), or None when the test verifies it on the CPU under the torch
of the test run. `ledger()` finds every such marker by reading the test files
(no import, no run), so the ledger page lists exactly the claims some test
checks; tests/test_claims.py proves each entry names a test that pytest
collects. It lives in snippets/ because the build reads it too
(hooks/ledger.py): a hook never imports the tests, so that `mkdocs build`
works as typed in the venv.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


@dataclass(frozen=True)
class Claim:
    text: str
    page: str            # "adam.md#anchor"
    test: str            # node id, no parameters: "tests/test_x.py::test_y"
    capture: str | None  # the capture the test reads; None: checked on the CPU


def _is_claim_marker(node: ast.expr) -> bool:
    # pytest.mark.claim(...)
    return (isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "claim"
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "mark")


def _literal(node: ast.AST | None):
    return None if node is None else ast.literal_eval(node)


def _claims_in(path: Path, root: Path = ROOT) -> list[Claim]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.name.startswith("test")):
            continue
        for decorator in node.decorator_list:
            if not _is_claim_marker(decorator):
                continue
            keywords = {k.arg: k.value for k in decorator.keywords}
            if len(decorator.args) != 1 or "page" not in keywords:
                raise ValueError(f"{path.name}:{decorator.lineno}: "
                                 "claim(text, page=..., capture=...)")
            found.append(Claim(
                text=_literal(decorator.args[0]),
                page=_literal(keywords["page"]),
                test=f"{path.relative_to(root).as_posix()}::{node.name}",
                capture=_literal(keywords.get("capture")),
            ))
    return found


def ledger() -> list[Claim]:
    """Every claim marker in tests/, ordered by page then test."""
    claims = [c for path in sorted(TESTS.glob("test_*.py"))
              for c in _claims_in(path)]
    return sorted(claims, key=lambda c: (c.page.split("#")[0], c.test))
