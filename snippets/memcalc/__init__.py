"""Predict a training step's peak GPU memory, and say where it goes.

    estimate(build_model, loss_fn, optimizer=..., precision=...)  any model
    estimate_transformer(Shape(...))                  GPT shapes, closed form
    estimate_model("llama-3-8b" | config.json | "torchvision:resnet50")
    optimizer-memory / python -m snippets.memcalc    the command

See docs/memory-calculator.md.
"""

from snippets.memcalc.optimizers import IMPLEMENTATIONS, OPTIMIZERS
from snippets.memcalc.tracer import (PRECISIONS, Estimate, estimate,
                                     largest_micro_batch)
from snippets.memcalc.sources import estimate_model
from snippets.memcalc.transformer import (Shape, estimate_transformer,
                                          largest_micro_batch as
                                          largest_transformer_batch)

__all__ = ["Estimate", "IMPLEMENTATIONS", "OPTIMIZERS", "PRECISIONS",
           "Shape", "estimate", "estimate_model", "estimate_transformer",
           "largest_micro_batch", "largest_transformer_batch"]
