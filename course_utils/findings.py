"""What each chapter found on its course model, as sentences built from the notebook's own numbers.

A chapter's closing "What we found" cell passes the values it computed to its function here and
prints the result with :func:`report`. Each :class:`Finding` carries its sentence and whether
the qualitative claim behind it holds on those numbers, so one piece of code states a claim,
decides it, and lets ``tests/test_findings.py`` assert it on the shipped model: a retrain that
changes the story fails the tests instead of leaving stale prose. On another model (a hub model
online) a claim that does not hold is printed as such, never stated as a fact.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


@dataclass(frozen=True)
class Finding:
    """One claim: ``text`` states it with the measured numbers; ``holds`` says whether they bear it out."""

    text: str
    holds: bool


def report(findings: Sequence[Finding]) -> None:
    """Print each finding; one that does not hold on this model is marked as such."""
    for finding in findings:
        print(("• " if finding.holds else "✗ does not hold on this model: ") + finding.text)


def _heads(layer: int, heads: Sequence[int]) -> str:
    return ", ".join(f"{layer}.{h}" for h in heads)


# --------------------------------------------------------------------------- chapter 05


def induction_findings(
    *,
    ind_scores: Float[Tensor, "layer head"],
    prev_scores: Float[Tensor, "layer head"],
    first_copy_loss: float,
    second_copy_loss: float,
    ablated: Float[Tensor, "head_0 head_1"],
    composition: dict[str, Float[Tensor, "head_0 head_1"]],
    baseline: float,
    qk_parts: Float[Tensor, "q_piece k_piece"],
    piece_names: Sequence[str],
    top1_alone: Sequence[float],
    top1_together: float,
    d_vocab: int,
) -> list[Finding]:
    """Chapter 05's findings on ``attn-only-2l`` from the scores, losses and circuits the notebook computed.

    ``ablated[i, j]``: induction score of layer-1 head ``j`` with layer-0 head ``i`` zero-ablated;
    ``qk_parts``: the best induction head's stripe score split by query piece × key piece;
    ``top1_alone``: top-1 copying accuracy of each induction head (layer-1 heads scoring >= 0.4).
    """
    prev = int(prev_scores[0].argmax())
    induction = [h for h in range(ind_scores.shape[1]) if ind_scores[1, h] >= 0.4]
    best = int(ind_scores[1].argmax())
    clean, knocked = ind_scores[1, best].item(), ablated[prev, best].item()
    others = [i for i in range(ablated.shape[0]) if i != prev]
    worst_other = min(ablated[i, best].item() for i in others) if others else clean
    k_score = composition["K"][prev, best].item()
    q_score, v_score = composition["Q"][prev, best].item(), composition["V"][prev, best].item()
    q_piece, k_piece = divmod(int(qk_parts.argmax()), qk_parts.shape[1])
    total = qk_parts.sum().item()
    return [
        Finding(
            f"In-context learning: the loss on the second copy of a random block is {second_copy_loss:.2f} nats, "
            f"against {first_copy_loss:.2f} on the first ({1 - second_copy_loss / first_copy_loss:.0%} lower).",
            second_copy_loss < 0.25 * first_copy_loss,
        ),
        Finding(
            f"Head 0.{prev} is the previous-token head: {prev_scores[0, prev]:.2f} of its attention goes to the "
            f"previous token (the next layer-0 head: {prev_scores[0].topk(2).values[1]:.2f}).",
            prev_scores[0, prev].item() >= 0.4,
        ),
        Finding(
            f"Layer-1 heads {_heads(1, induction) or 'none'} are induction heads (scores "
            f"{', '.join(f'{ind_scores[1, h]:.2f}' for h in induction) or '-'}); no layer-0 head scores above "
            f"{ind_scores[0].max():.2f}.",
            ind_scores[1].max().item() > 0.8 and ind_scores[0].max().item() < 0.2,
        ),
        Finding(
            f"Zero-ablating head 0.{prev} drops the induction score of head 1.{best} from {clean:.2f} to {knocked:.2f}; "
            f"ablating any other layer-0 head leaves it at {worst_other:.2f} or more.",
            knocked < 0.5 * clean and worst_other > knocked,
        ),
        Finding(
            f"The weights wire them by K-composition: 0.{prev} -> 1.{best} scores {k_score:.3f}, "
            f"{k_score / baseline:.1f} × the random baseline ({baseline:.3f}); its Q- and V-composition are "
            f"{q_score:.3f} and {v_score:.3f}.",
            k_score > 1.5 * baseline and k_score > max(q_score, v_score),
        ),
        Finding(
            f"Of head 1.{best}'s attention score on the induction stripe ({total:.1f} in all, biases left out), "
            f"the largest part, {qk_parts.max():.1f}, is the query's {piece_names[q_piece]} against the key's "
            f"{piece_names[k_piece]}: the query asks for the current token, and the key answers with the token "
            f"before it, written there by head 0.{prev}.",
            piece_names[k_piece] == f"0.{prev}" and qk_parts.max().item() > 0.5 * total,
        ),
        Finding(
            f"Each induction head alone copies {min(top1_alone):.0%} to {max(top1_alone):.0%} of the {d_vocab} tokens "
            f"(top-1 of its full OV circuit); their summed OV circuit copies {top1_together:.0%} (chance: "
            f"{1 / d_vocab:.2%}).",
            top1_together > 0.9 and top1_together >= max(top1_alone),
        ),
    ]
