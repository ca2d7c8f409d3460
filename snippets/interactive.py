"""The rules behind the site's interactive figures, in plain Python floats.

docs/assets/javascripts/figures/*.js does the same arithmetic in the same
order, so the page and this module agree bit for bit: float64 (JavaScript's
number) with + - * / and sqrt only (powers are running products, never
`**`, whose last bit may differ between C's pow and V8's), fp32 by rounding
each result (`fp32` here, Math.fround there) and bf16 by rounding fp32 bits.
One seeded generator (mulberry32) is written in both languages, so noisy
gradients, the regression's data and stochastic rounding replay exactly.

tests/figures_golden.py writes what these functions answer into
tests/golden/figures/; tests/test_figures.py runs the JavaScript against it
under Node, and these rules against torch.optim and torch's bf16 casts
(snippets.update_rules, snippets.weight_decay, snippets.low_precision_updates
state the same rules with torch).
"""

import math
import struct

MASK32 = 0xFFFFFFFF
ROUNDINGS = ("fp32", "nearest", "kahan", "stochastic")


# --8<-- [start:generator]
class Mulberry32:
    """A 32-bit generator small enough to write twice (Python and JS)."""

    def __init__(self, seed: int):
        self.state = seed & MASK32

    def next_u32(self) -> int:
        self.state = (self.state + 0x6D2B79F5) & MASK32
        t = self.state
        t = ((t ^ (t >> 15)) * (t | 1)) & MASK32
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & MASK32)) & MASK32
        return (t ^ (t >> 14)) & MASK32

    def uniform(self) -> float:
        """In [-1, 1): a multiple of 2**-23, exact in both languages."""
        return (self.next_u32() >> 8) / 8388608 - 1
# --8<-- [end:generator]


# --8<-- [start:bits]
def fp32(x: float) -> float:
    """x rounded to the nearest fp32 value (JavaScript: Math.fround)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def fp32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def from_fp32_bits(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & MASK32))[0]


def bf16_nearest(x: float) -> float:
    """An fp32 value rounded to bf16, ties to even (torch's cast)."""
    bits = fp32_bits(x)
    return from_fp32_bits((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000)


def bf16_stochastic(x: float, noise: int) -> float:
    """An fp32 value rounded up or down: add 16 random bits, truncate
    (snippets.low_precision_updates.stochastic_round_)."""
    return from_fp32_bits((fp32_bits(x) + noise) & 0xFFFF0000)
# --8<-- [end:bits]


# --- Figure 1: momentum (chapter 2) ----------------------------------------
def gradient_sequence(kind: str, steps: int = 50, seed: int = 2) -> list:
    """constant 1; alternating +1, -1; noisy: 1 + uniform in [-1.5, 1.5)."""
    if kind == "constant":
        return [1.0] * steps
    if kind == "alternating":
        return [1.0 if t % 2 == 0 else -1.0 for t in range(steps)]
    if kind == "noisy":
        rng = Mulberry32(seed)
        return [1 + 1.5 * rng.uniform() for _ in range(steps)]
    raise ValueError(f"unknown gradient sequence {kind!r}")


def momentum_steps(grads, *, lr, momentum, dampening=0.0, nesterov=False):
    """How far torch.optim.SGD moves theta at each step: lr times the
    direction of snippets.update_rules.sgd_update (buffer b_1 = g_1)."""
    steps, buf = [], None
    for g in grads:
        if momentum != 0:
            if buf is None:
                buf = g                       # the first step copies g
            else:
                buf = buf * momentum + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        steps.append(lr * g)
    return steps


def momentum_limit(*, lr, momentum, dampening=0.0) -> float:
    """The step under a constant gradient 1 tends to lr(1-tau)/(1-mu);
    without momentum there is no buffer, and no dampening either."""
    if momentum == 0:
        return lr
    return lr * (1 - dampening) / (1 - momentum)


# --- Figures 2 and 3: Adam and AdamW on one scalar ---------------------------
def adam_step(theta, g, state, *, lr, beta1, beta2, eps,
              weight_decay=0.0, decoupled=False):
    """One torch.optim.Adam/AdamW step on a scalar, in the order of the
    for-loop path (snippets.update_rules.adam_update). `state` holds
    m, v and the running powers beta1**t, beta2**t. Returns the new theta
    and what the step computed."""
    if decoupled:
        theta = theta * (1 - lr * weight_decay)       # AdamW: shrink first
    elif weight_decay != 0:
        g = g + weight_decay * theta                  # L2: into m and v
    m, v = state.get("m", 0.0), state.get("v", 0.0)
    # m.lerp_(g, 1 - beta1), as torch's lerp computes it
    w = 1 - beta1
    m = m + w * (g - m) if abs(w) < 0.5 else g - (g - m) * (1 - w)
    v = v * beta2 + (1 - beta2) * g * g
    power1 = state.get("power1", 1.0) * beta1
    power2 = state.get("power2", 1.0) * beta2
    bc1, bc2 = 1 - power1, 1 - power2
    denom = math.sqrt(v) / math.sqrt(bc2) + eps
    update = -lr / bc1 * m / denom
    state.update(m=m, v=v, power1=power1, power2=power2)
    return theta + update, {"g": g, "m": m, "v": v, "bc1": bc1, "bc2": bc2,
                            "m_hat": m / bc1, "v_hat": v / bc2,
                            "update": update}


def adam_states(grads, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """Figure 2: theta (from 0) and Adam's state after each step."""
    theta, state, rows = 0.0, {}, []
    for g in grads:
        theta, row = adam_step(theta, g, state, lr=lr, beta1=beta1,
                               beta2=beta2, eps=eps)
        rows.append({**row, "theta": theta})
    return rows


def decay_trajectories(*, lr, weight_decay, decoupled, steps=100,
                       scales=(1.0, 0.01)):
    """Figure 3: theta after each step, one list per gradient scale, from
    theta = 1 with g_t = (-1)**t * scale and default betas
    (snippets.weight_decay.decay_over_steps)."""
    runs = []
    for scale in scales:
        theta, state, thetas = 1.0, {}, []
        for t in range(steps):
            g = scale if t % 2 == 0 else -scale
            theta, _ = adam_step(theta, g, state, lr=lr, beta1=0.9,
                                 beta2=0.999, eps=1e-8,
                                 weight_decay=weight_decay,
                                 decoupled=decoupled)
            thetas.append(theta)
        runs.append(thetas)
    return runs


# --- Figure 4: storing updates in bf16 (chapter 7) ---------------------------
def store(weight, update, compensation, rounding, rng):
    """weight + update (both fp32 values) stored by `rounding`; returns
    the stored weight and the Kahan compensation (bf16)
    (snippets.low_precision_updates.apply_update_)."""
    if rounding == "fp32":
        return fp32(weight + update), compensation
    if rounding == "nearest":
        return bf16_nearest(fp32(weight + update)), compensation
    if rounding == "kahan":
        wanted = fp32(weight + fp32(update + compensation))
        stored = bf16_nearest(wanted)
        return stored, bf16_nearest(fp32(wanted - stored))
    if rounding == "stochastic":
        noise = rng.next_u32() >> 16
        return bf16_stochastic(fp32(weight + update), noise), compensation
    raise ValueError(f"unknown rounding {rounding!r}")


def add_repeatedly(weight, update, steps, rounding, seed=3):
    """Figure 4: a bf16 weight after `steps` additions of one fp32 update.
    Returns (weight, compensation); the weight starts as bf16(weight)."""
    rng, w, c = Mulberry32(seed), bf16_nearest(fp32(weight)), 0.0
    u = fp32(update)
    for _ in range(steps):
        w, c = store(w, u, c, rounding, rng)
    return w, c


def update_survival(weight, update, steps, seed=3) -> dict:
    """Figure 4: what each rounding makes of `steps` equal updates; the
    bf16 spacing at the weight (an update below half of it is lost to
    rounding to nearest), the exact target, and the share of
    steps * update that arrived in the weight (Kahan's buffer holds more)."""
    start, u = bf16_nearest(fp32(weight)), fp32(update)
    out = {"start": start, "update": u, "target": start + steps * u,
           "spacing": from_fp32_bits(fp32_bits(start) + 0x10000) - start}
    for rounding in ROUNDINGS:
        w, c = add_repeatedly(weight, update, steps, rounding, seed)
        out[rounding] = {"weight": w, "compensation": c, "total": w + c,
                         "arrived": (w - start) / (steps * u)}
    return out


def regression_problem(weights=16, examples=64, seed=1):
    """Least squares drawn from Mulberry32: X and y (float64 lists)."""
    rng = Mulberry32(seed)
    X = [[rng.uniform() for _ in range(weights)] for _ in range(examples)]
    true = [2 * rng.uniform() for _ in range(weights)]
    y = []
    for row in X:
        s = 0.0
        for x, w in zip(row, true):
            s += x * w
        y.append(s + 0.01 * rng.uniform())
    return X, y


def regression_run(rounding, *, lr=0.1, steps=400, seed=1, noise_seed=2):
    """Gradient descent from w = 0, as in
    snippets.low_precision_updates.regression_run but smaller (16 weights,
    64 examples) and with the loss and gradient in float64: only the
    storing of the fp32 update differs between runs."""
    X, y = regression_problem(seed=seed)
    n, count = len(X[0]), len(X)
    w, comp = [0.0] * n, [0.0] * n
    rng, losses, last_change = Mulberry32(noise_seed), [], 0
    for step in range(steps):
        residual = []
        for row, target in zip(X, y):
            s = 0.0
            for x, wj in zip(row, w):
                s += x * wj
            residual.append(s - target)
        loss = 0.0
        for r in residual:
            loss += r * r
        losses.append(loss / count)
        before = list(w)
        for j in range(n):
            s = 0.0
            for i in range(count):
                s += X[i][j] * residual[i]
            u = fp32(-lr * (2 / count) * s)
            w[j], comp[j] = store(w[j], u, comp[j], rounding, rng)
        if w != before:
            last_change = step
    return {"losses": losses, "last_change": last_change, "weights": w}


# --- Figure 5: a training step's memory over time (chapters 1, 6, A) ---------
# GPT-2 small (124 M parameters) on 8 sequences of 1,024 tokens, AdamW: the
# memory calculator's running example.
TIMELINE_MODEL = dict(layers=12, hidden=768, heads=12, vocab=50257,
                      seq=1024, batch=8, optimizer="adamw")


def memory_timeline(*, checkpointing, micro_batches, implementation,
                    precision) -> dict:
    """Figure 5: the closed form's moments (snippets.memcalc.transformer)
    in time order. Micro-batch 1's forward and backward passes come from
    the estimate without accumulation; the later micro-batches, each alike
    (they meet the gradients accumulated so far), and the optimizer step
    from the estimate with `micro_batches`. The peak is that estimate's:
    its index in the timeline, bytes, phase and breakdown."""
    from snippets.memcalc.transformer import Shape, estimate_transformer
    options = dict(TIMELINE_MODEL, checkpointing=checkpointing,
                   implementation=implementation, precision=precision)
    last = estimate_transformer(Shape(**options,
                                      micro_batches=micro_batches))
    rows, part = [], "micro-batch 1"
    if micro_batches > 1:
        first = estimate_transformer(Shape(**options, micro_batches=1))
        rows = [{**m, "part": part} for m in first["moments"]
                if m["phase"] != "optimizer step"]
        part = ("micro-batch 2" if micro_batches == 2
                else f"micro-batches 2\u2013{micro_batches}")
    peak = len(rows) + last["peak_index"]
    for m in last["moments"]:
        rows.append({**m, "part": "optimizer step"
                     if m["phase"] == "optimizer step" else part})
    return {"moments": rows, "peak": peak, "bytes": last["peak"],
            "phase": last["phase"], "breakdown": last["breakdown"],
            "parameters": last["parameters"]}
