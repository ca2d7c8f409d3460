"""A plan of what fits: every strategy for a decoder on N GPUs of a given
memory, each with its largest micro-batch and per-rank peak, best first.

    optimizer-memory plan --model llama-3-8b --gpus 8 --budget 80GiB

The strategies: precision (bf16-mixed, bf16, fp32) x optimizer and its
implementation x checkpointing (none, full) x sharding (DDP,
ZeroRedundancyOptimizer, ZeRO 1-3, fully_shard with and without
resharding after forward) x CPU offload (none, optimizer state, and with
ZeRO-3 or fully_shard the parameters too). The closed form of
snippets/memcalc/decoder.py answers each in about a millisecond: memory is
affine in the micro-batch, so two estimates give a guess that one or two
more confirm.

Best first means, first, the closest to the standard recipe: precision in
the order bf16-mixed, fp32, pure bf16 (which loses small updates, chapter
7), and optimizer in the order AdamW, 8-bit Adam, Adafactor, SGD with
momentum (the further from AdamW, the more the training itself changes).
Within a recipe, the most tokens a rank trains per step for the compute it
spends: a micro-batch counts three quarters with full checkpointing (the
recomputed forward makes four passes of the three, a third more compute)
and half with offloading (the optimizer step on the CPU); ties go to the
lower peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from snippets.memcalc.decoder import trace_decoder
from snippets.memcalc.families import Decoder
from snippets.memcalc.sharding import Sharding, holdings, per_rank

PRECISIONS = ("bf16-mixed", "fp32", "bf16")   # closest to the standard first
OPTIMIZERS = (("adamw", "fused"), ("adam8bit", "fused"),
              ("adafactor", "foreach"), ("sgd-momentum", "fused"))
CHECKPOINTING = ("none", "full")
LIMIT = 4096


@dataclass(frozen=True)
class Option:
    precision: str
    optimizer: str
    implementation: str
    checkpointing: str
    sharding: Sharding
    micro_batch: int
    peak: int
    cpu: int

    @property
    def strategy(self) -> str:
        s = self.sharding
        name = s.strategy
        if s.reshard_after_forward is False:
            name += " (no reshard)"
        if s.offload != "none":
            name += f"+offload {s.offload}"
        return name

    @property
    def score(self) -> float:
        speed = (0.75 if self.checkpointing == "full" else 1.0) * (
            0.5 if self.sharding.offload != "none" else 1.0)
        return self.micro_batch * speed


def shardings(gpus: int) -> list[Sharding]:
    if gpus == 1:
        return [Sharding()]
    out = [Sharding("ddp", gpus), Sharding("zero-redundancy", gpus)]
    for stage in ("zero1", "zero2", "zero3", "fsdp2"):
        offloads = ["none", "optimizer"] + (
            ["params"] if stage in ("zero3", "fsdp2") else [])
        for offload in offloads:
            out.append(Sharding(stage, gpus, offload=offload))
    out.append(Sharding("fsdp2", gpus, reshard_after_forward=False))
    return out


def _largest(d, seq, precision, optimizer, impl, ckpt, sharding, budget):
    """(largest micro-batch, its peak, CPU bytes), 0 when none fits."""
    known = {}

    def peak(batch):
        t = trace_decoder(d, batch, seq, precision, ckpt)
        if not known:
            known.update(holdings(t, optimizer, impl, precision, sharding))
        r = per_rank(t, optimizer, impl, precision, sharding, known)
        return r["peak"]
    one = peak(1)
    if one > budget:
        return 0, one, known.get("cpu", 0)
    slope = max(peak(2) - one, 1)
    guess = min(LIMIT, 1 + (budget - one) // slope)
    while guess > 1 and peak(guess) > budget:
        guess = max(1, guess - max(1, guess // 64))
    while guess < LIMIT and peak(guess + 1) <= budget:
        guess += 1
    return guess, peak(guess), known.get("cpu", 0)


def plan(d: Decoder, gpus: int, budget: int, seq: int = 4096,
         precisions=PRECISIONS, optimizers=OPTIMIZERS,
         checkpointing=CHECKPOINTING) -> list[Option]:
    """Every option that fits `budget` bytes per GPU, best first."""
    if not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus must be a positive whole number, "
                         f"not {gpus!r}")
    if budget <= 0:
        raise ValueError("budget must be positive")
    fits = []
    for precision in precisions:
        for optimizer, impl in optimizers:
            for ckpt in checkpointing:
                for sharding in shardings(gpus):
                    try:
                        batch, peak, cpu = _largest(
                            d, seq, precision, optimizer, impl, ckpt,
                            sharding, budget)
                    except ValueError:       # a combination that cannot
                        continue             # run (adafactor under ZeRO)
                    if batch:
                        fits.append(Option(precision, optimizer, impl, ckpt,
                                           sharding, batch, peak, cpu))
    order = [name for name, _ in OPTIMIZERS]
    return sorted(fits, key=lambda o: (PRECISIONS.index(o.precision),
                                       order.index(o.optimizer),
                                       -o.score, o.peak))


def table(options: list[Option], rows: int = 12) -> str:
    """The first `rows` options, at most 80 characters a line."""
    gib = 2 ** 30
    lines = [f"{'strategy':24} {'precision':10} {'optimizer':12} "
             f"{'impl':7} {'ckpt':4} {'batch':>5} {'GiB':>5} {'CPU':>5}"]
    for o in options[:rows]:
        lines.append(f"{o.strategy:24} {o.precision:10} {o.optimizer:12} "
                     f"{o.implementation:7} {o.checkpointing:4} "
                     f"{o.micro_batch:5} {o.peak / gib:5.1f} "
                     f"{o.cpu / gib:5.1f}")
    if not options:
        lines.append("nothing fits: more GPUs, a larger budget or a "
                     "shorter sequence")
    return "\n".join(lines)
