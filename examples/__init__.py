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
    "memcalc_ranks",
    "memcalc_models",
)

# Modules that only *predict* what an example measures. The pages recompute those predictions from
# the current code and never show the captured ones, so a change to these modules leaves the
# measurement fresh; the capture stays fresh while the files that measure are unchanged (each one's
# digest is recorded in the capture). See snippets/captures.py.
PREDICTION_SOURCES: dict[str, tuple[str, ...]] = {
    "memory_calculator": tuple(f"snippets/memcalc/{m}.py" for m in (
        "__init__", "allocator", "baselines", "cuda_rules", "optimizers", "tracer", "transformer")),
}

# Examples written and smoke-tested on the CPU whose first GPU capture is still to be made, with
# the reason. The tests skip their capture checks (saying why) and still run them at smoke size;
# no page may show a number from one. Remove the entry with the capture's commit.
AWAITING_CAPTURE: dict[str, str] = {}

# Optional packages an example needs on the GPU, with the one line that says how to get them. The
# runner checks them before it starts the example, so a missing one is reported at once.
REQUIREMENTS: dict[str, dict[str, str]] = {
    "mixed_precision": {"bitsandbytes": 'pip install -e ".[gpu]"  (8-bit Adam)'},
    "memcalc_models": {"transformers": 'pip install -e ".[hf]"',
                       "torchvision": 'pip install -e ".[vision]"'},
}
