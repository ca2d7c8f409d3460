"""8-bit optimizer state as bitsandbytes stores it: block-wise, dynamic codes.

Each state tensor is cut into blocks of 256 values. A block keeps its
absolute maximum as one fp32 number and each value as a uint8 index into a
256-entry code book: value ~ code[index] * absmax. The code book is the
"dynamic" map of Dettmers et al. (2021): a sign, an exponent and a fraction
packed in 8 bits, so small values keep relative precision. bitsandbytes
(0.50, `optim/optimizer.py`, `functional.py`) builds the same map and leaves
tensors under 4096 elements in fp32.
"""

import math

import torch
import torch.nn.functional as F

BLOCK = 256            # values per block, one fp32 absmax each
MIN_8BIT_SIZE = 4096   # smaller tensors keep fp32 state


# --8<-- [start:dynamic_map]
def dynamic_map(signed: bool = True) -> torch.Tensor:
    """The 256 sorted codes of bitsandbytes' `create_dynamic_map`.

    Exponent i covers one decade, 10**(i-6) * [0.1, 1], with 2**i
    (signed) or 2**(i+1) (unsigned) evenly spaced fractions: seven decades,
    fine steps near 1, coarse ones near 1e-6, plus the codes 0 and 1.
    """
    values = []
    for i in range(7):
        n = 2 ** (i + (0 if signed else 1)) + 1
        edges = torch.linspace(0.1, 1, n, dtype=torch.float32)
        means = (edges[:-1] + edges[1:]) / 2.0
        scale = 10 ** (i - 6)
        values += (scale * means).tolist()
        if signed:
            values += (-scale * means).tolist()
    values += [0.0, 1.0]
    return torch.tensor(sorted(values), dtype=torch.float32)
# --8<-- [end:dynamic_map]


# --8<-- [start:quantize]
def quantize_blockwise(x: torch.Tensor, code: torch.Tensor):
    """uint8 indices (one per value) and one fp32 absmax per block of 256."""
    flat = x.reshape(-1).float()
    pad = -flat.numel() % BLOCK                # zeros never raise an absmax
    blocks = F.pad(flat, (0, pad)).view(-1, BLOCK)
    absmax = blocks.abs().amax(dim=1)
    scaled = blocks * (1.0 / absmax.clamp(min=1e-38))[:, None]
    midpoints = (code[:-1] + code[1:]) / 2     # nearest code wins
    index = torch.bucketize(scaled.clamp(-1, 1), midpoints)
    return index.to(torch.uint8).view(-1)[: flat.numel()], absmax


def dequantize_blockwise(index, absmax, code, shape) -> torch.Tensor:
    pad = -index.numel() % BLOCK
    values = F.pad(code[index.long()], (0, pad)).view(-1, BLOCK)
    values = values * absmax[:, None]
    return values.view(-1)[: index.numel()].view(shape)
# --8<-- [end:quantize]


def linear_map(signed: bool = True) -> torch.Tensor:
    """256 evenly spaced codes over [-1, 1] (or [0, 1]): plain absmax int8."""
    return torch.linspace(-1.0 if signed else 0.0, 1.0, 256)


def roundtrip(x: torch.Tensor, code: torch.Tensor,
              blockwise: bool = True) -> torch.Tensor:
    """x quantised and dequantised: in blocks of 256, or with one absmax
    for the whole tensor (to show what blocks buy against outliers)."""
    if blockwise:
        return dequantize_blockwise(*quantize_blockwise(x, code), code,
                                    x.shape)
    absmax = x.abs().max()
    index = torch.bucketize((x / absmax).clamp(-1, 1),
                            (code[:-1] + code[1:]) / 2)
    return code[index] * absmax


def adam_moments(steps: int = 20, seed: int = 0):
    """exp_avg and exp_avg_sq of TinyMLP's first weight (256 x 128) after
    `steps` fp32 Adam steps on random data: real moments to quantise."""
    from snippets.models import TinyMLP

    torch.manual_seed(seed)
    model = TinyMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(512, 128), torch.randint(0, 10, (512,))
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    state = optimizer.state[model.net[0].weight]
    return state["exp_avg"], state["exp_avg_sq"]


# --8<-- [start:quantisation_error]
def quantisation_error(m, v, code_m, code_v, blockwise=True) -> dict:
    """What 8 bits cost Adam: the 99th percentile of |m' - m| / |m|, the
    share of nonzero v that became 0, and the relative error (norm) of
    the update m / (sqrt(v) + eps) computed from the round-tripped moments.
    """
    m8, v8 = roundtrip(m, code_m, blockwise), roundtrip(v, code_v, blockwise)
    update = m / (v.sqrt() + 1e-8)
    update8 = m8 / (v8.sqrt() + 1e-8)
    return {
        "m_p99": ((m8 - m).abs() / m.abs()).quantile(0.99).item(),
        "v_zeroed": ((v8 == 0) & (v != 0)).float().mean().item(),
        "update": ((update8 - update).norm() / update.norm()).item(),
    }
# --8<-- [end:quantisation_error]


# --8<-- [start:adam8bit_bytes]
def adam8bit_state_nbytes(numel: int) -> list[int]:
    """Bytes of each state tensor bitsandbytes' Adam8bit keeps for a
    parameter of `numel` elements (the step counter is a Python int)."""
    if numel < MIN_8BIT_SIZE:                  # small tensors: two fp32
        return [4 * numel, 4 * numel]
    blocks = math.ceil(numel / BLOCK)
    return [numel, numel, 4 * blocks, 4 * blocks]   # uint8 m, v; absmaxes


# Two 256-entry fp32 code books (signed for m, unsigned for v), shared by
# every parameter of one optimizer.
ADAM8BIT_SHARED_NBYTES = [256 * 4, 256 * 4]
# --8<-- [end:adam8bit_bytes]
