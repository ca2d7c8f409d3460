"""The in-page calculator (JavaScript) and the closed forms (Python) agree.

tests/golden/memcalc.json is written by `python -m tests.memcalc_golden`
from snippets/memcalc/transformer.py and decoder.py; here it is regenerated
and compared, and docs/assets/javascripts/memcalc.js runs under Node against
every case. The page's presets are families.PRESETS, with their published
parameter counts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict

import pytest

from snippets.memcalc.families import PRESETS
from snippets.memcalc.transformer import PRECISIONS
from tests import memcalc_golden
from tests.docblocks import ROOT
from tests.test_memcalc_families import PUBLISHED

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
    decoder = [c for c in cases if c.get("form") == "decoder"]
    cases = [c for c in cases if c.get("form") != "decoder"]
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
    assert {i.get("strategy", "") for i in inputs} >= {
        "", "ddp", "zero-redundancy", "zero1", "zero2", "zero3", "fsdp2"}
    assert {i.get("offload", "none") for i in inputs} >= {
        "none", "optimizer", "params"}


def test_the_golden_file_takes_every_preset_through_the_options():
    """Every preset of families.PRESETS, at every precision, with and
    without checkpointing, under ZeRO stages and FSDP2, with and without
    accumulation; then custom decoders, budgets and refusals."""
    cases = [c for c in json.loads(memcalc_golden.GOLDEN.read_text())[
        "cases"] if c.get("form") == "decoder"]
    by_preset = {}
    for c in cases:
        by_preset.setdefault(c.get("preset"), []).append(c["input"])
    for name in PRESETS:
        inputs = by_preset[name]
        assert {i["precision"] for i in inputs} == set(PRECISIONS), name
        assert {i["checkpointing"] for i in inputs} == {"none", "full"}
        assert {i["micro_batches"] for i in inputs} == {1, 4}
    every = [i for c in cases if "output" in c for i in [c["input"]]]
    assert {i["strategy"] for i in every} == {
        "single", "ddp", "zero-redundancy", "zero1", "zero2", "zero3",
        "fsdp2"}
    assert {i["offload"] for i in every} == {"none", "optimizer", "params"}
    assert {i["reshard_after_forward"] for i in every} == {None, True, False}
    assert {i["mlp"] for i in every} == {"gelu", "swiglu"}
    assert any(i["experts"] for i in every)
    assert {c["output"]["phase"] for c in cases if "output" in c} == {
        "forward", "backward", "optimizer step"}
    assert sum("budget" in c for c in cases) >= 20
    assert sum("error" in c for c in cases) >= 20


def _node_eval(script: str):
    result = subprocess.run([node(), "-e", script], capture_output=True,
                            text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout)


def test_the_pages_presets_are_the_families_presets():
    presets = _node_eval(
        'const c = require("./docs/assets/javascripts/memcalc.js");'
        "console.log(JSON.stringify(Object.fromEntries(Object.entries("
        "c.PRESETS).map(([k, p]) => [k, p.model]))))")
    assert presets == {name: asdict(d) for name, d in PRESETS.items()}


@pytest.mark.claim("Each preset of the in-page calculator has its model's published parameter count",
                   page="memory-calculator.md#the-calculator")
def test_the_page_shows_each_presets_published_parameter_count():
    """What the page computes for a preset at its own sequence length, by
    either closed form (GPT-2 goes to the GPT-style one)."""
    shown = _node_eval(
        'const c = require("./docs/assets/javascripts/memcalc.js");'
        "const out = {};"
        "for (const [k, p] of Object.entries(c.PRESETS)) {"
        "  const r = c.answer(Object.assign({}, p.model, {seq: p.seq,"
        "    batch: p.batch, precision: 'bf16-mixed', attention: 'sdpa',"
        "    checkpointing: 'full', micro_batches: 1, ranks: 1,"
        "    strategy: '', offload: 'none', optimizer: 'adamw',"
        "    implementation: 'fused'}));"
        "  out[k] = [r.parameters, r.form];"
        "}"
        "console.log(JSON.stringify(out));")
    assert {k: v[0] for k, v in shown.items()} == PUBLISHED
    assert shown["gpt2"][1] == "GPT-style"
    assert {v[1] for k, v in shown.items() if k != "gpt2"} == {"decoder"}


@pytest.mark.claim("The in-page calculator gives the command's bytes on every golden case",
                   page="memory-calculator.md#the-calculator")
def test_the_javascript_gives_the_same_bytes_on_every_case():
    result = subprocess.run([node(), str(ROOT / "tests" /
                                         "memcalc_golden.js")],
                            capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    assert report["cases"] >= 600
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
    # two closed forms, the sharding layer and the optimizers, line by line
    assert len(text.encode()) < 64_000
    for word in ("fetch(", "XMLHttpRequest", "import(", "http://",
                 "https://"):
        assert word not in text
