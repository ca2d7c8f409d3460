"""The ledger of verified claims (docs/claims.md) names only tests that exist and run."""

from __future__ import annotations

import subprocess
import sys

from snippets.claims import ROOT, Claim, _claims_in, ledger


def uncollected(claims: list[Claim]) -> list[str]:
    """The claims whose test pytest does not collect (a renamed test, a deleted file)."""
    if not claims:
        return []
    ids = sorted({c.test for c in claims})
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "-p", "no:sybil", *ids], cwd=ROOT, capture_output=True, text=True, timeout=300)
    collected = {line.split("[")[0] for line in result.stdout.splitlines() if "::" in line}
    return [c.test for c in claims if c.test not in collected]


def _collected_here(request, claims: list[Claim]) -> set[str] | None:
    """The test ids this very run collected, when it collected every file the ledger names and
    deselected nothing (then no second pytest is needed); None otherwise."""
    config = request.config
    if config.getoption("keyword") or config.getoption("markexpr"):
        return None
    ids = {item.nodeid.split("[")[0] for item in request.session.items}
    files = {i.split("::")[0] for i in ids}
    return ids if {c.test.split("::")[0] for c in claims} <= files else None


def test_every_ledger_entry_names_a_test_pytest_collects(request):
    claims = ledger()
    here = _collected_here(request, claims)
    missing = (uncollected(claims) if here is None
               else [c.test for c in claims if c.test not in here])
    assert not missing, missing


def test_a_ledger_entry_naming_a_missing_test_is_caught():
    gone = Claim("a claim", "memory.md", "tests/test_claims.py::test_that_does_not_exist", None)
    assert uncollected([gone]) == ["tests/test_claims.py::test_that_does_not_exist"]


def test_claim_markers_are_read_from_the_source(tmp_path):
    path = tmp_path / "tests" / "test_zz_claims_probe.py"
    path.parent.mkdir()
    path.write_text('import pytest\n\n@pytest.mark.claim("Adam keeps two moments", page="adam.md#x", '
                    'capture="optimizer_state")\ndef test_probe():\n    pass\n', encoding="utf-8")
    assert _claims_in(path, root=tmp_path) == [
        Claim("Adam keeps two moments", "adam.md#x", "tests/test_zz_claims_probe.py::test_probe", "optimizer_state")]
