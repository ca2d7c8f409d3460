"""Tables for docs/captures/zero_grad.json: allocated memory through backward and zero_grad."""

from __future__ import annotations

from examples.render import markdown_table, mib


def memory(capture: dict) -> str:
    d = capture["data"]
    a = d["allocated"]
    base = a["baseline"]
    rows = [
        ["parameters, input and workspaces (baseline)", mib(base), "—"],
        ["after `loss.backward()`", mib(a["after_backward"]), mib(a["after_backward"] - base)],
        ["after `zero_grad()` (set_to_none=True)", mib(a["after_zero_grad_set_to_none"]), mib(a["after_zero_grad_set_to_none"] - base)],
        ["after backward, then `zero_grad(set_to_none=False)`", mib(a["after_zero_grad_zeros"]), mib(a["after_zero_grad_zeros"] - base)],
    ]
    return markdown_table(["moment", "memory_allocated()", "above baseline"], rows)


def timing(capture: dict) -> str:
    ms = capture["data"]["ms"]
    rows = [
        ["`zero_grad(set_to_none=False)` alone (a memset of every gradient)", f"{ms['zero_grad_zeros']:.3f}"],
        ["forward + backward + `zero_grad()` (None)", f"{ms['iteration_set_to_none']:.3f}"],
        ["forward + backward + `zero_grad(set_to_none=False)`", f"{ms['iteration_zeros']:.3f}"],
    ]
    return markdown_table(["what is timed (median)", "ms"], rows)


TABLES = {"memory": memory, "timing": timing}
