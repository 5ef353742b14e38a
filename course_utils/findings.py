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


def _and(items: Sequence[str]) -> str:
    return " and ".join(items) if len(items) < 3 else ", ".join(items[:-1]) + " and " + items[-1]


PREVIOUS_TOKEN_HEAD = 0.4
"""A head whose mean attention to the previous token reaches this is called a previous-token head."""


def _previous_token_heads(scores: Float[Tensor, " head"]) -> tuple[list[int], float]:
    """The heads of one layer scoring >= :data:`PREVIOUS_TOKEN_HEAD` (best first; at least the best one),
    and the best score among the others."""
    order = scores.argsort(descending=True).tolist()
    prev = [h for h in order if scores[h] >= PREVIOUS_TOKEN_HEAD] or order[:1]
    rest = [scores[h].item() for h in order if h not in prev]
    return prev, max(rest, default=0.0)


def _previous_token_sentence(layer: int, heads: Sequence[int], scores: Float[Tensor, " head"], next_best: float) -> str:
    names = _and([f"{layer}.{h}" for h in heads])
    values = _and([f"{scores[h]:.2f}" for h in heads])
    if len(heads) == 1:
        return f"Head {names} is a previous-token head: {values} of its attention goes one position back"
    return f"Heads {names} are previous-token heads: {values} of their attention goes one position back"


# --------------------------------------------------------------------------- chapter 01


def hooks_findings(
    *,
    n_correct: int,
    n_total: int,
    prev_table: Float[Tensor, "layer head"],
    loss_increase: Float[Tensor, "layer head"],
    clean_loss: float,
    answer: str,
    answer_ranks: Sequence[int],
    answer_probs: Sequence[float],
    mlp_shapes: dict[str, tuple[int, ...]],
    d_model: int,
    d_mlp: int,
) -> list[Finding]:
    """Chapter 01's findings: predictions, the previous-token head and head ablations on ``attn-only-2l``
    (the code paragraph), the rank of an answer through a prompt, and the MLP hook shapes of ``gelu-4l``."""
    n_heads = prev_table.shape[1]
    prev_layer = int(prev_table.max(dim=1).values.argmax())
    prev_heads, next_best = _previous_token_heads(prev_table[prev_layer])
    next_best = max(
        [next_best] + [prev_table[layer].max().item() for layer in range(len(prev_table)) if layer != prev_layer]
    )
    worst = divmod(int(loss_increase.argmax()), n_heads)
    ranks = list(answer_ranks)
    widths = {name.rsplit(".", 1)[-1]: shape[-1] for name, shape in mlp_shapes.items()}
    return [
        Finding(
            f"The model's top guess is right on {n_correct} of the {n_total} tokens of the code paragraph "
            f"({n_correct / n_total:.0%}).",
            0 < n_correct < n_total,
        ),
        Finding(
            _previous_token_sentence(prev_layer, prev_heads, prev_table[prev_layer], next_best)
            + f" (the next head: {next_best:.2f}).",
            prev_table[prev_layer, prev_heads].min().item() >= PREVIOUS_TOKEN_HEAD
            and prev_table[prev_layer, prev_heads].min().item() > next_best + 0.1,
        ),
        Finding(
            f"Zero-ablating head {worst[0]}.{worst[1]} raises the loss most, from {clean_loss:.2f} to "
            f"{clean_loss + loss_increase[worst].item():.2f} nats; ablating "
            + _and(
                [f"previous-token head {prev_layer}.{h} adds {loss_increase[prev_layer, h]:.2f}" for h in prev_heads]
            )
            + ".",
            loss_increase[worst].item() > 0.05,
        ),
        Finding(
            f"Through the prompt, {answer!r} ranks as high as {max(ranks)} before the context repeats, and "
            f"{ranks[-1]} (probability {answer_probs[-1]:.2f}) at its end.",
            ranks[-1] == 0 and max(ranks) > 100,
        ),
        Finding(
            f"In gelu-4l, hook_pre and hook_post are {widths.get('hook_pre')} and {widths.get('hook_post')} wide "
            f"(d_mlp, {d_mlp / d_model:.0f} × d_model), and only hook_mlp_out is d_model = {widths.get('hook_mlp_out')} wide.",
            widths.get("hook_pre") == widths.get("hook_post") == d_mlp != d_model
            and widths.get("hook_mlp_out") == d_model,
        ),
    ]


# --------------------------------------------------------------------------- chapter 03


def residual_findings(
    *,
    attribution_error: float,
    unscaled_error: float,
    final_scale: float,
    true_diffs: Float[Tensor, prompt],
    head_map: Float[Tensor, "layer head"],
    io_ranks: Sequence[int],
    raw_ranks: Sequence[int],
    rank_labels: Sequence[str],
    component_ranking: Sequence[str],
) -> list[Finding]:
    """Chapter 03's findings on ``gelu-4l``: exact attribution, the frozen scale, the IOI logit difference
    by head, the answer's rank through the layers, and the components ranked over every position."""
    n_heads = head_map.shape[1]
    top = divmod(int(head_map.argmax()), n_heads)
    positive = head_map.clamp(min=0).sum().item()
    share = head_map[top].item() / positive if positive > 0 else 1.0

    def first_top(ranks: Sequence[int]) -> str:
        return next((label for label, rank in zip(rank_labels, ranks) if rank == 0), "never")

    return [
        Finding(
            f"With the final LayerNorm's scale frozen, the direct logit attribution adds up to the model's logit "
            f"of the indirect object within {attribution_error:.1e}; without dividing by that scale ({final_scale:.2f}) "
            f"the same sum misses it by {unscaled_error:+.2f}.",
            attribution_error < 1e-3 and abs(unscaled_error) > 0.5,
        ),
        Finding(
            f"The model prefers the indirect object on {int((true_diffs > 0).sum())} of {len(true_diffs)} held-out IOI "
            f"prompts, by {true_diffs.mean():.2f} logits on average.",
            (true_diffs > 0).float().mean().item() >= 0.75 and true_diffs.mean().item() > 0,
        ),
        Finding(
            f"No single head carries that difference directly: the most positive head, L{top[0]}H{top[1]}, gives "
            f"{head_map[top]:.2f}, {share:.0%} of what all heads with a positive mean give together.",
            head_map[top].item() > 0 and share < 0.5,
        ),
        Finding(
            f"Decoded with the final LayerNorm, the indirect object first ranks top at {first_top(io_ranks)}; "
            f"decoded without it, at {first_top(raw_ranks)}.",
            io_ranks[-1] == 0,
        ),
        Finding(
            f"Summed over every prompt and position, {component_ranking[0]} gives the most direct attribution to the "
            f"next token, then {component_ranking[1]} and {component_ranking[2]}.",
            component_ranking[0].endswith("mlp_out"),
        ),
    ]


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
    prev_heads, next_best = _previous_token_heads(prev_scores[0])
    prev = prev_heads[0]
    induction = [h for h in range(ind_scores.shape[1]) if ind_scores[1, h] >= 0.4]
    best = int(ind_scores[1].argmax())
    clean = ind_scores[1, best].item()
    knocked = [ablated[h, best].item() for h in prev_heads]
    others = [i for i in range(ablated.shape[0]) if i not in prev_heads]
    worst_other = min(ablated[i, best].item() for i in others) if others else clean
    k_score = composition["K"][prev, best].item()
    q_score, v_score = composition["Q"][prev, best].item(), composition["V"][prev, best].item()
    q_piece, k_piece = divmod(int(qk_parts.argmax()), qk_parts.shape[1])
    from_prev = {h: qk_parts[q_piece, list(piece_names).index(f"0.{h}")].item() for h in prev_heads}
    total = qk_parts.sum().item()
    return [
        Finding(
            f"In-context learning: the loss on the second copy of a random block is {second_copy_loss:.2f} nats, "
            f"against {first_copy_loss:.2f} on the first ({1 - second_copy_loss / first_copy_loss:.0%} lower).",
            second_copy_loss < 0.25 * first_copy_loss,
        ),
        Finding(
            _previous_token_sentence(0, prev_heads, prev_scores[0], next_best)
            + f" (the next layer-0 head: {next_best:.2f}).",
            prev_scores[0, prev_heads].min().item() >= PREVIOUS_TOKEN_HEAD,
        ),
        Finding(
            f"Layer-1 heads {_heads(1, induction) or 'none'} are induction heads (scores "
            f"{', '.join(f'{ind_scores[1, h]:.2f}' for h in induction) or '-'}); no layer-0 head scores above "
            f"{ind_scores[0].max():.2f}.",
            ind_scores[1].max().item() > 0.8 and ind_scores[0].max().item() < 0.2,
        ),
        Finding(
            "Zero-ablating "
            + _and([f"head 0.{h}" for h in prev_heads])
            + (" (one at a time)" if len(prev_heads) > 1 else "")
            + f" drops the induction score of head 1.{best} from {clean:.2f} to "
            + _and([f"{k:.2f}" for k in knocked])
            + (" respectively" if len(prev_heads) > 1 else "")
            + f"; ablating any other layer-0 head leaves it at {worst_other:.2f} or more."
            + (
                " The previous-token heads share the work: without one, the other still supplies part of the key."
                if len(prev_heads) > 1
                else ""
            ),
            min(knocked) < 0.6 * clean
            and worst_other > max(knocked)
            and (len(prev_heads) == 1 or min(knocked) > 0.1 * clean),
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
            f"{piece_names[k_piece]}"
            + (
                ", and with the key's "
                + _and([f"0.{h} ({v:.1f})" for h, v in from_prev.items() if f"0.{h}" != piece_names[k_piece]])
                + f" the previous-token heads give {sum(from_prev.values()):.1f}"
                if len(prev_heads) > 1
                else ""
            )
            + ": the query asks for the current token, and the key answers with the token before it, written "
            f"there by {_and([f'head 0.{h}' for h in prev_heads])}.",
            piece_names[k_piece] in {f"0.{h}" for h in prev_heads} and sum(from_prev.values()) > 0.5 * total,
        ),
        Finding(
            f"Each induction head alone copies {min(top1_alone):.0%} to {max(top1_alone):.0%} of the {d_vocab} tokens "
            f"(top-1 of its full OV circuit); their summed OV circuit copies {top1_together:.0%} (chance: "
            f"{1 / d_vocab:.2%})."
            if top1_alone
            else "No layer-1 head scores 0.4 or more, so there is no induction head whose OV circuit could copy tokens.",
            bool(top1_alone) and top1_together > 0.9 and top1_together >= max(top1_alone),
        ),
    ]


# --------------------------------------------------------------------------- chapter 06

IF_AUROC, BEHAVIOUR_AUROC = "per-head ' if' contributions", "' else' logit only (behaviour)"
CONTROL_SAME, CONTROL_NO_SPACE, CONTROL_ELIF, CONTROL_PAREN = (
    "' if' (unchanged)",
    "'if' (no space)",
    "' elif'",
    "condition ends in ')'",
)


def if_else_findings(
    *,
    decomposition_error: float,
    n_prefixes: int,
    if_contribution: Float[Tensor, head],
    logit_parts: dict[str, float],
    mean_logit: float,
    gaps: dict[str, float],
    aurocs: dict[str, float],
    controls: dict[str, tuple[float, float, Float[Tensor, control_head]]],
    control_heads: Sequence[int],
) -> list[Finding]:
    """Chapter 06's findings on ``attn-only-1l`` from the decomposition, the detector and the controls.

    ``if_contribution``: each head's mean contribution to the `` else`` logit from `` if`` tokens
    (trusted prefixes); ``logit_parts``: the mean of each part of that logit on trusted prefixes;
    ``gaps``: mean |approximation − logit| per omission variant (keys ``"all four"`` and
    ``"only the …"``); ``aurocs``: AUROC per feature set; ``controls``: per control, the mean
    `` else`` logit, its mean probability and the mean contribution of each of ``control_heads``
    (the heads whose OV circuit ranks `` if`` high) from the source token.
    """
    top = if_contribution.topk(2)
    share = top.values.sum().item() / if_contribution.sum().item()
    single = {name.removeprefix("only the "): gap for name, gap in gaps.items() if name.startswith("only the ")}
    worst = max(single, key=single.get)
    same, no_space, elif_, paren = (
        controls[name] for name in (CONTROL_SAME, CONTROL_NO_SPACE, CONTROL_ELIF, CONTROL_PAREN)
    )
    parts_text = ", ".join(f"{name} {value:.2f}" for name, value in logit_parts.items())
    return [
        Finding(
            f"The decomposition is exact: on all {n_prefixes} held-out prefixes its parts add up to the model's "
            f"' else' logit to within {decomposition_error:.1e}.",
            decomposition_error < 1e-3,
        ),
        Finding(
            f"Heads {int(top.indices[0])} and {int(top.indices[1])} carry ' if' -> ' else': on trusted prefixes they add "
            f"{top.values[0]:.2f} and {top.values[1]:.2f} to the logit from ' if' tokens, {share:.0%} of what all heads "
            "add from ' if'.",
            share > 0.6 and top.values[0].item() > 0.5,
        ),
        Finding(
            f"Of the mean ' else' logit on trusted prefixes, {mean_logit:.2f}, {parts_text}.",
            abs(sum(logit_parts.values()) - mean_logit) < 1e-2 and logit_parts["the heads reading ' if'"] > 0.5,
        ),
        Finding(
            f"The quick OV-circuit estimate is off by {gaps['all four']:.2f} on average; the single omission that "
            f"hurts most is the {worst} ({single[worst]:.2f}).",
            gaps["all four"] > 0.5 and single[worst] > 0.5,
        ),
        Finding(
            f"The detector on per-head ' if' contributions separates anomalous from held-out trusted prefixes with "
            f"AUROC {aurocs[IF_AUROC]:.2f}; the ' else' logit alone scores {aurocs[BEHAVIOUR_AUROC]:.2f}.",
            aurocs[IF_AUROC] > 0.7 and aurocs[IF_AUROC] > aurocs[BEHAVIOUR_AUROC] + 0.1,
        ),
        Finding(
            f"Heads {list(control_heads)} read the token ' if', not its letters: swapping it for 'if' drops what they add from it "
            f"from {same[2].sum():.2f} to {no_space[2].sum():.2f} and P(' else') from {same[1]:.2f} to {no_space[1]:.2f}; "
            f"' elif' keeps {elif_[2].sum():.2f}.",
            no_space[2].sum().item() < 0.25 * same[2].sum().item() and no_space[1] < same[1],
        ),
        Finding(
            f"Ending the condition in ')' leaves ' else' coming from ' if': heads {list(control_heads)} add "
            f"{paren[2].sum():.2f} from it (unchanged prefixes: {same[2].sum():.2f}), head {control_heads[int(paren[2].argmax())]} the most.",
            paren[2].sum().item() > 0.5 * same[2].sum().item(),
        ),
    ]
