"""Chapter 1 (docs/memory.md): the four families, its figure, and what the
zero_grad capture must show for the page's claims to hold."""

from __future__ import annotations

import math

import pytest
import torch

from examples import zero_grad
from examples.render import figures_memory
from snippets.accounting import count_params, grads_nbytes
from snippets.captures import load_capture
from snippets.cuda_memory import ALLOCATOR_BLOCK, allocator_bytes
from snippets.iteration_peak import iteration_peak, tiny_mlp_adamw_peaks
from snippets.memory_families import family_bytes, tiny_mlp_adamw
from snippets.models import TinyMLP, wide_mlp

P = 35594
PER_EXAMPLE = (128 + 256) * 4  # TinyMLP's saved activations per example


# ---- the four families on the CPU ----------------------------------------


@pytest.mark.claim("TinyMLP under fp32 AdamW holds 4P bytes of parameters, "
                   "4P of gradients, 8P + 16 of state and 1,536 of "
                   "activations per example",
                   page="memory.md#the-four-families-at-a-glance")
@pytest.mark.parametrize("batch", [1, 32, 93, 371, 2048])
def test_families_follow_the_formulas(batch):
    families = tiny_mlp_adamw((batch,))[batch]
    assert families == {
        "parameters": 4 * P,
        "gradients": 4 * P,
        "optimizer state": 8 * P + 4 * 4,  # two moments, four step counters
        "activations": PER_EXAMPLE * batch,
    }


@pytest.mark.claim("TinyMLP's activations overtake its parameters from batch "
                   "93 and all its persistent memory from batch 371",
                   page="memory.md#activations")
def test_activations_overtake_the_parameters_at_93_and_all_persistent_at_371():
    """The page's two crossovers, found by searching, not by the formula."""
    torch.manual_seed(0)
    model = TinyMLP()
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 128)).sum().backward()
    optimizer.step()
    first = family_bytes(model, optimizer, torch.randn(1, 128))
    persistent = first["parameters"] + first["gradients"] + first[
        "optimizer state"]

    def activations(batch: int) -> int:
        return family_bytes(model, optimizer,
                            torch.randn(batch, 128))["activations"]

    # the first batch above a threshold: the one before is not above it
    # (activations grow with the batch, checked between the two crossings)
    sizes = [1, 92, 93, 200, 370, 371, 999]
    counted = [activations(b) for b in sizes]
    assert counted == sorted(counted)
    assert activations(92) <= 4 * P < activations(93)
    assert 93 == math.floor(4 * P / PER_EXAMPLE) + 1
    assert activations(370) <= persistent < activations(371)


@pytest.mark.claim("The 128 → 256 → 10 MLP has P = 35,594 trainable "
                   "parameters", page="memory.md#counting-p")
def test_family_bytes_counts_a_forward_without_keeping_it():
    """Counting activations must leave nothing behind: a second count of the
    same batch gives the same bytes, and the gradients are untouched."""
    torch.manual_seed(0)
    model = TinyMLP()
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(8, 128)
    first = family_bytes(model, optimizer, x)
    assert first == family_bytes(model, optimizer, x)
    assert grads_nbytes(model) == 0 and first["optimizer state"] == 0
    assert count_params(model) == P


def test_the_figure_draws_the_tables_numbers():
    chart = figures_memory.families()
    data = tiny_mlp_adamw(figures_memory.BATCH_SIZES)
    ax = chart.figure.axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    expected = [data[b][f] / 1024 for f in figures_memory.FAMILIES
                for b in figures_memory.BATCH_SIZES]
    assert heights == pytest.approx(expected)
    assert "3072.0 KiB" in chart.alt and "KiB" in chart.caption


@pytest.mark.claim("The figure's diamonds are the counted peak of one "
                   "iteration, above the stacked bar at every batch size "
                   "shown", page="memory.md#the-four-families-at-a-glance")
def test_the_figures_diamonds_are_the_counted_peaks_above_every_bar():
    chart = figures_memory.families()
    sizes = figures_memory.BATCH_SIZES
    peaks = tiny_mlp_adamw_peaks(sizes)
    stacks = {b: sum(f.values()) for b, f in tiny_mlp_adamw(sizes).items()}
    (diamonds,) = [line for line in chart.figure.axes[0].get_lines()
                   if line.get_marker() == "D"]
    assert list(diamonds.get_ydata()) == pytest.approx(
        [peaks[b] / 1024 for b in sizes])
    assert all(peaks[b] > stacks[b] for b in sizes)
    assert "above the bar at every size shown" in chart.alt


# ---- the peak of an iteration against the stack ---------------------------


@pytest.fixture(scope="module")
def stepped():
    """TinyMLP and AdamW after one step, as chapter 1's table has them."""
    torch.manual_seed(0)
    model = TinyMLP()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 128)).sum().backward()
    optimizer.step()
    return model, optimizer


def _peak_and_stack(model, optimizer, batch):
    x, y = torch.randn(batch, 128), torch.randint(0, 10, (batch,))
    peak = iteration_peak(model, optimizer, x, y)
    return peak, sum(family_bytes(model, optimizer, x).values())


@pytest.mark.claim("Stacked, the four families do not bound an iteration's "
                   "peak: 812.2 KiB in the step at B = 32 against 604.2 "
                   "stacked, 6,571.2 KiB in backward at B = 2048 against "
                   "3,628.2", page="memory.md#the-four-families-at-a-glance")
def test_the_peak_of_an_iteration_exceeds_the_stack(stepped):
    model, optimizer = stepped
    small, small_stack = _peak_and_stack(model, optimizer, 32)
    large, large_stack = _peak_and_stack(model, optimizer, 2048)
    kib = lambda n: round(n / 1024, 1)  # noqa: E731
    assert (kib(small["step"]), kib(small_stack)) == (812.2, 604.2)
    assert small["step"] > small["forward and backward"]  # in the step
    assert (kib(large["forward and backward"]), kib(large_stack)) == (
        6571.2, 3628.2)
    assert large["forward and backward"] > large["step"]  # in backward
    # the step's peak: persistent memory plus two tensors' worth of the
    # largest weight (the for-loop's sqrt and quotient, chapter 3b)
    persistent = 4 * P + 4 * P + 8 * P + 4 * 4
    assert small["step"] == persistent + 2 * 256 * 128 * 4


@pytest.mark.claim("Beyond the stack, the backward peak grows by another "
                   "1,536 bytes per example",
                   page="memory.md#the-four-families-at-a-glance")
def test_the_backward_peak_grows_by_another_activations_worth(stepped):
    model, optimizer = stepped
    beyond = {}
    for batch in (512, 1024, 2048):
        peak, stack = _peak_and_stack(model, optimizer, batch)
        beyond[batch] = peak["forward and backward"] - stack
    per_example = [(beyond[2048] - beyond[1024]) / 1024,
                   (beyond[1024] - beyond[512]) / 512]
    assert per_example == [PER_EXAMPLE, PER_EXAMPLE]


# ---- the zero_grad example and its capture --------------------------------


def test_zero_grad_smoke_run_records_every_timing_the_page_reads():
    from tests.smoke import smoke_data

    data = smoke_data("zero_grad")
    assert set(data["ms"]) == {
        "zero_grad_none", "zero_grad_zeros", "backward_into_none",
        "backward_into_zeros", "iteration_set_to_none", "iteration_zeros"}
    assert all(v > 0 for v in data["ms"].values())
    assert data["grads_bytes_after_zeros"] == data["params_bytes"]
    assert data["param_tensors"] == 2 * zero_grad.SIZES["smoke"]["depth"] + 2


@pytest.fixture(scope="module")
def captured():
    return load_capture("zero_grad")["data"]


@pytest.mark.claim("Kept zeros cost each iteration a memset and an add, and "
                   "the add costs more than the memset",
                   page="memory.md#zero_grad-none-or-zeros",
                   capture="zero_grad")
def test_kept_zeros_cost_a_memset_and_an_add(captured):
    """'Keeping zeros costs a memset and an add': each timed pair is ordered,
    and the add (three passes over the gradients' bytes) outweighs the memset
    (one pass)."""
    ms = captured["ms"]
    assert ms["zero_grad_zeros"] > ms["zero_grad_none"]
    assert ms["backward_into_zeros"] > ms["backward_into_none"]
    assert ms["iteration_zeros"] > ms["iteration_set_to_none"]
    add = ms["backward_into_zeros"] - ms["backward_into_none"]
    assert add > ms["zero_grad_zeros"] - ms["zero_grad_none"]


@pytest.mark.claim("Rounding to 512-byte blocks adds 472 bytes to the GPU "
                   "model's 16 gradient tensors: only the head's 40-byte "
                   "bias is rounded",
                   page="memory.md#allocator-rounding", capture="zero_grad")
def test_the_captured_model_is_the_one_the_page_names(captured):
    cfg = captured["model"]
    with torch.device("meta"):  # shapes and bytes only, no 470 MB of weights
        model = wide_mlp(cfg["width"], cfg["depth"], cfg["classes"])
    assert captured["params_bytes"] == sum(p.nbytes for p in model.parameters())
    assert captured["param_tensors"] == len(list(model.parameters())) == 16
    rounding = sum(allocator_bytes(p.nbytes) - p.nbytes
                   for p in model.parameters())
    assert rounding == ALLOCATOR_BLOCK - 4 * cfg["classes"] == 472


@pytest.mark.claim("The first matrix products leave cuBLAS workspaces "
                   "allocated, a whole number of 512-byte blocks",
                   page="memory.md#cublas-workspaces", capture="zero_grad")
def test_the_workspaces_are_whole_allocator_blocks(captured):
    a = captured["allocated"]
    workspaces = a["baseline"] - a["before_first_iteration"]
    assert workspaces > 0 and workspaces % ALLOCATOR_BLOCK == 0


# ---- what the home page and chapter 1 say about the test run ---------------


@pytest.mark.claim("The torch version the page says its blocks ran under is "
                   "the one the tests run", page="memory.md#sources")
@pytest.mark.parametrize("page", ["index.md", "memory.md"])
def test_the_torch_version_the_pages_name_is_the_one_the_tests_run(page):
    """'Every block ... runs under pytest with torch 2.13 (CPU build)': the
    pages say which torch checked their outputs; that must stay true."""
    import re

    from tests.docblocks import DOCS

    text = (DOCS / page).read_text(encoding="utf-8")
    named = set(re.findall(r"with\s+torch\s+(\d+\.\d+)", text))
    running = ".".join(torch.__version__.split(".")[:2])
    assert named == {running}, (page, named, torch.__version__)


# ---- what the summary must carry with its numbers (issue 17 item 14, issue 23 item 12) ----------


def _summary() -> str:
    from tests.docblocks import DOCS

    text = (DOCS / "memory.md").read_text(encoding="utf-8")
    return " ".join(text[:text.index("**Questions it answers:**")].split())


@pytest.mark.claim("Kept zeros cost a memset and an add over the gradients' 4P bytes: the "
                   "summary gives the model's size and the iteration's length with the share",
                   page="memory.md", capture="zero_grad")
def test_the_summary_gives_the_kept_zeros_cost_its_setting(captured):
    summary = _summary()
    share = summary.index("{{ zero_grad/overhead_percent }}")
    setting = summary[summary.index("`set_to_none=False`"):share]
    for needed in ("a memset and an add over the gradients' \\(4P\\) bytes",
                   "{{ zero_grad/params }}", "{{ zero_grad/iteration_none }}",
                   "{{ zero_grad/overhead }}"):
        assert needed in setting, needed
    # the setting is the capture's: 117.5 M parameters, 16 fp32 tensors, the add > the memset
    assert captured["params_bytes"] // 4 == 117_510_154
    assert captured["grads_bytes_after_zeros"] == captured["params_bytes"]  # 4P bytes


@pytest.mark.claim("cuBLAS kept 65.0 MiB of workspaces: exactly two 32 MiB cuBLAS workspaces and "
                   "one 1 MiB cuBLASLt workspace, sizes torch picks per GPU and release",
                   page="memory.md#cublas-workspaces", capture="zero_grad")
def test_the_workspaces_are_two_32_mib_and_one_1_mib(captured):
    a = captured["allocated"]
    assert a["baseline"] - a["before_first_iteration"] == (2 * 32 + 1) * 2**20
    assert "a size torch picks per GPU architecture and release" in _summary()
