# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Week 1 · Optimizers as state machines: the notebook
#
# The study plan of the week as one runnable notebook: its cells in their
# order, corrected where the plan was wrong or out of date. Each section
# links to the chapter that explains the why; the code here is the code
# the chapters show, imported from the repository's `snippets` package (the
# downloaded `.ipynb` carries a copy of each snippet it imports, so it runs
# anywhere torch ≥ 2.7 is installed).
#
# **Promise.** By the end, you can
#
# 1. write each update rule from memory,
# 2. compute (and *measure*) optimizer memory from first principles,
# 3. reproduce PyTorch's behaviour with minimal code, and
# 4. explain the "why" out loud without hand-waving.
#
# **Runs on a CPU.** Every cell runs on a CPU in well under a minute. The
# *measuring* cells print GPU figures (peak memory from
# `torch.cuda.max_memory_allocated`, times from CUDA events after a
# warm-up) when a CUDA GPU is present; on a CPU they say plainly that they
# skip the measurement, and the chapters show what a GPU measured.
#
# > Scope: momentum and second moments are treated as known concepts; the
# > notebook is about comparisons, memory and state, and PyTorch semantics.

# %% [markdown]
# ## 0 · Agenda, deliverables, whiteboard readiness
#
# ### 0.1 Mentor checklist → notebook map
#
# | Mentor item | Here | Chapter | Proof artifact |
# |---|---|---|---|
# | SGD vs SGD with momentum (memory, #params) | §2 | [2](../sgd-momentum.md) | `optimizer.state`, bytes counted |
# | SGD vs Adam (memory, #params) | §3 | [3](../adam.md), [3b](../optimizer-step.md) | state, bytes; GPU peak |
# | Weight decay in Adam vs AdamW | §4 | [4](../weight-decay.md), [4b](../param-groups.md) | the scalar test |
# | Gradient accumulation | §5 | [5](../grad-accumulation.md) | gradients equal the big batch's |
# | Activation checkpointing | §6 | [6](../checkpointing.md) | bytes held, peak, time |
#
# ### 0.2 Deliverables
#
# - A one-page summary: the [cheat sheet](../cheat-sheet.md), and §7 below.
# - "Prove it": the scalar test of §4, where Adam's and AdamW's decay part.
# - A verification suite: the cells below inspect `optimizer.state` and,
#   on a CUDA GPU, measure peak memory and time. Every claim the site makes
#   is checked by a test: see the [verified claims](../claims.md).
#
# ### 0.3 Reading (primary sources)
#
# - PyTorch: [SGD](https://docs.pytorch.org/docs/stable/generated/torch.optim.SGD.html),
#   [Adam](https://docs.pytorch.org/docs/stable/generated/torch.optim.Adam.html),
#   [AdamW](https://docs.pytorch.org/docs/stable/generated/torch.optim.AdamW.html),
#   [checkpoint](https://docs.pytorch.org/docs/stable/checkpoint.html),
#   [AMP examples](https://docs.pytorch.org/docs/stable/notes/amp_examples.html).
# - Kingma & Ba, *Adam* (2014): [arXiv 1412.6980](https://arxiv.org/abs/1412.6980).
# - Loshchilov & Hutter, *Decoupled Weight Decay Regularization* (2017):
#   [arXiv 1711.05101](https://arxiv.org/abs/1711.05101).
# - Chen et al., *Training Deep Nets with Sublinear Memory Cost* (2016):
#   [arXiv 1604.06174](https://arxiv.org/abs/1604.06174).
# - The [reading list](../reading-list.md) has more, with what each is for.
#
# Ground rule: where PyTorch's semantics matter, trust the official docs and
# a runnable micro-test over folklore.

# %%
# Setup: only what the cells below use (the study plan's cell imported os,
# math, time and typing names that no cell needed).
import inspect

import torch
import torch.nn.functional as F
from torch import nn

CUDA = torch.cuda.is_available()
device = torch.device("cuda" if CUDA else "cpu")
print("torch", torch.__version__)
if CUDA:
    print("measuring cells run on", torch.cuda.get_device_name(device))
else:
    print("no CUDA GPU: the measuring cells will say so and skip")

# %% [markdown]
# ## 1 · First principles: what costs memory during training?
#
# Training keeps four families of tensors
# ([chapter 1](../memory.md)):
#
# | Family | Lives | Grows with |
# |---|---|---|
# | parameters $\theta$ | the whole run | model size |
# | gradients $g = \nabla_\theta L$ | from `backward()` until cleared | model size |
# | optimizer state | from the first `step()` on | model size × optimizer |
# | activations | forward pass to backward pass | batch × sequence × depth |
#
# ### 1.1 The accounting model
#
# With $P$ trainable scalars and $b$ bytes per scalar (fp32: 4, bf16: 2),
# before activations
#
# $$
# M_\text{persistent} = P\,b_\theta + P\,b_g + k\,P\,b_s ,
# $$
#
# where $k$ counts the full-size tensors the optimizer keeps per parameter:
# 0 for SGD, 1 with momentum, 2 for Adam and AdamW, 3 with AMSGrad. Adam
# also keeps one 4-byte `step` counter per parameter *tensor*.
# Checkpointing (§6) works on the fourth family only.
#
# ### 1.2 zero_grad(): None, not zeros
#
# Since torch 2.0 `zero_grad()` sets gradients to `None` by default, which
# frees them. `set_to_none=False` keeps tensors of zeros: the memory stays
# held, and the optimizer *steps* a zero gradient (momentum coasts, AdamW
# decays) where it *skips* a `None` one
# ([chapter 4c](../none-vs-zero-grads.md)).
#
# The study plan's helpers counted bytes by hand and printed "KB" for
# 1024 bytes; the chapters' helpers print binary units (KiB, MiB) and count
# state per key.

# %%
from snippets.accounting import (count_params, grads_nbytes,
                                 optimizer_state_nbytes, params_nbytes,
                                 state_nbytes_by_key)
from snippets.formatting import format_bytes, format_table


def report_memory(model, optimizer, label):
    """The study plan's report: exact bytes per family (numel × size)."""
    print(f"--- {label} ---")
    print("P (numel):", count_params(model))
    print("params:", format_bytes(params_nbytes(model)))
    print("grads :", format_bytes(grads_nbytes(model)))
    print("state :", format_bytes(optimizer_state_nbytes(optimizer)),
          state_nbytes_by_key(optimizer))


zero_grad = inspect.signature(torch.optim.Optimizer.zero_grad)
print("zero_grad's set_to_none default:",
      zero_grad.parameters["set_to_none"].default)

# %%
# The tiny model of chapter 1: 128 -> 256 -> 10, on the CPU (the counts
# are the same on any device).
from snippets.models import TinyMLP

torch.manual_seed(0)
model = TinyMLP()
x = torch.randn(32, 128)
y = torch.randint(0, 10, (32,))
optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
report_memory(model, optimizer, "before any backward or step")
P = count_params(model)
print("P == (128*256 + 256) + (256*10 + 10):",
      P == (128 * 256 + 256) + (256 * 10 + 10))

# %%
# Activations: what autograd saves for backward, counted with a
# saved-tensor hook. The first Linear keeps its input (B x 128), the ReLU
# its output (B x 256): 1536 bytes per example, parameters not included.
from snippets.activations import SavedActivations


def activation_bytes(batch_size):
    with SavedActivations(model) as saved:
        model(torch.randn(batch_size, 128))
    return saved.nbytes


print("per example:", activation_bytes(1), "bytes")
print("batch 32:", format_bytes(activation_bytes(32)))
# Activations outgrow the parameters' bytes from batch 93 on.
print("overtake the parameters at batch 93:",
      [activation_bytes(b) > params_nbytes(model) for b in (92, 93)])

# %%
# 1.3 zero_grad(): None frees, zeros hold (and get stepped)
loss = F.cross_entropy(model(x), y)
loss.backward()
print("after backward: grads =", format_bytes(grads_nbytes(model)))

optimizer.zero_grad()  # set_to_none=True, the default
none_count = sum(p.grad is None for p in model.parameters())
print(f"after zero_grad(): {none_count} of "
      f"{len(list(model.parameters()))} grads are None,",
      "grads =", format_bytes(grads_nbytes(model)))

F.cross_entropy(model(x), y).backward()
optimizer.zero_grad(set_to_none=False)
print("after zero_grad(set_to_none=False): all zero?",
      all(bool((p.grad == 0).all()) for p in model.parameters()),
      "| grads =", format_bytes(grads_nbytes(model)))

# %%
# The behaviour differs too: one step with g = 1, then a second step with
# a None gradient or a zero one (chapter 4c).
from snippets.grad_none import second_step

for name, make in [
    ("SGD, momentum 0.9", lambda ps: torch.optim.SGD(ps, lr=0.1,
                                                     momentum=0.9)),
    ("AdamW", lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.1)),
]:
    for second in (None, 0.0):
        theta_1, theta_2, state = second_step(make, second)
        print(f"{name:18} second grad {str(second):4}: "
              f"theta {theta_1:.4f} -> {theta_2:.4f}")

# %% [markdown]
# ## 2 · SGD vs SGD with momentum
#
# ### 2.1 The update rule, exactly
#
# With $\gamma$ the learning rate, $\lambda$ = `weight_decay`, $\mu$ =
# `momentum` and $\tau$ = `dampening`, one `torch.optim.SGD` step is
# ([chapter 2](../sgd-momentum.md)):
#
# $$
# \begin{aligned}
# g_t &\leftarrow g_t + \lambda\,\theta_{t-1} && \text{(L2, before the buffer)}\\
# b_t &= g_t \text{ at } t = 1, \text{ later } \mu\, b_{t-1} + (1-\tau)\, g_t\\
# \theta_t &= \theta_{t-1} - \gamma\, b_t
#   && \text{(Nesterov: } \gamma\,(g_t + \mu\, b_t))
# \end{aligned}
# $$
#
# The first step *copies* the gradient into the buffer (no zeros, no
# dampening). PyTorch applies $\gamma$ to the buffer on the way out, where
# Sutskever et al. put it into the velocity: the same steps while $\gamma$
# is constant, different ones after a learning-rate drop.
#
# ### 2.2 "#params", answered precisely
#
# The **trainable parameters** $\theta$ are the same for SGD, momentum,
# Adam and AdamW. **Optimizer state** is extra persistent tensors, not
# parameters: it costs memory, checkpoint size and step time.
#
# ### 2.3 Memory, predicted
#
# Persistent scalars (params + grads + state): SGD $2P$, momentum $3P$.
# State is created lazily, at the first `step()`, so count after one.

# %%
# 2.4 Measured: optimizer.state after one step. The study plan stepped
# the first model twice over; here each optimizer gets its own copy.
import copy

from snippets.optimizer_state import (in_units_of_p, persistent_scalars,
                                      state_table)

torch.manual_seed(0)
base_model = TinyMLP()


def one_step(model, optimizer):
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


for momentum in (0.0, 0.9):
    model = copy.deepcopy(base_model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2,
                                momentum=momentum)
    print(f"SGD(momentum={momentum}): state before step:",
          dict(optimizer.state))
    one_step(model, optimizer)
    report_memory(model, optimizer, f"SGD(momentum={momentum}) after step")
    first_weight = model.net[0].weight
    if first_weight in optimizer.state:
        print(state_table(optimizer, first_weight))
    scalars = persistent_scalars(model, optimizer)
    total = scalars["params"] + scalars["grads"] + scalars["state"]
    print("persistent:", in_units_of_p(total, P), "\n")

# %% [markdown]
# SGD without momentum keeps nothing (up to torch 2.3 it stored
# `momentum_buffer=None` per parameter); with momentum it keeps one
# `momentum_buffer` shaped like each parameter: $4P$ bytes in fp32.
#
# ## 3 · SGD vs Adam
#
# ### 3.1 Adam as a state machine
#
# One `torch.optim.Adam` step, per parameter tensor
# ([chapter 3](../adam.md)):
#
# $$
# \begin{aligned}
# t &\leftarrow t + 1, \qquad g_t \leftarrow g_t + \lambda\,\theta_{t-1}
#   \quad \text{(L2, only if } \lambda \ne 0)\\
# m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
# v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2\\
# \hat m_t &= \frac{m_t}{1-\beta_1^t}, \qquad
#   \hat v_t = \frac{v_t}{1-\beta_2^t}\\
# \theta_t &= \theta_{t-1} - \gamma\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
# \end{aligned}
# $$
#
# `step` is $t$, `exp_avg` is $m$, `exp_avg_sq` is $v$; AMSGrad adds
# `max_exp_avg_sq`. The bias corrections make the first step move every
# coordinate by about $\gamma$, whatever the gradient's size.
#
# ### 3.2 Memory, predicted
#
# State $2P$ (AMSGrad $3P$) plus a 4-byte `step` per tensor; persistent
# $4P$ (AMSGrad $5P$). In fp32: 8, 12, 16 and 20 bytes per parameter for
# SGD, momentum, Adam and AMSGrad.
#
# ### 3.3 The peak of a step is more than the state
#
# The default step on a GPU is *foreach*: it may need about one more copy
# of the parameters at its peak; the for-loop a few tensors' worth; a
# `fused=True` step none ([chapter 3b](../optimizer-step.md)).

# %%
# 3.3 Measured: state keys and sizes for four optimizers, after one step
optimizers = {
    "SGD": lambda ps: torch.optim.SGD(ps, lr=1e-2),
    "SGD + momentum": lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9),
    "Adam": lambda ps: torch.optim.Adam(ps, lr=1e-3),
    "Adam, amsgrad": lambda ps: torch.optim.Adam(ps, lr=1e-3, amsgrad=True),
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=1e-3),
}
rows = []
for name, make in optimizers.items():
    model = copy.deepcopy(base_model)
    optimizer = make(model.parameters())
    one_step(model, optimizer)
    scalars = persistent_scalars(model, optimizer)
    total = scalars["params"] + scalars["grads"] + scalars["state"]
    keys = ", ".join(state_nbytes_by_key(optimizer)) or "-"
    rows.append([name, keys, in_units_of_p(scalars["state"], P),
                 in_units_of_p(total, P), scalars["other state"]])
print(format_table(["optimizer", "state keys", "state", "persistent",
                    "step counters"], rows))

# %% [markdown]
# ### 3.4 On a GPU: what the allocator holds, and the peak of step 2
#
# A measuring cell. On a CUDA GPU it trains a wider MLP two steps per
# optimizer and prints the counted persistent bytes (parameters,
# gradients, state, the batch), what `torch.cuda.memory_allocated()` holds
# after step 2, and the peak during step 2 (`max_memory_allocated`),
# both above what was allocated before the model. Step 2, because from
# then on the state is alive through forward and backward. The allocator
# rounds every block up to 512 bytes, so it reads a little more than the
# count ([chapter 1](../memory.md)).

# %%
from snippets.cuda_memory import MemoryMeter
from snippets.models import wide_mlp


def state_on_device(make_optimizer, device, width=4096, depth=4,
                    batch=256):
    """(counted bytes, allocated after step 2, peak of step 2); the two
    measured ones are None on a CPU, which has no allocator counter."""
    meter = MemoryMeter(device)
    meter.release_cache()
    before = meter.allocated()
    torch.manual_seed(0)
    model = wide_mlp(width, depth, 10).to(device)
    optimizer = make_optimizer(model.parameters())
    inputs = torch.randn(batch, width, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    for step in (1, 2):
        if step == 2:
            meter.reset_peak()
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    counted = (params_nbytes(model) + grads_nbytes(model)
               + optimizer_state_nbytes(optimizer)
               + inputs.nbytes + labels.nbytes)
    allocated, peak = meter.allocated(), meter.peak()
    if before is None:
        return counted, None, None
    return counted, allocated - before, peak - before


if CUDA:
    state_on_device(optimizers["SGD"], device)  # warm-up: cuBLAS, kernels
    rows = []
    for name, make in optimizers.items():
        counted, allocated, peak = state_on_device(make, device)
        rows.append([name, format_bytes(counted), format_bytes(allocated),
                     format_bytes(peak)])
    print(format_table(["optimizer", "counted", "allocated",
                        "peak of step 2"], rows))
else:
    print("CUDA not available: GPU memory measurement skipped. The counts "
          "above are exact on any device; chapter 3 shows a GPU's.")

# %% [markdown]
# ## 4 · Weight decay in Adam vs AdamW
#
# ### 4.1 Two things called "weight decay"
#
# **L2 penalty**: minimise $L(\theta) + \tfrac{\lambda}{2}\lVert\theta\rVert^2$,
# whose gradient is $g + \lambda\theta$: the decay joins the gradient, and
# whatever the optimizer does to gradients it does to the decay.
#
# **Decoupled decay**: shrink the weights beside the gradient step,
#
# $$
# \theta \leftarrow (1-\gamma\lambda)\,\theta, \qquad
# \theta \leftarrow \theta - \gamma\cdot\text{step}(g) .
# $$
#
# ### 4.2 The same update for plain SGD
#
# $\theta - \gamma(g + \lambda\theta) = (1-\gamma\lambda)\,\theta - \gamma g$:
# one update written two ways, under any lr schedule. With momentum they
# part: L2's $\lambda\theta$ goes through the buffer and decays about
# $1/(1-\mu)$ times harder ([chapter 4](../weight-decay.md)).
#
# ### 4.3 Not the same for Adam
#
# Adam divides by $\sqrt{\hat v}$, and L2's $\lambda\theta$ is divided with
# the gradient. On the first step ($\hat m_1 = g$, $\hat v_1 = g^2$):
#
# $$
# \text{L2: } \theta_1 = \theta_0 - \gamma\,
# \frac{g + \lambda\theta_0}{|g + \lambda\theta_0| + \epsilon},
# \qquad
# \text{decoupled: } \theta_1 = (1-\gamma\lambda)\,\theta_0
# - \gamma\,\frac{g}{|g| + \epsilon} .
# $$
#
# ### 4.4 PyTorch today
#
# - `Adam(weight_decay=λ)` is the L2 penalty; it flows into $m$ and $v$.
# - `AdamW` multiplies $\theta$ by $1-\gamma\lambda$ before the moment
#   updates: the moments never see $\lambda$, and the decay follows the lr
#   schedule.
# - Since torch 2.7 `AdamW` is `Adam` with `decoupled_weight_decay=True`,
#   bitwise. Mind the defaults: `weight_decay` is 0 for Adam, 0.01 for
#   AdamW, so `Adam(decoupled_weight_decay=True)` alone decays nothing.

# %%
# 4.5 The scalar test: theta = 1, lr = wd = 0.1, betas (0, 0), eps 1e-8,
# the gradient set by hand, one step. Predicted in float64 by the formulas
# above, then stepped by torch in float64 and in float32.
from snippets.weight_decay import (adam_decoupled, predict_first_adam_step,
                                   scalar_step)

hyper = dict(lr=0.1, weight_decay=0.1, betas=(0.0, 0.0), eps=1e-8)
cases = [("Adam (L2)", torch.optim.Adam, False),
         ("Adam, decoupled", adam_decoupled, True),
         ("AdamW", torch.optim.AdamW, True)]
rows = []
for grad in (0.0, 0.1):  # the study plan's two cells, in one table
    for label, make, decoupled in cases:
        predicted = predict_first_adam_step(grad, 1.0, lr=0.1,
                                            weight_decay=0.1, eps=1e-8,
                                            decoupled=decoupled)
        theta64, _ = scalar_step(make, grad, dtype=torch.float64, **hyper)
        theta32, _ = scalar_step(make, grad, **hyper)
        rows.append([grad, label, predicted, theta64, theta32])
print(format_table(["g", "optimizer", "predicted", "float64", "float32"],
                   rows))

# %% [markdown]
# With $g = 0$, Adam's L2 step normalises $\lambda\theta = 0.1$ to a full
# step of $\gamma$: $\theta$ lands near 0.9. Decoupled decay shrinks
# $\theta$ to $0.99$ and the Adam part is $0/(0+\epsilon) = 0$. The float32
# column differs from the prediction in the last bits only
# ([why](../weight-decay.md#prove-it-the-scalar-test)).

# %%
# 4.5c Adam(decoupled_weight_decay=True) is AdamW, bitwise, over five
# steps of random gradients; and the default trap.
from snippets.weight_decay import same_run

print("Adam(decoupled) == AdamW, bitwise:", same_run(
    lambda ps: adam_decoupled(ps, lr=1e-3, weight_decay=0.01),
    lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01)))
signature = inspect.signature(torch.optim.Adam).parameters
if "decoupled_weight_decay" in signature:
    p = nn.Parameter(torch.ones(1))
    trap = torch.optim.Adam([p], lr=0.1, decoupled_weight_decay=True)
    print("Adam(decoupled_weight_decay=True) decays by",
          trap.param_groups[0]["weight_decay"], "unless told")

# %% [markdown]
# ### 4.6 No decay on biases and norms
#
# Decay the weight matrices; leave biases, the gains and shifts of norm
# layers and 1-D scales undecayed
# ([chapter 4b](../param-groups.md)). The study plan's builder decided by
# **substrings of names** ("bn", "ln", "norm"): "subnet" contains "bn",
# "controlnet" contains "ln", and an `RMSNorm` named `rms` or a 1-D
# `layer_scale` slips through. On a small block with ordinary names:

# %%
from snippets.param_groups import TrapNet, describe_groups, seed_param_groups

torch.manual_seed(0)
trap_net = TrapNet()
print("The study plan's filter:")
print(describe_groups(trap_net, seed_param_groups(trap_net, 0.1)))

# %% [markdown]
# Decide by what a parameter *is*: decay `p` when `p.ndim >= 2` (nanoGPT's
# rule) and its module is not a norm, carry the names, and check that every
# trainable parameter lands in exactly one group (minGPT's assertions).

# %%
from snippets.param_groups import build_param_groups, check_partition

groups = build_param_groups(trap_net, weight_decay=0.1)
check_partition(trap_net, groups)  # raises if a parameter is lost
for group in groups:
    print(f"weight_decay={group['weight_decay']}:",
          ", ".join(group["param_names"]))
# Build the groups afresh for each optimizer: torch fills the dicts in.
optimizer = torch.optim.AdamW(groups, lr=1e-3)
print("group weight decays:",
      [g["weight_decay"] for g in optimizer.param_groups])

# %% [markdown]
# ## 5 · Gradient accumulation
#
# ### 5.1 The problem it solves
#
# A larger *effective* batch than fits: run a batch of $B$ as $K$
# micro-batches of $b = B/K$, add their gradients, step once. Activations
# shrink to one micro-batch's; parameters, gradients and state do not.
#
# ### 5.2 The math
#
# With a mean loss, the big batch's gradient is the average of the
# micro-batch means:
#
# $$
# \nabla_\theta \frac{1}{B}\sum_{i=1}^{B} \ell_i
# = \sum_{k=1}^{K} \frac{1}{K}\,\nabla_\theta
#   \Big(\frac{1}{b}\sum_{i \in k} \ell_i\Big) ,
# $$
#
# so divide each micro-batch's loss by $K$ before `backward()`, which adds
# into `p.grad`. For token losses with padding, divide the summed loss by
# the step's token count instead ([chapter 5](../grad-accumulation.md)).
#
# ### 5.3 The canonical loop
#
# `zero_grad()` once per effective batch; per micro-batch, `loss / K`
# and `backward()`; then clip and `step()` once. In the chapter's snippet:
#
# ```python
# optimizer.zero_grad()
# for x, y in zip(inputs.split(b), targets.split(b)):
#     loss = loss_fn(model(x), y) / K
#     loss.backward()
# optimizer.step()
# ```

# %%
# 5.4 Proof: one big batch against K micro-batches, same weights, data
# and RNG state; the study plan's model and data, every K.
from snippets.accumulation import accumulation_step, max_grad_difference

torch.manual_seed(123)
small = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
X, T = torch.randn(64, 16), torch.randn(64, 4)
mse = nn.MSELoss()  # reduction="mean"
big = copy.deepcopy(small)
mse(big(X), T).backward()
g_max = max(p.grad.abs().max().item() for p in big.parameters())
noise = 16 * torch.finfo(torch.float32).eps * g_max  # float32 rounding
for K in (1, 2, 4, 8, 16, 64):
    diff = max_grad_difference(small, mse, X, T, K)
    verdict = ("exactly equal" if diff == 0 else
               "equal within rounding" if diff < noise else "DIFFERENT")
    print(f"K={K:2}  b={64 // K:2}  max |g_big - g_acc| = {diff:.1e}  "
          f"{verdict}")

# %% [markdown]
# ### 5.5 Gotchas
#
# - **BatchNorm** in training mode sees micro-batch statistics, not the
#   big batch's.
# - **Dropout** draws different masks per micro-batch; draw them up front
#   if you need the big batch exactly.
# - **Token losses**: averaging per-micro-batch means is wrong when
#   micro-batches hold different numbers of tokens (the Hugging Face bug
#   of October 2024).
# - **Clipping** after the last micro-batch, on the summed gradient.
# - **DDP**: `no_sync()` around forward *and* backward of all but the last
#   micro-batch.
# - **Mixed precision**: the study plan's sketch used `torch.cuda.amp`,
#   which warns since torch 2.4. Today: `torch.autocast(device_type, dtype)`
#   and `torch.amp.GradScaler(device_type)`; scale each `loss / K`, and
#   only after the last micro-batch `unscale_`, clip, `step`, `update`.

# %%
# 5.5 Mixed precision + accumulation, runnable: bfloat16 without a scaler
# and float16 with a GradScaler, on the CPU, and on a CUDA GPU if present;
# each compared with the float32 big batch's gradients.
from snippets.accumulation import accumulate_gradients, gradients
from snippets.amp_accumulation import (amp_accumulation_step,
                                       relative_grad_error)

torch.manual_seed(0)
classifier = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
labels = torch.randint(0, 4, (64,))
device_types = ["cpu", "cuda"] if CUDA else ["cpu"]
for device_type in device_types:
    net = copy.deepcopy(classifier).to(device_type)
    inputs, targets = X.to(device_type), labels.to(device_type)
    accumulate_gradients(net, F.cross_entropy, inputs, targets, 1)
    reference = gradients(net)  # float32, one batch
    micro = list(zip(inputs.split(16), targets.split(16)))
    for dtype, scaled in ((torch.bfloat16, False), (torch.float16, True)):
        amp_net = copy.deepcopy(classifier).to(device_type)
        optimizer = torch.optim.SGD(amp_net.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler(device_type, enabled=scaled)
        out = amp_accumulation_step(amp_net, optimizer, scaler,
                                    F.cross_entropy, micro,
                                    device_type=device_type, dtype=dtype,
                                    max_norm=1.0)
        error = relative_grad_error(gradients(amp_net), reference)
        print(f"{device_type:4} {str(dtype):15} scale {out['scale']:>7} "
              f"skipped {out['skipped']!s:5} relative error {error:.1e}")

# %% [markdown]
# ### 5.6 On a GPU: the peak falls with K, the floor does not
#
# A measuring cell: a fixed effective batch $B$, split into $K$
# micro-batches, one optimizer step each. It prints the peak above the
# memory held between steps (`max_memory_allocated`) and the median step
# time (CUDA events, after warm-up).

# %%
from snippets.timing import median_ms


def accumulation_on_device(device, width=2048, depth=8, batch=32768,
                           ks=(1, 2, 4, 8), repeat=5):
    """Per K: (K, micro-batch size, peak above the floor, median ms).

    Chapter 5's sizes: 33.6 M parameters, 2 GiB of activations at K = 1."""
    meter = MemoryMeter(device)
    meter.release_cache()
    torch.manual_seed(0)
    model = wide_mlp(width, depth, 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    inputs = torch.randn(batch, width, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    rows = []
    for K in ks:
        def step():
            accumulation_step(model, optimizer, F.cross_entropy, inputs,
                              labels, K)
        step()  # warm-up; afterwards the gradients exist between steps
        meter.release_cache()
        floor = meter.allocated()  # params + grads + data
        meter.reset_peak()
        step()
        peak = meter.peak()
        above = None if floor is None else peak - floor
        ms = median_ms(step, device, warmup=1, repeat=repeat)
        rows.append((K, batch // K, above, ms))
    return rows


if CUDA:
    rows = [[K, b, format_bytes(above), f"{ms:.2f} ms"]
            for K, b, above, ms in accumulation_on_device(device)]
    print(format_table(["K", "micro-batch", "peak above floor", "step"],
                       rows))
else:
    print("CUDA not available: GPU peak and timing skipped; chapter 5 "
          "shows a GPU's.")

# %% [markdown]
# ## 6 · Activation checkpointing
#
# ### 6.1 Why activations dominate
#
# Autograd keeps what backward needs from the forward pass; of the four
# families only these grow with batch and sequence. A transformer-like
# block $x + W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}(x))$ of width $d$ holds
# $8d^2 + 7d$ parameters and keeps $10d + 2$ floats per token, so with $T$
# tokens activations outweigh the parameters from about $0.8\,d$ tokens
# ([chapter 6](../checkpointing.md)).
#
# ### 6.2 What checkpointing does
#
# `checkpoint(fn, x, use_reentrant=False)` runs `fn` keeping only its
# input; backward runs `fn` again, with gradients on, to rebuild what it
# needs. Less memory between forward and backward, one more forward of
# the region.
#
# ### 6.3 Pass use_reentrant=False
#
# The documentation recommends the non-reentrant implementation. Omit the
# argument and torch 2.13 still only warns and takes the reentrant path,
# which leaves the region's parameters without gradients (a warning says
# so, nothing fails) when no input of the region requires grad.
#
# ### 6.4 The study plan's experiment, corrected
#
# The plan wrapped a whole `DeepMLP` (batch 8) in **one** checkpoint and
# timed it with `time.time()`. Three problems: at batch 8 the activations
# are under 1% of the parameters, so there is nothing to save; one
# checkpoint around everything reruns the whole network in backward, where
# all its activations exist again, so **the peak hardly moves**; and its
# average included the checkpointed model's first, cold call (only the
# plain model was warmed up). Time GPU work with CUDA events, after a
# warm-up, and take the median of several repeats. Below: a block
# stack whose activations matter, five strategies, the CPU's exact byte
# counts, and on a GPU peak memory and CUDA-event times after warm-up.

# %%
# Counted on the CPU: bytes forward leaves for backward ("held"), the most
# bytes alive at once during the step (the CPU's stand-in for the peak),
# and the FLOPs of one training step.
from snippets.checkpointing import (block_stack, count_step, loss_of,
                                    no_checkpoint, one_checkpoint,
                                    per_block, segments, selective)
from snippets.checkpointing import gradients as block_gradients

strategies = {"none": no_checkpoint, "one checkpoint": one_checkpoint,
              "4 segments": segments(4), "per block": per_block,
              "selective": selective}
torch.manual_seed(0)
d, n, T = 16, 16, 256
blocks, tokens = block_stack(d, n), torch.randn(T, d)
counts = {name: count_step(blocks, tokens, forward)
          for name, forward in strategies.items()}
plain = counts["none"]
rows = [[name, format_bytes(c["held_bytes"]),
         format_bytes(c["max_live_bytes"]),
         f"{c['step_flops'] / plain['step_flops']:.2f}x"]
        for name, c in counts.items()]
print(format_table(["strategy", "held", "max live", "step FLOPs"], rows))

# No strategy changes a gradient: the rerun is the same computation.
reference = block_gradients(blocks, tokens, no_checkpoint)
print("gradients bitwise equal:", all(
    torch.equal(g, r) for forward in strategies.values()
    for g, r in zip(block_gradients(blocks, tokens, forward), reference)))

# %% [markdown]
# One checkpoint holds the least between forward and backward, yet its
# "max live" equals the unchecked run's: the rerun rebuilds everything at
# once, for a whole extra forward (a third more FLOPs). A checkpoint per
# block holds only the blocks' inputs and lowers the peak most, for about
# half a forward: the non-reentrant checkpoint stops recomputing once it
# has rebuilt what backward needs, and backward never needs a block's
# down-projection output ([why](../checkpointing.md)).

# %%
# 6.4 on a GPU: peak above the persistent baseline, and the median step
# time with CUDA events after warm-up (not time.time()).
def checkpointing_on_device(device, d=1024, n=8, tokens=16384, repeat=5):
    """Per strategy: (name, peak above baseline, median ms)."""
    meter = MemoryMeter(device)
    meter.release_cache()
    torch.manual_seed(0)
    stack = block_stack(d, n).to(device)
    batch = torch.randn(tokens, d, device=device)
    rows = []
    for name, forward in strategies.items():
        def step():
            stack.zero_grad(set_to_none=True)
            loss_of(forward(stack, batch)).backward()
        step()  # warm-up
        stack.zero_grad(set_to_none=True)
        baseline = meter.allocated()
        meter.reset_peak()
        step()
        peak = meter.peak()
        above = None if baseline is None else peak - baseline
        ms = median_ms(step, device, warmup=1, repeat=repeat)
        rows.append((name, above, ms))
    return rows


if CUDA:
    rows = [[name, format_bytes(above), f"{ms:.2f} ms"]
            for name, above, ms in checkpointing_on_device(device)]
    print(format_table(["strategy", "peak above baseline", "step"], rows))
else:
    print("CUDA not available: GPU peak and timing skipped; chapter 6 "
          "shows a GPU's.")

# %% [markdown]
# ### 6.5 Dropout and the RNG state
#
# The rerun draws random numbers again. By default `checkpoint` stashes
# the RNG state and restores it for the rerun (`preserve_rng_state=True`),
# so dropout draws the same mask and the gradients match. Turn it off and
# the forward output is unchanged but the gradients silently belong to a
# different mask. The state is stashed for the CPU and the device of the
# region's inputs; a region that moves tensors to another device loses the
# guarantee.

# %%
from torch.utils.checkpoint import checkpoint

torch.manual_seed(0)
noisy = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Dropout(0.5),
                      nn.Linear(64, 16))
inputs = torch.randn(8, 16)


def dropout_grads(forward):
    noisy.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same mask for every forward
    loss_of(forward(inputs)).backward()
    return [p.grad.clone() for p in noisy.parameters()]


plain_grads = dropout_grads(noisy)
for preserve in (True, False):
    grads = dropout_grads(lambda t: checkpoint(
        noisy, t, use_reentrant=False, preserve_rng_state=preserve))
    same = all(torch.equal(g, r) for g, r in zip(grads, plain_grads))
    print(f"preserve_rng_state={preserve}: gradients equal: {same}")

# %% [markdown]
# ## 7 · Synthesis: the cheat sheet and the talk tracks
#
# ### 7.1 The cheat sheet
#
# **Update rules**, with $g = \nabla_\theta L$, lr $\gamma$, weight decay
# $\lambda$:
#
# - **SGD**: $g \leftarrow g + \lambda\theta$ (L2), then
#   $\theta \leftarrow \theta - \gamma g$. **Momentum**: $b_1 = g_1$,
#   $b_t = \mu b_{t-1} + (1-\tau) g_t$, $\theta \leftarrow \theta - \gamma b_t$.
# - **Adam**: optional L2 $g \leftarrow g + \lambda\theta$; $m, v$ updated;
#   $\theta \leftarrow \theta - \gamma\,\hat m/(\sqrt{\hat v} + \epsilon)$.
# - **AdamW**: $\theta \leftarrow (1-\gamma\lambda)\,\theta$ first, then
#   Adam's step with $g$ alone; $\lambda$ never enters $m$ or $v$.
#
# **Memory**: persistent (params + grads + state), before activations.
#
# | Optimizer | State | Persistent | fp32 bytes per parameter |
# |---|---:|---:|---:|
# | SGD | 0 | $2P$ | 8 |
# | SGD + momentum | $P$ | $3P$ | 12 |
# | Adam / AdamW | $2P$ + `step` per tensor | $4P$ | 16 |
# | Adam / AdamW, amsgrad | $3P$ + `step` per tensor | $5P$ | 20 |
#
# A step's **peak** is higher: the activations (§6), and the step's own
# temporaries (foreach: about one more copy of the parameters).
#
# ### 7.2 Talk tracks, 90 seconds each
#
# - **SGD vs momentum.** Momentum adds one buffer per parameter, $P$
#   scalars of state; the parameter count is unchanged. The buffer starts
#   as a copy of the first gradient; on a steady gradient the step grows
#   to $\gamma g/(1-\mu)$.
# - **Adam vs SGD.** Two moments per parameter, $2P$ more state; each
#   coordinate's step is about $\gamma$ on a steady gradient, whatever the
#   gradient's scale.
# - **Adam vs AdamW.** Adam's `weight_decay` is an L2 penalty that the
#   normaliser divides out; AdamW shrinks $\theta$ by $1-\gamma\lambda$
#   beside the step. One scalar step shows it (§4.5).
# - **Accumulation.** $K$ micro-batches, each loss divided by $K$, one
#   step: the big batch's gradient within rounding, for deterministic
#   layers; not with BatchNorm, per-batch dropout masks or unequal token
#   counts.
# - **Checkpointing.** Keep a region's input, rerun it in backward:
#   activation memory for compute. Checkpoint every block; one checkpoint
#   around everything buys almost nothing.
#
# The full versions: [cheat sheet](../cheat-sheet.md),
# [talk tracks](../talk-tracks.md).
#
# ### 7.3 Drills (without a laptop)
#
# - $P$ parameters in fp32: the state of SGD, SGD with momentum, AdamW?
# - Show in one dimension why AdamW's decay differs from Adam's L2 decay.
# - Does accumulation reproduce the big batch exactly? What breaks it?
# - Why does checkpointing lower activations but not optimizer state?
#
# More in the [drills](../drills.md).

# %% [markdown]
# ## Appendix A · A quick memory calculator
#
# Persistent bytes from $P$, bytes per scalar and the optimizer; it leaves
# out activations, often the largest term. The study plan's example (a
# billion parameters, AdamW, everything in bf16) is the *pure bf16* case,
# 8 bytes per parameter. Usual mixed precision keeps bf16 weights and
# gradients plus fp32 master weights and two fp32 moments: 2 + 2 + 12 =
# 16 bytes per parameter (Rajbhandari et al., ZeRO), as much as plain fp32. The
# [memory calculator](../memory-calculator.md) goes further.

# %%
from dataclasses import dataclass


@dataclass
class MemoryEstimate:
    params: int
    grads: int
    state: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.state


def estimate(P, param_bytes, grad_bytes, state_bytes):
    """Bytes per parameter for each family, times P."""
    return MemoryEstimate(P * param_bytes, P * grad_bytes, P * state_bytes)


P_big = 1_000_000_000
setups = {
    "SGD, fp32": estimate(P_big, 4, 4, 0),
    "SGD + momentum, fp32": estimate(P_big, 4, 4, 4),
    "AdamW, fp32": estimate(P_big, 4, 4, 8),
    "AdamW, all bf16": estimate(P_big, 2, 2, 4),
    "AdamW, mixed precision": estimate(P_big, 2, 2, 12),
}
rows = [[name, format_bytes(e.params), format_bytes(e.grads),
         format_bytes(e.state), format_bytes(e.total)]
        for name, e in setups.items()]
print(format_table(["1e9 parameters", "params", "grads", "state",
                    "total"], rows))

# %% [markdown]
# ## Appendix B · Rehearse before the meeting
#
# - Explain "optimizer state vs trainable parameters" in two sentences.
# - Derive: for plain SGD, L2 and decoupled decay are one update.
# - Explain why Adam breaks that and how AdamW decouples.
# - Write the accumulation loop from memory: `loss / K`, `backward()` per
#   micro-batch, one `step()` and one `zero_grad()` per effective batch.
# - Explain why checkpointing saves activations, not optimizer state, and
#   what it costs: a rerun of the region's forward.
#
# The [rehearsal checklist](../checklist.md) is the printable version.
# Define the state, write the update, count the memory, then check it
# with a small experiment.
