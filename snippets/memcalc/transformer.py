"""The closed form: a training step's memory for a GPT-style transformer
from its shapes alone, as the command and the in-page calculator compute it.

It describes the model of snippets/memcalc/models.py (learned positions,
pre-LayerNorm blocks with a 4h GELU MLP, biases, tied embeddings, the loss
over fp32 logits) tensor by tensor, each rounded to the allocator's
512-byte blocks, and takes the largest of its moments, in time order:
inside the last block's forward pass, the end of the forward pass, the
start of the backward pass (the logits' gradients), the last and the first
block's backward pass, and the optimizer step. The optimizer's state and
temporaries come from snippets/memcalc/optimizers.py, as in the trace;
the result lists every moment after sharding, with the peak's index.
docs/assets/javascripts/memcalc.js is a line-by-line port of this file;
tests/golden/memcalc.json holds its answers for the JavaScript to match.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from snippets.memcalc import optimizers as opt
from snippets.memcalc.allocator import round_block as R
from snippets.memcalc.allocator import workspace_bytes
from snippets.memcalc.search import largest_that_fits
from snippets.memcalc.sharding import FAMILIES, Sharding, Traced
from snippets.memcalc.sharding import from_stage, per_rank

PRECISIONS = ("fp32", "bf16-autocast", "bf16-mixed", "bf16")
CHECKPOINTING = ("none", "full", "selective")
ATTENTION = ("sdpa", "eager")
TRACED = ("params", "grads", "activations", "weight_copies", "transients")


@dataclass(frozen=True)
class Shape:
    """A GPT-style model and one training step's options."""

    layers: int
    hidden: int
    heads: int
    vocab: int
    seq: int
    kv_heads: int = 0              # 0: as many as heads
    batch: int = 1                 # micro-batch, in sequences
    optimizer: str = "adamw"
    precision: str = "fp32"
    implementation: str = "foreach"
    attention: str = "sdpa"
    checkpointing: str = "none"
    micro_batches: int = 1
    ranks: int = 1
    zero_stage: int = 0
    strategy: str = ""             # "": from ranks and zero_stage
    offload: str = "none"


def param_list(m: Shape) -> list[opt.Param]:
    """The parameters in model.parameters() order, in the updated dtype."""
    item = 4 if m.precision in ("fp32", "bf16-autocast", "bf16-mixed") \
        else 2
    h, f = m.hidden, 4 * m.hidden
    q3 = h + 2 * kv_width(m)
    shapes = [(m.vocab, h), (m.seq, h)]
    for _ in range(m.layers):
        shapes += [(h,), (h,), (q3, h), (q3,), (h, h), (h,), (h,), (h,),
                   (f, h), (f,), (h, f), (h,)]
    shapes += [(h,), (h,)]
    # the token and position tables (the head is the token table) are
    # embeddings: AdamW's under Muon
    return [opt.Param(s, item, hidden=i > 1) for i, s in enumerate(shapes)]


def kv_width(m: Shape) -> int:
    return (m.kv_heads or m.heads) * (m.hidden // m.heads)


def attention_kernel(m: Shape) -> str:
    """cudnn, flash, efficient, math (SDPA on CUDA) or eager."""
    if m.attention == "eager":
        return "eager"
    half = m.precision != "fp32"
    d = m.hidden // m.heads
    if half and d <= 256 and d % 8 == 0:
        return "cudnn"
    if (m.kv_heads or m.heads) == m.heads and d % (8 if half else 4) == 0:
        return "efficient"
    return "math"


def _attention_saved(m: Shape, c: int) -> int:
    """Bytes one block's attention keeps for the backward pass."""
    b, s, h, a = m.batch, m.seq, m.hidden, m.heads
    T = b * s
    kernel = attention_kernel(m)
    out = R(T * h * c)
    if kernel in ("cudnn", "efficient"):
        seeds = 2 * R(8) if kernel == "cudnn" else 0
        return out + R(b * a * s * 4) + seeds
    if kernel == "math":       # q, k, v in fp32, the s x s softmax kept
        return 3 * R(T * h * 4) + R(b * a * s * s * 4) + out
    # eager: copies of q, k, v for the products, the softmax (fp32 unless
    # the whole model is bf16), its bf16 copy under autocast, the output
    soft = 2 if m.precision in ("bf16", "bf16-mixed") else 4
    copy = R(b * a * s * s * 2) if m.precision == "bf16-autocast" else 0
    return 4 * out + R(b * a * s * s * soft) + copy


def estimate_transformer(m: Shape) -> dict:
    """The closed form. Returns the peak, its phase, the persistent bytes,
    the breakdown at the peak (the families of estimate()) and every
    moment in time order, with the peak's index ("moments", "peak_index")."""
    result = per_rank(trace_transformer(m), m.optimizer, m.implementation,
                      m.precision, sharding(m))
    result["kernel"] = attention_kernel(m)
    return result


def trace_transformer(m: Shape) -> Traced:
    """The moments of the whole model's forward and backward passes,
    written out: what the sharding layer turns into one rank's step."""
    check(m)
    b, s, h, a, V, L = m.batch, m.seq, m.hidden, m.heads, m.vocab, m.layers
    T, f = b * s, 4 * h
    q3 = h + 2 * kv_width(m)
    auto = m.precision == "bf16-autocast"
    low = m.precision in ("bf16", "bf16-mixed")
    c = 2 if m.precision != "fp32" else 4       # matmul outputs
    r = 2 if low else 4                         # residual stream, LN out
    pb = 2 if low else 4                        # parameters and gradients

    # Persistent: parameters (the state is the sharding layer's).
    params = param_list(m)
    stored = [replace(p, itemsize=pb) for p in params]
    param_bytes = sum(R(p.nbytes) for p in stored)
    if m.attention == "eager":                  # the causal mask buffers
        param_bytes += L * R(s * s)
    grad_bytes = param_bytes - (L * R(s * s) if m.attention == "eager"
                                else 0)
    workspace = workspace_bytes(True, True, True)

    # Activations the forward pass keeps, per block and around them.
    ln = (R(T * h * 2) if auto else R(T * h * r)) + 2 * R(T * 4)
    kernel = attention_kernel(m)
    fused = kernel in ("cudnn", "efficient")
    # Fused kernels keep q, k, v as views of the qkv product; the math
    # kernel and eager attention keep copies of them instead.
    full_block = (2 * ln + (R(T * q3 * c) if fused else 0)
                  + _attention_saved(m, c) + 2 * R(T * h * r)
                  + 2 * R(T * f * c))
    # autocast's bf16 copies of a block's four weight matrices
    layer_copies = (R(q3 * h * 2) + R(h * h * 2) + 2 * R(f * h * 2)) \
        if auto else 0
    if m.checkpointing == "none":
        block, copies = full_block, layer_copies
    elif m.checkpointing == "full":
        block, copies = R(T * h * r), 0
    else:   # selective: the input, and what products and attention return
        if fused:
            attention = _attention_saved(m, c)
        else:       # the two batched products: scores and their use
            u = 4 if kernel == "math" else c
            attention = R(b * a * s * s * u) + R(T * h * u)
        block = (R(T * h * r) + R(T * q3 * c) + attention + R(T * h * c)
                 + R(T * f * c) + R(T * h * c))
        copies = 0
    embedding = R(b * (s + 1) * 8) + R(s * 8) + R(T * h * r)
    head = ln + R(T * 8) + (R(V * h * 2) if auto else 0)   # with its copy
    bias_copies = (R(q3 * 2) + 2 * R(h * 2) + R(f * 2)) * L if auto else 0
    kept = embedding + L * (block + copies) + head + 2 * R(4)
    logits = R(T * V * c) + (R(T * V * 4) if c != 4 else 0)
    log_probs = R(T * V * 4)
    accumulated = grad_bytes if m.micro_batches > 1 else 0

    moments, labels = [], []   # (phase, families) of the whole model

    def moment(phase, label, **families):
        labels.append(label)
        moments.append((phase, {**dict.fromkeys(TRACED, 0),
                                "params": param_bytes, **families}))

    # Inside the last block's forward pass. Eager and math attention: the
    # s x s scores, two at a time.
    cached = 2 * R(T * h * c) if m.checkpointing == "selective" else 0
    before = embedding + (L - 1) * block
    squares = R(b * a * s * s * (2 if low else 4))
    if not fused:
        pairs = (R(b * a * s * s * 2) + squares) if auto else squares
        moment("forward", "last block's forward: its attention scores",
               grads=accumulated,
               activations=before + ln + R(T * q3 * c) + 2 * R(T * h * c)
               + pairs + squares + bias_copies,
               weight_copies=L * layer_copies)
    # Then all of its activations (a checkpointed block drops them only
    # when it returns).
    moment("forward", "last block's forward: all its activations",
           grads=accumulated,
           activations=before + full_block + cached + R(T * h * c)
           + bias_copies, weight_copies=L * layer_copies)
    # End of the forward pass: the loss over the logits. Autocast's cache
    # holds every weight copy until it exits, checkpointed blocks' too.
    head_copy = R(V * h * 2) if auto else 0
    moment("forward", "end of the forward pass: the loss",
           grads=accumulated,
           activations=kept - L * copies - head_copy + logits + log_probs
           + bias_copies, weight_copies=L * layer_copies + head_copy)
    # Start of the backward pass: two gradients of the logits in fp32.
    copies_kept = L * copies + head_copy
    moment("backward", "start of the backward pass: the logits' gradients",
           grads=accumulated,
           activations=kept - copies_kept + log_probs,
           weight_copies=copies_kept,
           transients=R(4) + 2 * R(T * V * 4))
    # A block's backward pass, at its GELU: the block's own output and GELU
    # output are gone, two 4h-wide gradients exist; a checkpointed block
    # has been recomputed (a selective one keeps its cached products); the
    # head's weight gradient waits for the embedding's. Memory is linear in
    # the block's index, so the last and the first block bound it. Eager
    # and math attention peak later, in the softmax's backward pass.
    last = full_block - R(T * h * r) - R(T * f * c) + cached
    layer_grads = sum(R(n * pb) for n in (h, h, q3 * h, q3, h * h, h, h, h,
                                          f * h, f, h * f, h))
    attention_part = _attention_saved(m, c) - R(T * h * c)
    for index, which in ((L, "last"), (1, "first")):
        done = (L - index) * layer_grads + 2 * R(h * pb) + R(h * f * pb)
        moment("backward", f"{which} block's backward: its MLP",
               grads=max(accumulated, done),
               activations=embedding + (index - 1) * block + last
               + 2 * R(4),
               weight_copies=(index - 1) * copies + layer_copies,
               transients=2 * R(T * f * c) + R(T * h * r) + R(V * h * pb))
        if not fused:
            moment("backward", f"{which} block's backward: its attention",
                   grads=max(accumulated, done + layer_grads),
                   activations=embedding + (index - 1) * block + ln
                   + attention_part + 2 * R(4),
                   weight_copies=(index - 1) * copies + layer_copies,
                   transients=R(b * a * s * s * c) + squares
                   + R(T * h * r) + 2 * R(T * h * c) + R(V * h * pb))
    # The optimizer step is the sharding layer's: over the rank's shard.
    units = [list(range(2 + i * 12, 14 + i * 12)) for i in range(L)]
    return Traced(moments=moments, specs=stored, units=units,
                  fixed=param_bytes - grad_bytes, workspace=workspace,
                  after={"activations": R(4)}, labels=labels)


def sharding(m: Shape) -> Sharding:
    """`strategy` and `offload` if given, else `ranks` and `zero_stage`."""
    if m.strategy:
        return Sharding(m.strategy, m.ranks, offload=m.offload)
    return from_stage(m.ranks, m.zero_stage)


def check(m: Shape) -> None:
    """Raise ValueError naming the valid choices for a bad option."""
    for name in ("layers", "hidden", "heads", "vocab", "seq", "batch",
                 "micro_batches", "ranks"):
        value = getattr(m, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name.replace('_', '-')} must be a positive "
                             f"whole number, not {value!r}")
    if m.kv_heads < 0 or (m.kv_heads and m.heads % m.kv_heads):
        raise ValueError("kv-heads must divide heads")
    if m.hidden % m.heads:
        raise ValueError("hidden must be a multiple of heads")
    opt.check(m.optimizer, m.implementation)
    for name, choices in (("precision", PRECISIONS),
                          ("attention", ATTENTION),
                          ("checkpointing", CHECKPOINTING)):
        if getattr(m, name) not in choices:
            raise ValueError(f"unknown {name} {getattr(m, name)!r}; "
                             "choose one of " + ", ".join(choices))
    if m.zero_stage not in (0, 1, 2, 3):
        raise ValueError("zero-stage must be 0, 1, 2 or 3")
    if m.zero_stage and m.ranks < 2:
        raise ValueError("a ZeRO stage shards over ranks: give ranks >= 2")
    if m.zero_stage and m.strategy:
        raise ValueError("give a strategy or a zero-stage, not both")
    if m.offload != "none" and not m.strategy:
        raise ValueError("offload needs a strategy: zero1, zero2, zero3 "
                         "or fsdp2")


def largest_micro_batch(m: Shape, budget: int, limit: int = 1 << 20) -> int:
    """The largest micro-batch whose peak fits `budget` bytes (0: none)."""
    def fits(batch):
        return estimate_transformer(
            Shape(**{**asdict(m), "batch": batch}))["peak"] <= budget
    return largest_that_fits(fits, limit)
