"""The closed form for today's decoder families (Llama, Mistral, Qwen2 and
Mixtral-style mixtures of experts): a training step's memory from the
shapes of snippets/memcalc/families.py, in milliseconds, for any number
of ranks through the sharding layer.

What one layer keeps for the backward pass was read off the trace of
transformers' own models (tests/test_memcalc_decoder.py checks the peak
against the trace of Hugging Face Llama and Qwen2): RMSNorm keeps its input
in fp32 (a copy under bf16) and its normalised output; the projections
keep their inputs; rotary embeddings keep the rotated q and k; a fused
attention kernel keeps q, k, v, its output and a log-sum-exp per row, the
math kernel (fp32 with grouped-query heads) the s x s softmax and the heads
repeated; SwiGLU keeps the gate, its SiLU, the up projection and their
product. A mixture of experts routes each token to top_k of the experts:
its MLP activations are those of T x top_k tokens, its memory all experts.
Moments: the end of the forward pass (the loss over fp32 logits), the
start of the backward pass (two fp32 gradients of the logits), a
checkpointed layer recomputed, and the optimizer step.
"""

from __future__ import annotations

from snippets.memcalc import optimizers as opt
from snippets.memcalc.allocator import round_block as R
from snippets.memcalc.allocator import workspace_bytes
from snippets.memcalc.families import Decoder, check as check_decoder
from snippets.memcalc.families import parameter_shapes
from snippets.memcalc.search import largest_that_fits
from snippets.memcalc.sharding import Sharding, Traced, per_rank
from snippets.memcalc.transformer import PRECISIONS

CHECKPOINTING = ("none", "full")


def kernel(d: Decoder, precision: str) -> str:
    """The SDPA kernel CUDA runs (snippets/memcalc/cuda_rules.py's rule)."""
    half = precision != "fp32"
    hd = d.head_dim
    if half and hd <= 256 and hd % 8 == 0:
        return "cudnn"
    if (d.kv_heads or d.heads) == d.heads and hd % (8 if half else 4) == 0:
        return "efficient"
    return "math"


def specs(d: Decoder, precision: str) -> tuple[list[opt.Param],
                                                list[list[int]]]:
    """The parameters in the dtype they are stored in, embeddings and an
    untied head marked (not Muon's), and the indices of each layer."""
    shapes = parameter_shapes(d)
    item = 2 if precision in ("bf16", "bf16-mixed") else 4
    per_layer = (len(shapes) - 1 - (0 if d.tied else 1)
                 - (2 if d.norm == "layernorm" else 1)
                 - (1 if d.positions == "learned" else 0)) // d.layers
    first = 2 if d.positions == "learned" else 1
    units = [list(range(first + i * per_layer, first + (i + 1) * per_layer))
             for i in range(d.layers)]
    outside = set(range(first)) | ({len(shapes) - 1} if not d.tied
                                   else set())
    return ([opt.Param(s, item, hidden=i not in outside)
             for i, s in enumerate(shapes)], units)


def trace_decoder(d: Decoder, batch: int, seq: int, precision: str,
                  checkpointing: str = "none",
                  micro_batches: int = 1) -> Traced:
    """The moments of the whole model's forward and backward passes."""
    check_decoder(d)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of "
                         + ", ".join(PRECISIONS))
    if checkpointing not in CHECKPOINTING:
        raise ValueError("decoder checkpointing: none or full")
    for name, value in (("batch", batch), ("seq", seq),
                        ("micro_batches", micro_batches)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, "
                             f"not {value!r}")
    params, units = specs(d, precision)
    b, s, h, L, V = batch, seq, d.hidden, d.layers, d.vocab
    T, kv, f, a = b * s, d.kv_width, d.ffn_width, d.heads
    auto = precision == "bf16-autocast"
    c = 4 if precision == "fp32" else 2       # matmul outputs
    r = 2 if precision in ("bf16", "bf16-mixed") else 4   # residual
    k = kernel(d, precision)
    attention = 2 * R(T * 4)                  # the two norms' rsqrt
    if k == "math":   # heads repeated, the s x s softmax kept in fp32
        attention += 2 * R(T * h * 4) + R(b * a * s * s * 4)
    else:
        attention += 2 * R(T * kv * c) + R(b * a * s * 4) + (
            2 * R(8) if k == "cudnn" else 0)
    if auto:        # norms in fp32, products in bf16
        dense = 6 * R(T * h * 4) + 3 * R(T * h * 2)
    else:
        dense = 2 * R(T * h * 4) + 6 * R(T * h * c)
    if d.experts:   # tokens routed: T x top_k through the experts
        routed = T * d.top_k
        mlp = (4 * R(routed * f * c) + 2 * R(routed * h * c)
               + R(T * d.experts * c) + R(T * d.experts * 4))
    else:
        mlp = 4 * R(T * f * c)
    layer = dense + attention + mlp
    copies = 0
    if auto:        # autocast's bf16 copy of every matrix of a layer
        copies = sum(R(p.numel * 2) for p in
                     (params[i] for i in units[0]) if len(p.shape) == 2)
    ckpt = checkpointing == "full"
    kept_layer = R(T * h * r) if ckpt else layer
    tokens = 2 * R(T * 8) + R(b * (s + 1) * 8)
    rotary = 2 * R(s * d.head_dim * (4 if r == 4 else 2))
    final = R(T * h * 4) + 2 * R(T * h * r) + R(T * 4)
    logits = R(T * V * c) + (R(T * V * 4) if c != 4 else 0)
    log_probs = R(T * V * 4)
    head_copy = R(V * h * 2) if auto else 0
    param_bytes = sum(R(p.nbytes) for p in params)
    accumulated = param_bytes if micro_batches > 1 else 0
    base = tokens + rotary + final
    moments, labels = [], []

    def moment(phase, label, **families):
        labels.append(label)
        moments.append((phase, {"params": param_bytes, "grads": 0,
                                "activations": 0, "weight_copies": 0,
                                "transients": 0, **families}))
    # End of the forward pass: every layer's activations, the loss.
    moment("forward", "end of the forward pass: the loss",
           grads=accumulated,
           activations=L * kept_layer + base + logits + log_probs,
           weight_copies=L * copies + head_copy)
    # Start of the backward pass: the logits' two fp32 gradients.
    moment("backward", "start of the backward pass: the logits' gradients",
           grads=accumulated,
           activations=L * kept_layer + base + log_probs,
           weight_copies=(0 if ckpt else L * copies) + head_copy,
           transients=R(4) + 2 * R(T * V * 4))
    if ckpt:        # the first layer recomputed, the others' done
        layer_grads = sum(R(params[i].nbytes) for i in units[0])
        moment("backward", "first layer's backward, recomputed",
               grads=max(accumulated, param_bytes - layer_grads),
               activations=L * kept_layer + layer + tokens + rotary,
               weight_copies=copies,
               transients=2 * R(T * f * c) + R(T * h * r))
    # rotary embeddings' buffers: inv_freq and its original copy
    fixed = 2 * R(d.head_dim // 2 * 4) if d.positions == "rotary" else 0
    for _, m in moments:
        m["params"] += fixed
    return Traced(moments=moments, specs=params, units=units, fixed=fixed,
                  workspace=workspace_bytes(True, True, d.linear_bias
                                            or d.qkv_bias),
                  after={"activations": R(4)}, labels=labels)


def estimate_decoder(d: Decoder, *, batch: int = 1, seq: int = 4096,
                     optimizer: str = "adamw", precision: str = "bf16-mixed",
                     implementation: str = "foreach",
                     checkpointing: str = "none", micro_batches: int = 1,
                     sharding: Sharding = Sharding()) -> dict:
    """The closed form's answer for one rank: peak, phase, breakdown,
    phases, persistent and CPU bytes, parameters, the attention kernel,
    and every moment in time order with the peak's index."""
    opt.check(optimizer, implementation)
    t = trace_decoder(d, batch, seq, precision, checkpointing,
                      micro_batches)
    result = per_rank(t, optimizer, implementation, precision, sharding)
    result["kernel"] = kernel(d, precision)
    return result


def largest_micro_batch(d: Decoder, budget: int, limit: int = 1 << 16,
                        **options) -> int:
    """The largest micro-batch whose per-rank peak fits (0: none)."""
    def fits(batch):
        return estimate_decoder(d, batch=batch, **options)["peak"] <= budget
    return largest_that_fits(fits, limit)


__all__ = ["estimate_decoder", "largest_micro_batch", "trace_decoder"]
