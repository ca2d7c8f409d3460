"""Tables and values for docs/captures/zero_grad.json: allocated memory
through backward and zero_grad, and what keeping zeroed gradients costs in
time."""

from __future__ import annotations

from examples.render import markdown_table, mib


def memory(capture: dict) -> str:
    a = capture["data"]["allocated"]
    base = a["baseline"]
    rows = [
        ["parameters, input and workspaces (baseline)", mib(base), "—"],
    ]
    for label, key in (
        ["after `loss.backward()`", "after_backward"],
        ["after `zero_grad()` (set_to_none=True)",
         "after_zero_grad_set_to_none"],
        ["after backward, then `zero_grad(set_to_none=False)`",
         "after_zero_grad_zeros"],
    ):
        rows.append([label, mib(a[key]), mib(a[key] - base)])
    return markdown_table(["moment", "memory_allocated()", "above baseline"],
                          rows)


def ms(value: float) -> str:
    return f"{value:.2f}"


def timing(capture: dict) -> str:
    t = capture["data"]["ms"]
    rows = []
    for label, none, zeros in (
        ["`zero_grad()` alone", "zero_grad_none", "zero_grad_zeros"],
        ["forward + backward", "backward_into_none", "backward_into_zeros"],
        ["forward + backward + `zero_grad()`, back to back",
         "iteration_set_to_none", "iteration_zeros"],
    ):
        rows.append([label, ms(t[none]), ms(t[zeros]),
                     f"{t[zeros] - t[none]:+.2f}"])
    return markdown_table(
        ["median time (ms)", "set_to_none=True", "set_to_none=False",
         "difference"], rows)


def _ms_value(key: str):
    return lambda capture: f"{capture['data']['ms'][key]:.2f} ms"


def _difference(none: str, zeros: str):
    def value(capture: dict) -> str:
        t = capture["data"]["ms"]
        return f"{t[zeros] - t[none]:.2f} ms"
    return value


def overhead_percent(capture: dict) -> str:
    t = capture["data"]["ms"]
    extra = t["iteration_zeros"] / t["iteration_set_to_none"] - 1
    return f"{extra:.0%}"


def params_millions(capture: dict) -> str:
    return f"{capture['data']['params_bytes'] / 4 / 1e6:.1f} million"


def grads_mib(capture: dict) -> str:
    a = capture["data"]["allocated"]
    return mib(a["after_backward"] - a["baseline"])


def workspace_mib(capture: dict) -> str:
    a = capture["data"]["allocated"]
    return mib(a["baseline"] - a["before_first_iteration"])


TABLES = {"memory": memory, "timing": timing}
VALUES = {
    "params": params_millions,
    "grads": grads_mib,
    "workspace": workspace_mib,
    "memset": _ms_value("zero_grad_zeros"),
    "set_none": _ms_value("zero_grad_none"),
    "backward_none": _ms_value("backward_into_none"),
    "backward_zeros": _ms_value("backward_into_zeros"),
    "accumulate": _difference("backward_into_none", "backward_into_zeros"),
    "iteration_none": _ms_value("iteration_set_to_none"),
    "iteration_zeros": _ms_value("iteration_zeros"),
    "overhead": _difference("iteration_set_to_none", "iteration_zeros"),
    "overhead_percent": overhead_percent,
}
