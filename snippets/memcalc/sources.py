"""Models by name or config: Hugging Face and torchvision, built on the meta
device and traced like any nn.Module.

    estimate_model("meta-llama/Llama-3.1-8B")   # the Hub: config.json only
    estimate_model("path/to/config.json")       # or its folder
    estimate_model(LlamaConfig(...))            # a transformers config
    estimate_model("torchvision:resnet50")

Only a model's config is read, never its weights: the model is built on the
meta device and its parameters become fake tensors. `transformers` and
`torchvision` are optional (pip install -e ".[hf]" or ".[vision]"); each
is imported where it is used, and a missing one is named in one line.

While the trace runs, a Hugging Face model takes the branches it takes on a
GPU: fake tensors have no values, so transformers treats them as a graph
being compiled and never checks whether the sequences are packed, builds
an s x s mask instead of SDPA's `is_causal`, and therefore repeats the
key/value heads instead of passing `enable_gqa`. `cuda_branches()` answers
those two questions as the real run does for the inputs the calculator
makes (one sequence per row, no padding), so that grouped-query attention
in fp32 reaches the math kernel, as it does on CUDA.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from snippets.memcalc.tracer import Estimate, estimate

INSTALL = {"transformers": 'pip install -e ".[hf]"',
           "torchvision": 'pip install -e ".[vision]"'}
_TORCHVISION_SCHEMAS: list = []


class SourceError(ValueError):
    """A model that cannot be had: the message is one line."""


def require(package: str):
    """Import an optional package, or say in one line how to get it."""
    if package == "torchvision" or package == "transformers":
        _torchvision_without_ops()
    try:
        return __import__(package)
    except ImportError:
        raise SourceError(f"{package} is not installed: "
                          f"{INSTALL[package]}") from None


def _torchvision_without_ops() -> None:
    """torchvision's PyPI wheels are built for CUDA torch: beside a CPU
    torch its C++ ops do not load, and torchvision 0.28 then fails on
    import registering fake kernels for two of them (nms, qnms). Models
    need none of its ops: define the two schemas so the import succeeds.
    transformers imports torchvision when it is installed, so this runs
    before either."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or _TORCHVISION_SCHEMAS or not spec.origin:
        return
    library = next(Path(spec.origin).parent.glob("_C*.so"), None)
    try:
        if library is not None:
            torch.ops.load_library(str(library))
            return
    except OSError:
        pass
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold)"
                   " -> Tensor")
    _TORCHVISION_SCHEMAS.append(lib)


# ---- Hugging Face ---------------------------------------------------------

def hf_config(model):
    """A transformers config from a config object, a dict, a path to a
    config.json (or its folder), or a Hub name (config.json only)."""
    transformers = require("transformers")
    if isinstance(model, transformers.PretrainedConfig):
        return model
    if isinstance(model, dict):
        return _from_dict(transformers, model)
    path = Path(str(model))
    if path.is_dir():
        path = path / "config.json"
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise SourceError(f"no such config file: {path}")
        try:
            return _from_dict(transformers,
                              json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise SourceError(f"{path} is not JSON: {error}") from None
    name = str(model)
    if name.count("/") != 1 or " " in name:
        raise SourceError(f"{name!r} is neither a config.json nor a "
                          "Hugging Face name such as org/model")
    if os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0"):
        raise SourceError(f"{name} is on the Hugging Face Hub and this "
                          "machine is offline: pass a path to its "
                          "config.json")
    try:
        return transformers.AutoConfig.from_pretrained(name)
    except Exception as error:   # no network, no such repo, gated repo
        reason = str(error).strip().splitlines()[0][:120]
        raise SourceError(f"cannot read {name}'s config.json from the Hub "
                          f"({reason}): pass a path to its config.json"
                          ) from None


def _from_dict(transformers, config: dict):
    kind = config.get("model_type")
    if not kind:
        raise SourceError("the config has no model_type")
    try:
        return transformers.AutoConfig.for_model(
            **{k: v for k, v in config.items()
               if not k.startswith("_")})
    except (ValueError, KeyError) as error:
        raise SourceError(f"transformers does not know model_type "
                          f"{kind!r}: {str(error).splitlines()[0][:80]}"
                          ) from None


def _hf_class(transformers, config):
    """The model with a language-modelling head: causal, else masked."""
    for auto in (transformers.AutoModelForCausalLM,
                 transformers.AutoModelForMaskedLM):
        if type(config) in auto._model_mapping:
            return auto
    raise SourceError(f"{type(config).__name__}: no causal or masked "
                      "language-model head in transformers")


def hf_case(config, batch: int = 1, seq: int | None = None,
            checkpointing: str = "none", attention: str = "sdpa"):
    """(build_model, loss_fn) of a Hugging Face model: random tokens in,
    the model's own loss (labels = inputs) out."""
    transformers = require("transformers")
    config = hf_config(config)
    auto = _hf_class(transformers, config)
    if checkpointing not in ("none", "full"):
        raise SourceError("Hugging Face models checkpoint none or full "
                          "(gradient_checkpointing_enable)")
    seq = seq or min(getattr(config, "max_position_embeddings", 2048),
                     2048)
    vocab = config.vocab_size

    def build():
        config.use_cache = False
        model = auto.from_config(config, attn_implementation=attention)
        if checkpointing == "full":     # renamed in transformers 5.x
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):
                model.activation_checkpointing_enable(
                    activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs=kwargs)
        model.train()
        return model

    def loss_fn(model):
        device = next(model.parameters()).device
        tokens = torch.randint(vocab, (batch, seq), device=device)
        return model(input_ids=tokens, labels=tokens).loss
    return build, loss_fn


@contextlib.contextmanager
def cuda_branches():
    """While tracing, transformers answers as on the GPU for unpacked,
    unpadded sequences (see the module's docstring)."""
    if importlib.util.find_spec("transformers") is None:
        yield
        return
    masking = __import__("transformers.masking_utils",
                         fromlist=["find_packed_sequence_indices"])
    sdpa = __import__("transformers.integrations.sdpa_attention",
                      fromlist=["use_gqa_in_sdpa"])
    saved = (masking.find_packed_sequence_indices, sdpa.use_gqa_in_sdpa)

    def unpacked(position_ids):     # one sequence per row: no packing
        return None

    def gqa_as_on_cuda(attention_mask, key, value):
        return attention_mask is None and \
            key.shape[-1] == value.shape[-1] <= 256
    masking.find_packed_sequence_indices = unpacked
    sdpa.use_gqa_in_sdpa = gqa_as_on_cuda
    try:
        yield
    finally:
        masking.find_packed_sequence_indices, sdpa.use_gqa_in_sdpa = saved


# ---- torchvision ------------------------------------------------------------

def vision_case(name: str, batch: int = 1, image_size: int = 224,
                classes: int = 1000):
    """(build_model, loss_fn) of a torchvision classifier: random images,
    cross-entropy against random labels."""
    require("torchvision")
    from torchvision import models
    if name not in models.list_models(module=models):
        raise SourceError(f"torchvision has no classifier {name!r} "
                          "(torchvision.models.list_models())")

    def build():
        return models.get_model(name, weights=None, num_classes=classes)

    def loss_fn(model):
        p = next(model.parameters())
        images = torch.randn(batch, 3, image_size, image_size,
                             device=p.device, dtype=p.dtype)
        labels = torch.randint(classes, (batch,), device=p.device)
        out = model(images)
        if isinstance(out, tuple):          # Inception's aux logits
            out = out[0]
        return F.cross_entropy(out.float(), labels)
    return build, loss_fn


# ---- one entry point ------------------------------------------------------

def model_case(model, batch: int = 1, seq: int | None = None,
               image_size: int = 224, checkpointing: str = "none"):
    """(build_model, loss_fn, kind) for a name, a path or a config."""
    if isinstance(model, str) and model.startswith("torchvision:"):
        if checkpointing != "none":
            raise SourceError("torchvision models: checkpointing none")
        return (*vision_case(model.split(":", 1)[1], batch, image_size),
                "vision")
    return (*hf_case(model, batch, seq, checkpointing), "hf")


def estimate_model(model, *, batch: int = 1, seq: int | None = None,
                   image_size: int = 224, checkpointing: str = "none",
                   **options) -> Estimate:
    """estimate() for a Hugging Face config or name, or a torchvision
    model ("torchvision:resnet50"); `options` are estimate()'s."""
    build, loss_fn, _ = model_case(model, batch, seq, image_size,
                                   checkpointing)
    with cuda_branches():
        return estimate(build, loss_fn, **options)

