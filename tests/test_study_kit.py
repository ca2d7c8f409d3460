"""The "Before the meeting" pages: the cheat sheet's tables, rules and captured numbers checked
cell by cell against live torch and the captures; the talk tracks' length and links; the drills'
questions and answers; the checklist's links; the reading list's sources.

The prose-number guard (tests/test_pages.py) binds every multi-digit number to the pages' own
code. Single digits are exempt there, so the tables below are parsed here and compared with what
torch.optim does: change a multiplier, a byte count or a rule on a page and a test here fails.
"""

from __future__ import annotations

import copy
import inspect
import math
import re

import pytest
import torch
from torch import nn

from snippets.captures import load_capture
from snippets.cheat_sheet import (
    IMPLEMENTATIONS, OPTIMIZERS, RECIPES, STATE_TENSORS, _one_step, bytes_per_param,
    measured_bytes_per_param, saved_bf16_weights, state_tensors, step_extra,
)
from snippets.drills import one_checkpoint_trims, smallest_k, token_weights
from snippets.step_peak import step_extra_bytes
from snippets.weight_decay import same_run, scalar_step
from tests.docblocks import DOCS
from tests.test_optimizer_state import _tables

SHEET = "cheat-sheet.md"
CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)#\s]+\.md)(#[^)\s]+)?\)")


COMMENT = re.compile(r"\s*<!--.*?-->")


def _table(page: str, first_header: str, which: int = 0) -> list[list[str]]:
    """The rows of the page's `which`-th table whose first header cell is `first_header`, with the
    value bindings (HTML comments) dropped from the cells."""
    tables = [rows for _, header, rows in _tables(page) if header[0] == first_header]
    return [[COMMENT.sub("", cell) for cell in row] for row in tables[which]]


def _text(page: str) -> str:
    return (DOCS / page).read_text(encoding="utf-8")


# ---- the cheat sheet: memory per optimizer --------------------------------------------------

ROW_OPTIMIZERS = {  # the first cell of each row of the memory table -> the optimizers it names
    "`SGD`": ["SGD"],
    "`SGD(momentum=μ)`": ["SGD momentum"],
    "`Adam`, `AdamW`": ["Adam", "AdamW"],
    "`Adam(amsgrad=True)`": ["Adam AMSGrad"],
}


def _live_state_keys(name: str) -> list[str]:
    _, optimizer, _ = _one_step("fp32", name)
    state = next(iter(optimizer.state.values()), {})
    return [key for key, value in state.items() if torch.is_tensor(value) and value.dim() > 0]


@pytest.mark.claim("SGD, SGD with momentum, Adam and AdamW, and AMSGrad keep 2P, 3P, 4P and 5P "
                   "persistent scalars: 8, 12, 16 and 20 bytes per fp32 parameter",
                   page="cheat-sheet.md#memory", capture=None)
def test_the_memory_table_matches_live_optimizers():
    rows = _table(SHEET, "optimizer")
    assert [row[0] for row in rows] == list(ROW_OPTIMIZERS)
    previous_keys: list[str] = []
    for row in rows:
        label, keys_cell, persistent, fp32 = row[:4]
        for name in ROW_OPTIMIZERS[label]:
            k = state_tensors(name)
            assert k == STATE_TENSORS[name]
            assert persistent == f"{2 + k}P", f"{label}: {persistent}, live {2 + k}P"
            assert int(fp32) == 4 * (2 + k), f"{label}: {fp32} B/param, live {4 * (2 + k)}"
            listed = CODE.findall(keys_cell)
            expected = _live_state_keys(name)
            if keys_cell.startswith("+"):  # "+ `max_exp_avg_sq`": the row above's keys and these
                listed = previous_keys + listed
            assert sorted(listed) == sorted(expected), f"{label}: lists {listed}, holds {expected}"
        previous_keys = listed


@pytest.mark.claim("One step holds on top: for-loop Adam three tensors' worth (four with L2 decay), "
                   "foreach Adam one copy of the parameters, fused nothing, SGD nothing",
                   page="cheat-sheet.md#memory", capture=None)
def test_the_peak_sentence_matches_the_counted_step():
    extra = {name: [step_extra(name, i) for i in IMPLEMENTATIONS] for name in OPTIMIZERS}
    for name in ("SGD", "SGD momentum"):
        assert extra[name] == [0.0, 0.0, 0.0], name
    for name in ("Adam", "AdamW", "Adam AMSGrad"):
        assert extra[name] == [3.0, 8.0, 0.0], name  # 8 tensors: all the parameters
    # "(4 with L2 decay)"
    params = [nn.Parameter(torch.randn(1024)) for _ in range(8)]
    for p in params:
        p.grad = torch.randn_like(p)
    l2 = torch.optim.Adam(params, lr=1e-3, weight_decay=0.1, foreach=False)
    l2.step()
    assert step_extra_bytes(l2) == 4 * params[0].nbytes
    maximizing = torch.optim.Adam(params, lr=1e-3, maximize=True, foreach=False)
    maximizing.step()
    assert step_extra_bytes(maximizing) == 4 * params[0].nbytes
    # SGD makes a gradient-sized copy under foreach with weight decay or maximize
    for options in (dict(weight_decay=0.1), dict(maximize=True)):
        sgd = torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=True, **options)
        sgd.step()
        assert step_extra_bytes(sgd) > 0, options
    assert ("On top, a step's peak: for-loop Adam 3 tensors' worth (4 with L2 decay or `maximize`), foreach "
            "one more copy of all parameters, fused nothing, SGD nothing without decay or `maximize`"
            ) in " ".join(_text(SHEET).split())


@pytest.mark.claim("On the GPU the default foreach Adam step holds one more copy of the parameters "
                   "at its peak; fused AdamW holds nothing more",
                   page="cheat-sheet.md#memory", capture="optimizer_state")
def test_the_foreach_peak_on_the_gpu():
    gpu = load_capture("optimizer_state")["data"]["optimizers"]

    def temporaries(r):
        return r["step_peak_extra_bytes"] - r["allocated_growth_bytes"]

    params_bytes = 4 * gpu["Adam"]["P"]
    assert abs(temporaries(gpu["Adam"]) - params_bytes) < params_bytes / 100
    assert temporaries(gpu["AdamW fused"]) == 0


# ---- the cheat sheet: bytes per parameter under each precision recipe -------------------------

ROW_RECIPES = {
    "fp32": "fp32",
    "autocast, fp32 weights": "autocast bf16",
    "bf16, fp32 master": "bf16 + fp32 master",
    "pure bf16": "pure bf16",
}


@pytest.mark.claim("AdamW keeps 16 bytes per parameter in fp32, under bf16 autocast, and with bf16 "
                   "weights plus fp32 master weights and states; 8 in pure bf16",
                   page="cheat-sheet.md#precision", capture=None)
def test_the_recipe_table_matches_live_tensors():
    rows = _table(SHEET, "AdamW, B/param")
    assert [row[0] for row in rows] == list(ROW_RECIPES)
    assert set(ROW_RECIPES.values()) == set(RECIPES)
    for row in rows:
        live = measured_bytes_per_param(ROW_RECIPES[row[0]], "AdamW")
        cells = [int(c) for c in row[1:]]
        assert cells == [live[k] for k in ("params", "grads", "master", "state", "total")], row
        assert live == bytes_per_param(ROW_RECIPES[row[0]], "AdamW")


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_the_recipe_formula_matches_live_tensors_for_every_optimizer(recipe, optimizer):
    assert measured_bytes_per_param(recipe, optimizer) == bytes_per_param(recipe, optimizer)


@pytest.mark.claim("Autocast casts each weight to bf16 as a layer uses it; backward keeps that copy "
                   "only where the layer's input requires grad", page="cheat-sheet.md#precision",
                   capture=None)
def test_backward_keeps_an_autocast_weight_copy_only_where_the_input_needs_a_gradient():
    assert measured_bytes_per_param("autocast bf16")["autocast_copies"] == 2  # every weight cast
    assert measured_bytes_per_param("fp32")["autocast_copies"] == 0
    assert saved_bf16_weights(input_requires_grad=False) == [False, True]
    assert saved_bf16_weights(input_requires_grad=True) == [True, True]
    assert ("backward keeps that copy only where the layer's input requires grad, not in a first layer "
            "fed raw data") in " ".join(_text(SHEET).split())


def test_bytes_per_param_agrees_with_chapter_7():
    """Chapter 7 (snippets/precision.py, branch mp) computes the same table; once merged, both
    must agree for every recipe and optimizer they share."""
    precision = pytest.importorskip("snippets.precision", reason="chapter 7's snippets/precision.py "
                                    "is not merged yet (branch mp)")
    shared = [o for o in OPTIMIZERS if o in getattr(precision, "FULL_SIZE_STATES", {})]
    assert {"SGD", "SGD momentum", "Adam", "AdamW"} <= set(shared)
    for recipe in RECIPES:
        for optimizer in shared:
            ours, theirs = bytes_per_param(recipe, optimizer), precision.bytes_per_param(recipe, optimizer)
            assert {k: theirs[k] for k in ours} == ours, (recipe, optimizer)


# ---- the cheat sheet: update rules, as written ------------------------------------------------

def _sheet_sgd(theta, g, state, *, lr, weight_decay=0.0, momentum=0.0, dampening=0.0, nesterov=False):
    """The cheat sheet's SGD lines, literally."""
    g = g + weight_decay * theta
    if momentum:
        b = g.clone() if "b" not in state else momentum * state["b"] + (1 - dampening) * g
        state["b"] = b
        g = g + momentum * b if nesterov else b
    return theta - lr * g


def _sheet_adam(theta, g, state, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                amsgrad=False, decoupled=False):
    """The cheat sheet's Adam and AdamW lines, literally."""
    beta1, beta2 = betas
    t = state["t"] = state.get("t", 0) + 1
    if decoupled:
        theta = (1 - lr * weight_decay) * theta
    else:
        g = g + weight_decay * theta
    m = state["m"] = beta1 * state.get("m", 0 * g) + (1 - beta1) * g
    v = state["v"] = beta2 * state.get("v", 0 * g) + (1 - beta2) * g * g
    if amsgrad:
        v = state["vmax"] = torch.maximum(state.get("vmax", v), v)
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return theta - lr * m_hat / (v_hat.sqrt() + eps)


CASES = {
    "SGD, decay": (torch.optim.SGD, _sheet_sgd, dict(lr=0.1, weight_decay=0.01)),
    "momentum, dampening, decay": (torch.optim.SGD, _sheet_sgd,
                                   dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    "Nesterov": (torch.optim.SGD, _sheet_sgd, dict(lr=0.1, momentum=0.9, nesterov=True)),
    "Adam, L2": (torch.optim.Adam, _sheet_adam, dict(lr=0.01, weight_decay=0.1)),
    "AMSGrad": (torch.optim.Adam, _sheet_adam, dict(lr=0.01, amsgrad=True, betas=(0.5, 0.6))),
    "AdamW": (torch.optim.AdamW, _sheet_adam, dict(lr=0.01, weight_decay=0.1)),
}


@pytest.mark.claim("The cheat sheet's update rules for SGD, SGD with momentum, Adam, AMSGrad and "
                   "AdamW are what torch.optim computes, step for step",
                   page="cheat-sheet.md#update-rules", capture=None)
@pytest.mark.parametrize("case", CASES)
def test_the_update_rules_as_written_are_torchs(case):
    optimizer_class, rule, hyper = CASES[case]
    generator = torch.Generator().manual_seed(0)
    param = nn.Parameter(torch.randn(64, dtype=torch.float64, generator=generator))
    theta, state = param.detach().clone(), {}
    optimizer = optimizer_class([param], **hyper)
    sheet_hyper = dict(hyper)
    if optimizer_class is torch.optim.AdamW:
        sheet_hyper["decoupled"] = True
    for _ in range(6):
        g = torch.randn(64, dtype=torch.float64, generator=generator)
        param.grad = g.clone()
        optimizer.step()
        theta = rule(theta, g, state, **sheet_hyper)
        assert torch.allclose(param.detach(), theta, rtol=1e-12, atol=1e-14), case


@pytest.mark.claim("With momentum 0.9 the step on a constant gradient tends to 10γg, "
                   "γg(1−τ)/(1−μ) in general", page="cheat-sheet.md#update-rules", capture=None)
def test_the_constant_gradient_step():
    from snippets.update_rules import sgd_moves

    for mu, tau in [(0.9, 0.0), (0.9, 0.5), (0.99, 0.0)]:
        assert sgd_moves([0.1] * 3000, momentum=mu, dampening=tau)[-1] == pytest.approx(
            0.1 * (1 - tau) / (1 - mu), rel=1e-9)
    assert r"\(10\,\gamma g\)" in _text(SHEET)


@pytest.mark.claim("One step from θ = 1, g = 0, γ = λ = 0.1: Adam's L2 decay gives 0.90000001, "
                   "AdamW 0.99; AdamW's decay is γλ a step, so doubling lr doubles it; AdamW is "
                   "Adam(decoupled_weight_decay=True), with default decay 0.01 against Adam's 0",
                   page="cheat-sheet.md#l2-vs-decoupled", capture=None)
def test_the_l2_versus_decoupled_box():
    hyper = dict(lr=0.1, weight_decay=0.1, betas=(0.0, 0.0), eps=1e-8, dtype=torch.float64)
    adam, _ = scalar_step(torch.optim.Adam, 0.0, **hyper)
    adamw, _ = scalar_step(torch.optim.AdamW, 0.0, **hyper)
    assert round(adam, 8) == 0.90000001 and round(adamw, 12) == 0.99
    defaults = {c: inspect.signature(c).parameters["weight_decay"].default
                for c in (torch.optim.Adam, torch.optim.AdamW)}
    assert defaults == {torch.optim.Adam: 0, torch.optim.AdamW: 0.01}
    assert same_run(lambda ps: torch.optim.Adam(ps, decoupled_weight_decay=True, weight_decay=0.01),
                    torch.optim.AdamW)
    decays = [1 - scalar_step(torch.optim.AdamW, 0.0, lr=lr, weight_decay=0.1, dtype=torch.float64)[0]
              for lr in (0.01, 0.02, 0.04)]
    assert decays == pytest.approx([0.001, 0.002, 0.004], rel=1e-12)  # γλ: it scales with lr
    box = " ".join(_text(SHEET).split('!!! warning "L2 versus decoupled', 1)[1].split("\n\n", 1)[0].split())
    assert "Adam 0.90000001 (float64), AdamW 0.99" in box and "`weight_decay` 0.01, Adam's 0" in box
    assert "so doubling lr doubles it" in box
    # issue 17, item 5: torch's AdamW does not tune λ and lr apart
    assert "tune apart" not in _text(SHEET)


# ---- the cheat sheet: accumulation and checkpointing rules ------------------------------------

@pytest.mark.claim("Accumulation lowers the activations only: on the GPU the peak above the floor "
                   "fell from K = 1 to K = 8 while the floor (parameters, gradients, state) did not "
                   "move", page="cheat-sheet.md#rules-of-thumb", capture="grad_accumulation")
def test_the_accumulation_numbers_on_the_capture():
    rows = load_capture("grad_accumulation")["data"]["per_k"]
    assert [r["K"] for r in rows] == [1, 2, 4, 8]
    assert len({r["baseline_allocated_bytes"] for r in rows}) == 1
    peaks = [r["peak_above_baseline_bytes"] for r in rows]
    assert all(a > b for a, b in zip(peaks, peaks[1:]))
    assert all(abs(r["ms"] / rows[0]["ms"] - 1) < 0.10 for r in rows)
    assert "activations fall \\(K\\)-fold, nothing else" in _text(SHEET)


@pytest.mark.claim("Accumulating K micro-batch means divided by K gives the big batch's gradient "
                   "within float32 rounding; a forgotten /K moves SGD K times too far and Adam not "
                   "at all, except its L2 decay", page="cheat-sheet.md#rules-of-thumb", capture=None)
def test_the_accumulation_rules_on_the_cpu():
    from snippets.accumulation import max_grad_difference

    torch.manual_seed(123)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    X, T = torch.randn(64, 16), torch.randn(64, 4)
    big = copy.deepcopy(model)
    nn.MSELoss()(big(X), T).backward()
    g_max = max(p.grad.abs().max().item() for p in big.parameters())
    for K in (1, 2, 4, 8, 16, 64):
        assert max_grad_difference(model, nn.MSELoss(), X, T, K) < 16 * 2**-23 * g_max
    K, hyper = 4, dict(dtype=torch.float64, lr=0.1)
    sgd = [1 - scalar_step(torch.optim.SGD, g, **hyper)[0] for g in (K * 0.5, 0.5)]
    assert sgd[0] == pytest.approx(K * sgd[1], rel=1e-12)
    adam = [scalar_step(torch.optim.Adam, g, **hyper)[0] for g in (K * 0.5, 0.5)]
    assert adam[0] == pytest.approx(adam[1], abs=1e-8)
    # with L2 decay, the forgotten /K is decay λ/K: K(g + (λ/K)θ) normalises like g + (λ/K)θ
    wrong = scalar_step(torch.optim.Adam, K * 0.5, weight_decay=0.4, **hyper)[0]
    right = scalar_step(torch.optim.Adam, 0.5, weight_decay=0.4 / K, **hyper)[0]
    assert wrong == pytest.approx(right, abs=1e-8)


@pytest.mark.claim("One checkpoint around everything barely lowers the peak: on the GPU it stayed "
                   "within 5 % of no checkpointing, for the slowest step; per block gave the lowest "
                   "peak", page="cheat-sheet.md#rules-of-thumb", capture="checkpointing")
def test_the_checkpointing_numbers_on_the_capture():
    runs = {r["name"]: r["measured"] for r in load_capture("checkpointing")["data"]["blocks"]["strategies"]}
    peak = {k: r["peak_bytes"] for k, r in runs.items()}
    step = {k: r["step_ms"] for k, r in runs.items()}
    assert peak["per block"] < peak["selective"] < peak["one checkpoint"] <= peak["none"]
    assert peak["one checkpoint"] > 0.95 * peak["none"]
    assert step["none"] < step["per block"] < step["one checkpoint"]
    assert step["selective"] < step["per block"]
    assert "One checkpoint around everything barely lowers the peak" in " ".join(_text(SHEET).split())


@pytest.mark.claim("One checkpoint around a whole network trims the peak by exactly two activations "
                   "on a chain of equal layers, whatever its length, and not at all on MLP blocks",
                   page="cheat-sheet.md#rules-of-thumb", capture=None)
def test_one_checkpoint_trims_two_activations_on_a_chain():
    assert [one_checkpoint_trims(n) for n in (4, 8, 16)] == [2.0, 2.0, 2.0]
    assert one_checkpoint_trims(8, blocks=True) == 0.0


# ---- the cheat sheet: when to use which -------------------------------------------------------

WHICH_ROWS = {"`SGD`": "SGD", "`SGD` + momentum": "SGD momentum", "`Adam`": "Adam", "`AdamW`": "AdamW"}


@pytest.mark.claim("Memory of each optimizer in fp32: SGD 8, SGD with momentum 12, Adam and AdamW "
                   "16 bytes per parameter, each column cited to its source",
                   page="cheat-sheet.md#when-to-use-which", capture=None)
def test_the_when_to_use_which_table():
    rows = _table(SHEET, "")
    assert [row[0] for row in rows] == list(WHICH_ROWS)
    assert "scales with lr" in rows[3][2], "AdamW's row: in torch its decay scales with lr"
    assert "\\sqrt{\\hat v}" in rows[3][2], "AdamW's row: what decoupling buys"
    for row in rows:
        name = WHICH_ROWS[row[0]]
        assert row[4] == f"{4 * (2 + state_tensors(name))} B/param", row
    cited = set(re.findall(r"\[([A-Z]+)(?:, ([A-Z]+))?\]", _text(SHEET).split("## How every number")[0]))
    keys = {k for pair in cited for k in pair if k}
    assert keys == {"KB", "W", "LH", "C", "S", "L"}
    sources = _text(SHEET).split("## Sources", 1)[1]
    for key in keys:
        assert f"- [{key}] " in sources, f"[{key}] is cited but not listed under Sources"


# ---- talk tracks ------------------------------------------------------------------------------

TRACKS = "talk-tracks.md"
WORDS_IN_90_SECONDS = 90 * 150 // 60   # 150 words a minute
MIN_WORDS = 180                         # 72 s: below that, a track says too little
MEAN_SENTENCE, LONGEST_SENTENCE = 20, 30
REQUIRED_TRACKS = ("SGD vs SGD with momentum", "Adam vs SGD", "Adam vs AdamW", "Gradient accumulation",
                   "Activation checkpointing", "None vs zero gradients", "The foreach peak, and fused",
                   "Where the bytes go in mixed precision", "ZeRO and FSDP")
TRACK_DIV = '<div class="talk-track" markdown>'


def talk_tracks() -> dict[str, tuple[str, str]]:
    """{title: (script, proof line)} for every track of the page; the script as Markdown, its
    HTML comments (the value bindings) dropped."""
    tracks = {}
    for section in re.split(r"^## ", _text(TRACKS), flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        title = re.sub(r"\s*\{#[^}]*\}\s*$", "", title)
        if TRACK_DIV not in body:  # the checks and the sources
            continue
        script, _, rest = body.partition(TRACK_DIV)[2].partition("</div>")
        proof = rest.split("Proof:", 1)[1].split("\n\n")[0]
        tracks[title] = (re.sub(r"<!--.*?-->", "", script, flags=re.DOTALL).strip(), proof)
    return tracks


def _said(script: str) -> str:
    """The script as it is read: link targets and emphasis dropped, on one line."""
    script = re.sub(r"<!--.*?-->", "", script, flags=re.DOTALL)
    script = re.sub(r"\]\([^)]*\)", "]", script)
    script = re.sub(r"[*\[\]]", "", script)
    return " ".join(script.split())


def sentences(script: str) -> list[str]:
    """The rule study-kit.js uses for the cue cards: a sentence ends at . ! or ? followed by a space
    and a capital letter or a digit."""
    said = _said(script)
    return re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", said) if said else []


def spoken_words(script: str) -> int:
    """Words as they are said: link targets, comments and backticks dropped, a captured value
    counted as its number and unit."""
    script = re.sub(r"\{\{[^}]*\}\}", "NUMBER UNIT", _said(script))
    return sum(1 for token in script.replace("`", "").split() if re.search(r"\w", token))


def track_stats() -> dict[str, tuple[int, float, int]]:
    """{title: (words, mean words per sentence, longest sentence in words)}."""
    stats = {}
    for title, (script, _) in talk_tracks().items():
        lengths = [spoken_words(s) for s in sentences(script)]
        stats[title] = (sum(lengths), sum(lengths) / len(lengths), max(lengths))
    return stats


@pytest.mark.claim("Every talk track reads aloud in 72 to 90 seconds at 150 words a minute (180 to "
                   "225 words), with sentences of at most 20 words on average and none over 30",
                   page="talk-tracks.md", capture=None)
def test_every_talk_track_can_be_said_in_ninety_seconds():
    tracks = talk_tracks()
    assert tuple(tracks) == REQUIRED_TRACKS
    assert WORDS_IN_90_SECONDS == 225
    for title, (words, mean, longest) in track_stats().items():
        assert MIN_WORDS <= words <= WORDS_IN_90_SECONDS, f"{title}: {words} words"
        assert mean <= MEAN_SENTENCE, f"{title}: {mean:.1f} words a sentence on average"
        assert longest <= LONGEST_SENTENCE, f"{title}: a sentence of {longest} words"


def test_every_talk_track_has_the_shape_of_an_answer():
    """The answer in one sentence, then the why, an example with a number, the trap; no code read
    aloud, no toy measurement; a link to the proof."""
    for title, (script, proof) in talk_tracks().items():
        paragraphs = [p for p in script.split("\n\n") if p.strip()]
        assert len(paragraphs) >= 3, f"{title}: {len(paragraphs)} paragraphs"
        assert len(sentences(paragraphs[0])) == 1, f"{title}: the answer is not one sentence"
        assert any(s.startswith("The trap") for s in sentences(paragraphs[-1])), (
            f"{title}: the last paragraph names no trap")
        assert "`" not in script, f"{title}: code read aloud"
        assert "{{" not in script, f"{title}: a toy measurement; quote a ratio or a real-scale value"
        assert re.search(r"\d", script), f"{title}: no number to hold"
        assert LINK.findall(proof), f"{title}: the Proof line links no chapter"
    section = _text(TRACKS).split("\n## ")
    for part in section[1:]:
        if TRACK_DIV in part:
            assert "<!-- bind" in part.partition(TRACK_DIV)[2].partition("</div>")[0], (
                f"{part.splitlines()[0]}: no number of the track is bound to the checks")


def test_the_word_count_counts_what_is_said():
    # Adam, keeps, exp_avg, see, chapter, 3, NUMBER, UNIT, of, state
    assert spoken_words("Adam keeps `exp_avg`, see [chapter 3](adam.md#x): {{ a/b }} of state.") == 10
    assert spoken_words("Two words. <!-- bind 1: x --> **Three** more words.") == 5


def test_the_sentence_rule():
    assert sentences("One at 0.9, up. Two [link](a.md#b) here! 3 is a start? and not this.") == [
        "One at 0.9, up.", "Two link here!", "3 is a start? and not this."]
    assert sentences("") == []


# ---- drills -----------------------------------------------------------------------------------

DRILLS = "drills.md"
QUESTION = re.compile(r"^### (?P<n>\d+)\. (?P<q>.+?)(?:\s*\{#(?P<id>[^}]+)\})?$", re.MULTILINE)


def drills() -> list[tuple[int, str, str]]:
    """(number, question, answer block) for every drill."""
    text = _text(DRILLS)
    found = list(QUESTION.finditer(text))
    result = []
    for match, following in zip(found, found[1:] + [None]):
        end = following.start() if following else text.index("## Sources")
        question = COMMENT.sub("", match["q"]).strip()
        result.append((int(match["n"]), question, text[match.end():end]))
    return result


def drill_topics() -> dict[str, int]:
    """{section title: number of drills in it}."""
    counts = {}
    for section in re.split(r"^## ", _text(DRILLS).split("## Sources")[0], flags=re.MULTILINE)[1:]:
        title = section.partition("\n")[0].strip()
        counts[title] = len(QUESTION.findall(section))
    return {title: n for title, n in counts.items() if n}


def test_the_drills_have_hidden_answers_computed_on_the_page():
    questions = drills()
    assert len(questions) >= 30
    assert drill_topics()["At real scale"] >= 8
    assert [n for n, _, _ in questions] == list(range(1, len(questions) + 1))
    for n, question, body in questions:
        assert '??? success answer "Answer"' in body, f"drill {n}: no folded answer"
        answer = body.split('??? success answer "Answer"', 1)[1]
        assert "```python" in answer, f"drill {n}: no code computes the answer"
        assert LINK.search(answer), f"drill {n}: the answer links no chapter"
        assert "\\(" not in question, f"drill {n}: math in a heading shows raw in the table of contents"


def test_the_study_plans_four_drills_are_there():
    plan = [q for _, q, _ in drills() if q.endswith("(plan)")]
    assert len(plan) == 4
    for words in ("optimizer state do SGD, SGD with momentum and AdamW", "AdamW's decay differs from Adam's L2",
                  "perfectly simulate a large batch", "checkpointing help activations but not optimizer state"):
        assert any(words in q for q in plan), words


def test_the_drill_helpers():
    assert smallest_k(16, lambda b: 10 * b, 40) == 4
    assert smallest_k(16, lambda b: 10 * b, 160) == 1
    with pytest.raises(ValueError):
        smallest_k(16, lambda b: 10 * b, 5)
    wrong, right = token_weights([10, 30])
    assert wrong == [pytest.approx(1 / 20), pytest.approx(1 / 60)] and right == pytest.approx(1 / 40)
    assert math.isclose(sum(w * n for w, n in zip(wrong, [10, 30])), 1.0)  # K means of K: sums to 1 too


# ---- rehearsal checklist and reading list -----------------------------------------------------

def test_every_checklist_line_links_to_its_proof():
    lines = [line for line in _text("checklist.md").splitlines() if line.startswith("- ☐ ")]
    text = _text("checklist.md")
    items = re.split(r"^- ☐ ", text, flags=re.MULTILINE)[1:]
    assert len(items) == len(lines) >= 20
    for item in items:
        item = item.split("\n\n")[0].split("\n## ")[0]
        assert LINK.search(item), f"a checklist line links nowhere: {item[:60]!r}"
    assert sum("**(plan)**" in item for item in items) == 5  # Appendix B's five lines


PLAN_SOURCES = (
    "https://docs.pytorch.org/docs/stable/generated/torch.optim.SGD.html",
    "https://docs.pytorch.org/docs/stable/generated/torch.optim.Adam.html",
    "https://docs.pytorch.org/docs/stable/generated/torch.optim.AdamW.html",
    "https://docs.pytorch.org/docs/stable/checkpoint.html",
    "https://arxiv.org/abs/1412.6980",
    "https://arxiv.org/abs/1711.05101",
    "https://www.lightly.ai/blog/which-optimizer-should-i-use-for-my-machine-learning-project",
)
KIT = {"cheat-sheet.md", "talk-tracks.md", "drills.md", "checklist.md", "reading-list.md"}
PAPER = re.compile(r"https://(?:arxiv\.org/abs|proceedings\.mlr\.press|openreview\.net)[^)\s>]*")


def test_the_reading_list_has_the_plans_sources_and_the_chapters_papers():
    text = _text("reading-list.md")
    for url in PLAN_SOURCES:
        assert f"]({url})" in text, f"missing from the reading list: {url}"
    cited = set()
    for page in sorted(DOCS.glob("*.md")):
        if page.name not in KIT and "\n## Sources" in (text_of := page.read_text(encoding="utf-8")):
            cited |= set(PAPER.findall(text_of.split("\n## Sources", 1)[1]))
    missing = sorted(url for url in cited if url not in text)
    assert not missing, f"papers the chapters cite, missing from the reading list: {missing}"
    entries = [e for e in re.split(r"^- ", text.split("## Sources")[0], flags=re.MULTILINE)[1:]]
    for entry in entries:
        assert LINK.search(entry), f"a reading-list entry names no chapter: {entry[:70]!r}"


# ---- single-digit multipliers and answers, which the prose-number guard exempts ---------------

def _spoken_phrases() -> dict[str, list[str]]:
    """Phrases of the talk tracks and drills whose small numbers come from live optimizers and the
    formulas (the prose guard exempts single digits)."""
    k = {name: state_tensors(name) for name in OPTIMIZERS}
    sgd, momentum, adam = 2 + k["SGD"], 2 + k["SGD momentum"], 2 + k["Adam"]
    held = {s: (s - 1) + 16 // s for s in (1, 2, 4, 8, 16)}
    best = min(held, key=held.get)
    fp32 = torch.finfo(torch.float32).bits // 8
    mixed = bytes_per_param("bf16 + fp32 master")
    plain = bytes_per_param("fp32")

    def activations(b):
        from examples.grad_accumulation import predicted_activation_bytes
        return predicted_activation_bytes(2048, 8, 10, b)

    return {
        TRACKS: [f"so persistent memory goes from {sgd}P to {momentum}P. In fp32 that is {4 * sgd} bytes",
                 f"Count the bytes: {adam}P persistent scalars against {sgd}P, so {4 * adam} bytes per "
                 f"fp32 parameter against {4 * sgd}.",
                 f"AdamW keeps {plain['params']} for the weight, {plain['grads']} for its gradient and "
                 f"{plain['state']} for the two moments.",
                 f"bf16 weights and gradients instead, {mixed['params']} plus {mixed['grads']} bytes.",
                 f"an fp32 master copy, {mixed['master']} bytes, and fp32 moments, {mixed['state']} bytes",
                 # kept gradients: one fp32 element per parameter
                 f"That is a pass over {fp32}P bytes each, every step"],
        DRILLS: [f"\\({4 * k['SGD']}\\), \\({4 * k['SGD momentum']}P\\) and \\({4 * k['AdamW']}P\\) bytes",
                 f"So \\(K = {smallest_k(32768, activations, 2**30)}\\), micro-batches of "
                 f"{32768 // smallest_k(32768, activations, 2**30)}",
                 f"\\(k = \\sqrt{{16}} = {best}\\)",
                 f"layers unchecked: {held[best]} activations instead of {held[1]}",
                 f"With bf16 weights that is {mixed['params']} + {mixed['master']} + {mixed['state']} = "
                 f"{mixed['params'] + mixed['master'] + mixed['state']} bytes per parameter"],
    }


@pytest.mark.parametrize("page", [TRACKS, DRILLS])
def test_the_small_numbers_said_in_tracks_and_drills(page):
    text = " ".join(_text(page).split())
    for phrase in _spoken_phrases()[page]:
        assert " ".join(phrase.split()) in text, f"{page}: expected {phrase!r}"
