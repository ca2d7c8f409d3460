"""The interactive figures compute what snippets/interactive.py computes, and that is torch's rule.

Three links, each checked here:

1. tests/golden/figures/*.json is what snippets/interactive.py answers now
   (`python -m tests.figures_golden` rewrites them);
2. the modules of docs/assets/javascripts/figures/ give the same numbers under Node, to the last
   bit (fp32 through Math.fround, bf16 by rounding bits, one seeded generator in both languages);
3. snippets/interactive.py states torch's rules: torch.optim.SGD, Adam and AdamW in float64 agree
   within TOLERANCE (the rules use running products where torch calls pow, and torch's kernels may
   fuse a multiply-add), torch's bf16 cast and snippets/low_precision_updates.py's Kahan step and
   stochastic rounding agree exactly.

And the machinery: the scripts stay small and fetch nothing, mkdocs.yml loads them, every figure
is placed on a page, and the hook refuses a marker that names no figure, with page and line.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import yaml
from mkdocs.exceptions import PluginError

from hooks import interactive as hook
from snippets import interactive as rules
from snippets.low_precision_updates import apply_update_
from snippets.weight_decay import decay_over_steps
from tests import figures_golden
from tests.docblocks import ROOT

FIGURES = ROOT / "docs" / "assets" / "javascripts" / "figures"
CSS = ROOT / "docs" / "assets" / "stylesheets" / "figures.css"
TOLERANCE = 1e-12  # float64 rules against torch: |ours - torch| <= TOLERANCE * max(1, |torch|)


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Node is needed to check the figures' JavaScript")
        pytest.skip("node is not installed: the JavaScript is not checked")
    return found


def golden(name: str) -> list[dict]:
    path = figures_golden.GOLDEN_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))["cases"]


def gap(ours: float, theirs: float) -> float:
    """How far apart, in units of the tolerance's scale."""
    return abs(ours - theirs) / max(1.0, abs(theirs))


# --- 1 and 2: golden files, and the JavaScript against them ---------------------------------------

def test_every_module_has_a_golden_file():
    modules = {p.stem for p in FIGURES.glob("*.js")}
    goldens = {p.stem for p in figures_golden.GOLDEN_DIR.glob("*.json")}
    assert modules == goldens == set(figures_golden.figures())


def test_the_golden_files_are_what_the_python_answers_now():
    for name, cases in figures_golden.figures().items():
        fresh = json.loads(json.dumps(cases))
        assert golden(name) == fresh, (f"tests/golden/figures/{name}.json is out of date: "
                                       "python -m tests.figures_golden")


def test_the_golden_files_reach_every_control():
    momentum = [c["input"] for c in golden("momentum")]
    assert {x["gradients"] for x in momentum} == set(figures_golden.SEQUENCES)
    assert any(x["nesterov"] for x in momentum) and any(x["tau"] > 0 for x in momentum)
    assert len({x["beta2"] for x in (c["input"] for c in golden("adam-state"))}) >= 4
    assert len({len(c["input"]["gradients"]) for c in golden("adam-state")}) >= 10
    assert len({c["input"]["steps"] for c in golden("weight-decay")}) >= 3
    parts = [c["input"]["part"] for c in golden("bf16-rounding")]
    assert parts.count("regression") == 3 and parts.count("update") >= 50
    for name, visited in figures_golden.VISITED.items():
        inputs = [c["input"] for c in golden(name)]
        for x in visited:
            assert any(x.items() <= i.items() for i in inputs), (name, x)


def run_node(golden_dir=None) -> dict:
    command = [node(), str(ROOT / "tests" / "figures_golden.js")]
    if golden_dir is not None:
        command.append(str(golden_dir))
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout)


@pytest.mark.claim("The interactive figures show, to the last bit, the numbers "
                   "snippets/interactive.py computes",
                   page="sgd-momentum.md#the-step-under-a-constant-gradient")
def test_the_javascript_gives_the_same_numbers_to_the_last_bit():
    report = run_node()
    assert report["figures"] == {name: len(golden(name)) for name in figures_golden.figures()}
    assert report["bad"] == [], json.dumps(report["bad"][:5], indent=1)


BREAKS = [  # (module, a line of the port, the same line broken)
    ("shared.js", "v = v * o.beta2 + (1 - o.beta2) * g * g;", "v = v * o.beta2 + (1 - o.beta2) * g;"),
    ("momentum.js", "buf = buf === null ? g : buf * mu + (1 - tau) * g;",
     "buf = buf === null ? g : buf * mu + g;"),
    ("bf16-rounding.js", "return fromBits((b + 0x7FFF + ((b >>> 16) & 1)) & 0xFFFF0000);",
     "return fromBits((b + 0x8000) & 0xFFFF0000);"),
    ("bf16-rounding.js", "if (r === \"fp32\") return [fr(w + u), c];", "if (r === \"fp32\") return [w + u, c];"),
    ("shared.js", "t = Math.imul(t ^ (t >>> 15), t | 1);", "t = Math.imul(t ^ (t >>> 15), t | 3);"),
    ("memory-timeline.js", "var peak = rows.length + last.peak_index;", "var peak = last.peak_index;"),
]


@pytest.mark.parametrize("module, line, broken", BREAKS, ids=lambda v: v if v.endswith(".js") else "")
def test_a_changed_rule_in_the_javascript_is_caught(tmp_path, module, line, broken):
    copy = tmp_path / "docs" / "assets" / "javascripts" / "figures"
    shutil.copytree(FIGURES, copy)
    shutil.copy(FIGURES.parent / "memcalc.js", copy.parent)  # figure 5 computes with it
    text = (copy / module).read_text(encoding="utf-8")
    assert text.count(line) == 1, f"{module} no longer has the line this test breaks: {line}"
    (copy / module).write_text(text.replace(line, broken), encoding="utf-8")
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "figures_golden.js", tmp_path / "tests")
    result = subprocess.run([node(), str(tmp_path / "tests" / "figures_golden.js"),
                             str(figures_golden.GOLDEN_DIR)], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)["bad"], f"breaking {module} went unnoticed"


# --- 3: the rules are torch's ----------------------------------------------------------------------

@pytest.mark.claim("The momentum figure's steps are torch.optim.SGD's (float64) on every golden setting",
                   page="sgd-momentum.md#the-step-under-a-constant-gradient")
def test_the_momentum_rule_is_torch_sgd():
    worst = 0.0
    for case in golden("momentum"):
        x = case["input"]
        for steps, hyper in ((case["output"]["sgd"], {}),
                             (case["output"]["momentum"], dict(momentum=x["mu"], dampening=x["tau"],
                                                               nesterov=x["nesterov"]))):
            theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
            optimizer = torch.optim.SGD([theta], lr=x["lr"], **hyper)
            ours = 0.0
            for g, step in zip(rules.gradient_sequence(x["gradients"]), steps):
                theta.grad = torch.tensor([g], dtype=torch.float64)
                optimizer.step()
                ours -= step
                worst = max(worst, gap(ours, theta.item()))
    assert worst <= TOLERANCE, worst


@pytest.mark.claim("The Adam figure's m, v and theta are torch.optim.Adam's (float64) on every golden "
                   "setting", page="adam.md#why-the-bias-correction")
def test_the_adam_rule_is_torch_adam():
    worst = 0.0
    for case in golden("adam-state"):
        x = case["input"]
        theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        adam = torch.optim.Adam([theta], lr=x["lr"], betas=(x["beta1"], x["beta2"]), eps=x["eps"])
        for g, row in zip(x["gradients"], case["output"]["rows"]):
            theta.grad = torch.tensor([g], dtype=torch.float64)
            adam.step()
            state = adam.state[theta]
            worst = max(worst, gap(row["theta"], theta.item()), gap(row["m"], state["exp_avg"].item()),
                        gap(row["v"], state["exp_avg_sq"].item()))
    assert worst <= TOLERANCE, worst


@pytest.mark.claim("The weight-decay figure's trajectories are torch.optim.Adam(weight_decay) and "
                   "AdamW(weight_decay), float64, on every golden setting",
                   page="weight-decay.md#across-gradient-scales")
def test_the_decay_rules_are_torch_adam_and_adamw():
    worst = 0.0
    for case in golden("weight-decay"):
        x = case["input"]
        for name, optimizer in (("l2", torch.optim.Adam), ("decoupled", torch.optim.AdamW)):
            theirs = decay_over_steps(lambda ps: optimizer(ps, lr=x["lr"], weight_decay=x["weight_decay"]),
                                      x["steps"], tuple(x["scales"]))
            ours = case["output"][name]
            for t, row in enumerate(theirs):
                worst = max(worst, *(gap(ours[i][t], row[i]) for i in range(len(row))))
    assert worst <= TOLERANCE, worst


def _fp32_values(count: int, seed: int = 0) -> list[float]:
    """fp32 values from random bit patterns (every exponent but NaN/inf), ties to even included."""
    rng = random.Random(seed)
    bits = []
    for _ in range(count):
        pattern = rng.getrandbits(32)
        if (pattern >> 23) & 0xFF == 0xFF:
            continue
        bits.append(pattern)
        bits.append((pattern & 0xFFFF0000) | 0x8000)  # exactly halfway between two bf16 values
    return [struct.unpack("<f", struct.pack("<I", b))[0] for b in bits]


@pytest.mark.claim("The bf16 figure rounds as torch's fp32-to-bf16 cast does, ties to even",
                   page="mixed-precision.md#what-pure-bf16-loses")
def test_bf16_rounding_is_torchs_cast():
    values = _fp32_values(20_000)
    theirs = torch.tensor(values, dtype=torch.float32).to(torch.bfloat16).float().tolist()
    assert [rules.bf16_nearest(v) for v in values] == theirs


def _torch_store(weight, update, compensation, rounding, noise):
    """snippets/low_precision_updates.py's step on one value, stochastic rounding fed `noise`."""
    if rounding == "fp32":
        param = torch.tensor([weight], dtype=torch.float32)
        param += torch.tensor([update], dtype=torch.float32)
        return param.item(), compensation
    param = torch.tensor([weight], dtype=torch.bfloat16)
    comp = torch.tensor([compensation], dtype=torch.bfloat16)
    drawn = torch.tensor([noise], dtype=torch.int32)
    with mock.patch.object(torch, "randint", lambda *args, **kwargs: drawn):
        apply_update_(param, torch.tensor([update], dtype=torch.float32), rounding, comp)
    return param.item(), comp.item()


@pytest.mark.claim("The bf16 figure stores an update as snippets/low_precision_updates.py does: "
                   "to nearest, with Kahan compensation, or stochastically",
                   page="mixed-precision.md#what-pure-bf16-loses")
@pytest.mark.parametrize("rounding", rules.ROUNDINGS)
def test_storing_an_update_is_low_precision_updates(rounding):
    rng = random.Random(rules.ROUNDINGS.index(rounding))
    for _ in range(2000):
        weight = rules.bf16_nearest(rules.fp32(rng.choice([1, -1]) * 10 ** rng.uniform(-3, 3)))
        update = rules.fp32(rng.choice([1, -1]) * abs(weight) * 10 ** rng.uniform(-6, 0))
        compensation = rules.bf16_nearest(rules.fp32(abs(weight) * rng.uniform(-4e-3, 4e-3)))
        if rounding != "kahan":
            compensation = 0.0
        noise = rng.getrandbits(16)
        generator = SimpleNamespace(next_u32=lambda: noise << 16)
        ours = rules.store(weight, update, compensation, rounding, generator)
        assert ours == _torch_store(weight, update, compensation, rounding, noise), (weight, update)


@pytest.mark.claim("In the bf16 figure's regression, rounding to nearest stops changing the weights "
                   "long before the end; fp32, Kahan and stochastic rounding end far lower",
                   page="mixed-precision.md#what-pure-bf16-loses")
def test_the_regression_replays_the_chapters_story():
    for case in (c for c in golden("bf16-rounding") if c["input"]["part"] == "regression"):
        runs = case["output"]["runs"]
        assert runs["nearest"]["last_change"] < 150
        assert min(runs["kahan"]["last_change"], runs["stochastic"]["last_change"]) >= 390
        for rounding in ("fp32", "kahan", "stochastic"):
            assert runs[rounding]["losses"][-1] < runs["nearest"]["losses"][-1] / 10


def test_the_generator_draws_uniformly():
    rng = rules.Mulberry32(7)
    draws = [rng.uniform() for _ in range(100_000)]
    assert min(draws) >= -1 and max(draws) < 1
    assert abs(sum(draws) / len(draws)) < 0.01
    assert all(abs(sum(-0.5 + i * 0.25 <= d < -0.25 + i * 0.25 for d in draws) / len(draws) - 0.125) < 0.005
               for i in range(4))


# --- the machinery -------------------------------------------------------------------------------

def test_the_figures_are_small_and_fetch_nothing():
    files = sorted(FIGURES.glob("*.js")) + [CSS]
    total = sum(len(p.read_bytes()) for p in files)
    assert total < 60_000, f"{total} bytes of figure scripts and styles (the budget is 60,000)"
    for path in files:
        text = path.read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")
        for word in ("fetch(", "XMLHttpRequest", "import(", "http://", "https://", "url("):
            assert word not in text, f"{path.name} has {word}"


def _config() -> dict:
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=loader)


def test_mkdocs_loads_the_helper_first_then_every_figure():
    config = _config()
    scripts = [s for s in config["extra_javascript"] if s.startswith(hook.FIGURES)]
    assert scripts[0] == f"{hook.FIGURES}/{hook.HELPER}.js"
    assert sorted(scripts[1:]) == sorted(f"{hook.FIGURES}/{n}.js" for n in hook.figure_names(ROOT / "docs"))
    assert "assets/stylesheets/figures.css" in config["extra_css"]
    assert "hooks/interactive.py" in config["hooks"]


def test_every_figure_is_placed_on_a_chapter():
    placed = {}
    for page in sorted((ROOT / "docs").glob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            marker = hook.MARKER.match(line)
            if marker:
                placed.setdefault(hook.NAME.match(marker["rest"])["name"], []).append(page.name)
    assert placed == {"momentum": ["sgd-momentum.md"], "adam-state": ["adam.md"],
                      "weight-decay": ["weight-decay.md"], "bf16-rounding": ["mixed-precision.md"],
                      "memory-timeline": ["checkpointing.md", "memory-calculator.md", "memory.md"]}


def _render(markdown: str, scripts=None) -> str:
    names = sorted(hook.figure_names(ROOT / "docs"))
    if scripts is None:
        scripts = [f"{hook.FIGURES}/{n}.js" for n in [hook.HELPER, *names]]
    page = SimpleNamespace(file=SimpleNamespace(src_uri="chapter.md"))
    config = {"docs_dir": str(ROOT / "docs"), "extra_javascript": scripts}
    return hook.on_page_markdown(markdown, page, config, None)


def test_a_marker_becomes_the_placeholder_its_module_fills():
    html = _render("Text.\n\n<!-- interactive: momentum -->\n\nMore.")
    assert '<div class="interactive" data-interactive="momentum">' in html
    assert "<!-- interactive" not in html


def test_a_marker_in_a_code_block_stays_as_it_is():
    text = "```markdown\n<!-- interactive: nowhere -->\n```\n"
    assert _render(text) == text


@pytest.mark.parametrize("line, message", [
    ("<!-- interactive: nowhere -->", "docs/chapter.md:3: no interactive figure 'nowhere'"),
    ("<!-- interactive: shared -->", "docs/chapter.md:3: no interactive figure 'shared'"),
    ("<!-- interactive momentum -->", "docs/chapter.md:3: write the marker as"),
    ("<!-- interactive: Momentum! -->", "docs/chapter.md:3: write the marker as"),
])
def test_a_marker_naming_no_figure_fails_with_page_and_line(line, message):
    with pytest.raises(PluginError) as error:
        _render(f"# Title\n\n{line}\n")
    assert str(error.value).startswith(message)


def test_a_figure_brings_the_script_it_computes_with_once_a_page():
    """Figure 5 reads its numbers from memcalc.js: the hook loads it where the figure is, once,
    and not again on a page that loads it itself."""
    page = SimpleNamespace(file=SimpleNamespace(src_uri="memory.md"), url="memory/")
    names = sorted(hook.figure_names(ROOT / "docs"))
    config = {"docs_dir": str(ROOT / "docs"),
              "extra_javascript": [f"{hook.FIGURES}/{n}.js" for n in [hook.HELPER, *names]]}
    twice = "<!-- interactive: memory-timeline -->\n\n<!-- interactive: memory-timeline -->\n"
    html = hook.on_page_markdown(twice, page, config, None)
    assert html.count('<script src="../assets/javascripts/memcalc.js"></script>') == 1
    own = '<script src="../assets/javascripts/memcalc.js"></script>\n\n' + twice
    assert hook.on_page_markdown(own, page, config, None).count("memcalc.js") == 1
    assert "memcalc.js" not in _render("<!-- interactive: momentum -->")


def test_a_figure_mkdocs_does_not_load_fails_the_build():
    with pytest.raises(PluginError, match=r"docs/chapter.md:1: mkdocs.yml does not load .*momentum.js"):
        _render("<!-- interactive: momentum -->", scripts=[f"{hook.FIGURES}/shared.js"])
