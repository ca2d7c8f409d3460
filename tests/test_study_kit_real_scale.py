"""The study kit, second edition: its real-scale numbers, the corrections of issue 17 that live on
the kit's pages, the home page's evening route and the study plan's traps.

The real-scale tables of the cheat sheet are parsed here and compared, cell by cell, with
snippets/real_scale.py, whose three sources are checked in turn: the calculator's presets (the
published parameter counts), chapter 8's ZeRO formula, and the per-layer term of Korthikanti et
al.'s formula as the calculator's baselines module computes it.
"""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch import nn

from snippets.memcalc.baselines import korthikanti
from snippets.memcalc.families import parameter_count, preset
from snippets.real_scale import (
    GB, MODELS, RANKS, SEQ, activation_bytes_per_layer, activations_kib, params, per_rank_gb,
    per_token_per_layer, states_gb,
)
from snippets.zero_formulas import RECIPES, zero_bytes_per_rank
from tests.docblocks import DOCS
from tests.test_study_kit import LINK, SHEET, TRACKS, _table, _text, sentences, talk_tracks

# The published totals (Hugging Face model cards and configs)
PUBLISHED = {"1B": 1_235_814_400, "7B": 6_738_415_616, "8B": 8_030_261_248,
             "70B": 70_553_706_496}


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---- the sources of the real-scale numbers --------------------------------------------------------

@pytest.mark.claim("The real-scale table's models have their published parameter counts: "
                   "Llama-3.2-1B 1,235,814,400, Llama-2-7B 6,738,415,616, Llama-3-8B 8,030,261,248, "
                   "Llama-3.1-70B 70,553,706,496", page="cheat-sheet.md#real-scale", capture=None)
def test_the_models_have_their_published_counts():
    assert {size: params(size) for size in MODELS} == PUBLISHED
    assert {size: parameter_count(preset(name)) for size, name in MODELS.items()} == PUBLISHED


@pytest.mark.parametrize("checkpointing", ["none", "selective", "full"])
@pytest.mark.parametrize("seq, batch, hidden, heads", [(4096, 1, 4096, 32), (2048, 8, 8192, 64),
                                                       (1000, 3, 768, 12)])
def test_the_activation_term_is_the_calculators_korthikanti(seq, batch, hidden, heads, checkpointing):
    """korthikanti() is 16 bytes a parameter plus `layers` times the per-layer term: with P = 0 and
    one layer it is the term itself, and with more layers it scales."""
    term = activation_bytes_per_layer(seq, batch, hidden, heads, checkpointing)
    assert korthikanti(0, 1, seq, batch, hidden, heads, checkpointing) == term
    assert korthikanti(10**9, 32, seq, batch, hidden, heads, checkpointing) == 16 * 10**9 + 32 * term


@pytest.mark.claim("A transformer layer keeps 34h + 5as bytes of 16-bit activations per token, 34h "
                   "without the attention matrices (a fused kernel or selective recomputation), 2h "
                   "with full checkpointing (Korthikanti et al., Eq. 1)",
                   page="cheat-sheet.md#real-scale", capture=None)
def test_activations_per_token_per_layer():
    for size, name in MODELS.items():
        d = preset(name)
        none, selective, full = (per_token_per_layer(d, c) for c in ("none", "selective", "full"))
        assert none == 34 * d.hidden + 5 * d.heads * SEQ
        assert (selective, full) == (34 * d.hidden, 2 * d.hidden)
        assert activations_kib(size) == [none / 1024, selective / 1024, full / 1024]
        assert selective / full == 17


def test_per_rank_bytes_are_chapter_8s_formula():
    for size in MODELS:
        P = params(size)
        assert per_rank_gb(size) == [zero_bytes_per_rank(P, RANKS, s, RECIPES["mixed"]).total / GB
                                     for s in range(4)]
        # the closed forms of the table's caption: 16P, 4P + 12P/N, 2P + 14P/N, 16P/N
        N = RANKS
        expected = [16 * P, 4 * P + 12 * P / N, 2 * P + 14 * P / N, 16 * P / N]
        assert per_rank_gb(size) == pytest.approx([b / GB for b in expected], rel=1e-9)
        assert states_gb(size)["16P"] == per_rank_gb(size)[0]


# ---- the tables as the cheat sheet prints them ----------------------------------------------------

def _cell(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


@pytest.mark.claim("Model states of the four models in GB: 2P, 4P, 16P (AdamW, fp32 or mixed) and "
                   "8P (pure bf16); per rank on 8 GPUs under DDP and ZeRO 1-3; activations in KiB per "
                   "token per layer at 4096 tokens", page="cheat-sheet.md#real-scale", capture=None)
def test_the_real_scale_tables_cell_by_cell():
    states, ranks, activations = (_table(SHEET, "model", which) for which in range(3))
    assert [row[0] for row in states] == [row[0] for row in ranks] == list(MODELS)
    assert [row[0] for row in activations] == list(MODELS)
    for row, size in zip(states, MODELS):
        gb = states_gb(size)
        assert row[1:] == [_cell(gb["params"], 2)] + [_cell(gb[k], 1) for k in ("2P", "4P", "16P", "8P")]
    for row, size in zip(ranks, MODELS):
        assert row[1:] == [_cell(gb, 1) for gb in per_rank_gb(size)], size
    for row, size in zip(activations, MODELS):
        d = preset(MODELS[size])
        assert row[1:] == [f"{d.hidden:,}", str(d.heads)] + [_cell(k, 0) for k in activations_kib(size)]
    text = _flat(_text(SHEET))
    assert "Per rank on 8 GPUs, mixed AdamW, GB:" in text and RANKS == 8
    assert "Activations, KiB per token per layer, 4096 tokens:" in text and SEQ == 4096
    # what the tables leave out, and where the rest is computed (chapter 8, the calculator)
    assert ("a step's temporaries and buffers come on top ([chapter 8](zero-fsdp.md#the-formula); "
            "peaks per rank: [the calculator](memory-calculator.md))") in text


def test_the_cheat_sheet_quotes_no_toy_measurement():
    sheet = _text(SHEET).split('<div class="kit-sheet" markdown>', 1)[1].split("</div>", 1)[0]
    assert "{{" not in sheet, "a captured toy measurement on the cheat sheet; quote a ratio or real scale"


# ---- issue 17's items on the kit's pages --------------------------------------------------------

@pytest.mark.claim("Under DDP with token losses, each rank's loss is its summed token loss times the "
                   "world size over the global token count: DDP's average over ranks then gives the "
                   "one-process big batch's gradient; the global count alone gives 1/world size of it",
                   page="cheat-sheet.md#rules-of-thumb", capture=None)
def test_the_ddp_token_divisor():
    torch.manual_seed(0)
    w = torch.randn(8, requires_grad=True)
    ranks = [torch.randn(n, 8) for n in (10, 30, 24)]
    N, world = sum(len(x) for x in ranks), len(ranks)

    def grad(x, divisor):
        return torch.autograd.grad((x @ w).pow(2).sum() / divisor, w)[0]

    big = grad(torch.cat(ranks), N)
    assert torch.allclose(sum(grad(x, N) * world for x in ranks) / world, big)
    assert torch.allclose(sum(grad(x, N) for x in ranks) / world * world, big)
    assert not torch.allclose(sum(grad(x, len(x)) for x in ranks) / world, big)
    formula = r"per-rank loss = Σ token losses × world size / \(N_\text{global}\)"
    assert formula in _flat(_text(SHEET))
    assert r"per-rank loss = Σ token losses × world size / \(N_\text{global}\)" in _flat(_text("checklist.md"))
    assert "times the world size" not in _text(SHEET) + _text("checklist.md")


@pytest.mark.claim("Per-block checkpointing costs about one extra forward, up to a third more compute; "
                   "on chapter 6's two-matmul MLP blocks the non-reentrant checkpoint stops early, at "
                   "half a forward", page="cheat-sheet.md#rules-of-thumb", capture=None)
def test_the_checkpointing_rule_of_thumb():
    from snippets.checkpointing import block_stack, count_step, no_checkpoint, per_block

    torch.manual_seed(0)
    blocks, x = block_stack(16, 4), torch.randn(64, 16)
    plain, checkpointed = (count_step(blocks, x, f) for f in (no_checkpoint, per_block))
    forward = plain["forward_flops"]
    assert (checkpointed["step_flops"] - plain["step_flops"]) / forward == 0.5
    # one full extra forward against forward + backward (backward about twice the forward)
    assert forward / plain["step_flops"] <= 1 / 3
    sheet = _flat(_text(SHEET))
    assert ("about one extra forward, up to a third more compute (half a forward on chapter 6's MLP "
            "blocks, which stop early)") in sheet
    track = _flat(talk_tracks()["Activation checkpointing"][0])
    assert "The cost is about one extra forward, up to a third more compute." in track
    assert "On chapter six's small blocks the rerun stopped early, at half a forward." in track


def _head_after(steps: list[bool], set_to_none: bool) -> float:
    """A head trained at the steps marked True and sitting out the others; SGD with momentum."""
    torch.manual_seed(0)
    body, head = nn.Linear(4, 4), nn.Linear(4, 1)
    opt = torch.optim.SGD([*body.parameters(), *head.parameters()], lr=0.1, momentum=0.9)
    before = head.weight.detach().clone()
    for uses_head in steps:
        opt.zero_grad(set_to_none=set_to_none)
        h = body(torch.randn(8, 4))
        (head(h).sum() if uses_head else h.sum()).backward()
        opt.step()
    return (head.weight.detach() - before).abs().max().item()


@pytest.mark.claim("A head never used has no .grad, so it stays still under zeros as under None; a "
                   "head trained earlier that then sits out batches stays still under None and "
                   "drifts under zeros", page="talk-tracks.md#zero-grad", capture=None)
def test_the_head_that_sits_out():
    assert _head_after([False] * 3, set_to_none=False) == 0.0
    assert _head_after([False] * 3, set_to_none=True) == 0.0
    moved_by_training = _head_after([True], set_to_none=False)
    assert _head_after([True, False, False], set_to_none=True) == moved_by_training
    assert _head_after([True, False, False], set_to_none=False) > moved_by_training
    track = _flat(talk_tracks()["None vs zero gradients"][0])
    assert "The trap is a head trained earlier that then sits out some batches." in track
    assert "A head never used has no gradient at all, so it stays still either way." in track


def test_kept_zeros_are_said_with_their_mechanism_not_a_toy_percentage():
    track = _flat(talk_tracks()["None vs zero gradients"][0])
    assert "%" not in track and "36" not in track
    assert "cost a memset now and an add into the kept tensor at the next backward" in track
    assert "That is a pass over 4P bytes each, every step, so the cost grows with the model" in track


# ---- the home page: the evening route and the plan's traps ----------------------------------------

def _route() -> list[str]:
    home = _text("index.md")
    route = home.split("## Tonight: a 90-minute route", 1)[1].split("<span id=", 1)[0]
    return [step for step in re.split(r"^\d\. ", route, flags=re.MULTILINE)[1:]]


def test_the_evening_route():
    steps = _route()
    assert len(steps) == 7
    minutes = [int(re.match(r"\*\*[^,]+, (\d+) minutes\.\*\*", step)[1]) for step in steps]
    assert sum(minutes) == 90
    for step in steps:
        assert LINK.search(step), f"a step of the route links nowhere: {step[:60]!r}"
    assert "](checklist.md)" in steps[-1], "the route ends with the rehearsal checklist"
    linked = {page for step in steps for page, _ in LINK.findall(step)}
    assert {"cheat-sheet.md", "talk-tracks.md", "drills.md", "checklist.md"} <= linked
    # every track is said aloud on the way
    said = {anchor.lstrip("#") for step in steps for page, anchor in LINK.findall(step)
            if page == "talk-tracks.md" and anchor}
    anchors = set(re.findall(r"^## .*\{#([^}]+)\}", _text(TRACKS), flags=re.MULTILINE)) - {"checks"}
    assert said == anchors
    # the chapter table stays on the home page
    home = _text("index.md")
    assert home.index("## Tonight") < home.index("## The chapters")
    assert len([line for line in home.split("## The chapters")[1].splitlines()
                if line.startswith("| [")]) == 9


@pytest.mark.claim("The study plan's name filter decays an RMSNorm gain and spares subnet.weight; "
                   "torch.cuda.amp warns as deprecated; at batch 8 its checkpoint demo's activations "
                   "are under 1 % of its parameters, and one checkpoint around everything trims nothing "
                   "on MLP blocks", page="index.md#what-the-plan-gets-wrong", capture=None)
def test_what_the_plan_gets_wrong():
    from snippets.accounting import count_params
    from snippets.checkpointing import DeepMLP
    from snippets.drills import one_checkpoint_trims
    from snippets.param_groups import TrapNet, names_of, seed_param_groups

    net = TrapNet()
    decayed = names_of(net, seed_param_groups(net, 0.1)[0]["params"])
    assert "rms.weight" in decayed and "subnet.weight" not in decayed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.amp.GradScaler(enabled=False)
        torch.cuda.amp.autocast(enabled=False)
    assert [w.category for w in caught].count(FutureWarning) == 2
    with torch.device("meta"):
        seed_model = DeepMLP(d=2048, depth=14)
    assert 2 * 14 * 8 * 2048 * 4 < 0.01 * 4 * count_params(seed_model)
    assert one_checkpoint_trims(8, blocks=True) == 0.0
    box = _flat(_text("index.md").split('!!! warning "What the plan gets wrong"', 1)[1].split("\n\n??? ")[0])
    for words in ("the activations are under 1 % of the parameters",
                  "spares `subnet.weight` and decays an `RMSNorm` gain",
                  "uses `torch.cuda.amp`**, which warns as deprecated since torch 2.4",
                  "`torch.amp.GradScaler(\"cuda\")`", "`time.time()`"):
        assert words in box, words
    assert "](index.md#what-the-plan-gets-wrong)" in _text(SHEET), "the cheat sheet links the box"


# ---- the in-page modes: the markup the script needs, and one rule for sentences -------------------

def test_the_pages_carry_what_the_script_needs():
    script = (DOCS / "assets/javascripts/study-kit.js").read_text(encoding="utf-8")
    tracks = _text(TRACKS)
    assert tracks.count('<div class="talk-track" markdown>') == len(talk_tracks())
    assert '<div class="kit-self-test" id="self-test" markdown>' in _text("drills.md")
    # the cue cards split sentences by the rule the word test uses
    assert r"split(/(?<=[.!?])\s+(?=[A-Z0-9])/)" in script
    assert sentences("A b. C d") == ["A b.", "C d"]
    assert re.search(r"PRACTICE_SECONDS = 90;", script)
