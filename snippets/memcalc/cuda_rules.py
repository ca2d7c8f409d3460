"""What CUDA would do, played on fake CPU tensors: autocast's op lists and
the attention kernel that `scaled_dot_product_attention` picks.

The estimator traces on fake tensors of the CPU device, because a CPU-only
torch cannot run autograd on fake CUDA tensors (the device guard is
missing). Two things would then follow CPU rules instead of CUDA's:

* autocast: CUDA casts LayerNorm, softmax, losses and more to fp32 and
  caches one low-precision copy of each weight; CPU autocast has other
  lists. `CudaRules` applies CUDA's lists (aten/src/ATen/autocast_mode.h,
  torch 2.13) at the torch-function level, above autograd, as the real
  Autocast dispatch key does, with the weight cache;
* attention: on CUDA, SDPA picks cuDNN, flash, memory-efficient or the
  math kernel by dtype, head layout and shape (aten/src/ATen/native/
  transformers/cuda/sdp_utils.cpp). `sdpa_backend` states the choice for
  torch 2.11 with cuDNN 9.19 on compute capability 9.0, checked there; the
  fused kernels keep only a log-sum-exp per row, the math kernel keeps the
  s x s attention matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

aten = torch.ops.aten
HALF = (torch.float16, torch.bfloat16)
# Python composites that dispatch as one torch function: the rules must see
# the operators inside them (CUDA's autocast does).
COMPOSITES = frozenset({F.multi_head_attention_forward})

# CUDA autocast policies by op name (autocast_mode.h, torch 2.13).
LOWER = frozenset("""linear matmul __matmul__ __rmatmul__ mm bmm addmm
addmv addr baddbmm addbmm einsum mv vecdot conv1d conv2d conv3d
conv_transpose1d conv_transpose2d conv_transpose3d conv_tbc convolution
prelu chain_matmul multi_dot lstm_cell gru_cell rnn_tanh_cell
rnn_relu_cell scaled_dot_product_attention""".split())
FP32 = frozenset("""acos asin cosh erfinv exp expm1 log log10 log2 log1p
reciprocal rsqrt sinh tan pow __pow__ __rpow__ softplus layer_norm rms_norm
group_norm nuclear_norm cosine_similarity poisson_nll_loss
cosine_embedding_loss nll_loss hinge_embedding_loss kl_div l1_loss
smooth_l1_loss huber_loss mse_loss margin_ranking_loss
multilabel_margin_loss soft_margin_loss triplet_margin_loss
multi_margin_loss binary_cross_entropy_with_logits dist pdist cdist renorm
logsumexp interpolate cross_entropy""".split())
# cross_entropy has no entry of its own: it runs log_softmax (below) and
# nll_loss, so its input meets fp32 first, as it does here.
FP32_OUTPUT = frozenset("""softmax log_softmax cumprod cumsum prod sum norm
vector_norm matrix_norm""".split())
PROMOTE = frozenset("""addcdiv addcmul atan2 bilinear cross dot vdot
grid_sample index_put tensordot scatter_add""".split())


def sdpa_backend(dtype: torch.dtype, heads: int, kv_heads: int,
                 head_dim: int, has_mask: bool = False,
                 capability: tuple[int, int] = (9, 0)) -> str:
    """The kernel CUDA's SDPA picks (torch 2.11, cuDNN 9.19, training).

    cuDNN comes first on 9.0 and 10.0 for fp16/bf16; flash takes fp16/bf16
    without a mask; memory-efficient takes fp32 too, but not grouped-query
    heads; everything else falls back to the math kernel."""
    half = dtype in HALF
    aligned = head_dim % (8 if half else 4) == 0
    if (half and capability in ((9, 0), (10, 0)) and head_dim <= 256
            and head_dim % 8 == 0):
        return "cudnn"
    if half and not has_mask and head_dim <= 256 and head_dim % 8 == 0 \
            and capability >= (8, 0):
        return "flash"
    if heads == kv_heads and aligned and dtype in HALF + (torch.float32,):
        return "efficient"
    return "math"


def sdpa_backward_scratch(backend: str, dtype: torch.dtype, batch: int,
                          heads: int, kv_heads: int, seq: int,
                          head_dim: int) -> int:
    """Bytes a fused attention backward allocates for itself and frees:
    an fp32 accumulator for dQ and per-row terms, and for grouped-query
    heads the dK, dV of every query head before they are summed."""
    if backend == "math":
        return 0
    item = torch.empty((), dtype=dtype).element_size()
    rows = batch * heads * seq
    scratch = rows * head_dim * 4 + rows * 4
    if heads != kv_heads:
        scratch += 2 * rows * head_dim * item
    return scratch


def _cast(value, dtype, cache=None, tag=None):
    def one(t):
        if not (isinstance(t, torch.Tensor) and t.is_floating_point()
                and t.dtype != torch.float64 and t.dtype != dtype):
            return t
        cacheable = (cache is not None and t.dtype == torch.float32
                     and t.is_leaf and t.requires_grad and not t._is_view())
        if not cacheable:
            return t.to(dtype)
        if id(t) not in cache:
            cache[id(t)] = (t, t.to(dtype))   # keep t: its id stays unique
            if tag is not None:
                tag(cache[id(t)][1])
        return cache[id(t)][1]
    return tree_map(one, value)


class CudaRules(TorchFunctionMode):
    """Apply CUDA's autocast lists and SDPA kernel choice to fake CPU work.

    `autocast` is the low-precision dtype (None: autocast off). `casting`
    says whether autocast is on right now: during the forward pass, and in
    the backward pass only while a checkpointed module recomputes (the
    tracer switches it). `tag_copy(t)` is told of every cached weight copy.
    """

    def __init__(self, autocast: torch.dtype | None = None,
                 capability: tuple[int, int] = (9, 0), tag_copy=None,
                 on_attention=None):
        super().__init__()
        self.autocast = autocast
        self.capability = capability
        self.casting = autocast is not None
        self.cache: dict[int, tuple] = {}
        self.tag_copy = tag_copy
        self.on_attention = on_attention   # (backend, out, scratch) -> None
        self.backends: dict[str, int] = {}

    def clear_cache(self) -> None:
        self.cache.clear()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.autocast is not None and self.casting:
            if name in LOWER:
                args, kwargs = _cast((args, kwargs), self.autocast,
                                     self.cache, self.tag_copy)
            elif name in FP32:
                args, kwargs = _cast((args, kwargs), torch.float32)
            elif name in FP32_OUTPUT and kwargs.get("dtype") is None:
                first = args[0] if args else kwargs.get("input")
                if isinstance(first, torch.Tensor) and first.dtype in HALF:
                    kwargs = {**kwargs, "dtype": torch.float32}
            elif name in PROMOTE:
                floats = [t.dtype for t in args
                          if isinstance(t, torch.Tensor)
                          and t.is_floating_point()]
                if floats:
                    widest = max(floats, key=lambda d: torch.finfo(d).bits)
                    args, kwargs = _cast((args, kwargs), widest)
        if func is F.scaled_dot_product_attention:
            return self._attention(*args, **kwargs)
        if func in COMPOSITES:
            return self._inside(func, args, kwargs)
        return func(*args, **kwargs)

    def _inside(self, func, args, kwargs):
        """Run a Python composite that is itself a torch function (nn.
        MultiheadAttention's F.multi_head_attention_forward) with these rules
        on for the operators inside it, as CUDA's autocast sees them: the
        mode is pushed again and the composite's own dispatch check is
        skipped for the call."""
        names = ("has_torch_function", "has_torch_function_variadic",
                 "has_torch_function_unary")
        checks = {name: getattr(F, name) for name in names}
        for name in names:
            setattr(F, name, lambda *a: False)
        try:
            with self:
                return func(*args, **kwargs)
        finally:
            for name, check in checks.items():
                setattr(F, name, check)

    def _attention(self, query, key, value, attn_mask=None, dropout_p=0.0,
                   is_causal=False, scale=None, enable_gqa=False):
        heads, kv_heads = query.shape[-3], key.shape[-3]
        backend = sdpa_backend(query.dtype, heads, kv_heads,
                               query.shape[-1], attn_mask is not None,
                               self.capability)
        self.backends[backend] = self.backends.get(backend, 0) + 1
        grad = torch.is_grad_enabled() and any(
            t.requires_grad for t in (query, key, value))
        untracked = ()
        if backend == "cudnn":
            out = aten._scaled_dot_product_cudnn_attention(
                query, key, value, attn_mask, grad, dropout_p, is_causal,
                False, scale=scale)
        elif backend == "flash":
            out = aten._scaled_dot_product_flash_attention(
                query, key, value, dropout_p, is_causal, False, scale=scale)
        elif backend == "efficient":
            out = aten._scaled_dot_product_efficient_attention(
                query, key, value, attn_mask, grad, dropout_p, is_causal,
                scale=scale)
            untracked = out[2:4]   # philox seed and offset live on the CPU
        else:
            out = aten._scaled_dot_product_attention_math(
                query, key, value, attn_mask, dropout_p, is_causal, None,
                scale=scale, enable_gqa=enable_gqa)
        if self.on_attention is not None:
            batch = query.numel() // (heads * query.shape[-2]
                                      * query.shape[-1])
            scratch = sdpa_backward_scratch(
                backend, query.dtype, batch, heads, kv_heads,
                query.shape[-2], query.shape[-1]) if grad else 0
            self.on_attention(backend, out[0], scratch, untracked)
        return out[0]
