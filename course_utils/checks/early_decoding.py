"""Learner checks for chapter 02, early decoding (the logit lens).

Every check runs the learner's function and the reference on the course model ``facts-4l``
(trained LayerNorms, so "LayerNorm applied twice" is visible) and on the chapter's prompts: a
two-shot question about an invented town (:func:`town_prompt`, the answer rises over depth) and
the seed's bare "The capital of Poland is" (:data:`CAPITAL_PROMPT`, answered early).
Inputs are computed once and cached, so each check takes a fraction of a second.

Also here: :func:`text_batch` (course text for the tuned lens), :func:`subject_swap` (the
corrupted run of causal tracing) and :func:`findings` (the chapter's closing numbers, which
``tests/test_findings_02.py`` asserts).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Int
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge

from course_utils.chapters import solutions_for
from course_utils.harness import Case, CheckResult, Tolerance, check, check_answer, describe_difference
from course_utils.models import load_model
from course_utils.tasks import recall
from course_utils.tasks.english import generated_english

SOLUTION = solutions_for(__name__)

MODEL_NAME = "facts-4l"
CAPITAL_PROMPT = recall.bare_prompt("capital", "Poland")
"""The seed's prompt, in the bare statement form that ``facts-4l`` never saw in training."""
KNOWN_MISTAKES: dict[str, dict[str, Callable]] = {}
"""Exercise → diagnosis → a function with the learner's signature that makes that mistake; each
section below adds its exercises, and each check passes ``known_mistakes=KNOWN_MISTAKES[name]``."""


# --- inputs (computed once) ----------------------------------------------------------------
@functools.cache
def model() -> TransformerBridge:
    """The course model the checks run on (weights frozen: nothing here trains it)."""
    m = load_model(MODEL_NAME, device="cpu")
    m.requires_grad_(False)
    return m


_DROPPED_HOOKS = (
    ".attn.q",
    ".attn.k",
    ".attn.v",
    ".attn.o",
    "hook_q",
    "hook_k",
    "hook_v",
    "hook_z",
    "hook_pattern",
    "hook_attn_scores",
    ".mlp.in",
    ".mlp.out",
    "mlp.hook_pre",
    "mlp.hook_post",
    ".ln1.",
    ".ln2.",
    "hook_mlp_in",
    "hook_attn_in",
    "hook_result",
)


def _keep(name: str) -> bool:
    """Keep the residual stream and block outputs (under all their names); drop heads and neurons."""
    return not any(part in name for part in _DROPPED_HOOKS)


@functools.cache
def run(text: str) -> tuple[torch.Tensor, ActivationCache]:
    """Logits and cache of the check model on one prompt (BOS prepended).

    Per-head and per-neuron activations are left out: this chapter's functions read only the
    residual stream, block outputs, embeddings and ln_final, and a small cache is quick to
    compare before and after a learner's call (to catch in-place edits).
    """
    with torch.no_grad():
        return model().run_with_cache(text, names_filter=_keep)


def answer_token(prompt: recall.RecallPrompt) -> int:
    return model().to_single_token(prompt.answer)


def tokens(text: str) -> Int[torch.Tensor, "1 pos"]:
    """BOS + the text's tokens, as the model's ``run_with_cache(text)`` sees them."""
    return model().to_tokens(text)


@dataclass(frozen=True)
class SubjectSwap:
    """A clean prompt, the same prompt with its subject swapped, and the subject's positions."""

    clean: torch.Tensor
    corrupted: torch.Tensor
    other_subject: str
    subject_pos: int
    """The subject's last position."""
    subject_start: int
    """The subject's first position."""


def subject_swap(prompt: recall.RecallPrompt, on: TransformerBridge | None = None) -> SubjectSwap | None:
    """Swap the prompt's subject for another of the same token length with another answer (as the
    model card's causal tracing does), tokenised for model ``on`` (default: the check model);
    None when there is no such subject."""
    m = on if on is not None else model()
    start, stop = recall.subject_span(m.tokenizer, prompt.text, prompt.subject)
    corrupted_text = recall.corrupted_subject(m.tokenizer, prompt, stop - start)
    if corrupted_text is None:
        return None
    clean, corrupted = m.to_tokens(prompt.text), m.to_tokens(corrupted_text)
    if clean.shape != corrupted.shape:
        return None
    at = prompt.text.rindex(prompt.subject)
    other = corrupted_text[at : len(corrupted_text) - (len(prompt.text) - at - len(prompt.subject))]
    return SubjectSwap(clean, corrupted, other, stop - 1, start)


EXAMPLE_MIN_RANK = 3
"""The example town's answer has at least this rank after block 0 (the median over towns is in
:func:`findings`), so the rise is visible in the example's own table."""


@functools.cache
def town_prompt() -> recall.RecallPrompt:
    """The chapter's main prompt: two solved shots, then the question about a town.

    The town is the first one in ``recall.TOWNS`` whose question was held out of training, that
    the model answers (top-1), whose answer is not yet among the top 3 after block 0 (see
    :data:`EXAMPLE_MIN_RANK`), and that has a same-length town to swap in for causal tracing. The closing findings give the medians over
    many towns, so the example is typical, not the rule.
    """
    m = model()
    for town in recall.TOWNS:
        if not recall.qa_heldout("country", town):
            continue
        prompt = recall.few_shot_prompt("country", town, 2, random.Random(0))
        logits, cache = run(prompt.text)
        answer = answer_token(prompt)
        ranks = SOLUTION.answer_rank_per_layer(SOLUTION.logit_lens(m, cache), answer)
        if int(logits[0, -1].argmax()) == answer and ranks[1] >= EXAMPLE_MIN_RANK and subject_swap(prompt) is not None:
            return prompt
    raise RuntimeError(f"{MODEL_NAME} answers no held-out town question that rises over depth")


def _town_text() -> str:
    return town_prompt().text


@functools.cache
def lens(text: str, pos: int = -1) -> torch.Tensor:
    """Reference logit lens of ``text`` at ``pos``: ``[n_layers + 1, d_vocab]``."""
    return SOLUTION.logit_lens(model(), run(text)[1], pos)


@functools.cache
def lens_all_positions(text: str) -> torch.Tensor:
    """Logit lens at every position, via TransformerLens: ``[n_layers + 1, pos, d_vocab]``."""
    m = model()
    resid = run(text)[1].accumulated_resid(apply_ln=True)[:, 0]  # [layer+1, pos, d_model]
    return resid @ m.W_U + m.b_U


def text_batch(m: TransformerBridge, n_rows: int, seq_len: int = 64, seed: int = 0) -> torch.Tensor:
    """``[n_rows, seq_len]`` token ids of the course's generated English (BOS first in each row).

    The text mixes short stories, IOI sentences and fact lines (``facts-4l`` was trained on stories and facts),
    drawn with ``seed``; rows are consecutive slices of one long tokenised stream.
    """
    body = seq_len - 1
    ids: list[int] = []
    paragraph_seed = seed
    while len(ids) < n_rows * body:
        text = "\n\n".join(generated_english(200, seed=paragraph_seed)) + "\n\n"
        ids += m.tokenizer.encode(text, add_special_tokens=False)
        paragraph_seed += 1_000_003
    rows = torch.tensor(ids[: n_rows * body]).reshape(n_rows, body)
    bos = torch.full((n_rows, 1), m.tokenizer.bos_token_id)
    return torch.cat([bos, rows], dim=1)


@functools.cache
def _translator_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Residuals of every non-BOS position of course text: resid_pre 0, resid_pre 2, final."""
    m = model()
    n_rows = max(8, -(-4 * m.cfg.d_model // 63))  # about 4 tokens per dimension: W is well determined
    tokens = text_batch(m, n_rows, 64, seed=12345)
    names = [
        "blocks.0.hook_resid_pre",
        f"blocks.{min(2, m.cfg.n_layers - 1)}.hook_resid_pre",
        f"blocks.{m.cfg.n_layers - 1}.hook_resid_post",
    ]
    with torch.no_grad():
        _, cache = m.run_with_cache(tokens, names_filter=lambda name: name in names)
    flat = [cache[name][:, 1:].reshape(-1, m.cfg.d_model) for name in names]
    return flat[0], flat[1], flat[2]


# --- known mistakes -------------------------------------------------------------------------
def _unembed(m: TransformerBridge, x: torch.Tensor) -> torch.Tensor:
    return x @ m.W_U + m.b_U


def _normalise_only(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm without its learned weight and bias."""
    x = x - x.mean(dim=-1, keepdim=True)
    return x / (x.pow(2).mean(dim=-1, keepdim=True) + eps).sqrt()


def _frozen_final_ln(m: TransformerBridge, cache: ActivationCache, x: torch.Tensor, pos: int) -> torch.Tensor:
    """Final LN using the cached scale of the real final residual instead of ``x``'s own."""
    scale = cache["ln_final.hook_scale"][0, pos]
    x = x - x.mean(dim=-1, keepdim=True)
    return x / scale * m.ln_final.w + m.ln_final.b


def _lens_stack(m: TransformerBridge, cache: ActivationCache, pos: int) -> torch.Tensor:
    n = m.cfg.n_layers
    return torch.stack([cache["resid_pre", layer][0, pos] for layer in range(n)] + [cache["resid_post", n - 1][0, pos]])


# decode_residual
def _decode_no_ln(m, resid):
    return _unembed(m, resid)


def _decode_ln_twice(m, resid):
    return _unembed(m, m.ln_final(m.ln_final(resid)))


def _decode_no_affine(m, resid):
    return _unembed(m, _normalise_only(resid, m.cfg.eps))


def _decode_no_bias(m, resid):
    return m.ln_final(resid) @ m.W_U


# logit_lens
def _lens_no_ln(m, cache, pos=-1):
    return _unembed(m, _lens_stack(m, cache, pos))


def _lens_ln_twice_at_final(m, cache, pos=-1):
    n = m.cfg.n_layers
    rows = [cache["resid_pre", layer][0, pos] for layer in range(n)] + [cache["ln_final.hook_out"][0, pos]]
    return _unembed(m, m.ln_final(torch.stack(rows)))


def _lens_frozen_scale(m, cache, pos=-1):
    return _unembed(m, _frozen_final_ln(m, cache, _lens_stack(m, cache, pos), pos))


def _lens_last_position(m, cache, pos=-1):
    return SOLUTION.logit_lens(m, cache, -1)


def _lens_first_position(m, cache, pos=-1):
    return SOLUTION.logit_lens(m, cache, 0)


def _lens_no_bias(m, cache, pos=-1):
    return m.ln_final(_lens_stack(m, cache, pos)) @ m.W_U


# answer_rank_per_layer / reciprocal_rank_per_layer
def _rank_from_one(layer_logits, answer_token):
    return SOLUTION.answer_rank_per_layer(layer_logits, answer_token) + 1


def _rank_argsort_once(layer_logits, answer_token):
    return layer_logits.argsort(dim=-1, descending=True)[:, answer_token]


def _rank_from_bottom(layer_logits, answer_token):
    return (layer_logits < layer_logits[:, answer_token].unsqueeze(-1)).sum(dim=-1)


def _rr_from_one(layer_logits, answer_token):
    return 1.0 / (_rank_from_one(layer_logits, answer_token) + 1).float()


def _rr_no_plus_one(layer_logits, answer_token):
    return 1.0 / SOLUTION.answer_rank_per_layer(layer_logits, answer_token).float()


def _rr_is_rank(layer_logits, answer_token):
    return SOLUTION.answer_rank_per_layer(layer_logits, answer_token).float()


# answer_prob_per_layer
def _prob_softmax_over_layers(layer_logits, answer_token):
    return layer_logits.softmax(dim=0)[:, answer_token]


def _prob_log(layer_logits, answer_token):
    return layer_logits.log_softmax(dim=-1)[:, answer_token]


def _prob_raw_logit(layer_logits, answer_token):
    return layer_logits[:, answer_token]


# top_k_per_layer
def _topk_bottom(m, layer_logits, k=5):
    return [m.to_str_tokens(row) for row in layer_logits.topk(k, dim=-1, largest=False).indices]


def _topk_ids(m, layer_logits, k=5):
    return layer_logits.topk(k, dim=-1).indices.tolist()


def _topk_joined(m, layer_logits, k=5):
    return [m.to_string(row) for row in layer_logits.topk(k, dim=-1).indices]


def _topk_over_layers(m, layer_logits, k=5):
    return [m.to_str_tokens(row) for row in layer_logits.topk(k, dim=0).indices]


# logits_without_mlp
def _final(m, cache, pos):
    return cache["resid_post", m.cfg.n_layers - 1][0, pos]


def _without_mlp_no_ln(m, cache, layer, pos=-1):
    return _unembed(m, _final(m, cache, pos) - cache["mlp_out", layer][0, pos])


def _without_mlp_frozen_scale(m, cache, layer, pos=-1):
    return _unembed(m, _frozen_final_ln(m, cache, _final(m, cache, pos) - cache["mlp_out", layer][0, pos], pos))


def _without_mlp_from_layer_resid(m, cache, layer, pos=-1):
    return SOLUTION.decode_residual(m, cache["resid_post", layer][0, pos] - cache["mlp_out", layer][0, pos])


def _without_mlp_attention(m, cache, layer, pos=-1):
    return SOLUTION.decode_residual(m, _final(m, cache, pos) - cache["attn_out", layer][0, pos])


def _without_mlp_added(m, cache, layer, pos=-1):
    return SOLUTION.decode_residual(m, _final(m, cache, pos) + cache["mlp_out", layer][0, pos])


def _without_mlp_last_position(m, cache, layer, pos=-1):
    return SOLUTION.logits_without_mlp(m, cache, layer, -1)


# mlp_removal_effect
def _effect_sign_flipped(m, cache, answer_token, pos=-1):
    return -SOLUTION.mlp_removal_effect(m, cache, answer_token, pos)


def _effect_per_layer(m, cache, answer_token, pos, edit: Callable, transform: Callable):
    clean = transform(SOLUTION.decode_residual(m, _final(m, cache, pos)))[answer_token]
    return torch.stack([transform(edit(m, cache, layer, pos))[answer_token] - clean for layer in range(m.cfg.n_layers)])


def _effect_probs(m, cache, answer_token, pos=-1):
    return _effect_per_layer(m, cache, answer_token, pos, SOLUTION.logits_without_mlp, lambda x: x.softmax(-1))


def _effect_logits(m, cache, answer_token, pos=-1):
    return _effect_per_layer(m, cache, answer_token, pos, SOLUTION.logits_without_mlp, lambda x: x)


def _effect_frozen_scale(m, cache, answer_token, pos=-1):
    return _effect_per_layer(m, cache, answer_token, pos, _without_mlp_frozen_scale, lambda x: x.log_softmax(-1))


def _effect_no_ln(m, cache, answer_token, pos=-1):
    clean = _unembed(m, _final(m, cache, pos)).log_softmax(-1)[answer_token]
    return torch.stack(
        [
            _without_mlp_no_ln(m, cache, layer, pos).log_softmax(-1)[answer_token] - clean
            for layer in range(m.cfg.n_layers)
        ]
    )


# kl_to_final
def _kl_reversed(layer_logits):
    logp = layer_logits.log_softmax(dim=-1)
    return (logp.exp() * (logp - logp[-1:])).sum(dim=-1)


def _kl_mean_over_vocab(layer_logits):
    return SOLUTION.kl_to_final(layer_logits) / layer_logits.shape[-1]


def _kl_probs_as_input(layer_logits):
    p = layer_logits.softmax(dim=-1)
    target = p[-1:].expand_as(p)
    return torch.nn.functional.kl_div(p, target, reduction="none").sum(dim=-1)


def _kl_softmax_over_layers(layer_logits):
    logp = layer_logits.log_softmax(dim=0)
    return (logp[-1:].exp() * (logp[-1:] - logp)).sum(dim=-1)


def _kl_to_first_row(layer_logits):
    logp = layer_logits.log_softmax(dim=-1)
    return (logp[:1].exp() * (logp[:1] - logp)).sum(dim=-1)


# fit_affine_translator
def _fit_no_bias(h_from, h_to):
    W = torch.linalg.lstsq(h_from.double(), h_to.double()).solution.to(h_from.dtype)
    return W, torch.zeros(h_to.shape[1], dtype=h_from.dtype)


def _fit_transposed(h_from, h_to):
    W, b = SOLUTION.fit_affine_translator(h_from, h_to)
    return W.T, b


def _fit_wrong_direction(h_from, h_to):
    return SOLUTION.fit_affine_translator(h_to, h_from)


def _fit_identity(h_from, h_to):
    d = h_from.shape[1]
    return torch.eye(d, dtype=h_from.dtype), torch.zeros(d, dtype=h_from.dtype)


# logits_before_mlp
def _before_mlp_from_final(m, cache, layer, pos=-1):
    return SOLUTION.logits_without_mlp(m, cache, layer, pos)


def _before_mlp_no_ln(m, cache, layer, pos=-1):
    return _unembed(m, cache["resid_post", layer][0, pos] - cache["mlp_out", layer][0, pos])


def _before_mlp_resid_pre(m, cache, layer, pos=-1):
    return SOLUTION.decode_residual(m, cache["resid_pre", layer][0, pos])


def _before_mlp_with_mlp(m, cache, layer, pos=-1):
    return SOLUTION.decode_residual(m, cache["resid_post", layer][0, pos])


def _before_mlp_attention(m, cache, layer, pos=-1):
    return SOLUTION.decode_residual(m, cache["resid_post", layer][0, pos] - cache["attn_out", layer][0, pos])


# causal_trace
def _trace(m, clean, corrupted, answer, rows: Callable[[int], list[tuple[str, int]]], metric: Callable):
    """Shared body of the wrong tracings: ``rows(subject_pos)`` gives (hook, position) per entry."""
    n = m.cfg.n_layers
    with torch.no_grad():
        clean_logits, clean_cache = m.run_with_cache(clean)
        p_clean = clean_logits[0, -1].softmax(-1)[answer]
        p_corr = m(corrupted)[0, -1].softmax(-1)[answer]
        out = []
        for name, pos in rows(n):

            def restore(x, hook, name=name, pos=pos):
                x[:, pos] = clean_cache[name][:, pos]
                return x

            p = m.run_with_hooks(corrupted, fwd_hooks=[(name, restore)])[0, -1].softmax(-1)[answer]
            out.append(metric(p, p_clean, p_corr))
    return torch.stack(out)


def _names(n: int) -> list[str]:
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]


def _recovery(p, p_clean, p_corr):
    return (p - p_corr) / (p_clean - p_corr)


def _trace_pos_before(m, clean, corrupted, answer, subject_pos):
    return _trace(m, clean, corrupted, answer, lambda n: [(h, subject_pos - 1) for h in _names(n)], _recovery)


def _trace_last_pos(m, clean, corrupted, answer, subject_pos):
    return _trace(m, clean, corrupted, answer, lambda n: [(h, -1) for h in _names(n)], _recovery)


def _trace_unnormalised(m, clean, corrupted, answer, subject_pos):
    return _trace(m, clean, corrupted, answer, lambda n: [(h, subject_pos) for h in _names(n)], lambda p, pc, px: p)


def _trace_resid_post(m, clean, corrupted, answer, subject_pos):
    """Restores the output of block l instead of its input: every row shifted by one block."""

    def rows(n):
        return [(f"blocks.{layer}.hook_resid_post", subject_pos) for layer in range(n)] + [
            (f"blocks.{n - 1}.hook_resid_post", subject_pos)
        ]

    return _trace(m, clean, corrupted, answer, rows, _recovery)


# --- checks ----------------------------------------------------------------------------------
def _fact_label(pos: int = -1) -> str:
    return f'prompt "…{town_prompt().subject}? A:" at position {pos}'


def _ioi_label(pos: int = -1) -> str:
    return f'prompt "{CAPITAL_PROMPT.text}" at position {pos}'


KNOWN_MISTAKES["decode_residual"] = {
    "did you forget the final LayerNorm (model.ln_final) before W_U?": _decode_no_ln,
    "is the final LayerNorm applied twice?": _decode_ln_twice,
    "did you only centre and rescale, leaving out ln_final's learned weight and bias? Call model.ln_final": _decode_no_affine,
    "did you leave out the unembedding bias b_U?": _decode_no_bias,
}


def test_decode_residual(decode_residual) -> CheckResult:
    """Decoding a stack of residuals, one residual vector, and every position of a prompt."""
    m = model()
    fact_cache, ioi_cache = run(_town_text())[1], run(CAPITAL_PROMPT.text)[1]
    return check(
        "decode_residual",
        decode_residual,
        SOLUTION.decode_residual,
        [
            Case(
                "the residual stream after each layer (a [layer, d_model] stack)", (m, _lens_stack(m, fact_cache, -1))
            ),
            Case("one residual vector (shape [d_model])", (m, ioi_cache["resid_pre", 2][0, -1])),
            Case("every position of the IOI prompt ([pos, d_model])", (m, ioi_cache["resid_pre", 1][0])),
        ],
        tol=Tolerance(1e-3, 1e-4),
        known_mistakes=KNOWN_MISTAKES["decode_residual"],
    )


KNOWN_MISTAKES["logit_lens"] = {
    "did you forget the final LayerNorm before W_U?": _lens_no_ln,
    "is the final LayerNorm applied twice at the last row? ln_final.hook_out is already normalised; decode resid_post instead": _lens_ln_twice_at_final,
    "did you reuse the cached ln_final scale of the final residual? Each residual must be normalised with its own statistics (call model.ln_final on it)": _lens_frozen_scale,
    "did you ignore `pos` and always decode the last position?": _lens_last_position,
    "did you decode position 0 (the BOS token) instead of `pos`?": _lens_first_position,
    "did you leave out the unembedding bias b_U?": _lens_no_bias,
}


def test_logit_lens(logit_lens) -> CheckResult:
    m = model()
    fact_cache, ioi_cache = run(_town_text())[1], run(CAPITAL_PROMPT.text)[1]
    return check(
        "logit_lens",
        logit_lens,
        SOLUTION.logit_lens,
        [
            Case(_fact_label(), (m, fact_cache)),
            Case(_fact_label(5), (m, fact_cache), {"pos": 5}),
            Case(_ioi_label(), (m, ioi_cache), {"pos": -1}),
        ],
        tol=Tolerance(1e-3, 1e-4),
        index_names=("row", "token"),
        known_mistakes=KNOWN_MISTAKES["logit_lens"],
    )


def _rank_cases() -> list[Case]:
    return [
        Case(
            f'the logit lens of {_fact_label()} (answer "{town_prompt().answer}")',
            (lens(_town_text()), answer_token(town_prompt())),
        ),
        Case(
            f'the logit lens of {_ioi_label()} (answer "{CAPITAL_PROMPT.answer}")',
            (lens(CAPITAL_PROMPT.text), answer_token(CAPITAL_PROMPT)),
        ),
        Case(
            f"the logit lens of {_fact_label(5)}, the token that comes next",
            (lens(_town_text(), 5), int(tokens(_town_text())[0, 6])),
        ),
    ]


KNOWN_MISTAKES["answer_rank_per_layer"] = {
    "off by one: ranks start at 0 here (rank 0 = top token); count the tokens with a strictly larger logit": _rank_from_one,
    "did you take argsort once? argsort(...)[:, answer] is the token at position `answer` of the sorted list, not the answer's rank": _rank_argsort_once,
    "are you counting from the bottom? Sort in descending order (or count tokens with a LARGER logit)": _rank_from_bottom,
}


def test_answer_rank_per_layer(answer_rank_per_layer) -> CheckResult:
    return check(
        "answer_rank_per_layer",
        answer_rank_per_layer,
        SOLUTION.answer_rank_per_layer,
        _rank_cases(),
        index_names=("row",),
        known_mistakes=KNOWN_MISTAKES["answer_rank_per_layer"],
    )


KNOWN_MISTAKES["answer_prob_per_layer"] = {
    "softmax over the wrong dimension: the distribution is over the vocabulary (dim=-1), not over layers": _prob_softmax_over_layers,
    "this is the log-probability: use softmax, not log_softmax": _prob_log,
    "these are raw logits: apply softmax over the vocabulary first": _prob_raw_logit,
}


def test_answer_prob_per_layer(answer_prob_per_layer) -> CheckResult:
    return check(
        "answer_prob_per_layer",
        answer_prob_per_layer,
        SOLUTION.answer_prob_per_layer,
        _rank_cases(),
        tol=Tolerance(1e-9, 1e-4),  # probabilities can be tiny: compare relatively
        index_names=("row",),
        known_mistakes=KNOWN_MISTAKES["answer_prob_per_layer"],
    )


KNOWN_MISTAKES["reciprocal_rank_per_layer"] = {
    "off by one: with rank 0 = top the reciprocal rank is 1 / (rank + 1), so the top token scores exactly 1": _rr_from_one,
    "1 / rank divides by zero for the top token: use 1 / (rank + 1)": _rr_no_plus_one,
    "this is the rank itself, not 1 / (rank + 1)": _rr_is_rank,
}


def test_reciprocal_rank_per_layer(reciprocal_rank_per_layer) -> CheckResult:
    return check(
        "reciprocal_rank_per_layer",
        reciprocal_rank_per_layer,
        SOLUTION.reciprocal_rank_per_layer,
        _rank_cases(),
        tol=Tolerance(1e-9, 1e-5),  # 1/(rank+1) vs 1/(rank+2) differ by little for deep ranks
        index_names=("row",),
        known_mistakes=KNOWN_MISTAKES["reciprocal_rank_per_layer"],
    )


KNOWN_MISTAKES["top_k_per_layer"] = {
    "these are the k LOWEST-scoring tokens: use topk (largest=True) or sort in descending order": _topk_bottom,
    "these are token ids: turn each row into strings with model.to_str_tokens": _topk_ids,
    "each layer should give a list of k strings, not one joined string (use model.to_str_tokens, not to_string)": _topk_joined,
    "did you take the top k over layers (dim 0)? Take it over the vocabulary (dim=-1)": _topk_over_layers,
}


def test_top_k_per_layer(top_k_per_layer) -> CheckResult:
    m = model()
    return check(
        "top_k_per_layer",
        top_k_per_layer,
        SOLUTION.top_k_per_layer,
        [
            Case(f"the logit lens of {_fact_label()}, k=5", (m, lens(_town_text()))),
            Case(f"the logit lens of {_ioi_label()}, k=3", (m, lens(CAPITAL_PROMPT.text)), {"k": 3}),
        ],
        known_mistakes=KNOWN_MISTAKES["top_k_per_layer"],
    )


KNOWN_MISTAKES["logits_without_mlp"] = {
    "did you forget the final LayerNorm before W_U?": _without_mlp_no_ln,
    "did you reuse the cached ln_final scale? Re-decode: apply model.ln_final to the edited residual so it recomputes its statistics": _without_mlp_frozen_scale,
    "did you edit that layer's own residual? Subtract the MLP output from the FINAL residual (resid_post of the last layer)": _without_mlp_from_layer_resid,
    "you removed the attention output (hook_attn_out); remove the MLP output (hook_mlp_out)": _without_mlp_attention,
    "did you add the MLP output instead of subtracting it?": _without_mlp_added,
    "did you ignore `pos` and always use the last position?": _without_mlp_last_position,
}


def test_logits_without_mlp(logits_without_mlp) -> CheckResult:
    m = model()
    fact_cache, ioi_cache = run(_town_text())[1], run(CAPITAL_PROMPT.text)[1]
    last = m.cfg.n_layers - 1
    return check(
        "logits_without_mlp",
        logits_without_mlp,
        SOLUTION.logits_without_mlp,
        [
            Case(f"{_fact_label()}, without MLP 0", (m, fact_cache, 0)),
            Case(f"{_fact_label()}, without MLP {last}", (m, fact_cache, last)),
            Case(f"{_fact_label(7)}, without MLP 1", (m, fact_cache, 1), {"pos": 7}),
            Case(f"{_ioi_label()}, without MLP 1", (m, ioi_cache, 1)),
        ],
        tol=Tolerance(1e-3, 1e-4),
        index_names=("token",),
        known_mistakes=KNOWN_MISTAKES["logits_without_mlp"],
    )


KNOWN_MISTAKES["mlp_removal_effect"] = {
    "the sign is flipped: return (without the MLP) minus (normal run), so a helpful MLP gives a negative number": _effect_sign_flipped,
    "these are changes in probability: compare log-probabilities (log_softmax)": _effect_probs,
    "these are changes in the raw logit: compare log-probabilities (log_softmax over the vocabulary)": _effect_logits,
    "did you reuse the cached ln_final scale? Apply model.ln_final to each edited residual": _effect_frozen_scale,
    "did you forget the final LayerNorm before W_U?": _effect_no_ln,
}


def test_mlp_removal_effect(mlp_removal_effect) -> CheckResult:
    m = model()
    return check(
        "mlp_removal_effect",
        mlp_removal_effect,
        SOLUTION.mlp_removal_effect,
        [
            Case(
                f'{_fact_label()}, answer "{town_prompt().answer}"',
                (m, run(_town_text())[1], answer_token(town_prompt())),
            ),
            Case(
                f'{_ioi_label()}, answer "{CAPITAL_PROMPT.answer}"',
                (m, run(CAPITAL_PROMPT.text)[1], answer_token(CAPITAL_PROMPT)),
            ),
        ],
        tol=Tolerance(1e-3, 1e-3),
        index_names=("layer",),
        known_mistakes=KNOWN_MISTAKES["mlp_removal_effect"],
    )


KNOWN_MISTAKES["logits_before_mlp"] = {
    "did you subtract from the FINAL residual? Here the MLP output is removed from resid_post of the same layer": _before_mlp_from_final,
    "did you forget the final LayerNorm before W_U?": _before_mlp_no_ln,
    "this is resid_pre of the layer (before attention too): subtract only the MLP output from resid_post": _before_mlp_resid_pre,
    'the MLP output is still in: subtract cache["mlp_out", layer] from resid_post': _before_mlp_with_mlp,
    "you removed the attention output (hook_attn_out); remove the MLP output (hook_mlp_out)": _before_mlp_attention,
}


def test_logits_before_mlp(logits_before_mlp) -> CheckResult:
    m = model()
    town_cache, capital_cache = run(_town_text())[1], run(CAPITAL_PROMPT.text)[1]
    return check(
        "logits_before_mlp",
        logits_before_mlp,
        SOLUTION.logits_before_mlp,
        [
            Case(f"{_fact_label()}, layer 0", (m, town_cache, 0)),
            Case(f"{_fact_label()}, layer 2", (m, town_cache, 2)),
            Case(f"{_fact_label(4)}, layer 1", (m, town_cache, 1), {"pos": 4}),
            Case(f"{_ioi_label()}, layer 0", (m, capital_cache, 0)),
        ],
        tol=Tolerance(1e-3, 1e-4),
        index_names=("token",),
        known_mistakes=KNOWN_MISTAKES["logits_before_mlp"],
    )


def _trace_cases() -> list[Case]:
    m, town = model(), town_prompt()
    town_swap = subject_swap(town)
    # A model sure of both answers (p_clean ~ 1, p_corrupted ~ 0) makes a raw probability equal to the
    # recovered share; tracing the swapped-in town's answer (p_clean ~ 0) tells them apart on any model.
    swapped_in = recall.bare_prompt(town.relation, town_swap.other_subject)
    return [
        Case(
            f'{label}, subject swapped for "{swap.other_subject}", subject_pos={swap.subject_pos}, '
            f"tracing the probability of {traced.answer!r}",
            (m, swap.clean, swap.corrupted, answer_token(traced), swap.subject_pos),
        )
        for label, swap, traced in (
            (_ioi_label(), subject_swap(CAPITAL_PROMPT), CAPITAL_PROMPT),
            (_fact_label(), town_swap, town),
            (_fact_label(), town_swap, swapped_in),
        )
    ]


KNOWN_MISTAKES["causal_trace"] = {
    "did you restore a position after the subject (here: the last one)? Restore position subject_pos only": _trace_last_pos,
    "entry 0 should recover the whole answer here: restore position subject_pos (not subject_pos - 1), at the INPUT of block l (hook_resid_pre)": _trace_pos_before,
    "these are raw probabilities: return the recovered share (p - p_corrupted) / (p_clean - p_corrupted)": _trace_unnormalised,
    "off by one block: entry l restores the INPUT of block l (hook_resid_pre), so entry 0 is the embedding": _trace_resid_post,
}


def test_causal_trace(causal_trace) -> CheckResult:
    return check(
        "causal_trace",
        causal_trace,
        SOLUTION.causal_trace,
        _trace_cases(),
        tol=Tolerance(2e-3, 1e-3),
        index_names=("row",),
        known_mistakes=KNOWN_MISTAKES["causal_trace"],
    )


KNOWN_MISTAKES["kl_to_final"] = {
    "the KL is reversed: compute KL(P_final || P_layer) = sum P_final (log P_final - log P_layer)": _kl_reversed,
    "you averaged over the vocabulary (F.kl_div's default reduction): KL is a SUM over tokens": _kl_mean_over_vocab,
    "F.kl_div's first argument must be LOG-probabilities (log_softmax), not probabilities": _kl_probs_as_input,
    "softmax over the wrong dimension: the distributions are over the vocabulary (dim=-1)": _kl_softmax_over_layers,
    "you compared with the FIRST row; the reference distribution is the last row (the model's output)": _kl_to_first_row,
}


def test_kl_to_final(kl_to_final) -> CheckResult:
    return check(
        "kl_to_final",
        kl_to_final,
        SOLUTION.kl_to_final,
        [
            Case(f"the logit lens of {_fact_label()} ([layer, d_vocab])", (lens(_town_text()),)),
            Case(
                f'the logit lens of "{CAPITAL_PROMPT.text}" at every position ([layer, pos, d_vocab])',
                (lens_all_positions(CAPITAL_PROMPT.text),),
            ),
        ],
        tol=Tolerance(1e-4, 1e-3),
        known_mistakes=KNOWN_MISTAKES["kl_to_final"],
    )


@dataclass(frozen=True)
class _Fit:
    """A fitted (W, b) with the inputs it was fitted on, to compare predictions."""

    W: Any
    b: Any
    h_from: torch.Tensor


def _with_inputs(fn: Callable) -> Callable:
    def fitted(h_from, h_to):
        out = fn(h_from, h_to)
        return _Fit(*out, h_from) if isinstance(out, (tuple, list)) and len(out) == 2 else out

    return fitted


def _compare_fits(actual: Any, expected: _Fit) -> str | None:
    """Compare the predictions h_from @ W + b (stable even where W itself is ill-determined)."""
    if isinstance(actual, _Fit):
        actual = (actual.W, actual.b)
    if not isinstance(actual, (tuple, list)) or len(actual) != 2:
        return f"output is a {type(actual).__name__}, expected a tuple (W, b)"
    d = expected.h_from.shape[1]
    for name, value, shape in (("W", actual[0], (d, d)), ("b", actual[1], (d,))):
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"{name} has shape {got} but expected {shape}"
    x = expected.h_from.double()
    predicted = x @ actual[0].detach().double() + actual[1].detach().double()
    reference = x @ expected.W.double() + expected.b.double()
    scale = reference.abs().max().item()
    diff = describe_difference(
        predicted / scale, reference / scale, Tolerance(2e-3, 0.0), ("token", "dim"), "the prediction h_from @ W + b"
    )
    return None if diff is None else diff + " (in units of the largest target value)"


KNOWN_MISTAKES["fit_affine_translator"] = {
    "did you forget the bias? Append a column of ones to h_from (or centre both sides)": _fit_no_bias,
    "W is transposed: the convention is h_to ≈ h_from @ W + b": _fit_transposed,
    "you fitted the map in the wrong direction (from h_to to h_from)": _fit_wrong_direction,
    "this is the identity map (the plain logit lens); fit W and b by least squares": _fit_identity,
}


def test_fit_affine_translator(fit_affine_translator) -> CheckResult:
    h0, h2, final = _translator_data()
    layer = min(2, model().cfg.n_layers - 1)
    return check(
        "fit_affine_translator",
        fit_affine_translator,
        _with_inputs(SOLUTION.fit_affine_translator),
        [
            Case(f"{len(h0)} tokens of course text: resid_pre of layer 0 -> final residual", (h0, final)),
            Case(f"{len(h2)} tokens of course text: resid_pre of layer {layer} -> final residual", (h2, final)),
        ],
        known_mistakes={k: _with_inputs(v) for k, v in KNOWN_MISTAKES["fit_affine_translator"].items()},
        compare=_compare_fits,
    )


# --- answers ---------------------------------------------------------------------------------
def block_gains() -> tuple[list[str], torch.Tensor]:
    """Labels ("attn 0", "mlp 0", ...) and the rise in the answer's logit-lens log-probability
    across each block, on the chapter's fact prompt."""
    m, cache = model(), run(_town_text())[1]
    resid, labels = cache.accumulated_resid(incl_mid=True, apply_ln=True, pos_slice=-1, return_labels=True)
    logprob = (resid[:, 0] @ m.W_U + m.b_U).log_softmax(dim=-1)[:, answer_token(town_prompt())]
    names = [f"{'attn' if i % 2 == 0 else 'mlp'} {i // 2}" for i in range(len(labels) - 1)]
    return names, logprob[1:] - logprob[:-1]


def most_important_mlp() -> int:
    m = model()
    return int(SOLUTION.mlp_removal_effect(m, run(_town_text())[1], answer_token(town_prompt())).argmin())


def _normalise_block(given: Any) -> str | None:
    if not isinstance(given, str):
        return None
    text = given.lower().replace("_", " ").replace(".", " ").strip()
    for kind in ("attn", "mlp"):
        if text.startswith(kind) and text[len(kind) :].strip().isdigit():
            return f"{kind} {int(text[len(kind) :])}"
    if text.startswith("attention") and text[9:].strip().isdigit():
        return f"attn {int(text[9:])}"
    return None


def test_answer_ln_twice_detectable_with_fresh_ln(answer) -> CheckResult:
    return check_answer(
        "answer_ln_twice_detectable_with_fresh_ln",
        answer,
        lambda given: given is False,
        "what mean and variance does a vector have after a LayerNorm with weight 1 and bias 0, and what would a second one do to it? Try F.layer_norm twice on a random vector",
    )


def test_answer_gpt2_medium_lens_rows(answer) -> CheckResult:
    return check_answer(
        "answer_gpt2_medium_lens_rows",
        answer,
        lambda given: isinstance(given, int) and not isinstance(given, bool) and given == 25,
        "how many rows does your lens have on this 4-layer model, and which rule gives that number?",
    )


def test_answer_biggest_block(answer) -> CheckResult:
    names, gains = block_gains()
    truth = names[int(gains.argmax())]
    return check_answer(
        "answer_biggest_block",
        answer,
        lambda given: _normalise_block(given) == truth,
        'write it as "attn L" or "mlp L", and look again at the tallest bar of the resid_mid plot',
    )


def test_answer_most_important_mlp(answer) -> CheckResult:
    truth = most_important_mlp()
    return check_answer(
        "answer_most_important_mlp",
        answer,
        lambda given: isinstance(given, int) and not isinstance(given, bool) and given == truth,
        "removal hurts most where Δ log P is most negative: read the town bars of the plot again",
    )


# --- findings ----------------------------------------------------------------------------------
N_FINDING_PROMPTS = 24
"""Prompts per group in :func:`findings` (the first of each held-out list): enough for stable
medians, few enough for the notebook to stay fast."""


@dataclass(frozen=True)
class GroupFindings:
    """What the model does on one group of prompts (all at the last position)."""

    name: str
    n: int
    top1: float
    """Share of the ``n`` prompts answered (top-1); every figure below is over those answered."""
    median_rank: list[float]
    """Median logit-lens rank of the answer per row: embed, after block 0, ..., after the last block."""
    top1_depth: float
    """Median row from which the answer is top-1 and stays so (n_layers + 1: never)."""
    mlp_zero_nats: list[float]
    """Mean drop of the answer's log-probability when one MLP's output is zeroed (the model re-run)."""
    mlp_direct_nats: list[float]
    """Mean drop when one MLP's output is only subtracted from the final residual (direct path)."""


def _padded(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded BOS-prefixed token ids and each row's last real position."""
    rows = [tokens(text)[0] for text in texts]
    last = torch.tensor([len(r) - 1 for r in rows])
    out = torch.zeros(len(rows), int(last.max()) + 1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, last


@torch.no_grad()
def _measure(prompts: list[recall.RecallPrompt]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For prompts of similar length, at the last position: the logit-lens ranks ``[row, prompt]``,
    and the answer's log-probability ``[prompt]``, with each MLP zeroed ``[layer, prompt]`` and with
    each MLP removed from the final residual only ``[layer, prompt]``; plus top-1 hits ``[prompt]``."""
    m, n = model(), model().cfg.n_layers
    batch, last = _padded([p.text for p in prompts])
    rows = torch.arange(len(prompts))
    answers = torch.tensor([answer_token(p) for p in prompts])
    logits, cache = m.run_with_cache(
        batch, names_filter=lambda h: "resid_pre" in h or "resid_post" in h or "mlp_out" in h
    )
    final = logits[rows, last]
    resid = torch.stack(
        [cache["resid_pre", layer][rows, last] for layer in range(n)] + [cache["resid_post", n - 1][rows, last]]
    )
    lens = SOLUTION.decode_residual(m, resid)  # [row, prompt, vocab]
    ranks = (lens > lens[:, rows, answers].unsqueeze(-1)).sum(-1)
    log_p = final.log_softmax(-1)[rows, answers]
    zero, direct = [], []
    for layer in range(n):
        ablated = m.run_with_hooks(batch, fwd_hooks=[(f"blocks.{layer}.hook_mlp_out", lambda x, hook: x * 0)])
        zero.append(log_p - ablated[rows, last].log_softmax(-1)[rows, answers])
        edited = SOLUTION.decode_residual(m, resid[-1] - cache["mlp_out", layer][rows, last])
        direct.append(log_p - edited.log_softmax(-1)[rows, answers])
    return ranks, torch.stack(zero), torch.stack(direct), (final.argmax(-1) == answers).float()


def _group(name: str, prompts: list[recall.RecallPrompt], chunk: int = 8) -> GroupFindings:
    """Measure ``prompts`` in chunks of similar token length (little padding: the passes stay cheap)."""
    n = model().cfg.n_layers
    ordered = sorted(prompts, key=lambda p: len(tokens(p.text)[0]))
    parts = [_measure(ordered[i : i + chunk]) for i in range(0, len(ordered), chunk)]
    ranks, zero, direct, hits = (torch.cat(tensors, dim=-1) for tensors in zip(*parts))
    answered = hits.bool()
    ranks, zero, direct = ranks[:, answered], zero[:, answered], direct[:, answered]
    on_top = (ranks == 0).flip(0).cumprod(0).sum(0)  # rows on top, counted from the last one
    depths = (n + 1 - on_top).float()
    return GroupFindings(
        name,
        len(prompts),
        hits.mean().item(),
        ranks.float().median(dim=1).values.tolist(),
        depths.median().item(),
        zero.mean(1).tolist(),
        direct.mean(1).tolist(),
    )


@dataclass(frozen=True)
class Findings:
    towns: GroupFindings
    capitals_bare: GroupFindings
    capitals_qa: GroupFindings
    tracing: list[float]
    """Mean recovered share per row when the clean residual is restored at the town's last token."""
    tracing_whole_subject: list[float]
    """The same when it is restored at every token of the town's name."""
    n_traced: int


@functools.cache
def findings() -> Findings:
    """The chapter's closing numbers on the course model (``tests/test_findings_02.py`` asserts the
    claims the notebook makes from them). Held-out forms only: towns asked in Q/A form that never
    was trained, and capitals in the bare form and in Q/A form; the mechanism figures are over the
    prompts the model answers. Causal tracing: the first :data:`N_TRACED` answered towns that have a
    same-length swap (those the model gets wrong have nothing to recover)."""
    k = N_FINDING_PROMPTS
    towns = recall.eval_prompts("country", "qa_heldout")[:k]
    groups = (
        _group("towns, held-out Q/A", towns),
        _group('capitals, bare "The capital of X is"', recall.eval_prompts("capital", "bare")[:k]),
        _group("capitals, Q/A", recall.eval_prompts("capital", "qa")[:k]),
    )
    last, whole = [], []
    for prompt in towns:
        answer = answer_token(prompt)
        if len(last) == N_TRACED or int(run(prompt.text)[0][0, -1].argmax()) != answer:
            continue
        swap = subject_swap(prompt)
        if swap is not None:
            last.append(batched_trace(swap, answer))
            whole.append(batched_trace(swap, answer, range(swap.subject_start, swap.subject_pos + 1)))
    return Findings(*groups, torch.stack(last).mean(0).tolist(), torch.stack(whole).mean(0).tolist(), len(last))


N_TRACED = 6


@torch.no_grad()
def batched_trace(swap: SubjectSwap, answer: int, positions: Sequence[int] | None = None) -> torch.Tensor:
    """The reference ``causal_trace`` in one forward pass: row 0 of the batch is the clean run,
    row 1 the corrupted one, and row 2 + l the corrupted run with the clean residual restored at
    ``positions`` (default: the subject's last token) at the l-th hook point (the hook copies it from row 0)."""
    m, n = model(), model().cfg.n_layers
    at = [swap.subject_pos] if positions is None else list(positions)
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]
    batch = torch.cat([swap.clean, swap.corrupted.expand(n + 2, -1)])

    def restore(x, hook, row):
        x[row, at] = x[0, at]
        return x

    hooks = [(name, functools.partial(restore, row=2 + i)) for i, name in enumerate(names)]
    p = m.run_with_hooks(batch, fwd_hooks=hooks)[:, -1].softmax(-1)[:, answer]
    return (p[2:] - p[1]) / (p[0] - p[1])
