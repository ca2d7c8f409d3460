"""One script per measurement, run on a CUDA GPU to make the captures in docs/captures/.

Each example module is importable and runnable on its own and defines

    SIZES = {"full": {...}, "smoke": {...}}    # "full" on the GPU, "smoke" tiny for CPU tests
    def run(device: torch.device, size: str) -> dict   # plain, JSON-ready data

`python -m examples [NAME ...]` runs them and writes the captures (see examples/__main__.py).
The tables and figures the site shows are drawn from the committed JSON by examples/render/,
at build time, so restyling never needs a GPU (and never makes a capture stale).
"""

# Run order; `python -m examples` with no names runs all of them.
EXAMPLES = (
    "optimizer_state",
    "zero_grad",
    "optimizer_step",
    "grad_accumulation",
    "activation_breakdown",
    "checkpoint_seed_demo",
    "checkpointing",
    "mixed_precision",
    "memory_calculator",
    "zero_fsdp",
)
