"""optimizer-memory: a training step's memory per GPU, from shapes or a model.

    optimizer-memory --layers 32 --hidden 4096 --heads 32 --vocab 32000 \\
        --seq 4096 --batch 1 --precision bf16-mixed --checkpointing full \\
        --budget 80GiB
    optimizer-memory --params 7e9 --seq 4096 --optimizer adam8bit
    optimizer-memory --model llama-3-8b --strategy fsdp2 --ranks 8
    optimizer-memory --model path/to/config.json    # or org/name, or
    optimizer-memory --model torchvision:resnet50   # traced, not closed
    optimizer-memory plan --model llama-3.1-70b --gpus 8 --budget 80GiB

Prints the breakdown at the peak, the phase of the peak, the memory that
persists between steps and, with --budget, the largest micro-batch that
fits. Bad input gets one line naming the valid choices and exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys

from snippets.memcalc.optimizers import IMPLEMENTATIONS, OPTIMIZERS
from snippets.memcalc.sharding import OFFLOAD, STRATEGIES, Sharding
from snippets.memcalc.families import PRESETS
from snippets.memcalc.transformer import (ATTENTION, CHECKPOINTING,
                                          FAMILIES, PRECISIONS, Shape,
                                          estimate_transformer,
                                          largest_micro_batch)

PROG = "optimizer-memory"
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
         "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
         "tib": 2**40}


class UsageError(Exception):
    """Bad input: the message is the one line the user sees."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):                # one line, no usage block
        raise UsageError(message)


def positive(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive whole number, not {text!r}") from None
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(
            f"must be a positive whole number, not {text!r}")
    return int(value)


def size(text: str) -> int:
    """'80GiB', '80 GB', '8.5e10' -> bytes."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match and match[2].lower()
    if not match or unit not in UNITS:
        raise argparse.ArgumentTypeError(
            f"must be a size such as 80GiB or 8e10 (units: B, KB, MB, GB, "
            f"TB, KiB, MiB, GiB, TiB), not {text!r}")
    try:
        value = float(match[1]) * UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a size such as 80GiB, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text!r}")
    return int(value)


def parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: "--micro-batch 8" must not mean --micro-batches.
    p = _Parser(prog=PROG, description=__doc__.splitlines()[0],
                allow_abbrev=False,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    shape = p.add_argument_group("model (give --model, --params or the "
                                 "shapes)")
    shape.add_argument("--model", metavar="NAME",
                       help="a preset (" + ", ".join(PRESETS) + "), a "
                            "config.json, a Hugging Face name, or "
                            "torchvision:NAME")
    shape.add_argument("--params", type=size, metavar="N",
                       help="parameter count (7e9, 7B); picks hidden = "
                            "128 x layers, heads of 128")
    for name in ("layers", "hidden", "heads", "vocab", "seq"):
        shape.add_argument(f"--{name}", type=positive, metavar="N")
    shape.add_argument("--kv-heads", type=positive, metavar="N",
                       help="grouped-query heads (default: --heads)")
    step = p.add_argument_group("training step")
    step.add_argument("--batch", type=positive, default=1, metavar="N",
                      help="micro-batch in sequences (default 1)")
    step.add_argument("--micro-batches", type=positive, default=1,
                      metavar="K", help="gradient accumulation steps")
    step.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    step.add_argument("--implementation", choices=IMPLEMENTATIONS,
                      default="foreach")
    step.add_argument("--precision", choices=PRECISIONS, default="fp32")
    step.add_argument("--attention", choices=ATTENTION, default="sdpa")
    step.add_argument("--checkpointing", choices=CHECKPOINTING,
                      default="none")
    step.add_argument("--ranks", type=positive, default=1, metavar="N",
                      help="data-parallel ranks")
    step.add_argument("--zero-stage", type=int, choices=(0, 1, 2, 3),
                      default=0)
    step.add_argument("--strategy", choices=STRATEGIES,
                      help="sharding over --ranks (default: ddp for ranks"
                           " > 1, zero<N> with --zero-stage)")
    step.add_argument("--reshard-after-forward", choices=("true", "false"),
                      help="fsdp2 (default: all but the root unit)")
    step.add_argument("--offload", choices=OFFLOAD, default="none",
                      help="to the CPU: optimizer state, or params too")
    step.add_argument("--budget", type=size, metavar="BYTES",
                      help="GPU memory per rank, e.g. 80GiB")
    return p


def shape_from(args: argparse.Namespace) -> Shape:
    vocab = args.vocab or 50304
    seq = args.seq or 2048
    layers, hidden, heads = args.layers, args.hidden, args.heads
    if args.params:
        if hidden or heads:
            raise UsageError("give --params or --hidden/--heads, not both")
        # GPT-3's family: hidden = 128 x layers, heads of size 128, and
        # P ~ 12 L h^2 + V h.
        def count(n_layers):
            h = 128 * n_layers
            return 12 * n_layers * h * h + vocab * h
        layers = layers or min(range(1, 200),
                               key=lambda n: abs(count(n) - args.params))
        hidden = 128 * layers
        heads = layers
    missing = [n for n, v in (("layers", layers), ("hidden", hidden),
                              ("heads", heads)) if not v]
    if missing:
        raise UsageError("give --params, or --layers, --hidden and --heads "
                         f"(missing: {', '.join('--' + m for m in missing)})")
    if args.zero_stage and args.ranks < 2:
        raise UsageError(f"--zero-stage {args.zero_stage} shards over "
                         "data-parallel ranks: give --ranks 2 or more")
    return Shape(layers=layers, hidden=hidden, heads=heads, vocab=vocab,
                 seq=seq, kv_heads=args.kv_heads or 0, batch=args.batch,
                 optimizer=args.optimizer, precision=args.precision,
                 implementation=args.implementation,
                 attention=args.attention,
                 checkpointing=args.checkpointing,
                 micro_batches=args.micro_batches, ranks=args.ranks,
                 zero_stage=args.zero_stage)


def gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.2f} GiB"


def report(shape: Shape, result: dict, budget: int | None) -> str:
    kv = f" ({shape.kv_heads} KV)" if shape.kv_heads else ""
    lines = [f"{result['parameters']:,} parameters: {shape.layers} layers, "
             f"hidden {shape.hidden}, {shape.heads} heads{kv}",
             f"{shape.precision}, {shape.optimizer} ({shape.implementation})"
             f", micro-batch {shape.batch} x {shape.seq} tokens",
             f"attention: {result['kernel']}; checkpointing: "
             f"{shape.checkpointing}"]
    for family in FAMILIES:
        if result["breakdown"][family]:
            lines.append(f"  {family.replace('_', ' '):17} "
                         f"{gib(result['breakdown'][family]):>14}")
    when = {"forward": "forward pass", "backward": "backward pass"}.get(
        result["phase"], result["phase"])
    lines.append(f"  {'peak':17} {gib(result['peak']):>14}  (in the {when})")
    lines.append(f"  {'persistent':17} {gib(result['persistent']):>14}")
    if budget:
        fits = result["peak"] <= budget
        best = largest_micro_batch(shape, budget)
        lines.append(f"budget {gib(budget)}: "
                     f"{'fits' if fits else 'does not fit'}; largest "
                     f"micro-batch that fits: {best}")
    return "\n".join(lines)


def _attach_negatives(argv: list[str]) -> list[str]:
    """`--budget -4GiB` -> `--budget=-4GiB`, so that argparse reports the
    bad value instead of a missing one."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] \
                and re.match(r"-\d", token):
            out[-1] += "=" + token
        else:
            out.append(token)
    return out


def sharding_from(args: argparse.Namespace) -> Sharding:
    if args.strategy is None and args.reshard_after_forward is None \
            and args.offload == "none":
        return Sharding(("zero%d" % args.zero_stage) if args.zero_stage
                        else ("ddp" if args.ranks > 1 else "single"),
                        args.ranks)
    if args.zero_stage:
        raise UsageError("give --strategy or --zero-stage, not both")
    reshard = {None: None, "true": True, "false": False}[
        args.reshard_after_forward]
    return Sharding(args.strategy or ("ddp" if args.ranks > 1
                                      else "single"),
                    args.ranks, reshard_after_forward=reshard,
                    offload=args.offload)


def decoder_of(model: str):
    """The decoder a preset or a Llama-family config describes, or None
    (then the model is traced)."""
    from snippets.memcalc import families
    if model in PRESETS:
        return PRESETS[model]
    if model.startswith("torchvision:"):
        return None
    from snippets.memcalc.sources import hf_config
    try:
        return families.from_hf_config(hf_config(model))
    except ValueError as error:
        if "no closed form" in str(error):
            return None
        raise


def estimate_by_model(args, sharding: Sharding) -> str:
    from snippets.memcalc.decoder import estimate_decoder
    d = decoder_of(args.model)
    if d is not None:
        result = estimate_decoder(
            d, batch=args.batch, seq=args.seq or 4096,
            optimizer=args.optimizer, precision=args.precision,
            implementation=args.implementation,
            checkpointing=args.checkpointing,
            micro_batches=args.micro_batches, sharding=sharding)
        how = f"closed form, attention: {result['kernel']}"
    else:
        from snippets.memcalc.sources import estimate_model
        e = estimate_model(args.model, batch=args.batch, seq=args.seq,
                           checkpointing=args.checkpointing,
                           optimizer=args.optimizer,
                           precision=args.precision,
                           implementation=args.implementation,
                           micro_batches=args.micro_batches,
                           sharding=sharding)
        result = {"peak": e.peak, "phase": e.phase, "breakdown":
                  e.breakdown, "persistent": e.persistent, "cpu": e.cpu,
                  "parameters": e.parameters}
        how = "traced, attention: " + (", ".join(e.attention) or "none")
    lines = [f"{result['parameters']:,} parameters: {args.model} ({how})",
             f"{args.precision}, {args.optimizer} ({args.implementation})"
             f", micro-batch {args.batch}; {sharding.strategy} on "
             f"{sharding.ranks} rank(s), per rank:"]
    lines += _families(result)
    return "\n".join(lines)


def _families(result: dict) -> list[str]:
    lines = [f"  {k.replace('_', ' '):17} {gib(v):>14}"
             for k, v in result["breakdown"].items() if v]
    when = {"forward": "forward pass", "backward": "backward pass"}.get(
        result["phase"], result["phase"])
    lines.append(f"  {'peak':17} {gib(result['peak']):>14}  (in the "
                 f"{when})")
    lines.append(f"  {'persistent':17} {gib(result['persistent']):>14}")
    if result.get("cpu"):
        lines.append(f"  {'CPU (offloaded)':17} {gib(result['cpu']):>14}")
    return lines


def plan_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} plan", allow_abbrev=False,
                description="the strategies that fit, best first")
    p.add_argument("--model", required=True, metavar="NAME",
                   help="a preset or a Llama-family config")
    p.add_argument("--gpus", type=positive, required=True, metavar="N")
    p.add_argument("--budget", type=size, required=True, metavar="BYTES")
    p.add_argument("--seq", type=positive, default=4096, metavar="N")
    p.add_argument("--rows", type=positive, default=12, metavar="N")
    return p


def plan_main(argv: list[str]) -> int:
    from snippets.memcalc.plan import plan, table
    try:
        args = plan_parser().parse_args(argv)
        d = decoder_of(args.model)
        if d is None:
            raise UsageError(f"plan needs a decoder (a preset or a "
                             f"Llama-family config), not {args.model}")
        options = plan(d, args.gpus, args.budget, seq=args.seq)
    except (UsageError, ValueError) as error:
        print(f"{PROG} plan: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as done:              # --help
        return int(done.code or 0)
    print(f"{args.model} on {args.gpus} GPUs of {gib(args.budget)}, "
          f"sequences of {args.seq}: {len(options)} options fit")
    print(table(options, args.rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = _attach_negatives(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plan"]:
        return plan_main(argv[1:])
    try:
        args = parser().parse_args(argv)
        sharding = sharding_from(args)
        if args.model:
            if args.params or args.hidden or args.layers or args.heads:
                raise UsageError("give --model or the shapes, not both")
            print(estimate_by_model(args, sharding))
            return 0
        shape = shape_from(args)
        if sharding.strategy not in ("single", "ddp", "zero1", "zero2",
                                     "zero3") or sharding.offload != "none":
            raise UsageError("--strategy and --offload need --model")
        result = estimate_transformer(shape)
    except (UsageError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as done:              # --help
        return int(done.code or 0)
    print(report(shape, result, args.budget))
    return 0

