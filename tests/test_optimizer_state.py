"""snippets/optimizer_state.py and snippets/step_implementation.py, and the Markdown tables of
chapters 2 and 3 (the state machines and the cheat sheets) checked cell by cell against live
optimizers, so that editing a key, a dtype, a byte formula or a multiplier there fails a test."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from snippets.accounting import count_params, optimizer_state_nbytes
from snippets.models import TinyMLP
from snippets.optimizer_state import (
    checkpoint_nbytes, in_units_of_p, persistent_scalars, state_table, tensor_nbytes,
)
from snippets.step_implementation import StepKernels, tensors_in

DOCS = Path(__file__).resolve().parents[1] / "docs"

# The optimizer each label on the pages stands for.
OPTIMIZERS = {
    "SGD(lr)": lambda params: torch.optim.SGD(params, lr=0.1),
    "SGD(lr, momentum=μ)": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
    "Adam(lr)": lambda params: torch.optim.Adam(params, lr=1e-3),
    "Adam(lr, amsgrad=True)": lambda params: torch.optim.Adam(params, lr=1e-3, amsgrad=True),
}


def _trained(label: str, steps: int = 1, **model_kwargs):
    torch.manual_seed(0)
    model = TinyMLP(**model_kwargs)
    optimizer = OPTIMIZERS[label](model.parameters())
    x, y = torch.randn(16, model.net[0].in_features), torch.randint(0, model.net[-1].out_features, (16,))
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer


# ---- snippets/optimizer_state.py -------------------------------------------------------------

def test_state_table_reads_without_creating_entries():
    model, optimizer = TinyMLP(), torch.optim.Adam(TinyMLP().parameters())
    weight = next(model.parameters())  # not even one of this optimizer's parameters
    assert state_table(optimizer, weight) == "key  shape  dtype  device"
    assert len(optimizer.state) == 0  # a plain optimizer.state[weight] would have added one


def test_state_table_lists_every_key_and_shows_non_tensors():
    model, optimizer = _trained("Adam(lr, amsgrad=True)")
    lines = state_table(optimizer, model.net[2].bias).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    assert lines[2].split()[1:] == ["(10,)", "float32", "cpu"]
    # The shape torch <= 2.3 left for SGD(momentum=0): a key holding None.
    optimizer.state[model.net[2].bias] = {"momentum_buffer": None}
    assert state_table(optimizer, model.net[2].bias).splitlines()[1].split() == ["momentum_buffer", "None", "-", "-"]


def test_tensor_nbytes_walks_nested_containers():
    nested = {"a": torch.zeros(3), "b": [torch.zeros(2, dtype=torch.float64), (torch.zeros(4, dtype=torch.bfloat16), 1.5)],
              "c": "text", "d": None}
    assert tensor_nbytes(nested) == 3 * 4 + 2 * 8 + 4 * 2
    assert tensor_nbytes({}) == 0


@pytest.mark.claim("An optimizer's `state_dict()` holds the same bytes as its state, and "
                   "`torch.save` adds only records and structure",
                   page="sgd-momentum.md#the-checkpoint-size-cost")
@pytest.mark.parametrize("label", OPTIMIZERS)
def test_state_dict_holds_exactly_the_state_bytes_and_saves_them(label):
    _, optimizer = _trained(label)
    state_dict = optimizer.state_dict()
    assert tensor_nbytes(state_dict) == optimizer_state_nbytes(optimizer)
    saved, tensors = checkpoint_nbytes(state_dict), len(tensors_in(state_dict))
    # The payload, plus a zip record per tensor storage and the pickled structure.
    assert tensor_nbytes(state_dict) < saved < tensor_nbytes(state_dict) + 2048 + 512 * tensors


def test_checkpoint_nbytes_is_what_torch_save_writes(tmp_path):
    _, optimizer = _trained("Adam(lr)")
    # torch.save names the archive's records after the file's stem; a buffer gets "archive".
    path = tmp_path / "archive.pt"
    torch.save(optimizer.state_dict(), path)
    assert checkpoint_nbytes(optimizer.state_dict()) == path.stat().st_size
    restored = torch.load(path, weights_only=True)
    assert torch.equal(restored["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


@pytest.mark.claim("Persistent scalars are 2P, 3P, 4P and 5P for SGD, momentum, Adam and AMSGrad, "
                   "on any model", page="adam.md#measured-2p-3p-4p-5p")
@pytest.mark.parametrize("label, k", [("SGD(lr)", 0), ("SGD(lr, momentum=μ)", 1), ("Adam(lr)", 2), ("Adam(lr, amsgrad=True)", 3)])
@pytest.mark.parametrize("sizes", [dict(), dict(d_in=7, d_hidden=5, d_out=3)], ids=["TinyMLP", "other sizes"])
def test_persistent_scalars_are_k_plus_two_times_p(label, k, sizes):
    model, optimizer = _trained(label, **sizes)
    P = count_params(model)
    counts = persistent_scalars(model, optimizer)
    assert counts["params"] == counts["grads"] == P
    assert in_units_of_p(counts["state"], P) == f"{k}P"
    assert in_units_of_p(counts["params"] + counts["grads"] + counts["state"], P) == f"{k + 2}P"
    assert counts["other state"] == (len(list(model.parameters())) if label.startswith("Adam") else 0)


def test_persistent_scalars_count_no_grads_after_zero_grad():
    model, optimizer = _trained("SGD(lr, momentum=μ)")
    optimizer.zero_grad()
    assert persistent_scalars(model, optimizer)["grads"] == 0


def test_in_units_of_p_refuses_a_fraction():
    assert in_units_of_p(0, 7) == "0P"
    with pytest.raises(AssertionError, match="not a multiple"):
        in_units_of_p(15, 7)


@pytest.mark.claim("AdamW keeps exactly Adam's state", page="adam.md#3-sgd-vs-adam")
def test_adamw_keeps_exactly_adams_state():
    torch.manual_seed(0)
    model = TinyMLP()
    adam, adamw = torch.optim.Adam(model.parameters()), torch.optim.AdamW(copy.deepcopy(model).parameters())
    for optimizer in (adam, adamw):
        for p in optimizer.param_groups[0]["params"]:
            p.grad = torch.ones_like(p)
        optimizer.step()
    adam_keys = [sorted(s) for s in adam.state.values()]
    assert adam_keys == [sorted(s) for s in adamw.state.values()]
    assert optimizer_state_nbytes(adam) == optimizer_state_nbytes(adamw)


# ---- snippets/step_implementation.py ---------------------------------------------------------

def _kernels_of_second_step(optimizer_class, **kwargs) -> StepKernels:
    torch.manual_seed(0)
    model = TinyMLP()
    optimizer = optimizer_class(model.parameters(), **kwargs)
    for _ in range(2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(4, 128)), torch.tensor([0, 1, 2, 3])).backward()
        with StepKernels() as kernels:
            optimizer.step()
    return kernels


@pytest.mark.claim("With no flag a CPU step runs the for-loop: foreach is the default on "
                   "accelerators only",
                   page="optimizer-step.md#three-implementations-of-the-same-update")
@pytest.mark.parametrize("optimizer_class, kwargs", [
    (torch.optim.SGD, dict(lr=0.1)), (torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (torch.optim.Adam, dict()), (torch.optim.Adam, dict(amsgrad=True)),
])
@pytest.mark.parametrize("flags, expected", [
    ({}, "for-loop"), ({"foreach": False}, "for-loop"), ({"foreach": True}, "foreach"), ({"fused": True}, "fused"),
])
def test_the_implementation_is_told_by_its_kernels(optimizer_class, kwargs, flags, expected):
    # With no flag a CPU run takes the for-loop: foreach is the default on accelerators only.
    assert _kernels_of_second_step(optimizer_class, **kwargs, **flags).implementation() == expected


@pytest.mark.claim("Foreach Adam makes a whole copy of the parameters in one call; the for-loop "
                   "one tensor at a time; fused nothing",
                   page="optimizer-step.md#the-extra-peak-of-a-step")
def test_foreach_adam_materialises_sizeof_params_in_one_call():
    params = list(TinyMLP().parameters())
    loop = _kernels_of_second_step(torch.optim.Adam)
    foreach = _kernels_of_second_step(torch.optim.Adam, foreach=True)
    fused = _kernels_of_second_step(torch.optim.Adam, fused=True)
    assert loop.largest_new_nbytes() == max(p.nbytes for p in params)
    assert foreach.largest_new_nbytes() == sum(p.nbytes for p in params)
    assert fused.largest_new_nbytes() == 0


def test_in_place_calls_count_no_new_bytes():
    with StepKernels() as kernels:
        t = torch.zeros(10)
        t.add_(1)
        torch._foreach_mul_([t], 2.0)
        u = t * 2
    assert [nbytes for _, nbytes in kernels.calls] == [40, 0, 0, 40]
    assert kernels.implementation() == "foreach"
    assert u.sum().item() == 40.0


def test_tensors_in_flattens_args_and_kwargs():
    a, b, c = torch.zeros(1), torch.zeros(2), torch.zeros(3)
    assert [t.numel() for t in tensors_in([(a, [b]), {"x": c, "y": 1}, None])] == [1, 2, 3]


# ---- the Markdown tables on the pages --------------------------------------------------------

LABEL = re.compile(r"^\*\*`(?P<label>[^`]+)`\*\*")
CODE = re.compile(r"`([^`]+)`")


def _tables(page: str) -> list[tuple[str | None, list[str], list[list[str]]]]:
    """(label of the nearest **`...`** line above, header cells, body rows) for every table;
    HTML comments (value bindings) are dropped from the cells."""
    tables, label, block = [], None, []
    for line in (DOCS / page).read_text(encoding="utf-8").splitlines() + [""]:
        line = re.sub(r"\s*<!--.*?-->", "", line)
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if block:
            tables.append((label, block[0], block[2:]))
            block = []
        if match := LABEL.match(line):
            label = match["label"]
    return tables


def _formula(cell: str, P: int, n: int) -> int:
    """'\\(8P + 4n\\)' -> 8*P + 4*n, evaluated. Only digits, P, n, + and spaces are allowed."""
    text = cell.removeprefix("\\(").removesuffix("\\)")
    assert re.fullmatch(r"[0-9Pn+ ]+", text), f"not a byte formula: {cell!r}"
    return sum(int(term[:-1] or 1) * {"P": P, "n": n}[term[-1]] if term[-1] in "Pn" else int(term)
               for term in text.replace(" ", "").split("+"))


STATE_MACHINES = {"sgd-momentum.md": ["SGD(lr)", "SGD(lr, momentum=μ)"],
                  "adam.md": ["Adam(lr)", "Adam(lr, amsgrad=True)"]}


@pytest.mark.claim("Plain SGD keeps no state; momentum keeps one `momentum_buffer` with its "
                   "parameter's shape, dtype and device",
                   page="sgd-momentum.md#sgd-and-sgd-with-momentum-as-state-machines")
@pytest.mark.parametrize("page", STATE_MACHINES)
def test_state_machine_tables_match_optimizer_state(page):
    tables = [(label, rows) for label, header, rows in _tables(page) if header[0] == "key"]
    assert [label for label, _ in tables] == STATE_MACHINES[page]
    for label, rows in tables:
        model, optimizer = _trained(label, steps=2)
        for index, param in enumerate(model.parameters()):
            live = optimizer.state.get(param, {})
            # a row may name several keys ("`step`, `exp_avg`, ... | as for `Adam(lr)`")
            keys = [key for row in rows for key in CODE.findall(row[0])]
            assert keys == list(live), f"{page}, {label}: the table lists {keys}, the optimizer holds {list(live)}"
            for row in rows:
                where = row[1]
                for key in CODE.findall(row[0]):
                    value = live[key]
                    if where.startswith("as for "):
                        # the same state as another optimizer's table on the page
                        other = CODE.findall(where)[0]
                        _, reference = _trained(other, steps=2)
                        ref_param = reference.param_groups[0]["params"][index]
                        ref_value = reference.state[ref_param][key]
                        assert (value.shape, value.dtype, value.device) == (ref_value.shape, ref_value.dtype, ref_value.device)
                    elif where.startswith("the parameter's"):
                        assert (value.shape, value.dtype, value.device) == (param.shape, param.dtype, param.device)
                    else:
                        assert where.startswith("0-d, float32 (float64 under a float64 default), CPU"), \
                            f"{page}: unexpected cell {where!r}"
                        assert torch.get_default_dtype() == torch.float32
                        assert (value.shape, value.dtype, value.device.type) == ((), torch.float32, "cpu")


CHEAT_SHEETS = {"sgd-momentum.md": ["SGD(lr)", "SGD(lr, momentum=μ)"],
                "adam.md": ["SGD(lr)", "SGD(lr, momentum=μ)", "Adam(lr)", "Adam(lr, amsgrad=True)"]}


@pytest.mark.claim("State is 0, 4P, 8P + 4n and 12P + 4n bytes for SGD, momentum, Adam and "
                   "AMSGrad; checkpoints add the model's 4P",
                   page="adam.md#the-chapter-on-one-line-each")
@pytest.mark.parametrize("page", CHEAT_SHEETS)
def test_cheat_sheet_tables_match_measurements(page):
    [(header, rows)] = [(header, rows) for _, header, rows in _tables(page)
                        if header[:2] == ["optimizer", "state per parameter tensor"]]
    # every column says its unit: bytes and scalars are not the same thing (issue 8, item 6)
    assert header[1:5] == ["state per parameter tensor", "state (bytes)",
                           "persistent: params + grads + state (scalars)",
                           "checkpoint tensors, model + optimizer (bytes)"]
    assert [CODE.findall(row[0])[0] for row in rows] == CHEAT_SHEETS[page]
    for row in rows:
        model, optimizer = _trained(CODE.findall(row[0])[0])
        P, n = count_params(model), len(list(model.parameters()))
        keys = set(CODE.findall(row[1]))
        assert all(set(state) == keys for state in optimizer.state.values()), row
        assert len(optimizer.state) == (n if keys else 0), row
        assert optimizer_state_nbytes(optimizer) == _formula(row[2], P, n), row
        counts = persistent_scalars(model, optimizer)
        assert row[3] == f"\\({in_units_of_p(counts['params'] + counts['grads'] + counts['state'], P)}\\)", row
        both = tensor_nbytes(model.state_dict()) + tensor_nbytes(optimizer.state_dict())
        assert both == _formula(row[4], P, n), row


def test_formula_parser_reads_what_the_pages_write():
    assert _formula("\\(0\\)", 10, 3) == 0
    assert _formula("\\(4P\\)", 10, 3) == 40
    assert _formula("\\(12P + 4n\\)", 10, 3) == 132
    with pytest.raises(AssertionError):
        _formula("\\(2^P\\)", 10, 3)


@pytest.mark.claim("`capturable=True` needs an accelerator: on CPU parameters its first `step()` "
                   "refuses", page="adam.md#where-step-lives")
def test_capturable_adam_refuses_cpu_parameters():
    # Chapter 3: capturable=True keeps `step` on the parameter's device and needs an accelerator.
    param = nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([param], capturable=True)
    param.grad = torch.ones(3)
    with pytest.raises((AssertionError, RuntimeError), match="capturable"):
        optimizer.step()


@pytest.mark.claim("`fused=True` runs on the CPU, with `step` on the parameter's device in "
                   "float32 and the moments in the parameter's dtype",
                   page="adam.md#where-step-lives")
def test_fused_adam_runs_on_cpu_with_step_on_the_parameters_device():
    param = nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = torch.optim.Adam([param], fused=True)
    param.grad = torch.ones_like(param)
    optimizer.step()
    step = optimizer.state[param]["step"]
    assert (step.device, step.dtype, step.shape) == (param.device, torch.float32, ())
    assert optimizer.state[param]["exp_avg"].dtype == torch.float64  # the moments follow the param


# ---- the GPU capture as chapters 2 and 3 show it ----------------------------------------------

def _capture():
    from snippets.captures import load_capture

    return load_capture("optimizer_state")


@pytest.mark.parametrize("item", ["state_bytes", "step_peak"])
def test_captured_tables_fit_the_column_and_name_their_units(item):
    from examples.render import optimizer_state as render

    table = render.TABLES[item](_capture())
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert len(header) <= 6, f"{item}: {len(header)} columns do not fit the column at 1280 px"
    for cell in header[1:]:
        if cell != "`step` on":
            assert re.search(r"\((bytes|ratio)\)$", cell), f"{item}: no unit in {cell!r}"


def test_captured_values_are_those_of_the_capture():
    from examples.render import mib
    from examples.render import optimizer_state as render

    capture = _capture()
    gpu = capture["data"]["optimizers"]
    values = {name: value(capture) for name, value in render.VALUES.items()}
    P = gpu["Adam"]["P"]
    assert values["p_millions"] == f"{P / 1e6:.1f} million"
    assert int(values["n_tensors"]) == gpu["Adam"]["n_param_tensors"]
    model = capture["data"]["model"]
    assert (int(values["width"]), int(values["depth"])) == (model["width"], model["depth"])
    assert values["momentum_state"] == mib(4 * P)
    assert values["adam_state"] == mib(8 * P + 4 * gpu["Adam"]["n_param_tensors"])
    momentum = gpu["SGD momentum"]
    rounding = momentum["allocated_growth_bytes"] - sum(momentum["state_bytes_by_key"].values())
    assert values["momentum_rounding"] == f"{rounding:,} bytes"
    adam = gpu["Adam"]
    assert values["adam_temporaries"] == mib(adam["step_peak_extra_bytes"] - adam["allocated_growth_bytes"])


def test_the_pages_values_exist():
    from examples.render import optimizer_state as render

    for page in ("sgd-momentum.md", "adam.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        used = set(re.findall(r"\{\{\s*optimizer_state/([a-z0-9_]+)\s*\}\}", text))
        assert used and used <= set(render.VALUES), (page, used - set(render.VALUES))
