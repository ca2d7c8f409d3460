"""The golden cases that tie the interactive figures to snippets/interactive.py.

`python -m tests.figures_golden` writes tests/golden/figures/<figure>.json,
one file per module of docs/assets/javascripts/figures/: control settings
(the defaults, the settings tests/test_figures_browser.py reaches, and many
drawn with a fixed seed), each with what snippets/interactive.py answers.
tests/test_figures.py regenerates them and requires the files to match, and
runs the modules under Node (tests/figures_golden.js), which must give the
same numbers to the last bit.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from snippets import interactive as rules

GOLDEN_DIR = Path(__file__).parent / "golden" / "figures"
SEQUENCES = ("constant", "alternating", "noisy")
ADAM_START = [1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, 0.0, 0.0, 2.0]
BETA2 = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999)
DECAY_LRS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
WEIGHTS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
TIMELINE_PRECISIONS = ("fp32", "bf16-autocast", "bf16-mixed", "bf16")
TIMELINE_STEPS = ("foreach", "for-loop", "fused")
UPDATES = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 0.001,
           0.002, 0.005, 0.01, 0.02, 0.05, 0.1)

# What the browser test reaches, control by control (besides the defaults).
VISITED = {
    "momentum": [dict(mu=0.99, tau=0.0, nesterov=False, gradients="constant"),
                 dict(mu=0.99, tau=0.0, nesterov=False,
                      gradients="alternating"),
                 dict(mu=0.99, tau=0.0, nesterov=True,
                      gradients="alternating"),
                 dict(mu=0.99, tau=0.1, nesterov=False,
                      gradients="alternating")],
    "adam-state": [dict(gradients=[0.5, -2.0, 3.0, 0.0, 0.001], beta1=0.9,
                        beta2=0.999, eps=1e-8),
                   dict(gradients=[0.5, -2.0, 3.0, 0.0, 0.001], beta1=0.99,
                        beta2=0.999, eps=1e-8),
                   dict(gradients=[0.5, -2.0, 3.0, 0.0, 0.001], beta1=0.99,
                        beta2=0.9, eps=1e-8)],
    "weight-decay": [dict(lr=0.01, weight_decay=0.12, steps=100),
                     dict(lr=0.1, weight_decay=0.12, steps=100),
                     dict(lr=0.1, weight_decay=0.12, steps=200)],
    "bf16-rounding": [dict(weight=1, update=0.0005, steps=100),
                      dict(weight=100, update=0.0005, steps=100),
                      dict(weight=100, update=0.0005, steps=1000)],
    "memory-timeline": [
        dict(checkpointing="full", micro_batches=1,
             implementation="foreach", precision="fp32"),
        dict(checkpointing="full", micro_batches=4,
             implementation="foreach", precision="fp32"),
        dict(checkpointing="full", micro_batches=4,
             implementation="for-loop", precision="fp32"),
        dict(checkpointing="selective", micro_batches=4,
             implementation="for-loop", precision="bf16-mixed")],
}


def shared_cases() -> list[dict]:
    cases = []
    for seed in (0, 1, 2, 3, 2026, 0xFFFFFFFF):
        rng = rules.Mulberry32(seed)
        u32 = [rng.next_u32() for _ in range(16)]
        uniform = [rng.uniform() for _ in range(16)]
        cases.append({"input": {"seed": seed, "count": 16},
                      "output": {"u32": u32, "uniform": uniform}})
    return cases


def momentum_output(x: dict) -> dict:
    grads = rules.gradient_sequence(x["gradients"])
    return {"sgd": rules.momentum_steps(grads, lr=x["lr"], momentum=0.0),
            "momentum": rules.momentum_steps(
                grads, lr=x["lr"], momentum=x["mu"], dampening=x["tau"],
                nesterov=x["nesterov"]),
            "limit": rules.momentum_limit(lr=x["lr"], momentum=x["mu"],
                                          dampening=x["tau"])}


def momentum_cases(rng: random.Random) -> list[dict]:
    settings = [dict(mu=0.9, tau=0.0, nesterov=False, gradients="constant")]
    settings += VISITED["momentum"]
    for gradients in SEQUENCES:
        for k in (0, 50, 90, 99, rng.randint(1, 98)):
            for d in (0, 3, rng.randint(4, 10)):
                settings.append(dict(mu=k / 100, tau=d / 10, nesterov=False,
                                     gradients=gradients))
                if k and not d:
                    settings.append(dict(mu=k / 100, tau=0.0, nesterov=True,
                                         gradients=gradients))
    return [{"input": {"lr": 0.1, **s}, "output": momentum_output(
        {"lr": 0.1, **s})} for s in settings]


def adam_cases(rng: random.Random) -> list[dict]:
    settings = [dict(gradients=ADAM_START, beta1=0.9, beta2=0.999, eps=1e-8)]
    settings += VISITED["adam-state"]
    for _ in range(24):
        count = rng.randint(1, 40)
        grads = [rng.choice([0.0, 1.0, -1.0, 2.0, 1e-3, -1e3, 0.25])
                 * rng.choice([1, 1, -0.5, 3]) for _ in range(count)]
        settings.append(dict(
            gradients=grads, beta1=rng.randint(0, 99) / 100,
            beta2=rng.choice(BETA2), eps=float(f"1e-{rng.randint(1, 12)}")))
    cases = []
    for s in settings:
        x = {"lr": 0.001, **s}
        rows = rules.adam_states(x["gradients"], lr=x["lr"], beta1=x["beta1"],
                                 beta2=x["beta2"], eps=x["eps"])
        cases.append({"input": x, "output": {"rows": rows}})
    return cases


def decay_cases(rng: random.Random) -> list[dict]:
    settings = [dict(lr=0.01, weight_decay=0.1, steps=100)]
    settings += VISITED["weight-decay"]
    for _ in range(8):
        settings.append(dict(lr=rng.choice(DECAY_LRS),
                             weight_decay=rng.randint(0, 100) / 100,
                             steps=rng.choice([50, 100, 200, 400])))
    cases = []
    for s in settings:
        x = {**s, "scales": [1.0, 0.01]}
        out = {name: rules.decay_trajectories(
            lr=x["lr"], weight_decay=x["weight_decay"], steps=x["steps"],
            scales=x["scales"], decoupled=decoupled)
            for name, decoupled in (("l2", False), ("decoupled", True))}
        cases.append({"input": x, "output": out})
    return cases


def bf16_cases(rng: random.Random) -> list[dict]:
    settings = [dict(weight=1, update=0.001, steps=100)]
    settings += VISITED["bf16-rounding"]
    for _ in range(50):
        settings.append(dict(weight=rng.choice(WEIGHTS),
                             update=rng.choice(UPDATES),
                             steps=rng.choice([1, 10, 100, 1000])))
    cases = [{"input": {"part": "update", **s},
              "output": rules.update_survival(**s)} for s in settings]
    for lr in (0.05, 0.1, 0.2):
        runs = {r: rules.regression_run(r, lr=lr) for r in rules.ROUNDINGS}
        cases.append({"input": {"part": "regression", "lr": lr},
                      "output": {"runs": runs}})
    return cases


def timeline_cases(rng: random.Random) -> list[dict]:
    """Figure 5: the defaults, the settings the browser test reaches, every
    precision and checkpointing with K from 1 to 8, and a random sample."""
    settings = [dict(checkpointing="none", micro_batches=1,
                     implementation="foreach", precision="fp32")]
    settings += VISITED["memory-timeline"]
    for i, precision in enumerate(TIMELINE_PRECISIONS):
        for j, checkpointing in enumerate(("none", "full", "selective")):
            settings.append(dict(checkpointing=checkpointing,
                                 micro_batches=1 + (3 * i + j) % 8,
                                 implementation=TIMELINE_STEPS[j],
                                 precision=precision))
    for _ in range(12):
        settings.append(dict(
            checkpointing=rng.choice(["none", "full", "selective"]),
            micro_batches=rng.randint(1, 8),
            implementation=rng.choice(TIMELINE_STEPS),
            precision=rng.choice(TIMELINE_PRECISIONS)))
    return [{"input": s, "output": rules.memory_timeline(**s)}
            for s in settings]


def figures() -> dict[str, list[dict]]:
    rng = random.Random(2026)
    return {"shared": shared_cases(), "momentum": momentum_cases(rng),
            "adam-state": adam_cases(rng), "weight-decay": decay_cases(rng),
            "bf16-rounding": bf16_cases(rng),
            "memory-timeline": timeline_cases(rng)}


def write() -> list[Path]:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, cases in figures().items():
        path = GOLDEN_DIR / f"{name}.json"
        lines = [json.dumps(case, separators=(",", ":")) for case in cases]
        path.write_text('{"cases": [\n' + ",\n".join(lines) + "\n]}\n",
                        encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(f"wrote {path}")
