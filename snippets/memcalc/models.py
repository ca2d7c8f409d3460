"""The models the memory calculator is checked on, and their losses.

`GPT` is a GPT-2-style decoder (learned positions, pre-LayerNorm blocks,
GELU MLP of width 4h, tied input and output embeddings) whose attention
runs through `F.scaled_dot_product_attention` or eagerly (softmax of
QK^T, the s x s matrix kept), with grouped-query heads when `kv_heads` <
`heads`, and activation checkpointing none, full (every block) or
selective (matrix products and attention saved, the rest recomputed).
The closed form of snippets/memcalc/transformer.py describes exactly this
model. `ConvNet` is a small VGG-style image classifier.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import (CheckpointPolicy, checkpoint,
                                    create_selective_checkpoint_contexts)

CHECKPOINTING = ("none", "full", "selective")
aten = torch.ops.aten
SAVED_BY_SELECTIVE = {
    aten.mm.default, aten.addmm.default, aten.bmm.default,
    aten._scaled_dot_product_cudnn_attention.default,
    aten._scaled_dot_product_flash_attention.default,
    aten._scaled_dot_product_efficient_attention.default,
}


def _save_products(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    if op in SAVED_BY_SELECTIVE:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def selective_contexts():
    return create_selective_checkpoint_contexts(_save_products)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, seq: int,
                 attention: str):
        super().__init__()
        self.heads, self.kv_heads = heads, kv_heads
        self.head_dim = hidden // heads
        kv = kv_heads * self.head_dim
        self.qkv = nn.Linear(hidden, hidden + 2 * kv)
        self.proj = nn.Linear(hidden, hidden)
        self.eager = attention == "eager"
        if self.eager:   # True above the diagonal: the future is masked
            future = torch.ones(seq, seq, dtype=torch.bool).triu(1)
            self.register_buffer("future", future, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        d, kv = self.head_dim, self.kv_heads * self.head_dim
        q, k, v = self.qkv(x).split([h, kv, kv], dim=2)
        q = q.view(b, s, self.heads, d).transpose(1, 2)
        k = k.view(b, s, self.kv_heads, d).transpose(1, 2)
        v = v.view(b, s, self.kv_heads, d).transpose(1, 2)
        if not self.eager:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True,
                enable_gqa=self.kv_heads != self.heads)
        else:
            if self.kv_heads != self.heads:
                repeat = self.heads // self.kv_heads
                k = k.repeat_interleave(repeat, dim=1)
                v = v.repeat_interleave(repeat, dim=1)
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
            scores = scores.masked_fill(self.future[:s, :s], float("-inf"))
            y = F.softmax(scores, dim=-1) @ v
        return self.proj(y.transpose(1, 2).contiguous().view(b, s, h))


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, seq: int,
                 attention: str):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = Attention(hidden, heads, kv_heads, seq, attention)
        self.ln2 = nn.LayerNorm(hidden)
        self.fc = nn.Linear(hidden, 4 * hidden)
        self.act = nn.GELU(approximate="tanh")
        self.out = nn.Linear(4 * hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.out(self.act(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int, seq: int, layers: int, hidden: int,
                 heads: int, kv_heads: int | None = None,
                 attention: str = "sdpa", checkpointing: str = "none"):
        super().__init__()
        if checkpointing not in CHECKPOINTING:
            raise ValueError(f"checkpointing: one of {CHECKPOINTING}")
        kv_heads = kv_heads or heads
        self.checkpointing = checkpointing
        self.wte = nn.Embedding(vocab, hidden)
        self.wpe = nn.Embedding(seq, hidden)
        self.blocks = nn.ModuleList(
            Block(hidden, heads, kv_heads, seq, attention)
            for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, vocab, bias=False)
        self.head.weight = self.wte.weight       # tied embeddings

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        for block in self.blocks:
            if self.checkpointing == "full":
                x = checkpoint(block, x, use_reentrant=False)
            elif self.checkpointing == "selective":
                x = checkpoint(block, x, use_reentrant=False,
                               context_fn=selective_contexts)
            else:
                x = block(x)
        return self.head(self.ln_f(x))


def gpt_loss(model: GPT, batch: int, seq: int, vocab: int) -> torch.Tensor:
    """Next-token cross-entropy on random tokens, the logits in fp32."""
    device = model.wte.weight.device
    tokens = torch.randint(vocab, (batch, seq + 1), device=device)
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.float().flatten(0, 1),
                           tokens[:, 1:].flatten())


class ConvNet(nn.Module):
    """Conv-BatchNorm-ReLU pairs, max-pooled four times, and a classifier."""

    def __init__(self, width: int = 64, classes: int = 100):
        super().__init__()
        layers, channels = [], 3
        for stage in range(4):
            out = width * 2 ** stage
            for _ in range(2):
                layers += [nn.Conv2d(channels, out, 3, padding=1,
                                     bias=False),
                           nn.BatchNorm2d(out), nn.ReLU()]
                channels = out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(images)
        return self.classifier(x.mean(dim=(2, 3)))


def image_loss(model: nn.Module, batch: int, size: int = 64,
               classes: int = 100) -> torch.Tensor:
    p = model.classifier.weight
    images = torch.randn(batch, 3, size, size, device=p.device,
                         dtype=p.dtype)
    labels = torch.randint(classes, (batch,), device=p.device)
    return F.cross_entropy(model(images).float(), labels)


def mlp_loss(model: nn.Module, tokens: int, width: int) -> torch.Tensor:
    p = next(model.parameters())
    x = torch.randn(tokens, width, device=p.device, dtype=p.dtype)
    return model(x).float().pow(2).mean()


def gpt_case(vocab, seq, layers, hidden, heads, kv_heads=None,
             attention="sdpa", checkpointing="none", batch=1):
    """(build_model, loss_fn) for estimate() and for a real run."""
    build = partial(GPT, vocab, seq, layers, hidden, heads, kv_heads,
                    attention, checkpointing)
    return build, partial(gpt_loss, batch=batch, seq=seq, vocab=vocab)
