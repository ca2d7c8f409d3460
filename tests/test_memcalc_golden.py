"""The in-page calculator (JavaScript) and the closed form (Python) agree.

tests/golden/memcalc.json is written by `python -m tests.memcalc_golden`
from snippets/memcalc/transformer.py; here it is regenerated and compared,
and docs/assets/javascripts/memcalc.js runs under Node against every case.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests import memcalc_golden
from tests.docblocks import ROOT

JS = ROOT / "docs" / "assets" / "javascripts" / "memcalc.js"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Node is needed to check the calculator's JavaScript")
        pytest.skip("node is not installed: the JavaScript is not checked")
    return found


def test_the_golden_file_is_what_the_python_answers_now():
    stored = json.loads(memcalc_golden.GOLDEN.read_text(encoding="utf-8"))
    fresh = json.loads(json.dumps({"cases": memcalc_golden.cases()}))
    assert stored == fresh, ("tests/golden/memcalc.json is out of date: "
                             "python -m tests.memcalc_golden")


def test_the_golden_file_covers_every_option():
    cases = json.loads(memcalc_golden.GOLDEN.read_text())["cases"]
    assert len(cases) >= 300
    inputs = [c["input"] for c in cases if "output" in c]
    for key in ("optimizer", "precision", "attention", "checkpointing",
                "implementation", "zero_stage"):
        assert len({i[key] for i in inputs}) > 2 or key == "attention"
    assert {c["output"]["phase"] for c in cases if "output" in c} == {
        "forward", "backward", "optimizer step"}
    assert {c["output"]["kernel"] for c in cases if "output" in c} == {
        "cudnn", "efficient", "math", "eager"}
    assert sum("error" in c for c in cases) >= 10
    assert sum("budget" in c for c in cases) >= 30


@pytest.mark.claim("The in-page calculator gives the command's bytes on every golden case",
                   page="memory-calculator.md#the-calculator")
def test_the_javascript_gives_the_same_bytes_on_every_case():
    result = subprocess.run([node(), str(ROOT / "tests" /
                                         "memcalc_golden.js")],
                            capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    assert report["cases"] >= 300
    assert report["bad"] == [], json.dumps(report["bad"][:3], indent=1)


def test_a_changed_formula_in_the_javascript_is_caught(tmp_path):
    """Break one term of the port: the comparison must notice."""
    broken = JS.read_text(encoding="utf-8").replace(
        "var logProbs = R(T * V * 4);", "var logProbs = R(T * V * 2);")
    assert broken != JS.read_text(encoding="utf-8")
    (tmp_path / "docs" / "assets" / "javascripts").mkdir(parents=True)
    (tmp_path / "docs" / "assets" / "javascripts" / "memcalc.js").write_text(
        broken, encoding="utf-8")
    (tmp_path / "tests" / "golden").mkdir(parents=True)
    shutil.copy(memcalc_golden.GOLDEN, tmp_path / "tests" / "golden")
    shutil.copy(ROOT / "tests" / "memcalc_golden.js", tmp_path / "tests")
    result = subprocess.run([node(), str(tmp_path / "tests" /
                                         "memcalc_golden.js")],
                            capture_output=True, text=True, check=True)
    assert len(json.loads(result.stdout)["bad"]) > 100


def test_the_javascript_is_small_and_fetches_nothing():
    text = JS.read_text(encoding="utf-8")
    assert len(text.encode()) < 50_000
    for word in ("fetch(", "XMLHttpRequest", "import(", "http://",
                 "https://"):
        assert word not in text
