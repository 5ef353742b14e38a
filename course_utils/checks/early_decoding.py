"""Learner checks for chapter 02, early decoding (the logit lens).

Every check runs the learner's function and the reference on the course model ``gelu-4l``
(trained LayerNorms, so "LayerNorm applied twice" is visible) and on the chapter's prompts:
a few-shot factual question ("... capital of Poland? A:" -> " Warsaw") and an IOI sentence.
Inputs are computed once and cached, so each check takes a fraction of a second.

Also here: :func:`text_batch`, a batch of the course's own English text, used by the
notebook's tuned lens and by :func:`test_fit_affine_translator`.
"""
from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge

from course_utils.chapters import solution_module
from course_utils.harness import Case, CheckResult, Tolerance, check, check_answer, describe_difference
from course_utils.models import load_model
from course_utils.tasks import facts, ioi

SOLUTION = solution_module("02_early_decoding")

MODEL_NAME = "gelu-4l"
FACT_PROMPT = "Q: What is the capital of France? A: Paris\nQ: What is the capital of Poland? A:"
FACT_ANSWER = " " + facts.CAPITALS["Poland"]
IOI_PROMPT = ioi.ioi_prompts(1, "heldout", seed=0)[0]


# --- inputs (computed once) ----------------------------------------------------------------
@functools.cache
def model() -> TransformerBridge:
    """The course model the checks run on (weights frozen: nothing here trains it)."""
    m = load_model(MODEL_NAME, device="cpu")
    m.requires_grad_(False)
    return m


_DROPPED_HOOKS = (".attn.q", ".attn.k", ".attn.v", ".attn.o", "hook_q", "hook_k", "hook_v", "hook_z",
                  "hook_pattern", "hook_attn_scores", ".mlp.in", ".mlp.out", "mlp.hook_pre", "mlp.hook_post",
                  ".ln1.", ".ln2.", "hook_mlp_in", "hook_attn_in", "hook_result")


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


def answer_token(text: str) -> int:
    return model().to_single_token(FACT_ANSWER if text == FACT_PROMPT else IOI_PROMPT.answer)


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

    The text mixes short stories, IOI sentences and facts (what ``gelu-4l`` was trained on),
    drawn with ``seed``; rows are consecutive slices of one long tokenised stream.
    """
    from course_utils.zoo.corpus import generated_english  # imported here: only this helper needs it

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
    names = ["blocks.0.hook_resid_pre", f"blocks.{min(2, m.cfg.n_layers - 1)}.hook_resid_pre",
             f"blocks.{m.cfg.n_layers - 1}.hook_resid_post"]
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
    return torch.stack(
        [transform(edit(m, cache, layer, pos))[answer_token] - clean for layer in range(m.cfg.n_layers)]
    )


def _effect_probs(m, cache, answer_token, pos=-1):
    return _effect_per_layer(m, cache, answer_token, pos, SOLUTION.logits_without_mlp, lambda x: x.softmax(-1))


def _effect_logits(m, cache, answer_token, pos=-1):
    return _effect_per_layer(m, cache, answer_token, pos, SOLUTION.logits_without_mlp, lambda x: x)


def _effect_frozen_scale(m, cache, answer_token, pos=-1):
    return _effect_per_layer(m, cache, answer_token, pos, _without_mlp_frozen_scale, lambda x: x.log_softmax(-1))


def _effect_no_ln(m, cache, answer_token, pos=-1):
    clean = _unembed(m, _final(m, cache, pos)).log_softmax(-1)[answer_token]
    return torch.stack(
        [_without_mlp_no_ln(m, cache, layer, pos).log_softmax(-1)[answer_token] - clean for layer in range(m.cfg.n_layers)]
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


# --- checks ----------------------------------------------------------------------------------
def _fact_label(pos: int = -1) -> str:
    return f'prompt "…capital of Poland? A:" at position {pos}'


def _ioi_label(pos: int = -1) -> str:
    return f'IOI prompt "{IOI_PROMPT.text[:24]}…" at position {pos}'


def test_decode_residual(decode_residual) -> CheckResult:
    """Decoding a stack of residuals, one residual vector, and every position of a prompt."""
    m = model()
    fact_cache, ioi_cache = run(FACT_PROMPT)[1], run(IOI_PROMPT.text)[1]
    return check(
        "decode_residual",
        decode_residual,
        SOLUTION.decode_residual,
        [
            Case("the residual stream after each layer (a [layer, d_model] stack)", (m, _lens_stack(m, fact_cache, -1))),
            Case("one residual vector (shape [d_model])", (m, ioi_cache["resid_pre", 2][0, -1])),
            Case("every position of the IOI prompt ([pos, d_model])", (m, ioi_cache["resid_pre", 1][0])),
        ],
        tol=Tolerance(1e-3, 1e-4),
        known_mistakes={
            "did you forget the final LayerNorm (model.ln_final) before W_U?": _decode_no_ln,
            "is the final LayerNorm applied twice?": _decode_ln_twice,
            "did you only centre and rescale, leaving out ln_final's learned weight and bias? Call model.ln_final": _decode_no_affine,
            "did you leave out the unembedding bias b_U?": _decode_no_bias,
        },
    )


def test_logit_lens(logit_lens) -> CheckResult:
    m = model()
    fact_cache, ioi_cache = run(FACT_PROMPT)[1], run(IOI_PROMPT.text)[1]
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
        known_mistakes={
            "did you forget the final LayerNorm before W_U?": _lens_no_ln,
            "is the final LayerNorm applied twice at the last row? ln_final.hook_out is already normalised; decode resid_post instead": _lens_ln_twice_at_final,
            "did you reuse the cached ln_final scale of the final residual? Each residual must be normalised with its own statistics (call model.ln_final on it)": _lens_frozen_scale,
            "did you ignore `pos` and always decode the last position?": _lens_last_position,
            "did you decode position 0 (the BOS token) instead of `pos`?": _lens_first_position,
            "did you leave out the unembedding bias b_U?": _lens_no_bias,
        },
    )


def _rank_cases() -> list[Case]:
    return [
        Case(f'the logit lens of "…capital of Poland? A:" (answer "{FACT_ANSWER}")', (lens(FACT_PROMPT), answer_token(FACT_PROMPT))),
        Case(f'the logit lens of the IOI prompt (answer "{IOI_PROMPT.answer}")', (lens(IOI_PROMPT.text), answer_token(IOI_PROMPT.text))),
        Case('the logit lens of "…capital of Poland? A:" at position 5, token " the"', (lens(FACT_PROMPT, 5), model().to_single_token(" the"))),
    ]


def test_answer_rank_per_layer(answer_rank_per_layer) -> CheckResult:
    return check(
        "answer_rank_per_layer",
        answer_rank_per_layer,
        SOLUTION.answer_rank_per_layer,
        _rank_cases(),
        index_names=("row",),
        known_mistakes={
            "off by one: ranks start at 0 here (rank 0 = top token); count the tokens with a strictly larger logit": _rank_from_one,
            "did you take argsort once? argsort(...)[:, answer] is the token at position `answer` of the sorted list, not the answer's rank": _rank_argsort_once,
            "are you counting from the bottom? Sort in descending order (or count tokens with a LARGER logit)": _rank_from_bottom,
        },
    )


def test_answer_prob_per_layer(answer_prob_per_layer) -> CheckResult:
    return check(
        "answer_prob_per_layer",
        answer_prob_per_layer,
        SOLUTION.answer_prob_per_layer,
        _rank_cases(),
        tol=Tolerance(1e-9, 1e-4),  # probabilities can be tiny: compare relatively
        index_names=("row",),
        known_mistakes={
            "softmax over the wrong dimension: the distribution is over the vocabulary (dim=-1), not over layers": _prob_softmax_over_layers,
            "this is the log-probability: use softmax, not log_softmax": _prob_log,
            "these are raw logits: apply softmax over the vocabulary first": _prob_raw_logit,
        },
    )


def test_reciprocal_rank_per_layer(reciprocal_rank_per_layer) -> CheckResult:
    return check(
        "reciprocal_rank_per_layer",
        reciprocal_rank_per_layer,
        SOLUTION.reciprocal_rank_per_layer,
        _rank_cases(),
        tol=Tolerance(1e-9, 1e-5),  # 1/(rank+1) vs 1/(rank+2) differ by little for deep ranks
        index_names=("row",),
        known_mistakes={
            "off by one: with rank 0 = top the reciprocal rank is 1 / (rank + 1), so the top token scores exactly 1": _rr_from_one,
            "1 / rank divides by zero for the top token: use 1 / (rank + 1)": _rr_no_plus_one,
            "this is the rank itself, not 1 / (rank + 1)": _rr_is_rank,
        },
    )


def test_top_k_per_layer(top_k_per_layer) -> CheckResult:
    m = model()
    return check(
        "top_k_per_layer",
        top_k_per_layer,
        SOLUTION.top_k_per_layer,
        [
            Case('the logit lens of "…capital of Poland? A:", k=5', (m, lens(FACT_PROMPT))),
            Case("the logit lens of the IOI prompt, k=3", (m, lens(IOI_PROMPT.text)), {"k": 3}),
        ],
        known_mistakes={
            "these are the k LOWEST-scoring tokens: use topk (largest=True) or sort in descending order": _topk_bottom,
            "these are token ids: turn each row into strings with model.to_str_tokens": _topk_ids,
            "each layer should give a list of k strings, not one joined string (use model.to_str_tokens, not to_string)": _topk_joined,
            "did you take the top k over layers (dim 0)? Take it over the vocabulary (dim=-1)": _topk_over_layers,
        },
    )


def test_logits_without_mlp(logits_without_mlp) -> CheckResult:
    m = model()
    fact_cache, ioi_cache = run(FACT_PROMPT)[1], run(IOI_PROMPT.text)[1]
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
        known_mistakes={
            "did you forget the final LayerNorm before W_U?": _without_mlp_no_ln,
            "did you reuse the cached ln_final scale? Re-decode: apply model.ln_final to the edited residual so it recomputes its statistics": _without_mlp_frozen_scale,
            "did you edit that layer's own residual? Subtract the MLP output from the FINAL residual (resid_post of the last layer)": _without_mlp_from_layer_resid,
            "you removed the attention output (hook_attn_out); remove the MLP output (hook_mlp_out)": _without_mlp_attention,
            "did you add the MLP output instead of subtracting it?": _without_mlp_added,
            "did you ignore `pos` and always use the last position?": _without_mlp_last_position,
        },
    )


def test_mlp_removal_effect(mlp_removal_effect) -> CheckResult:
    m = model()
    return check(
        "mlp_removal_effect",
        mlp_removal_effect,
        SOLUTION.mlp_removal_effect,
        [
            Case(f'{_fact_label()}, answer "{FACT_ANSWER}"', (m, run(FACT_PROMPT)[1], answer_token(FACT_PROMPT))),
            Case(f'{_ioi_label()}, answer "{IOI_PROMPT.answer}"', (m, run(IOI_PROMPT.text)[1], answer_token(IOI_PROMPT.text))),
        ],
        tol=Tolerance(1e-3, 1e-3),
        index_names=("layer",),
        known_mistakes={
            "the sign is flipped: return (without the MLP) minus (normal run), so a helpful MLP gives a negative number": _effect_sign_flipped,
            "these are changes in probability: compare log-probabilities (log_softmax)": _effect_probs,
            "these are changes in the raw logit: compare log-probabilities (log_softmax over the vocabulary)": _effect_logits,
            "did you reuse the cached ln_final scale? Apply model.ln_final to each edited residual": _effect_frozen_scale,
            "did you forget the final LayerNorm before W_U?": _effect_no_ln,
        },
    )


def test_kl_to_final(kl_to_final) -> CheckResult:
    return check(
        "kl_to_final",
        kl_to_final,
        SOLUTION.kl_to_final,
        [
            Case('the logit lens of "…capital of Poland? A:" ([layer, d_vocab])', (lens(FACT_PROMPT),)),
            Case("the logit lens of the IOI prompt at every position ([layer, pos, d_vocab])", (lens_all_positions(IOI_PROMPT.text),)),
        ],
        tol=Tolerance(1e-4, 1e-3),
        known_mistakes={
            "the KL is reversed: compute KL(P_final || P_layer) = sum P_final (log P_final - log P_layer)": _kl_reversed,
            "you averaged over the vocabulary (F.kl_div's default reduction): KL is a SUM over tokens": _kl_mean_over_vocab,
            "F.kl_div's first argument must be LOG-probabilities (log_softmax), not probabilities": _kl_probs_as_input,
            "softmax over the wrong dimension: the distributions are over the vocabulary (dim=-1)": _kl_softmax_over_layers,
            "you compared with the FIRST row; the reference distribution is the last row (the model's output)": _kl_to_first_row,
        },
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
    diff = describe_difference(predicted / scale, reference / scale, Tolerance(2e-3, 0.0), ("token", "dim"), "the prediction h_from @ W + b")
    return None if diff is None else diff + " (in units of the largest target value)"


def test_fit_affine_translator(fit_affine_translator) -> CheckResult:
    h0, h2, final = _translator_data()
    layer = min(2, model().cfg.n_layers - 1)
    wrong = {
        "did you forget the bias? Append a column of ones to h_from (or centre both sides)": _fit_no_bias,
        "W is transposed: the convention is h_to ≈ h_from @ W + b": _fit_transposed,
        "you fitted the map in the wrong direction (from h_to to h_from)": _fit_wrong_direction,
        "this is the identity map (the plain logit lens); fit W and b by least squares": _fit_identity,
    }
    return check(
        "fit_affine_translator",
        fit_affine_translator,
        _with_inputs(SOLUTION.fit_affine_translator),
        [
            Case(f"{len(h0)} tokens of course text: resid_pre of layer 0 -> final residual", (h0, final)),
            Case(f"{len(h2)} tokens of course text: resid_pre of layer {layer} -> final residual", (h2, final)),
        ],
        known_mistakes={k: _with_inputs(v) for k, v in wrong.items()},
        compare=_compare_fits,
    )


# --- answers ---------------------------------------------------------------------------------
def block_gains() -> tuple[list[str], torch.Tensor]:
    """Labels ("attn 0", "mlp 0", ...) and the rise in the answer's logit-lens log-probability
    across each block, on the chapter's fact prompt."""
    m, cache = model(), run(FACT_PROMPT)[1]
    resid, labels = cache.accumulated_resid(incl_mid=True, apply_ln=True, pos_slice=-1, return_labels=True)
    logprob = (resid[:, 0] @ m.W_U + m.b_U).log_softmax(dim=-1)[:, answer_token(FACT_PROMPT)]
    names = [f"{'attn' if i % 2 == 0 else 'mlp'} {i // 2}" for i in range(len(labels) - 1)]
    return names, logprob[1:] - logprob[:-1]


def most_important_mlp() -> int:
    m = model()
    return int(SOLUTION.mlp_removal_effect(m, run(FACT_PROMPT)[1], answer_token(FACT_PROMPT)).argmin())


def _normalise_block(given: Any) -> str | None:
    if not isinstance(given, str):
        return None
    text = given.lower().replace("_", " ").replace(".", " ").strip()
    for kind in ("attn", "mlp"):
        if text.startswith(kind) and text[len(kind):].strip().isdigit():
            return f"{kind} {int(text[len(kind):])}"
    if text.startswith("attention") and text[9:].strip().isdigit():
        return f"attn {int(text[9:])}"
    return None


def test_answer_ln_twice_detectable_with_fresh_ln(answer) -> CheckResult:
    return check_answer(
        "answer_ln_twice_detectable_with_fresh_ln",
        answer,
        lambda given: given is False,
        "a LayerNorm with weight 1 and bias 0 outputs a vector of mean 0 and variance ≈ 1; normalising it again changes (almost) nothing",
    )


def test_answer_gpt2_medium_lens_rows(answer) -> CheckResult:
    return check_answer(
        "answer_gpt2_medium_lens_rows",
        answer,
        lambda given: isinstance(given, int) and not isinstance(given, bool) and given == 25,
        "gpt2-medium has 24 layers: one row per resid_pre of each layer, plus one for the final residual",
    )


def test_answer_biggest_block(answer) -> CheckResult:
    names, gains = block_gains()
    truth = names[int(gains.argmax())]
    return check_answer(
        "answer_biggest_block",
        answer,
        lambda given: _normalise_block(given) == truth,
        "write it as \"attn L\" or \"mlp L\"; it is the block across which the answer's log-probability rises the most in the resid_mid plot",
    )


def test_answer_most_important_mlp(answer) -> CheckResult:
    truth = most_important_mlp()
    return check_answer(
        "answer_most_important_mlp",
        answer,
        lambda given: isinstance(given, int) and not isinstance(given, bool) and given == truth,
        "it is the layer where mlp_removal_effect is most negative (argmin)",
    )
