"""The study kit's real-scale numbers: four published models, in bytes.

Nothing here is measured; everything is a formula the chapters test:

* parameter counts: `snippets.memcalc.families` (each preset's count is the
  published one, tests/test_memcalc_families.py);
* model states per rank under ZeRO: `snippets.zero_formulas`, chapter 8's
  formula, checked there against the ZeRO paper's Figure 1;
* activations per token per layer: Korthikanti et al. 2022 (arXiv
  2205.05198, Eq. 1), the per-layer term of
  `snippets.memcalc.baselines.korthikanti`, which this module's function
  must equal (tests/test_study_kit_real_scale.py).
"""

from __future__ import annotations

# --8<-- [start:real_scale]
from snippets.memcalc.families import Decoder, parameter_count, preset
from snippets.zero_formulas import RECIPES, zero_bytes_per_rank

# The kit's four sizes and the published model each one stands for
MODELS = {"1B": "llama-3.2-1b", "7B": "llama-2-7b", "8B": "llama-3-8b",
          "70B": "llama-3.1-70b"}
GB = 10**9  # the ZeRO paper's unit, and the unit GPUs are sold in
SEQ = 4096  # tokens per sequence in the activation table
RANKS = 8   # data-parallel ranks in the per-rank table


def params(size: str) -> int:
    """Trainable parameters of the model behind `size`, exactly."""
    return parameter_count(preset(MODELS[size]))


def activation_bytes_per_layer(seq: int, batch: int, hidden: int,
                               heads: int, checkpointing: str = "none"
                               ) -> int:
    """16-bit activations one transformer layer keeps for backward
    (Korthikanti et al. 2022, Eq. 1): s·b·h·(34 + 5·a·s/h) bytes.

    The 5as/h term is the attention's s x s matrices; selective
    recomputation (or a fused attention kernel, which never stores them)
    drops it; full checkpointing keeps only the layer's input, 2sbh."""
    sbh = seq * batch * hidden
    if checkpointing == "full":
        return 2 * sbh
    if checkpointing == "selective":
        return 34 * sbh
    return 34 * sbh + 5 * heads * seq * seq * batch


def per_token_per_layer(model: Decoder, checkpointing: str = "none",
                        seq: int = SEQ) -> float:
    """The same, for one token of one layer of `model` (at `seq`)."""
    return activation_bytes_per_layer(seq, 1, model.hidden, model.heads,
                                      checkpointing) / seq


def states_gb(size: str) -> dict[str, float]:
    """GB of the model-state families of `size`: multiples of P."""
    P = params(size)
    return {"params": P / GB,
            "2P": 2 * P / GB,    # bf16 weights, or bf16 gradients
            "4P": 4 * P / GB,    # fp32 weights, master copy or one moment
            "16P": 16 * P / GB,  # AdamW, fp32 or mixed precision
            "8P": 8 * P / GB}    # AdamW, pure bf16


def per_rank_gb(size: str, N: int = RANKS,
                recipe: str = "mixed") -> list[float]:
    """GB of model states one of N ranks holds at ZeRO stages 0-3."""
    return [zero_bytes_per_rank(params(size), N, stage,
                                RECIPES[recipe]).total / GB
            for stage in range(4)]


def activations_kib(size: str, seq: int = SEQ) -> list[float]:
    """KiB per token per layer: none, selective, full checkpointing."""
    model = preset(MODELS[size])
    return [per_token_per_layer(model, c, seq) / 1024
            for c in ("none", "selective", "full")]
# --8<-- [end:real_scale]
