"""Learner checks for chapter 03, the residual stream and direct logit attribution.

Every check runs the learner's function and the reference on the course model ``gelu-4l``
(an IOI prompt and a factual-recall prompt), whatever model the notebook itself uses; the
attribution checks add a random 4-layer model, whose non-zero ``b_U`` exposes a doubly counted
unembedding bias (``gelu-4l``'s ``b_U`` is zero).
:data:`KNOWN_MISTAKES` maps each exercise's diagnoses to functions that make those classic
mistakes; the checks name one when a learner's output matches it, and
``tests/test_chapter_checks.py`` proves each one is rejected.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import torch
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge

from course_utils.chapters import solutions_for
from course_utils.harness import Case, CheckResult, Tolerance, check, check_answer, describe_difference
from course_utils.models import load_model, random_model
from course_utils.tasks import facts, ioi

SOLUTION = solutions_for(__name__)
CHECK_MODEL = "gelu-4l"
IOI_SEED = 0
"""The notebook's IOI prompts are ``ioi.ioi_prompts(N_IOI_PROMPTS, split="heldout", seed=IOI_SEED)``."""
N_IOI_PROMPTS = 16
FACT_SUBJECT = "Poland"
KNOWN_MISTAKES: dict[str, dict[str, Callable]] = {}
"""Exercise → diagnosis → a function with the learner's signature that makes that mistake; each
section below adds its exercises, and each check passes ``known_mistakes=KNOWN_MISTAKES[name]``."""


# --- inputs (cached: a check must take well under a second) --------------------------------
@functools.cache
def check_model() -> TransformerBridge:
    """The course model the checks run on."""
    return load_model(CHECK_MODEL, device="cpu").requires_grad_(False)


@functools.cache
def run(text: str) -> tuple[torch.Tensor, ActivationCache]:
    """Logits and cache of the check model on ``text`` (BOS prepended)."""
    model = check_model()
    with torch.no_grad():
        return model.run_with_cache(model.to_tokens(text))


def ioi_prompt() -> ioi.IOIPrompt:
    return ioi.ioi_prompts(N_IOI_PROMPTS, split="heldout", seed=IOI_SEED)[0]


def ioi_inputs() -> tuple[TransformerBridge, ActivationCache, int, int]:
    """``(model, cache, io_token, s_token)`` for the first IOI prompt of the notebook."""
    model, prompt = check_model(), ioi_prompt()
    _, cache = run(prompt.text)
    return model, cache, model.to_single_token(" " + prompt.io), model.to_single_token(" " + prompt.s)


def fact_inputs() -> tuple[TransformerBridge, ActivationCache, int, int]:
    """``(model, cache, token, pos)``: the fact prompt, at a middle position, with its next token."""
    model = check_model()
    text = facts.few_shot_prompt("capital", FACT_SUBJECT).text
    _, cache = run(text)
    tokens = model.to_tokens(text)[0]
    pos = tokens.shape[0] // 2
    return model, cache, int(tokens[pos + 1]), pos


@functools.cache
def random_inputs() -> tuple[TransformerBridge, ActivationCache, int]:
    """``(model, cache, io_token)``: a random 4-layer model on the IOI prompt.

    Attribution is an identity that holds whatever the weights, and this model has what
    ``gelu-4l`` lacks: a non-zero unembedding bias ``b_U`` (so counting it twice shows) and
    random LayerNorm weights and biases.
    """
    model = random_model(n_layers=4).requires_grad_(False)
    with torch.no_grad():
        _, cache = model.run_with_cache(model.to_tokens(ioi_prompt().text))
    return model, cache, model.to_single_token(" " + ioi_prompt().io)


# --- comparing (contributions, labels) pairs -----------------------------------------------
def _compare_labelled(tol: Tolerance, index_names: tuple[str, ...] = ("component",)) -> Callable:
    """Compare ``(values, labels)`` outputs and name the component (by its label) where they differ."""

    def compare(actual, expected) -> str | None:
        if not isinstance(actual, tuple) or len(actual) != 2:
            return f"expected a tuple (values, labels), got a {type(actual).__name__}"
        values, labels = actual
        exp_values, exp_labels = expected
        if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
            return "the second item should be a list of label strings"
        if list(labels) != list(exp_labels):
            if len(labels) != len(exp_labels):
                return f"you returned {len(labels)} labels but expected {len(exp_labels)} ({_short(exp_labels)})"
            i = next(i for i, (a, e) in enumerate(zip(labels, exp_labels)) if a != e)
            return f"label {i} is {labels[i]!r} but expected {exp_labels[i]!r}"
        diff = describe_difference(values, exp_values, tol, index_names, what="the values")
        found = re.match(r"the values at component (\d+)(?:, d_model (\d+))? (is .*)", diff or "")
        if found:
            idx, dim, rest = found.groups()
            where = f"row {exp_labels[int(idx)]}, d_model index {dim}" if dim else f"the {exp_labels[int(idx)]} row"
            diff = f"{where} {rest}"
        return diff

    return compare


def _short(labels: list[str]) -> str:
    return ", ".join(labels) if len(labels) <= 8 else ", ".join(labels[:4] + ["…"] + labels[-3:])


# --- the classic mistakes -------------------------------------------------------------------
def _component_rows(model, cache, pos, *, heads: bool):
    """The reference's stack of component vectors and labels (no constants)."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if not heads:
        rows = [cache["hook_embed"][0, pos], cache["hook_pos_embed"][0, pos]]
        labels = ["embed", "pos_embed"]
        for l in range(n_layers):
            rows += [cache["attn_out", l][0, pos], cache["mlp_out", l][0, pos]]
            labels += [f"{l}_attn_out", f"{l}_mlp_out"]
        return torch.stack(rows), labels
    head_rows = torch.cat([torch.einsum("hd,hdm->hm", cache["z", l][0, pos], model.W_O[l]) for l in range(n_layers)])
    mlps = torch.stack([cache["mlp_out", l][0, pos] for l in range(n_layers)])
    rest = torch.stack([cache["hook_embed"][0, pos], cache["hook_pos_embed"][0, pos], model.b_O.sum(0)])
    labels = [f"L{l}H{h}" for l in range(n_layers) for h in range(n_heads)]
    labels += [f"{l}_mlp_out" for l in range(n_layers)] + ["embed", "pos_embed", "b_O"]
    return torch.cat([head_rows, mlps, rest]), labels


def _attribution(
    model,
    cache,
    answer_token,
    pos=-1,
    *,
    heads=False,
    scale="frozen",
    centre=True,
    ln_weight=True,
    b_U_every_row=False,
    scale_pos=None,
    rows_pos=None,
    b_O_every_head=False,
):
    """The reference attribution with switches that reproduce each classic mistake.

    ``scale``: "frozen" (the cached scale, right), "none" (not divided), "own" (each component
    divided by its own standard deviation), "module" (``model.ln_final`` applied to each component).
    """
    stack, labels = _component_rows(model, cache, pos if rows_pos is None else rows_pos, heads=heads)
    if b_O_every_head:
        n = model.cfg.n_layers * model.cfg.n_heads
        per_layer = model.b_O.repeat_interleave(model.cfg.n_heads, dim=0)  # [layer*head, d_model]
        stack = torch.cat([stack[:n] + per_layer, stack[n:]])
    w_u = model.W_U[:, answer_token]
    if scale == "module":
        contributions = model.ln_final(stack) @ w_u
    else:
        centred = stack - stack.mean(-1, keepdim=True) if centre else stack
        if scale == "frozen":
            s = cache["ln_final.hook_scale"][0, pos if scale_pos is None else scale_pos]
        elif scale == "own":
            s = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
        else:
            s = 1.0
        contributions = (centred / s) @ (model.ln_final.w * w_u if ln_weight else w_u)
    if b_U_every_row:
        contributions = contributions + model.b_U[answer_token]
    constants = torch.stack([model.ln_final.b @ w_u, model.b_U[answer_token]])
    return torch.cat([contributions, constants]), labels + ["ln_final.b", "b_U"]


KNOWN_MISTAKES["direct_logit_attribution"] = {
    "did you forget to divide by the final LayerNorm's scale `cache['ln_final.hook_scale']`?": functools.partial(
        _attribution, scale="none"
    ),
    "did you apply `model.ln_final` to each component separately? Normalise them all with the ONE frozen scale "
    "of the whole stream (`cache['ln_final.hook_scale']`)": functools.partial(_attribution, scale="module"),
    "did you normalise each component by its own scale? Divide every component by the ONE frozen scale "
    "of the whole stream (`cache['ln_final.hook_scale']`)": functools.partial(_attribution, scale="own"),
    "did you forget to subtract each component's mean (LayerNorm centres its input)?": functools.partial(
        _attribution, centre=False
    ),
    "did you leave out the final LayerNorm's weight `model.ln_final.w`? (`cache.logit_attrs` assumes it was "
    "folded into W_U)": functools.partial(_attribution, ln_weight=False),
    "is the unembedding bias counted more than once? `b_U[answer_token]` belongs in the `b_U` row only": functools.partial(
        _attribution, b_U_every_row=True
    ),
    "are you reading the activations at position -1 instead of `pos`?": lambda m, c, t, pos=-1: _attribution(
        m, c, t, -1
    ),
    "is the LayerNorm scale read at position -1 instead of `pos`?": lambda m, c, t, pos=-1: _attribution(
        m, c, t, pos, scale_pos=-1
    ),
}

KNOWN_MISTAKES["head_logit_attribution"] = {
    **{
        d: functools.partial(fn, heads=True)
        for d, fn in KNOWN_MISTAKES["direct_logit_attribution"].items()
        if isinstance(fn, functools.partial)
    },
    "are you reading the activations at position -1 instead of `pos`?": lambda m, c, t, pos=-1: _attribution(
        m, c, t, -1, heads=True
    ),
    "is the LayerNorm scale read at position -1 instead of `pos`?": lambda m, c, t, pos=-1: _attribution(
        m, c, t, pos, heads=True, scale_pos=-1
    ),
    "did you add the layer's bias b_O to every head? It belongs to no single head: count it once, in the `b_O` row": functools.partial(
        _attribution, heads=True, b_O_every_head=True
    ),
}


def _decompose_mistake(kind: str) -> Callable:
    def wrong(cache, layer, pos):
        p = -1 if kind == "last_pos" else pos
        rows, labels = [cache["hook_embed"][0, p], cache["hook_pos_embed"][0, p]], ["embed", "pos_embed"]
        for l in range(layer if kind == "resid_pre" else layer + 1):
            if kind == "running_totals":
                rows += [cache["resid_mid", l][0, p], cache["resid_post", l][0, p]]
            else:
                rows += [cache["attn_out", l][0, p], cache["mlp_out", l][0, p]]
            labels += [f"{l}_attn_out", f"{l}_mlp_out"]
        return torch.stack(rows), labels

    return wrong


KNOWN_MISTAKES["decompose_by_hand"] = {
    "did you stop at resid_pre? Include layer `layer`'s own attn_out and mlp_out: the rows must sum to its resid_post": _decompose_mistake(
        "resid_pre"
    ),
    "did you stack resid_mid / resid_post (running totals) instead of what each sublayer writes (attn_out, mlp_out)?": _decompose_mistake(
        "running_totals"
    ),
    "are you reading position -1 instead of `pos`?": _decompose_mistake("last_pos"),
}


# --- the checks -------------------------------------------------------------------------------
def test_decompose_by_hand(decompose_by_hand) -> CheckResult:
    model, cache, _, _ = ioi_inputs()
    last = model.cfg.n_layers - 1
    return check(
        "decompose_by_hand",
        decompose_by_hand,
        SOLUTION.decompose_by_hand,
        [
            Case("the IOI prompt, layer 0, last position", (cache, 0, -1)),
            Case(f"the IOI prompt, layer {last}, position 3", (cache, last, 3)),
            Case("the IOI prompt, layer 1, position 1", (cache, 1, 1)),
        ],
        compare=_compare_labelled(Tolerance(), ("component", "d_model")),
        known_mistakes=KNOWN_MISTAKES["decompose_by_hand"],
    )


def _attribution_cases() -> list[Case]:
    model, cache, io, s = ioi_inputs()
    _, fcache, ftoken, fpos = fact_inputs()
    return [
        Case("the IOI prompt (answer: the indirect object)", (model, cache, io)),
        Case("the IOI prompt (the subject's name)", (model, cache, s), {"pos": -1}),
        Case(f"the fact prompt at position {fpos}", (model, fcache, ftoken), {"pos": fpos}),
        Case("a random 4-layer model with a non-zero b_U (IOI prompt)", random_inputs()),
    ]


def test_direct_logit_attribution(direct_logit_attribution) -> CheckResult:
    return check(
        "direct_logit_attribution",
        direct_logit_attribution,
        SOLUTION.direct_logit_attribution,
        _attribution_cases(),
        compare=_compare_labelled(Tolerance(atol=1e-3, rtol=1e-4)),
        known_mistakes=KNOWN_MISTAKES["direct_logit_attribution"],
    )


def test_head_logit_attribution(head_logit_attribution) -> CheckResult:
    return check(
        "head_logit_attribution",
        head_logit_attribution,
        SOLUTION.head_logit_attribution,
        _attribution_cases(),
        compare=_compare_labelled(Tolerance(atol=1e-3, rtol=1e-4)),
        known_mistakes=KNOWN_MISTAKES["head_logit_attribution"],
    )


# --- check your understanding ---------------------------------------------------------------
# --- reading an attribution tensor -------------------------------------------------------
@functools.cache
def per_position_attribution() -> tuple[torch.Tensor, list[str]]:
    """``([component, batch, pos], labels)``: direct attribution of each next token, 4 IOI prompts, ``gelu-4l``.

    The notebook's recipe (section 6): ``decompose_resid`` rows, normalised by the cached final
    scale of each position, times ``ln_final.w``, dotted with the unembedding of the token that
    follows (the prompts are cut to a common length, so no padding enters).
    """
    model = check_model()
    prompts = ioi.ioi_prompts(N_IOI_PROMPTS, split="heldout", seed=IOI_SEED)[:4]
    rows = [model.to_tokens(p.text)[0] for p in prompts]
    tokens = torch.stack([r[: min(len(r) for r in rows)] for r in rows])
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        stack, labels = cache.decompose_resid(return_labels=True)  # component batch pos d_model
        normed = cache.apply_ln_to_stack(stack) * model.ln_final.w
        attrs = torch.einsum("cbpd,dbp->cbp", normed[:, :, :-1], model.W_U[:, tokens[:, 1:]])
    return attrs, labels


def _synthetic_attribution() -> tuple[torch.Tensor, list[str]]:
    """A [3, 4, 5] tensor whose maximum sits where every index mistake lands elsewhere."""
    attrs = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5).remainder(7) - 3.0
    attrs[1, 2, 3] = 9.0
    attrs[2, 0, 0] = -12.0
    attrs[0, 1] = 3.0  # the largest sum over positions (15 > 12), without the largest entry
    return attrs, ["embed", "0_attn_out", "0_mlp_out"]


def _top_flat_modulo(attrs, labels):
    flat = int(attrs.argmax())
    rest, component = divmod(flat, attrs.shape[0])
    return labels[component], *divmod(rest, attrs.shape[2])


def _top_batch_pos_swapped(attrs, labels):
    label, batch, pos = SOLUTION.top_attribution(attrs, labels)
    return label, pos, batch


def _top_absolute(attrs, labels):
    component, batch, pos = torch.unravel_index(attrs.abs().argmax(), attrs.shape)
    return labels[int(component)], int(batch), int(pos)


def _top_summed_positions(attrs, labels):
    component, batch = divmod(int(attrs.sum(-1).argmax()), attrs.shape[1])
    return labels[component], batch, int(attrs[component, batch].argmax())


KNOWN_MISTAKES["top_attribution"] = {
    "the flat index was read with the component as the FASTEST-moving index: in a [component, batch, pos] "
    "tensor the component moves slowest — unravel the index with the tensor's shape": _top_flat_modulo,
    "batch and position are swapped: the tensor is [component, batch, pos]": _top_batch_pos_swapped,
    "that is the largest in ABSOLUTE value: the largest attribution is the most positive one": _top_absolute,
    "positions were summed before the argmax: the largest single entry need not sit in the largest sum": _top_summed_positions,
}


def _top_attribution_cases() -> list[Case]:
    real, labels = per_position_attribution()
    synthetic, synthetic_labels = _synthetic_attribution()
    return [
        Case("a [3, 4, 5] attribution", (synthetic, synthetic_labels)),
        Case(f"the direct attribution of each next token, {real.shape[1]} IOI prompts (gelu-4l)", (real, labels)),
        Case("the same, negated", (-real, labels)),
    ]


def test_top_attribution(top_attribution) -> CheckResult:
    return check(
        "top_attribution",
        top_attribution,
        SOLUTION.top_attribution,
        _top_attribution_cases(),
        known_mistakes=KNOWN_MISTAKES["top_attribution"],
    )


def _rank_last_position(attrs, labels):
    return [labels[i] for i in attrs[:, :, -1].sum(1).argsort(descending=True).tolist()]


def _rank_ascending(attrs, labels):
    return SOLUTION.rank_components(attrs, labels)[::-1]


def _rank_absolute(attrs, labels):
    return [labels[i] for i in attrs.sum(dim=(1, 2)).abs().argsort(descending=True).tolist()]


KNOWN_MISTAKES["rank_components"] = {
    "only the last position was used: sum over every prompt AND every position": _rank_last_position,
    "sorted the wrong way: the largest total first": _rank_ascending,
    "sorted by absolute value: rank by the signed total, largest first": _rank_absolute,
}


def test_rank_components(rank_components) -> CheckResult:
    return check(
        "rank_components",
        rank_components,
        SOLUTION.rank_components,
        _top_attribution_cases(),
        known_mistakes=KNOWN_MISTAKES["rank_components"],
    )


def test_answer_unscaled_sum_is_times(answer) -> CheckResult:
    return check_answer(
        "answer_unscaled_sum_is_times",
        answer,
        lambda a: isinstance(a, str) and a.strip().lower() == "scale",
        "centring is linear, and every component was divided by the same number: which one?",
    )


def test_answer_prompt_independent_rows(answer) -> CheckResult:
    return check_answer(
        "answer_prompt_independent_rows",
        answer,
        lambda a: isinstance(a, (set, list, tuple, frozenset)) and set(a) == {"ln_final.b", "b_U"},
        "a row is the same on every prompt only if it uses neither an activation nor the prompt's LayerNorm "
        "scale (b_O is a constant vector, but it is divided by the scale)",
    )


def test_answer_scaling_changes_rank(answer) -> CheckResult:
    return check_answer(
        "answer_scaling_changes_rank",
        answer,
        lambda a: a is False,
        "dividing every logit of one row by the same positive number keeps their order",
    )


@functools.cache
def mean_head_logit_diff() -> torch.Tensor:
    """Mean direct effect of each head on logit(IO) - logit(S), [layer, head], over the notebook's prompts.

    The prompts run as one right-padded batch (padding after a prompt cannot change its earlier
    positions: attention is causal); each prompt is read at its own answer position.
    """
    model = check_model()
    n = model.cfg.n_layers * model.cfg.n_heads
    batch = ioi.tokenize(ioi.ioi_prompts(N_IOI_PROMPTS, split="heldout", seed=IOI_SEED), model.tokenizer)
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.tokens)
        diffs = []
        for i, pos in enumerate(batch.answer_pos.tolist()):
            one = cache.apply_slice_to_batch_dim(slice(i, i + 1))
            io = SOLUTION.head_logit_attribution(model, one, int(batch.io_ids[i]), pos)[0][:n]
            s = SOLUTION.head_logit_attribution(model, one, int(batch.s_ids[i]), pos)[0][:n]
            diffs.append(io - s)
    return torch.stack(diffs).mean(0).reshape(model.cfg.n_layers, model.cfg.n_heads)


def top_ioi_head() -> str:
    """Label (``"L2H5"``) of the head with the largest mean direct IO - S logit difference."""
    diff = mean_head_logit_diff()
    layer, head = divmod(int(diff.argmax()), diff.shape[1])
    return f"L{layer}H{head}"


def accepted_top_heads() -> set[str]:
    """The top head, and any head within 10 % of it (a near tie cannot be read off a heatmap)."""
    diff = mean_head_logit_diff()
    best = diff.max().item()
    return {
        f"L{l}H{h}" for l in range(diff.shape[0]) for h in range(diff.shape[1]) if diff[l, h] >= best - 0.1 * abs(best)
    }


def test_answer_top_ioi_head(answer) -> CheckResult:
    return check_answer(
        "answer_top_ioi_head",
        answer,
        lambda a: isinstance(a, str) and a.strip().upper() in accepted_top_heads(),
        f"read the most positive cell of the layer × head heatmap (computed on {CHECK_MODEL} with "
        f"{N_IOI_PROMPTS} held-out prompts) and write it as 'L<layer>H<head>'",
    )
