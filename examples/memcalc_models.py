"""The memory calculator on models this project did not write: Hugging Face
decoders and encoders built from configs written here (no weights, no
network) and torchvision classifiers, across the four precisions,
checkpointing on and off and every optimizer, measured on the GPU against
the calculator's trace (snippets/memcalc/sources.py).

The rules were fitted on one set and are scored on the other: FITTED are
the configurations of HF Llama, whose traces gave the decoder closed form
its per-layer terms and on which the GQA branch was found; HELD_OUT (Qwen2,
Mistral, GPT-2, BERT and the torchvision models) were not looked at while
the rules were written. Each configuration trains three steps
(snippets/memcalc/training.py) and the third is measured, phase by phase,
above what was allocated before the model was built (cuBLAS's
workspaces released first, as in a fresh process). About a second per
configuration on a GPU; on the CPU (the tests) the smoke size traces a few
tiny ones and measures nothing.
"""

from __future__ import annotations

import gc
import itertools

import torch

from snippets.memcalc.sources import cuda_branches, model_case
from snippets.memcalc.tracer import estimate
from snippets.memcalc.training import Trainer


def _decoder(kind, layers=4, hidden=1024, heads=16, kv=4, ffn=2816,
             vocab=32000, **extra):
    return {"model_type": kind, "vocab_size": vocab, "hidden_size": hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "intermediate_size": ffn,
            "max_position_embeddings": 4096, **extra}


MODELS = {
    "llama": _decoder("llama"),
    "llama-mha": _decoder("llama", kv=16),
    "qwen2": _decoder("qwen2", vocab=65536),
    "mistral": _decoder("mistral", kv=8),
    "gpt2": {"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768,
             "n_layer": 6, "n_head": 12, "n_positions": 1024},
    "bert": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 768,
             "num_hidden_layers": 6, "num_attention_heads": 12,
             "intermediate_size": 3072},
    "resnet50": "torchvision:resnet50",
    "vit_b_16": "torchvision:vit_b_16",
    "convnext_tiny": "torchvision:convnext_tiny",
    "mobilenet_v3_large": "torchvision:mobilenet_v3_large",
}
FITTED = ("llama", "llama-mha")
PRECISIONS = ("fp32", "bf16-autocast", "bf16-mixed", "bf16")
OPTIMIZERS = (("adamw", "foreach"), ("adamw", "fused"), ("adam", "for-loop"),
              ("sgd", "foreach"),
              ("sgd-momentum", "foreach"), ("adafactor", "foreach"),
              ("muon", "foreach"), ("amsgrad", "foreach"))


def configs() -> list[tuple]:
    """(model, batch, seq or image size, checkpointing, optimizer,
    implementation, precision): 48 configurations (8-bit Adam needs
    bitsandbytes and is left to chapter 7's capture)."""
    out = []
    for name in ("llama", "llama-mha", "qwen2", "mistral"):
        for precision, ckpt in itertools.product(PRECISIONS,
                                                 ("none", "full")):
            out.append((name, 4, 1024, ckpt, "adamw", "foreach", precision))
    for name, (optimizer, impl) in zip(("gpt2", "bert") * 4, OPTIMIZERS):
        out.append((name, 8, 512, "none", optimizer, impl, "bf16-autocast"))
    for name in ("resnet50", "vit_b_16", "convnext_tiny",
                 "mobilenet_v3_large"):
        for precision in ("fp32", "bf16-autocast"):
            out.append((name, 32, 224, "none", "adamw", "foreach",
                        precision))
    return out


SIZES = {"full": {"configs": len(configs())}, "smoke": {"configs": 3}}
SMOKE = {"llama": _decoder("llama", layers=1, hidden=64, heads=4, kv=2,
                           ffn=128, vocab=256),
         "qwen2": _decoder("qwen2", layers=1, hidden=64, heads=4, kv=2,
                           ffn=128, vocab=256)}


def case(config: tuple, size: str):
    name, batch, length, ckpt, optimizer, impl, precision = config
    model = MODELS[name] if size == "full" else SMOKE.get(name, MODELS[name])
    if size == "smoke":
        batch, length = 1, 32
    vision = isinstance(model, str)
    build, loss_fn, _ = model_case(
        model, batch=batch, seq=None if vision else length,
        image_size=length if vision else 224, checkpointing=ckpt)
    return build, loss_fn


def muon_partition(model, params) -> list:
    """torch.optim.Muon for the 2-D weights of hidden layers, AdamW for
    embeddings (the heads of these models are tied to them), biases and
    norms: the calculator's rule, not training.py's every-matrix one."""
    embedded = {id(p) for m in model.modules()
                if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    hidden = [p for p in params if p.ndim == 2 and id(p) not in embedded]
    others = [p for p in params if p.ndim != 2 or id(p) in embedded]
    return [torch.optim.Muon(hidden, lr=1e-3),
            torch.optim.AdamW(others, lr=1e-4, foreach=True)]


def measure(build, loss_fn, optimizer, impl, precision) -> dict:
    gc.collect()
    torch._C._cuda_clearCublasWorkspaces()   # as a fresh process starts
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = build()
    trainer = Trainer(model, loss_fn, optimizer, precision, impl)
    if optimizer == "muon":    # Muon's own partition: hidden matrices
        trainer.optimizers = muon_partition(model, trainer.params)
    trainer.step()
    trainer.step()
    peaks = {}
    torch.cuda.reset_peak_memory_stats()
    trainer.loss = trainer.forward()
    torch.cuda.synchronize()
    peaks["forward"] = torch.cuda.max_memory_allocated() - base
    torch.cuda.reset_peak_memory_stats()
    trainer.backward()
    torch.cuda.synchronize()
    peaks["backward"] = torch.cuda.max_memory_allocated() - base
    torch.cuda.reset_peak_memory_stats()
    trainer.update()
    torch.cuda.synchronize()
    peaks["optimizer step"] = torch.cuda.max_memory_allocated() - base
    trainer.loss = None
    del trainer, model
    gc.collect()
    phase = max(peaks, key=peaks.get)
    return {"peak_bytes": peaks[phase], "phase": phase,
            "phase_peak_bytes": peaks}


def run(device: torch.device, size: str) -> dict:
    rows = []
    for config in configs()[: SIZES[size]["configs"]]:
        name, batch, length, ckpt, optimizer, impl, precision = config
        build, loss_fn = case(config, size)
        with cuda_branches():
            e = estimate(build, loss_fn, optimizer=optimizer,
                         implementation=impl, precision=precision)
        row = {"model": name, "set": "fitted" if name in FITTED
               else "held out", "batch": batch, "length": length,
               "checkpointing": ckpt, "optimizer": optimizer,
               "implementation": impl, "precision": precision,
               "parameters": e.parameters,
               "predicted": {"max_bytes": e.peak, "phase": e.phase,
                             "attention": e.attention}}
        row["measured"] = (measure(build, loss_fn, optimizer, impl,
                                   precision) if device.type == "cuda"
                           else {"peak_bytes": None, "phase": None,
                                 "phase_peak_bytes": None})
        rows.append(row)
    return {"configs": rows}
