"""Learner checks for chapter 01, hooks basics.

Every check runs the learner's function and the reference on real inputs: the course model
``attn-only-2l`` on two short Python snippets. Inputs are built once (``functools.cache``);
tensors are cloned for every check, so a function that writes into its input is reported
and cannot spoil the inputs of the checks that follow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from course_utils.chapters import solutions_for
from course_utils.harness import Case, CheckResult, Tolerance, check, check_answer, describe_difference
from course_utils.models import load_model

SOLUTION = solutions_for(__name__)

MODEL_NAME = "attn-only-2l"

CODE_TEXT = '''def count_words(lines):
    """Return a dict that maps each word to the number of times it appears."""
    counts = {}
    for line in lines:
        for word in line.split():
            counts[word] = counts.get(word, 0) + 1
    return counts


def most_common(counts, n=3):
    """Return the n words with the highest counts."""
    return sorted(counts, key=counts.get, reverse=True)[:n]
'''
"""The chapter's paragraph of code (the notebook defines the same text; a test keeps them equal)."""

SECOND_TEXT = """class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        return self.items.pop()
"""

MASKED_BELOW = -1e4
"""A masked score may be -inf or any very negative number (e.g. -1e9): softmax gives it weight 0."""
KNOWN_MISTAKES: dict[str, dict[str, Callable]] = {}
"""Exercise → diagnosis → a function with the learner's signature that makes that mistake; each
section below adds its exercises, and each check passes ``known_mistakes=KNOWN_MISTAKES[name]``."""


# --------------------------------------------------------------------------- inputs


@functools.cache
def check_model():
    """The course model the checks run on."""
    return load_model(MODEL_NAME)


@functools.cache
def batch_tokens() -> Tensor:
    """The two snippets, each BOS + text, cut to the same length and stacked: [2, pos]."""
    model = check_model()
    rows = [model.to_tokens(text)[0] for text in (CODE_TEXT, SECOND_TEXT)]
    n_pos = min(len(r) for r in rows)
    return torch.stack([r[:n_pos] for r in rows])


@functools.cache
def batch_cache():
    """The check model's cache on :func:`batch_tokens`."""
    with torch.no_grad():
        _, cache = check_model().run_with_cache(batch_tokens())
    return cache


def _act(name: str, layer: int) -> Tensor:
    """A fresh copy of a cached activation (so that in-place edits cannot leak between checks)."""
    return batch_cache()[name, layer].detach().clone()


@functools.cache
def ablation_loss_increase() -> Tensor:
    """[layer, head]: loss with that head zero-ablated minus the clean loss, on ``CODE_TEXT``.

    One batched forward pass: row ``layer * n_heads + head`` of the batch has that head's ``z``
    zeroed, and the last row is the clean run (a test checks this against ``head_ablation_loss``).
    """
    model = check_model()
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    tokens = model.to_tokens(CODE_TEXT).expand(n_layers * n_heads + 1, -1)

    def zero_heads(z: Tensor, hook) -> Tensor:
        for head in range(n_heads):
            z[hook.layer() * n_heads + head, :, head] = 0.0
        return z

    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("attn.hook_z"), zero_heads)])
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none").mean(
        dim=1
    )
    return (losses[:-1] - losses[-1]).reshape(n_layers, n_heads).cpu()


def _argmax_pair(table: Tensor) -> tuple[int, int]:
    flat = int(table.argmax())
    return flat // table.shape[1], flat % table.shape[1]


# --------------------------------------------------------------------------- tokens


def _predictions(model, text: str, prepend_bos: bool = True) -> tuple[Tensor, Tensor]:
    tokens = model.to_tokens(text, prepend_bos=prepend_bos)
    return model(tokens, return_type="logits")[0].argmax(dim=-1), tokens[0]


def _count_bos_as_target(model, text):
    n_correct, n_total = SOLUTION.count_correct_predictions(model, text)
    return n_correct, n_total + 1


def _count_no_shift(model, text):
    predictions, tokens = _predictions(model, text)
    return int((predictions[:-1] == tokens[:-1]).sum()), len(tokens) - 1


def _count_no_shift_after_bos(model, text):
    predictions, tokens = _predictions(model, text)
    return int((predictions[1:] == tokens[1:]).sum()), len(tokens) - 1


def _count_shift_backwards(model, text):
    predictions, tokens = _predictions(model, text)
    return int((predictions[1:] == tokens[:-1]).sum()), len(tokens) - 1


def _count_without_bos(model, text):
    predictions, tokens = _predictions(model, text, prepend_bos=False)
    return int((predictions[:-1] == tokens[1:]).sum()), len(tokens) - 1


def _compare_counts(actual: Any, expected: tuple[int, int]) -> str | None:
    if isinstance(actual, Tensor) or not isinstance(actual, (tuple, list)) or len(actual) != 2:
        return f"your function returned {type(actual).__name__} {actual!r:.60}, expected a tuple (n_correct, n_total)"
    for what, a, e in (("n_total", actual[1], expected[1]), ("n_correct", actual[0], expected[0])):
        diff = describe_difference(a, e, what=what)
        if diff:
            return diff
    return None


KNOWN_MISTAKES["count_correct_predictions"] = {
    "is BOS counted? It is never a target: a text of n tokens gives n predictions": _count_bos_as_target,
    "off by one: the logits at position i predict token i + 1 — compare "
    "logits[0, :-1].argmax(-1) with tokens[0, 1:]": _count_no_shift,
    "off by one, past BOS: the logits at position i predict token i + 1 — compare "
    "logits[0, :-1].argmax(-1) with tokens[0, 1:]": _count_no_shift_after_bos,
    "shifted the wrong way: the prediction at i is for token i + 1, not i - 1": _count_shift_backwards,
    "tokenised without BOS? Keep the default BOS: the prediction made at BOS "
    "is the one for the text's first token": _count_without_bos,
}


def test_count_correct_predictions(count_correct_predictions) -> CheckResult:
    model = check_model()
    with torch.no_grad():
        return check(
            "count_correct_predictions",
            count_correct_predictions,
            SOLUTION.count_correct_predictions,
            [Case("the chapter's code paragraph", (model, CODE_TEXT)), Case("a Stack class", (model, SECOND_TEXT))],
            compare=_compare_counts,
            known_mistakes=KNOWN_MISTAKES["count_correct_predictions"],
        )


# --------------------------------------------------------------------------- attention by hand


def _future_mask(n_pos: int, device, include_diagonal: bool = False) -> Tensor:
    return torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool, device=device), diagonal=0 if include_diagonal else 1)


def _raw_scores(q: Tensor, k: Tensor) -> Tensor:
    return torch.einsum("bqhd,bkhd->bhqk", q, k)


def _scores(q, k, scale: float | None = None, mask: str = "future", fill: float = float("-inf"), transpose=False):
    """Variants of the scores: ``mask`` is "future", "diagonal" (future and self) or "none"."""
    scores = _raw_scores(q, k) / (q.shape[-1] ** 0.5 if scale is None else scale)
    if transpose:
        scores = scores.transpose(-1, -2)
    if mask != "none":
        scores = scores.masked_fill(_future_mask(scores.shape[-1], scores.device, mask == "diagonal"), fill)
    return scores


def _compare_scores(actual: Any, expected: Tensor) -> str | None:
    """Like ``describe_difference``, but a masked score may be -inf or any number below ``MASKED_BELOW``."""
    names = ("batch", "head", "query", "key")
    if not isinstance(actual, Tensor) or actual.shape != expected.shape or not actual.is_floating_point():
        return describe_difference(actual, expected, index_names=names)
    a = actual.detach().cpu().double()
    masked = torch.isneginf(expected.detach().cpu())
    unmasked = masked & ~(a < MASKED_BELOW)
    if unmasked.any():
        b, h, qp, kp = unmasked.nonzero()[0].tolist()
        return (
            f"the score at batch {b}, head {h}, query {qp}, key {kp} is {a[b, h, qp, kp].item():.4g}, "
            f"but key {kp} comes after query {qp}: it must be masked (-inf)"
        )
    return describe_difference(
        a.masked_fill(masked, 0.0), expected.detach().cpu().double().masked_fill(masked, 0.0), index_names=names
    )


def _qk_cases() -> list[Case]:
    return [
        Case("layer 0 (two code snippets)", (_act("q", 0), _act("k", 0))),
        Case("layer 1 (two code snippets)", (_act("q", 1), _act("k", 1))),
    ]


KNOWN_MISTAKES["attention_scores"] = {
    "did you forget to divide by √d_head?": lambda q, k: _scores(q, k, scale=1.0),
    "did you divide by d_head instead of √d_head?": lambda q, k: _scores(q, k, scale=q.shape[-1]),
    "did you mask the diagonal too? A position may attend to itself (torch.triu(..., diagonal=1))": lambda q, k: (
        _scores(q, k, mask="diagonal")
    ),
    "are queries and keys swapped? scores[b, h, i, j] is query i · key j": lambda q, k: _scores(q, k, transpose=True),
}


def test_attention_scores(attention_scores) -> CheckResult:
    with torch.no_grad():
        return check(
            "attention_scores",
            attention_scores,
            SOLUTION.attention_scores,
            _qk_cases(),
            compare=_compare_scores,
            known_mistakes=KNOWN_MISTAKES["attention_scores"],
        )


def _pattern_no_scale(q, k):
    return _scores(q, k, scale=1.0).softmax(-1)


def _pattern_no_mask(q, k):
    return _scores(q, k, mask="none").softmax(-1)


def _pattern_mask_with_zero(q, k):
    return _scores(q, k, fill=0.0).softmax(-1)


def _pattern_mask_after_softmax(q, k):
    scores = _scores(q, k, mask="none")
    return scores.softmax(-1).masked_fill(_future_mask(scores.shape[-1], scores.device), 0.0)


def _pattern_softmax_over_queries(q, k):
    return _scores(q, k).softmax(-2).nan_to_num(0.0)


KNOWN_MISTAKES["attention_pattern"] = {
    "did you forget to divide the scores by √d_head?": _pattern_no_scale,
    "did you forget the causal mask? A query may only attend to itself and earlier keys": _pattern_no_mask,
    "masked with 0 instead of -inf? exp(0) = 1 still gives future keys weight": _pattern_mask_with_zero,
    "masked after the softmax? Then rows no longer sum to 1 — mask the scores, then softmax": _pattern_mask_after_softmax,
    "softmax over the wrong dimension? Normalise over keys (the last one)": _pattern_softmax_over_queries,
}


def test_attention_pattern(attention_pattern) -> CheckResult:
    with torch.no_grad():
        return check(
            "attention_pattern",
            attention_pattern,
            SOLUTION.attention_pattern,
            _qk_cases(),
            index_names=("batch", "head", "query", "key"),
            known_mistakes=KNOWN_MISTAKES["attention_pattern"],
        )


def _z_column_of_pattern(pattern, v, head, pos):
    return torch.einsum("bk,bkd->bd", pattern[:, head, :, pos], v[:, :, head])


def _z_value_at_pos(pattern, v, head, pos):
    return v[:, pos, head].clone()


def _z_mean_of_values(pattern, v, head, pos):
    return v[:, : pos % v.shape[1] + 1, head].mean(dim=1)


KNOWN_MISTAKES["head_z"] = {
    "used a column of the pattern? Query pos's weights are the row pattern[:, head, pos, :]": _z_column_of_pattern,
    "z is not v at pos: it is the sum over key positions of pattern[b, head, pos, k] * v[b, k, head]": _z_value_at_pos,
    "a plain mean of the values ignores the pattern: weight each key by pattern[:, head, pos, k]": _z_mean_of_values,
}


def test_head_z(head_z) -> CheckResult:
    n_heads = check_model().cfg.n_heads
    with torch.no_grad():
        return check(
            "head_z",
            head_z,
            SOLUTION.head_z,
            [
                Case("layer 0, head 0, last position", (_act("pattern", 0), _act("v", 0), 0, -1)),
                Case(f"layer 1, head {n_heads - 1}, position 7", (_act("pattern", 1), _act("v", 1), n_heads - 1, 7)),
            ],
            index_names=("batch", "d_head"),
            known_mistakes=KNOWN_MISTAKES["head_z"],
        )


def _out_without_bias(z, W_O, b_O):
    return torch.einsum("bphd,hdm->bpm", z, W_O)


def _out_bias_per_head(z, W_O, b_O):
    return torch.einsum("bphd,hdm->bpm", z, W_O) + z.shape[2] * b_O


def _out_one_head(z, W_O, b_O):
    return z[:, :, 0] @ W_O[0] + b_O


KNOWN_MISTAKES["attn_out_from_z"] = {
    "did you forget b_O?": _out_without_bias,
    "b_O is added once per layer, after summing the heads — not once per head": _out_bias_per_head,
    "attn_out sums the contributions of every head, not only head 0": _out_one_head,
}


def test_attn_out_from_z(attn_out_from_z) -> CheckResult:
    model = check_model()
    with torch.no_grad():
        cases = [
            Case(
                f"layer {layer}",
                (_act("z", layer), model.W_O[layer].detach().clone(), model.b_O[layer].detach().clone()),
            )
            for layer in range(model.cfg.n_layers)
        ]
        return check(
            "attn_out_from_z",
            attn_out_from_z,
            SOLUTION.attn_out_from_z,
            cases,
            index_names=("batch", "pos", "d_model"),
            known_mistakes=KNOWN_MISTAKES["attn_out_from_z"],
        )


# --------------------------------------------------------------------------- hooks


def _previous_attention_variant(model, tokens, offset=-1, divide_by_all=False, edit_bos=False):
    store = {}

    def record(pattern, hook):
        if edit_bos:
            pattern[:, :, 1:, 0] = 0.0  # the mistake: a "recording" hook that writes into the activation
        diag = pattern.diagonal(offset=offset, dim1=-2, dim2=-1)
        n = pattern.shape[-1] if divide_by_all else diag.shape[-1]
        store[hook.layer()] = (diag.sum(dim=-1) / n).mean(dim=0).cpu()

    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(lambda name: name.endswith("hook_pattern"), record)])
    return torch.stack([store[layer] for layer in range(model.cfg.n_layers)])


KNOWN_MISTAKES["previous_token_attention"] = {
    "that is attention to the token itself: the previous token is pattern[..., q, q - 1] "
    "(diagonal offset -1)": functools.partial(_previous_attention_variant, offset=0),
    "pattern[..., q - 1, q] is a future key, always 0 after the mask: use pattern[..., q, q - 1]": functools.partial(
        _previous_attention_variant, offset=1
    ),
    "position 0 has no previous token: average over the pos - 1 query positions 1 … pos-1": functools.partial(
        _previous_attention_variant, divide_by_all=True
    ),
    "your recording hook changed the pattern in place, which changed the forward pass: "
    "a hook that records must only read": functools.partial(_previous_attention_variant, edit_bos=True),
}


def test_previous_token_attention(previous_token_attention) -> CheckResult:
    model = check_model()
    with torch.no_grad():
        return check(
            "previous_token_attention",
            previous_token_attention,
            SOLUTION.previous_token_attention,
            [
                Case("two code snippets", (model, batch_tokens().clone())),
                Case("the chapter's code paragraph", (model, model.to_tokens(CODE_TEXT))),
            ],
            index_names=("layer", "head"),
            known_mistakes=KNOWN_MISTAKES["previous_token_attention"],
        )


def _ablation_variant(model, tokens, layer, head, index="head", keep_change=True):
    def hook_fn(z, hook):
        if not keep_change:
            z = z.clone()
        if index == "head":
            z[:, :, head] = 0.0
        elif index == "pos":
            z[:, head] = 0.0
        else:
            z[:] = 0.0
        return None

    name = f"blocks.{layer}.attn.hook_z"
    return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(name, hook_fn)]).item()


def _ablation_difference(model, tokens, layer, head):
    return SOLUTION.head_ablation_loss(model, tokens, layer, head) - model(tokens, return_type="loss").item()


KNOWN_MISTAKES["head_ablation_loss"] = {
    "z[:, head] indexes positions: z is [batch, pos, head, d_head], so zero z[:, :, head]": functools.partial(
        _ablation_variant, index="pos"
    ),
    "you zeroed every head of the layer: zero only z[:, :, head]": functools.partial(_ablation_variant, index="layer"),
    "that is the clean loss: your hook's change never reached the model — modify z in place or "
    "return the new tensor from the hook": functools.partial(_ablation_variant, keep_change=False),
    "return the ablated loss itself, not its difference from the clean loss": _ablation_difference,
}


def test_head_ablation_loss(head_ablation_loss) -> CheckResult:
    model = check_model()
    tokens = model.to_tokens(CODE_TEXT)
    n_heads = model.cfg.n_heads
    with torch.no_grad():
        return check(
            "head_ablation_loss",
            head_ablation_loss,
            SOLUTION.head_ablation_loss,
            [
                Case("layer 0, head 0 (code paragraph)", (model, tokens.clone(), 0, 0)),
                Case(f"layer 1, head {n_heads - 1} (code paragraph)", (model, tokens.clone(), 1, n_heads - 1)),
                Case("layer 1, head 1 (two snippets)", (model, batch_tokens().clone(), 1, 1)),
            ],
            tol=Tolerance(atol=1e-4, rtol=1e-4),
            known_mistakes=KNOWN_MISTAKES["head_ablation_loss"],
        )


# --------------------------------------------------------------------------- check your understanding


# --------------------------------------------------------------------------- test_prompt-style inspection

PROMPT = "for item in items:\n    print(item)\nfor item in"
"""The notebook's prompt: after a repeat of ``for item in``, the answer `` items`` becomes predictable."""
ANSWER = " items"


def _rank_prob_variant(model, prompt, answer, *, bos=True, one_based=False, ascending=False, prob="softmax"):
    answer_id = model.to_single_token(answer)
    logits = model(model.to_tokens(prompt, prepend_bos=bos))[0]
    target = logits[:, answer_id : answer_id + 1]
    ranks = (logits < target).sum(-1) if ascending else (logits > target).sum(-1) + int(one_based)
    probs = {"softmax": logits.softmax(-1), "logits": logits, "positions": logits.softmax(0)}[prob][:, answer_id]
    return ranks, probs


def _rank_prob_cases() -> list[Case]:
    model = check_model()
    return [
        Case(f"prompt {PROMPT!r}, answer {ANSWER!r}", (model, PROMPT, ANSWER)),
        Case(
            "the chapter's code paragraph up to 'counts', answer ' =' ",
            (model, CODE_TEXT[: CODE_TEXT.index("counts =") + 6], " ="),
        ),
    ]


KNOWN_MISTAKES["answer_rank_and_prob"] = {
    "rank 0 is the top guess: count only the tokens with a STRICTLY larger logit": lambda m, p, a: _rank_prob_variant(
        m, p, a, one_based=True
    ),
    "ranks count from the bottom: count the tokens with a LARGER logit than the answer's": lambda m, p, a: (
        _rank_prob_variant(m, p, a, ascending=True)
    ),
    "those are logits, not probabilities: softmax over the vocabulary": lambda m, p, a: _rank_prob_variant(
        m, p, a, prob="logits"
    ),
    "softmax over the wrong dimension: normalise over the vocabulary (dim=-1), not over positions": lambda m, p, a: (
        _rank_prob_variant(m, p, a, prob="positions")
    ),
    "the prompt was tokenised without BOS: model.to_tokens adds it by default": lambda m, p, a: _rank_prob_variant(
        m, p, a, bos=False
    ),
}


@torch.no_grad()
def test_answer_rank_and_prob(answer_rank_and_prob) -> CheckResult:
    return check(
        "answer_rank_and_prob",
        answer_rank_and_prob,
        SOLUTION.answer_rank_and_prob,
        _rank_prob_cases(),
        index_names=("pos",),
        known_mistakes=KNOWN_MISTAKES["answer_rank_and_prob"],
    )


# --------------------------------------------------------------------------- MLP neurons

MLP_MODEL_NAME = "gelu-4l"


@functools.cache
def mlp_check_model():
    """The course model of the MLP-neuron check (``attn-only-2l`` has no MLPs)."""
    return load_model(MLP_MODEL_NAME)


@functools.cache
def mlp_tokens() -> Tensor:
    """The two snippets, BOS + their first 39 tokens, tokenised for ``gelu-4l``: [2, 40]."""
    return torch.stack([mlp_check_model().to_tokens(text)[0, :40] for text in (CODE_TEXT, SECOND_TEXT)])


def _neurons_from(model, tokens, layer, pos, k=5, *, hook="hook_post", largest=True, row=0):
    name = f"blocks.{layer}.mlp.{hook}" if hook != "hook_mlp_out" else f"blocks.{layer}.hook_mlp_out"
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == name)
    top = cache[name][row, pos].topk(k, largest=largest)
    return top.indices, top.values


KNOWN_MISTAKES["top_neurons"] = {
    "that is hook_mlp_out, the MLP's output in the residual stream ([batch, pos, d_model]): a neuron's "
    "activation is in hook_post, [batch, pos, d_mlp]": lambda *a, **kw: _neurons_from(*a, **kw, hook="hook_mlp_out"),
    "that is hook_pre, before the nonlinearity: a neuron fires in hook_post": lambda *a, **kw: _neurons_from(
        *a, **kw, hook="hook_pre"
    ),
    "those are the neurons that fire LEAST: take the largest activations": lambda *a, **kw: _neurons_from(
        *a, **kw, largest=False
    ),
    "that is the second sequence of the batch: use the first (index 0)": lambda *a, **kw: _neurons_from(
        *a, **kw, row=1
    ),
}


@torch.no_grad()
def test_top_neurons(top_neurons) -> CheckResult:
    model, tokens = mlp_check_model(), mlp_tokens()
    return check(
        "top_neurons",
        top_neurons,
        SOLUTION.top_neurons,
        [
            Case(f"{MLP_MODEL_NAME}, layer 0, position 5", (model, tokens, 0, 5)),
            Case(f"{MLP_MODEL_NAME}, layer 2, position 30, k=8", (model, tokens, 2, 30), {"k": 8}),
        ],
        known_mistakes=KNOWN_MISTAKES["top_neurons"],
    )


def _as_pair(answer: Any) -> tuple[int, int] | None:
    try:
        layer, head = answer
        return int(layer), int(head)
    except (TypeError, ValueError):
        return None


def test_answer_hook_returns_none(answer_hook_returns_none) -> CheckResult:
    return check_answer(
        "answer_hook_returns_none",
        answer_hook_returns_none,
        lambda a: isinstance(a, str) and a.strip().lower().strip("()") == "b",
        "returning None means 'keep the activation as it is now'. What is it now, after the line `z[:, :, 3] = 0` ran?",
    )


def test_answer_n_loss_positions(answer_n_loss_positions) -> CheckResult:
    return check_answer(
        "answer_n_loss_positions",
        answer_n_loss_positions,
        lambda a: not isinstance(a, bool) and isinstance(a, (int, float)) and a == 24,
        "there is one prediction per position except the last, and BOS is never a target",
    )


def test_answer_most_important_head(answer_most_important_head) -> CheckResult:
    best = _argmax_pair(ablation_loss_increase())
    return check_answer(
        "answer_most_important_head",
        answer_most_important_head,
        lambda a: _as_pair(a) == best,
        "give (layer, head) of the largest loss increase in the ablation table (course model, chapter text)",
    )


def test_answer_pattern_after_z_ablation(answer_pattern_after_z_ablation) -> CheckResult:
    return check_answer(
        "answer_pattern_after_z_ablation",
        answer_pattern_after_z_ablation,
        lambda a: isinstance(a, str) and a.strip().lower().strip("()") == "b",
        "in which order does the forward pass reach hook_pattern and hook_z? Can zeroing z change "
        "something that was computed before it?",
    )
