"""A lean, reusable training loop for TransformerBridge models (AdamW, warmup + cosine decay).

Example (chapter 5: watch an induction head form)::

    from course_utils.zoo.train import train
    from course_utils.zoo.batches import copy_batches
    from course_utils.zoo.evaluate import induction_scores

    scores = []
    def record(step, model, loss):
        scores.append((step, induction_scores(model).induction.max().item()))
    train(model, copy_batches(model.cfg.d_vocab, bos_id=0, batch=32, seq_len=64), steps=600,
          lr=3e-3, callback=record, callback_every=25)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

Tokens = Int[torch.Tensor, "batch seq"]
LossWeights = Float[torch.Tensor, "batch seq_minus_1"]
Batch = Tokens | tuple[Tokens, LossWeights]
"""Plain tokens (every next-token prediction weighs 1) or tokens with per-target loss weights
(0 for padding, >1 to up-weight e.g. an answer position). Weight ``[b, i]`` scores the
prediction of ``tokens[b, i + 1]``."""
Callback = Callable[[int, TransformerBridge, float], None]


@dataclass
class TrainLog:
    """What a run did: steps, tokens seen, wall time and the loss curve (one value per step)."""

    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)


def weighted_loss(logits: Float[torch.Tensor, "batch seq vocab"], batch: Batch) -> torch.Tensor:
    """Mean next-token cross-entropy, weighted per target position when weights are given."""
    tokens, weights = batch if isinstance(batch, tuple) else (batch, None)
    per_token = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
    )
    if weights is None:
        return per_token.mean()
    weights = weights.reshape(-1).to(per_token.dtype)
    return (per_token * weights).sum() / weights.sum().clamp_min(1e-8)


def lr_at(step: int, steps: int, lr: float, warmup: int, final_fraction: float) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * final_fraction``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def tie_embeddings(model: TransformerBridge) -> None:
    """Make the unembedding share the embedding's parameter (``W_U = W_E.T``, as GPT-2 does).

    Copying a token then only needs an OV circuit close to the identity on the embedding space,
    whatever the vocabulary size: with untied random ``W_E`` and ``W_U`` a 4096-token model
    must first learn to align the two, token by token, and induction heads never formed in our
    CPU budget. A saved checkpoint stores both matrices (equal), so loading needs nothing special.
    """
    model.unembed.original_component.weight = model.embed.original_component.weight


@dataclass(frozen=True)
class SinusoidalPositions:
    """A fixed ``W_pos``: sinusoids in the last ``dims`` dimensions of the residual stream, rows of
    norm ``norm`` (see :func:`freeze_sinusoidal_positions`)."""

    dims: int
    norm: float = 1.0


def sinusoidal_positions(
    n_ctx: int, d_model: int, dims: int | None = None, norm: float = 1.0
) -> Float[torch.Tensor, "n_ctx d_model"]:
    """The fixed positional embedding of Vaswani et al. (2017) in the last ``dims`` dimensions of the
    residual stream (all ``d_model`` by default; the others stay 0), rows scaled to norm ``norm``:
    dimensions ``2i`` and ``2i + 1`` of that block hold ``sin`` and ``cos`` of ``pos / 10000 ** (2i / dims)``."""
    dims = d_model if dims is None else dims
    if not 2 <= dims <= d_model or dims % 2:
        raise ValueError(f"dims must be even and in [2, d_model={d_model}], got {dims}")
    pos = torch.arange(n_ctx, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dims, 2, dtype=torch.float32) / dims)
    block = torch.zeros(n_ctx, dims)
    block[:, 0::2] = torch.sin(pos * freq)
    block[:, 1::2] = torch.cos(pos * freq)
    table = torch.zeros(n_ctx, d_model)
    table[:, d_model - dims :] = block / math.sqrt(dims / 2) * norm
    return table


def freeze_sinusoidal_positions(model: TransformerBridge, positions: SinusoidalPositions) -> None:
    """Set ``W_pos`` to :func:`sinusoidal_positions` and exclude it from training.

    With a learned ``W_pos`` the heads of our small models that read positions (previous-token
    heads, the heads that find a question's subject) failed late in the context (past position
    ~64-100). A fixed table treats every position alike. Confined to a block of the residual stream,
    it leaves the other dimensions to the tokens alone, so a head can read positions with little
    interference from the tokens. The checkpoint stores the table like any weight, so loading needs
    nothing special.
    """
    weight = model.pos_embed.original_component.weight
    with torch.no_grad():
        weight.copy_(sinusoidal_positions(*weight.shape, positions.dims, positions.norm))
    weight.requires_grad_(False)


def train(
    model: TransformerBridge,
    batches: Iterator[Batch],
    steps: int,
    lr: float = 1e-3,
    *,
    warmup: int = 50,
    weight_decay: float = 0.01,
    final_lr_fraction: float = 0.1,
    grad_clip: float = 1.0,
    callback: Callback | None = None,
    callback_every: int = 50,
    desc: str = "training",
) -> TrainLog:
    """Train ``model`` in place for ``steps`` optimizer steps on ``batches``; return a :class:`TrainLog`.

    ``callback(step, model, loss)`` runs every ``callback_every`` steps and after the last one,
    with the model in eval mode under ``torch.no_grad()`` (use it to record metrics).
    The model is left in eval mode.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and p.requires_grad]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 and p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
    )
    log = TrainLog()
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc=desc)
    for step in bar:
        try:
            batch = next(batches)
        except StopIteration:
            raise ValueError(f"the batch iterator ran out after {step} of {steps} steps") from None
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup, final_lr_fraction)
        tokens = batch[0] if isinstance(batch, tuple) else batch
        loss = weighted_loss(model(tokens, return_type="logits"), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        log.losses.append(loss.item())
        log.tokens += tokens.numel()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if callback is not None and ((step + 1) % callback_every == 0 or step + 1 == steps):
            model.eval()
            with torch.no_grad():
                callback(step + 1, model, loss.item())
            model.train()
    log.steps = steps
    log.seconds = time.perf_counter() - start
    model.eval()
    return log
