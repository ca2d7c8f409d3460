"""Decoder-only transformer families by their shapes: GPT-2, Llama,
Mistral, Qwen2 and Mixtral-style mixtures of experts.

`Decoder` holds what a Hugging Face `config.json` says about a model's
shapes; `parameter_shapes` lists its parameters in `model.parameters()`
order, as transformers builds them; `parameter_count` adds them up. The
presets are the published configs of the models the study kit quotes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod

MLPS = ("gelu", "swiglu")
NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("learned", "rotary")


@dataclass(frozen=True)
class Decoder:
    """A decoder-only transformer's shapes."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int = 0            # 0: as many as heads (no grouped query)
    ffn: int = 0                 # 0: 4 x hidden
    mlp: str = "gelu"            # gelu: up, down; swiglu: gate, up, down
    norm: str = "layernorm"      # layernorm has a bias, rmsnorm none
    linear_bias: bool = True     # biases on every projection (GPT-2)
    qkv_bias: bool = False       # biases on q, k, v only (Qwen2)
    tied: bool = True            # the head reuses the embedding
    positions: str = "learned"   # learned: a second embedding table
    max_positions: int = 0       # rows of the learned position table
    experts: int = 0             # 0: a dense MLP in every layer
    top_k: int = 0               # experts each token is routed to

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_width(self) -> int:
        return (self.kv_heads or self.heads) * self.head_dim

    @property
    def ffn_width(self) -> int:
        return self.ffn or 4 * self.hidden


def check(d: Decoder) -> None:
    """Raise ValueError, in one line, for shapes no model can have."""
    for name in ("vocab", "hidden", "layers", "heads"):
        value = getattr(d, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, "
                             f"not {value!r}")
    if d.hidden % d.heads:
        raise ValueError("hidden must be a multiple of heads")
    if d.kv_heads < 0 or (d.kv_heads and d.heads % d.kv_heads):
        raise ValueError("kv_heads must divide heads")
    if d.ffn < 0 or d.max_positions < 0:
        raise ValueError("ffn and max_positions cannot be negative")
    for name, choices in (("mlp", MLPS), ("norm", NORMS),
                          ("positions", POSITIONS)):
        if getattr(d, name) not in choices:
            raise ValueError(f"unknown {name} {getattr(d, name)!r}; "
                             "choose one of " + ", ".join(choices))
    if d.positions == "learned" and d.max_positions < 1:
        raise ValueError("learned positions need max_positions")
    if d.experts < 0 or d.top_k < 0 or (d.experts and not
                                        1 <= d.top_k <= d.experts):
        raise ValueError("top_k must be between 1 and experts")


def _norm(d: Decoder) -> list[tuple[int, ...]]:
    return [(d.hidden,), (d.hidden,)] if d.norm == "layernorm" \
        else [(d.hidden,)]


def _linear(d: Decoder, out: int, inp: int,
            bias: bool) -> list[tuple[int, ...]]:
    return [(out, inp), (out,)] if bias else [(out, inp)]


def _mlp(d: Decoder) -> list[tuple[int, ...]]:
    h, f, b = d.hidden, d.ffn_width, d.linear_bias
    if d.mlp == "gelu":
        return _linear(d, f, h, b) + _linear(d, h, f, b)
    return _linear(d, f, h, b) + _linear(d, f, h, b) + _linear(d, h, f, b)


def parameter_shapes(d: Decoder) -> list[tuple[int, ...]]:
    """Every parameter's shape, in model.parameters() order."""
    check(d)
    h, kv = d.hidden, d.kv_width
    qkv = d.linear_bias or d.qkv_bias
    shapes = [(d.vocab, h)]
    if d.positions == "learned":
        shapes.append((d.max_positions, h))
    for _ in range(d.layers):
        layer = (_linear(d, h, h, qkv) + _linear(d, kv, h, qkv)
                 + _linear(d, kv, h, qkv) + _linear(d, h, h, d.linear_bias))
        if d.experts:      # the router, then each expert's MLP
            layer += [(d.experts, h)] + _mlp(d) * d.experts
        else:
            layer += _mlp(d)
        shapes += layer + _norm(d) + _norm(d)
    shapes += _norm(d)
    if not d.tied:
        shapes.append((d.vocab, h))
    return shapes


def parameter_count(d: Decoder) -> int:
    """Trainable scalars (a tied head counts once)."""
    return sum(prod(s) for s in parameter_shapes(d))


def active_parameter_count(d: Decoder) -> int:
    """Scalars one token passes through: top_k of the experts."""
    if not d.experts:
        return parameter_count(d)
    expert = sum(prod(s) for s in _mlp(d))
    return parameter_count(d) - d.layers * (d.experts - d.top_k) * expert


_LLAMA = dict(mlp="swiglu", norm="rmsnorm", linear_bias=False,
              positions="rotary")

# The published config.json of each model (Hugging Face Hub).
PRESETS: dict[str, Decoder] = {
    "gpt2": Decoder(vocab=50257, hidden=768, layers=12, heads=12,
                    max_positions=1024),
    "llama-3.2-1b": Decoder(vocab=128256, hidden=2048, layers=16,
                            heads=32, kv_heads=8, ffn=8192, **_LLAMA),
    "llama-2-7b": Decoder(vocab=32000, hidden=4096, layers=32, heads=32,
                          ffn=11008, tied=False, **_LLAMA),
    "llama-3-8b": Decoder(vocab=128256, hidden=4096, layers=32, heads=32,
                          kv_heads=8, ffn=14336, tied=False, **_LLAMA),
    "llama-3.1-70b": Decoder(vocab=128256, hidden=8192, layers=80,
                             heads=64, kv_heads=8, ffn=28672, tied=False,
                             **_LLAMA),
    "mistral-7b": Decoder(vocab=32000, hidden=4096, layers=32, heads=32,
                          kv_heads=8, ffn=14336, tied=False, **_LLAMA),
    "qwen2-7b": Decoder(vocab=152064, hidden=3584, layers=28, heads=28,
                        kv_heads=4, ffn=18944, tied=False, qkv_bias=True,
                        **_LLAMA),
    "mixtral-8x7b": Decoder(vocab=32000, hidden=4096, layers=32, heads=32,
                            kv_heads=8, ffn=14336, tied=False, experts=8,
                            top_k=2, **_LLAMA),
}


def preset(name: str) -> Decoder:
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; choose one of "
                         + ", ".join(PRESETS))
    return PRESETS[name]


def with_options(d: Decoder, **changes) -> Decoder:
    """A copy with some shapes changed, checked."""
    new = replace(d, **changes)
    check(new)
    return new


def hf_config_dict(d: Decoder) -> dict:
    """The config.json transformers would read for these shapes (GPT-2,
    Llama, Qwen2 or Mixtral), for building the model itself."""
    check(d)
    if d.positions == "learned":
        return {"model_type": "gpt2", "vocab_size": d.vocab,
                "n_embd": d.hidden, "n_layer": d.layers, "n_head": d.heads,
                "n_positions": d.max_positions,
                "n_inner": d.ffn or None, "tie_word_embeddings": d.tied}
    common = {"vocab_size": d.vocab, "hidden_size": d.hidden,
              "num_hidden_layers": d.layers,
              "num_attention_heads": d.heads,
              "num_key_value_heads": d.kv_heads or d.heads,
              "intermediate_size": d.ffn_width,
              "tie_word_embeddings": d.tied,
              "max_position_embeddings": d.max_positions or 4096}
    if d.experts:
        return {**common, "model_type": "mixtral",
                "num_local_experts": d.experts,
                "num_experts_per_tok": d.top_k}
    if d.qkv_bias:
        return {**common, "model_type": "qwen2"}
    return {**common, "model_type": "llama"}


DECODER_TYPES = ("llama", "mistral", "qwen2", "mixtral")


def from_hf_config(config) -> Decoder:
    """The shapes of a Llama, Mistral, Qwen2 or Mixtral config (a
    transformers config object or its dict); ValueError for another."""
    c = config if isinstance(config, dict) else config.to_dict()
    kind = c.get("model_type")
    if kind not in DECODER_TYPES:
        raise ValueError(f"no closed form for model_type {kind!r} (only "
                         + ", ".join(DECODER_TYPES) + "): trace it")
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    if head_dim * heads != c["hidden_size"]:
        raise ValueError("head_dim x heads != hidden_size: trace it")
    return Decoder(vocab=c["vocab_size"], hidden=c["hidden_size"],
                   layers=c["num_hidden_layers"], heads=heads,
                   kv_heads=c.get("num_key_value_heads") or heads,
                   ffn=c["intermediate_size"], mlp="swiglu",
                   norm="rmsnorm", linear_bias=False,
                   qkv_bias=kind == "qwen2",
                   tied=bool(c.get("tie_word_embeddings", False)),
                   positions="rotary",
                   max_positions=c.get("max_position_embeddings", 0) or 0,
                   experts=c.get("num_local_experts", 0) if
                   kind == "mixtral" else 0,
                   top_k=c.get("num_experts_per_tok", 0) if
                   kind == "mixtral" else 0)
