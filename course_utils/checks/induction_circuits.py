"""Learner checks for chapter 05, induction circuits.

Every check runs the learner's function and the reference on real inputs: the course model
``attn-only-2l`` on BOS + random tokens repeated (built by ``course_utils.tasks.repeated``) and
on a paragraph of Python. Inputs are built once (``functools.cache``); the harness reports a
function that modifies them in place. ``known_mistakes`` name the classic errors of this chapter:
the induction offset off by one, the first half or BOS counted in a score, a detector reading the
wrong diagonal, a composition score without its normalisation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from transformer_lens import ActivationCache, FactoredMatrix

from course_utils.chapters import solutions_for
from course_utils.harness import Case, CheckResult, Tolerance, check, check_answer, describe_difference, reject
from course_utils.models import load_model
from course_utils.tasks.repeated import repeated_tokens

SOLUTION = solutions_for(__name__)

MODEL_NAME = "attn-only-2l"
SEQ_LEN = 30
"""Length of each copy in the checks' repeated sequences (1 + 2 * 30 = 61 tokens)."""
SUB_VOCAB = 1024
"""The top-1 check uses the first 1024 tokens of the vocabulary (a 1024 x 1024 circuit): fast."""
KNOWN_MISTAKES: dict[str, dict[str, Callable]] = {}
"""Exercise → diagnosis → a function with the learner's signature that makes that mistake; each
section below adds its exercises, and each check passes ``known_mistakes=KNOWN_MISTAKES[name]``."""

CODE_TEXT = '''def mean(values):
    """Return the arithmetic mean of a list of numbers."""
    total = 0
    for value in values:
        total += value
    return total / len(values)
'''


# --------------------------------------------------------------------------- inputs


@functools.cache
def check_model():
    """The course model the checks run on."""
    return load_model(MODEL_NAME, device="cpu")


@functools.cache
def folded_model():
    """The course model with LayerNorm weights folded in and writing weights centred (section 5)."""
    folded = load_model(MODEL_NAME, device="cpu")
    folded.enable_compatibility_mode(disable_warnings=True)
    return folded


@functools.cache
def rep_tokens(seq_len: int = SEQ_LEN, batch: int = 4, seed: int = 1) -> Tensor:
    """``[batch, 1 + 2 * seq_len]``: BOS, then random tokens, then the same tokens again."""
    model = check_model()
    return repeated_tokens(batch, seq_len, model.cfg.d_vocab, model.tokenizer.bos_token_id, seed=seed)


@functools.cache
def code_tokens() -> Tensor:
    """BOS + :data:`CODE_TEXT`, tokenised: ``[1, pos]``."""
    return check_model().to_tokens(CODE_TEXT)


@functools.cache
def run(which: str) -> tuple[Tensor, ActivationCache]:
    """Logits and cache of the check model on ``"repeated"`` (:func:`rep_tokens`) or ``"code"`` (:func:`code_tokens`)."""
    tokens = rep_tokens() if which == "repeated" else code_tokens()
    with torch.no_grad():
        return check_model().run_with_cache(tokens)


@functools.cache
def best_heads() -> dict[str, tuple[int, int]]:
    """The course model's strongest induction head and previous-token head (found, not hard-coded)."""
    with torch.no_grad():
        induction = SOLUTION.induction_score(check_model(), rep_tokens())[1]
        previous = run("repeated")[1]["pattern", 0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 2))
    return {"induction": (1, int(induction.argmax())), "previous": (0, int(previous.argmax()))}


@functools.cache
def _small_random_model():
    from course_utils.models import random_model

    return random_model(n_layers=2, attn_only=True, d_model=48, n_heads=3, n_ctx=64, seed=3)


# --------------------------------------------------------------------------- 1 · repeated tokens


def _repeated_tokens_problem(actual: Any, expected: Tensor) -> str | None:
    """Say what is wrong with a batch of repeated tokens, judged by structure, not by the random draw."""
    model = check_model()
    bos, d_vocab = model.tokenizer.bos_token_id, model.cfg.d_vocab
    batch, width = expected.shape
    seq_len = (width - 1) // 2
    if not isinstance(actual, Tensor):
        return f"output is a {type(actual).__name__}, expected a torch.Tensor of shape {tuple(expected.shape)}"
    if actual.is_floating_point() or actual.dtype == torch.bool:
        return f"output has dtype {actual.dtype} but expected integer token ids (torch.long)"
    if tuple(actual.shape) == (batch, 2 * seq_len):
        return f"output has shape {tuple(actual.shape)} but expected {tuple(expected.shape)} — did you forget the BOS token at position 0?"
    if actual.shape != expected.shape:
        return f"output has shape {tuple(actual.shape)} but expected {tuple(expected.shape)} (batch, 1 + 2 * seq_len)"
    actual = actual.cpu()
    if not (actual[:, 0] == bos).all():
        return f"position 0 holds {actual[0, 0].item()} but must be the BOS token ({bos}) in every row"
    body = actual[:, 1:]
    if ((body < 1) | (body >= d_vocab)).any():
        bad = body[(body < 1) | (body >= d_vocab)][0].item()
        return f"a random token is {bad}; random tokens must lie in [1, d_vocab) = [1, {d_vocab}) (never BOS)"
    first, second = body[:, :seq_len], body[:, seq_len:]
    if not torch.equal(first, second):
        if seq_len > 1 and torch.equal(body[:, 0::2], body[:, 1::2]):
            return "each token is doubled in place (x1 x1 x2 x2 …) — the whole block must repeat (x1 … xn x1 … xn): concatenate, don't repeat_interleave"
        return "the second copy (positions seq_len+1 … 2*seq_len) differs from the first copy (positions 1 … seq_len)"
    if batch > 1 and (first == first[:1]).all():
        return "every row of the batch is the same sequence — draw batch × seq_len tokens, not one row repeated"
    if seq_len >= 10 and first.unique().numel() < seq_len // 2:
        return f"the first copy has only {first.unique().numel()} distinct tokens in {first.numel()} — are the tokens random?"
    return None


@torch.no_grad()
def test_generate_repeated_tokens(generate_repeated_tokens) -> CheckResult:
    """Judge structure (BOS, two equal copies, valid random tokens, rows differ) and seeding."""
    model = check_model()
    seeding_problem = _seeding_problem(generate_repeated_tokens, model)
    if seeding_problem:
        return reject("generate_repeated_tokens", seeding_problem)
    return check(
        "generate_repeated_tokens",
        generate_repeated_tokens,
        SOLUTION.generate_repeated_tokens,
        [
            Case("seq_len=20, batch=3, seed=0", (model, 20, 3, 0)),
            Case("seq_len=7, batch=1, seed=5", (model, 7, 1, 5)),
            Case("seq_len=12 with keyword arguments batch=2, seed=1", (model, 12), {"batch": 2, "seed": 1}),
        ],
        compare=_repeated_tokens_problem,
    )


def _seeding_problem(generate_repeated_tokens, model) -> str | None:
    """For a function whose output is well formed: does ``seed`` control the draw?

    Anything else (a stub, an error, a malformed output) is left to :func:`check` to report.
    """
    try:
        first, again, other = (generate_repeated_tokens(model, 20, 2, s) for s in (0, 0, 1))
    except Exception:  # noqa: BLE001 - reported by check() with the learner's line number
        return None
    expected = SOLUTION.generate_repeated_tokens(model, 20, 2, 0)
    if any(_repeated_tokens_problem(t, expected) for t in (first, again, other)):
        return None
    if not torch.equal(first, again):
        return "two calls with seed=0 gave different tokens — draw them from a torch.Generator seeded with `seed`"
    if torch.equal(first, other):
        return "seed=0 and seed=1 gave the same tokens — the seed must change the draw"
    return None


def _loss_not_shifted(logits, tokens):
    return -logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0][:, :-1]


def _loss_shifted_wrong_way(logits, tokens):
    return -logits.log_softmax(-1)[:, 1:].gather(-1, tokens[:, :-1, None])[..., 0]


def _loss_sign(logits, tokens):
    return -SOLUTION.per_token_loss(logits, tokens)


def _loss_probs(logits, tokens):
    return -logits.softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]


KNOWN_MISTAKES["per_token_loss"] = {
    "the logits at position p predict token p+1: compare logits[:, :-1] with tokens[:, 1:]": _loss_not_shifted,
    "shifted the wrong way: logits[:, :-1] predict tokens[:, 1:], not the other way round": _loss_shifted_wrong_way,
    "the sign is flipped: the loss is MINUS the log-probability": _loss_sign,
    "used probabilities, not log-probabilities (log_softmax)": _loss_probs,
}


@torch.no_grad()
def test_per_token_loss(per_token_loss) -> CheckResult:
    rep_logits, _ = run("repeated")
    code_logits, _ = run("code")
    return check(
        "per_token_loss",
        per_token_loss,
        SOLUTION.per_token_loss,
        [
            Case("4 repeated random sequences", (rep_logits, rep_tokens())),
            Case("a paragraph of Python", (code_logits, code_tokens())),
        ],
        index_names=("batch", "pos"),
        known_mistakes=KNOWN_MISTAKES["per_token_loss"],
    )


# --------------------------------------------------------------------------- 2 · detectors


def _detector(cache: ActivationCache, threshold: float, picks) -> dict[str, float]:
    """Shared skeleton of the wrong detectors below: ``picks(pattern)`` -> [batch, head, n] scores."""
    scores = {}
    for layer in range(cache.model.cfg.n_layers):
        for head, score in enumerate(picks(cache["pattern", layer]).mean(dim=(0, 2)).tolist()):
            if score >= threshold:
                scores[f"{layer}.{head}"] = score
    return scores


def _current_with_bos(cache, threshold=0.4):
    return _detector(cache, threshold, lambda p: p.diagonal(0, -2, -1))


def _current_reads_previous(cache, threshold=0.4):
    return _detector(cache, threshold, lambda p: p.diagonal(-1, -2, -1))


def _prev_reads_next(cache, threshold=0.4):
    return _detector(cache, threshold, lambda p: p.diagonal(1, -2, -1))


def _prev_reads_current(cache, threshold=0.4):
    return _detector(cache, threshold, lambda p: p.diagonal(0, -2, -1)[..., 1:])


def _prev_two_back(cache, threshold=0.4):
    return _detector(cache, threshold, lambda p: p.diagonal(-2, -2, -1))


def _first_with_bos(cache, threshold=0.4):
    return _detector(cache, threshold, lambda p: p[..., 0])


def _first_query_row(cache, threshold=0.4):
    return _detector(cache, threshold, lambda p: p[:, :, 0, :])


def _first_reads_last_key(cache, threshold=0.4):
    return _detector(cache, threshold, lambda p: p[:, :, 1:, -1])


THRESHOLD_IGNORED = "the threshold is ignored: keep only the heads whose score is at least `threshold`"


def _detector_cases() -> list[Case]:
    rep_cache, code_cache = run("repeated")[1], run("code")[1]
    return [
        Case("the repeated sequences, threshold=0.0 (every head)", (rep_cache, 0.0)),
        Case("the paragraph of Python, threshold=0.0 (every head)", (code_cache, 0.0)),
        Case("the paragraph of Python, threshold=0.3", (code_cache,), {"threshold": 0.3}),
        Case("the repeated sequences, default threshold", (rep_cache,)),
    ]


KNOWN_MISTAKES["current_attn_detector"] = {
    THRESHOLD_IGNORED: lambda cache, threshold=0.4: SOLUTION.current_attn_detector(cache, 0.0),
    "query position 0 (BOS) is counted: it always attends to itself, so skip it": _current_with_bos,
    "wrong diagonal: that is attention to the PREVIOUS token (offset -1); the current token is offset 0": _current_reads_previous,
}


@torch.no_grad()
def test_current_attn_detector(current_attn_detector) -> CheckResult:
    return check(
        "current_attn_detector",
        current_attn_detector,
        SOLUTION.current_attn_detector,
        _detector_cases(),
        known_mistakes=KNOWN_MISTAKES["current_attn_detector"],
    )


KNOWN_MISTAKES["prev_attn_detector"] = {
    THRESHOLD_IGNORED: lambda cache, threshold=0.4: SOLUTION.prev_attn_detector(cache, 0.0),
    "wrong diagonal: offset +1 is attention to the NEXT token (always 0 in a causal model); use offset -1": _prev_reads_next,
    "wrong diagonal: that is attention to the CURRENT token (offset 0); the previous token is offset -1": _prev_reads_current,
    "wrong diagonal: offset -2 is two tokens back; the previous token is offset -1": _prev_two_back,
}


@torch.no_grad()
def test_prev_attn_detector(prev_attn_detector) -> CheckResult:
    return check(
        "prev_attn_detector",
        prev_attn_detector,
        SOLUTION.prev_attn_detector,
        _detector_cases(),
        known_mistakes=KNOWN_MISTAKES["prev_attn_detector"],
    )


KNOWN_MISTAKES["first_attn_detector"] = {
    THRESHOLD_IGNORED: lambda cache, threshold=0.4: SOLUTION.first_attn_detector(cache, 0.0),
    "query position 0 (BOS) is counted: it attends to key 0 in every head, so skip it": _first_with_bos,
    "that is the attention FROM position 0 (a row); you need the attention TO key 0 (column 0) from queries 1 … T-1": _first_query_row,
    "that is attention to the LAST key position; the first token is key 0": _first_reads_last_key,
}


@torch.no_grad()
def test_first_attn_detector(first_attn_detector) -> CheckResult:
    return check(
        "first_attn_detector",
        first_attn_detector,
        SOLUTION.first_attn_detector,
        _detector_cases(),
        known_mistakes=KNOWN_MISTAKES["first_attn_detector"],
    )


# --------------------------------------------------------------------------- 3 · induction score


def _induction_from_stripe(model, tokens, offset_shift: int, keep_second_copy: bool):
    seq_len = (tokens.shape[1] - 1) // 2
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    out = []
    for layer in range(model.cfg.n_layers):
        stripe = cache["pattern", layer].diagonal(offset=-(seq_len - 1) + offset_shift, dim1=-2, dim2=-1)
        out.append((stripe[..., -seq_len:] if keep_second_copy else stripe).mean(dim=(0, 2)))
    return torch.stack(out)


def _induction_off_by_one(model, tokens):
    return _induction_from_stripe(model, tokens, -1, True)


def _induction_whole_stripe(model, tokens):
    return _induction_from_stripe(model, tokens, 0, False)


def _induction_two_after(model, tokens):
    return _induction_from_stripe(model, tokens, +1, True)


def _induction_all_positions_of_row(model, tokens):
    """Averages the stripe over all 1 + 2n query positions (zeros where the stripe is absent)."""
    seq_len = (tokens.shape[1] - 1) // 2
    stripe = _induction_from_stripe(model, tokens, 0, True)
    return stripe * seq_len / tokens.shape[1]


KNOWN_MISTAKES["induction_score"] = {
    "off by one: that is attention to the earlier copy of the CURRENT token (offset -seq_len); "
    "an induction head attends to the token AFTER it (offset -seq_len+1)": _induction_off_by_one,
    "the first half is counted: average only over the second-copy queries seq_len+1 … 2*seq_len "
    "(the stripe's last seq_len entries)": _induction_whole_stripe,
    "off by one the other way: offset -seq_len+2 is two tokens after the earlier copy; use -seq_len+1": _induction_two_after,
    "averaged over every position of the sequence: average only over the seq_len second-copy queries": _induction_all_positions_of_row,
}


@torch.no_grad()
def test_induction_score(induction_score) -> CheckResult:
    model = check_model()
    return check(
        "induction_score",
        induction_score,
        SOLUTION.induction_score,
        [
            Case(f"4 repeated sequences, seq_len={SEQ_LEN}", (model, rep_tokens())),
            Case("2 repeated sequences, seq_len=12", (model, rep_tokens(12, 2, 7))),
        ],
        index_names=("layer", "head"),
        known_mistakes=KNOWN_MISTAKES["induction_score"],
    )


# --------------------------------------------------------------------------- 4 · attribution and ablation


def _dla(model, cache, tokens, *, centre=True, scale=True, ln_w=True, shift=1):
    z = torch.stack([cache["z", layer] for layer in range(model.cfg.n_layers)], dim=2)
    out = torch.einsum("bplhd,lhdm->bplhm", z, model.W_O)[:, :-1]
    if centre:
        out = out - out.mean(-1, keepdim=True)
    if scale:
        out = out / cache["ln_final.hook_scale"][:, :-1, None, None]
    W_U = model.ln_final.w[:, None] * model.W_U if ln_w else model.W_U
    targets = tokens[:, 1:] if shift == 1 else tokens[:, :-1]
    return torch.einsum("bplhm,mbp->bplh", out, W_U[:, targets])


KNOWN_MISTAKES["head_logit_attribution"] = {
    "not divided by the final LayerNorm's scale cache['ln_final.hook_scale']": lambda m, c, t: _dla(
        m, c, t, scale=False
    ),
    "the final LayerNorm's weight ln_final.w is missing": lambda m, c, t: _dla(m, c, t, ln_w=False),
    "not centred: the final LayerNorm subtracts each vector's mean before scaling": lambda m, c, t: _dla(
        m, c, t, centre=False
    ),
    "the logit of the CURRENT token: position p predicts tokens[:, p + 1]": lambda m, c, t: _dla(m, c, t, shift=0),
}


@torch.no_grad()
def test_head_logit_attribution(head_logit_attribution) -> CheckResult:
    model = check_model()
    return check(
        "head_logit_attribution",
        head_logit_attribution,
        SOLUTION.head_logit_attribution,
        [
            Case("4 repeated sequences", (model, run("repeated")[1], rep_tokens())),
            Case("a paragraph of Python", (model, run("code")[1], code_tokens())),
        ],
        index_names=("batch", "pos", "layer", "head"),
        known_mistakes=KNOWN_MISTAKES["head_logit_attribution"],
    )


def _ablation(model, tokens, ablation="zero", *, whole_layer=False, increase=True, positions="second", per_pos=False):
    seq_len = (tokens.shape[1] - 1) // 2

    def loss(logits):
        losses = -logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        picked = {"second": losses[:, seq_len + 1 :], "from_n": losses[:, seq_len:], "all": losses}[positions]
        return picked.mean().item()

    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    clean = loss(logits)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        z_all = cache[names[layer]]
        mean_z = z_all.mean(0) if per_pos else z_all.mean((0, 1))
        for head in range(model.cfg.n_heads):

            def hook(z, hook, head=head, mean_z=mean_z):
                z = z.clone()
                picked = slice(None) if whole_layer else head
                if ablation == "zero":
                    z[:, :, picked] = 0.0
                else:
                    z[:, :, picked] = mean_z if whole_layer else mean_z[..., head, :]
                return z

            value = loss(model.run_with_hooks(tokens, fwd_hooks=[(names[layer], hook)]))
            out[layer, head] = value - clean if increase else value
    return out


@torch.no_grad()
@functools.cache
def _reference_ablation(ablation: str = "zero") -> Tensor:
    """The reference's answer on the check's inputs, computed once (it takes ~30 forward passes)."""
    return SOLUTION.head_ablation_loss_increase(check_model(), rep_tokens(12, 2, 3), ablation)


KNOWN_MISTAKES["head_ablation_loss_increase"] = {
    "that is the ablated loss itself: return ablated loss MINUS clean loss": lambda m, t, ablation="zero": _ablation(
        m, t, ablation, increase=False
    ),
    "the whole layer was ablated: replace only z[:, :, head]": lambda m, t, ablation="zero": _ablation(
        m, t, ablation, whole_layer=True
    ),
    "the loss is averaged over every position: use only the predictions of x_2 … x_n in the second copy (loss[:, seq_len+1:])": lambda m, t, ablation="zero": (
        _ablation(m, t, ablation, positions="all")
    ),
    "the prediction made at position seq_len (of x_1, which nothing predicts) is counted: start at seq_len+1": lambda m, t, ablation="zero": (
        _ablation(m, t, ablation, positions="from_n")
    ),
    "the mean is over the batch only: average z over the batch AND the positions": lambda m, t, ablation="zero": (
        _ablation(m, t, ablation, per_pos=True)
    ),
}


def test_head_ablation_loss_increase(head_ablation_loss_increase) -> CheckResult:
    model = check_model()
    tokens = rep_tokens(12, 2, 3)
    return check(
        "head_ablation_loss_increase",
        head_ablation_loss_increase,
        lambda model, tokens, ablation="zero": _reference_ablation(ablation),
        [
            Case("zero-ablation on 2 repeated sequences (seq_len=12)", (model, tokens)),
            Case('ablation="mean" on the same sequences', (model, tokens), {"ablation": "mean"}),
        ],
        index_names=("layer", "head"),
        tol=Tolerance(atol=1e-3, rtol=1e-3),
        known_mistakes=KNOWN_MISTAKES["head_ablation_loss_increase"],
    )


def _ablated_scores(model, tokens, head, *, layer=0, ablate=True, whole_layer=False, offset=1, read_layer=1):
    seq_len = (tokens.shape[1] - 1) // 2

    def hook(z, hook):
        z = z.clone()
        z[:, :, slice(None) if whole_layer else head] = 0.0
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", hook)] if ablate else []
    scores = {}

    def read(pattern, hook):
        stripe = pattern.diagonal(offset=-(seq_len - offset), dim1=-2, dim2=-1)
        scores["out"] = stripe[..., -seq_len:].mean(dim=(0, 2))

    model.run_with_hooks(tokens, return_type=None, fwd_hooks=hooks + [(f"blocks.{read_layer}.attn.hook_pattern", read)])
    return scores["out"]


KNOWN_MISTAKES["ablated_induction_scores"] = {
    "the ablation changed nothing: zero the LAYER-0 head's z (blocks.0.attn.hook_z) in the same forward pass "
    "as the hook that reads layer 1's pattern": lambda m, t, h: _ablated_scores(m, t, h, ablate=False),
    "the whole of layer 0 was ablated: set only z[:, :, head] to zero": lambda m, t, h: _ablated_scores(
        m, t, h, whole_layer=True
    ),
    "those are layer 0's scores: read the pattern of layer 1 (blocks.1.attn.hook_pattern)": lambda m, t, h: (
        _ablated_scores(m, t, h, read_layer=0)
    ),
    "off by one: an induction head attends to the token AFTER the earlier copy (offset -seq_len+1)": lambda m, t, h: (
        _ablated_scores(m, t, h, offset=0)
    ),
}


@torch.no_grad()
def test_ablated_induction_scores(ablated_induction_scores) -> CheckResult:
    model = check_model()
    previous = best_heads()["previous"][1]
    other = (previous + 1) % model.cfg.n_heads
    return check(
        "ablated_induction_scores",
        ablated_induction_scores,
        SOLUTION.ablated_induction_scores,
        [
            Case(
                f"the previous-token head 0.{previous} ablated, 4 repeated sequences", (model, rep_tokens(), previous)
            ),
            Case(f"head 0.{other} ablated, 2 repeated sequences (seq_len=12)", (model, rep_tokens(12, 2, 7), other)),
        ],
        index_names=("head_1",),
        known_mistakes=KNOWN_MISTAKES["ablated_induction_scores"],
    )


# --------------------------------------------------------------------------- 5 · circuits in the weights


@functools.cache
def sub_vocab_ov(layer: int, head: int) -> FactoredMatrix:
    """The full OV circuit of a head of the folded model, on the first :data:`SUB_VOCAB` tokens."""
    model = folded_model()
    return model.W_E[:SUB_VOCAB] @ model.OV[layer, head] @ model.W_U[:, :SUB_VOCAB]


@functools.cache
def _copying_circuit() -> FactoredMatrix:
    """A synthetic copying circuit on 700 tokens: ``A @ A.T`` plus a large offset per row.

    Every row peaks on the diagonal (top-1 accuracy near 1); the row offsets make the columns
    peak elsewhere, so an argmax over the wrong dimension scores near 0.
    """
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(700, 64, generator=gen)
    row_offset = 100 * torch.randn(700, 1, generator=gen)
    return FactoredMatrix(torch.cat([A, row_offset], dim=1), torch.cat([A.T, torch.ones(1, 700)], dim=0))


def _top1_columns(full_OV_circuit, chunk_size=512):
    AB = full_OV_circuit.AB
    return (AB.argmax(dim=0) == torch.arange(AB.shape[1])).float().mean().item()


def _top1_chunk_offset_forgotten(full_OV_circuit, chunk_size=512):
    n, correct = full_OV_circuit.shape[-2], 0
    for start in range(0, n, chunk_size):
        rows = full_OV_circuit[start : start + chunk_size].AB
        correct += (rows.argmax(-1) == torch.arange(rows.shape[0])).sum().item()
    return correct / n


def _top1_count(full_OV_circuit, chunk_size=512):
    return float(round(SOLUTION.top_1_acc(full_OV_circuit, chunk_size) * full_OV_circuit.shape[-2]))


KNOWN_MISTAKES["top_1_acc"] = {
    "argmax over the wrong dimension: for each row (input token) take the argmax over columns (output tokens), dim=-1": _top1_columns,
    "each chunk is compared with arange(chunk): the targets of rows start … start+chunk are arange(start, start+chunk)": _top1_chunk_offset_forgotten,
    "that is a count: return the FRACTION of tokens (count / number of rows)": _top1_count,
}


@torch.no_grad()
def test_top_1_acc(top_1_acc) -> CheckResult:
    induction, previous = best_heads()["induction"], best_heads()["previous"]
    return check(
        "top_1_acc",
        top_1_acc,
        SOLUTION.top_1_acc,
        [
            Case(
                "a synthetic copying circuit on 700 tokens, chunk_size=256", (_copying_circuit(),), {"chunk_size": 256}
            ),
            Case(
                f"the induction head {induction[0]}.{induction[1]} on the first {SUB_VOCAB} tokens",
                (sub_vocab_ov(*induction),),
            ),
            Case(
                "the same circuit with chunk_size=300 (the last chunk is shorter)",
                (sub_vocab_ov(*induction),),
                {"chunk_size": 300},
            ),
            Case(
                f"head {previous[0]}.{previous[1]} on the first {SUB_VOCAB} tokens",
                (sub_vocab_ov(*previous),),
                {"chunk_size": 256},
            ),
        ],
        known_mistakes=KNOWN_MISTAKES["top_1_acc"],
    )


def _pos_pattern(model, layer, head, n_pos, *, mask=True, scale=True, swap=False, dim=-1):
    W_pos = model.W_pos[:n_pos]
    scores = (W_pos @ model.QK[layer, head] @ W_pos.T).AB
    if swap:
        scores = scores.T
    if scale:
        scores = scores / model.cfg.d_head**0.5
    if mask:
        future = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(dim=dim)


KNOWN_MISTAKES["pos_attention_pattern"] = {
    "keys after the query are not masked: set scores[q, k] = -inf for k > q before the softmax": lambda m, l, h, n: (
        _pos_pattern(m, l, h, n, mask=False)
    ),
    "the scores are not divided by sqrt(d_head)": lambda m, l, h, n: _pos_pattern(m, l, h, n, scale=False),
    "queries and keys are swapped: rows are queries, so scores = W_pos @ W_QK @ W_pos.T": lambda m, l, h, n: (
        _pos_pattern(m, l, h, n, swap=True)
    ),
    "softmax over the wrong dimension: normalise over keys (dim=-1)": lambda m, l, h, n: _pos_pattern(
        m, l, h, n, dim=-2
    ),
}


@torch.no_grad()
def test_pos_attention_pattern(pos_attention_pattern) -> CheckResult:
    model = folded_model()
    previous = best_heads()["previous"]
    return check(
        "pos_attention_pattern",
        pos_attention_pattern,
        SOLUTION.pos_attention_pattern,
        [
            Case(f"the previous-token head {previous[0]}.{previous[1]}, 24 positions", (model, *previous, 24)),
            Case("head 1.0, 9 positions", (model, 1, 0, 9)),
        ],
        index_names=("q_pos", "k_pos"),
        known_mistakes=KNOWN_MISTAKES["pos_attention_pattern"],
    )


def _comp_unnormalised(W_A, W_B):
    return (W_A @ W_B).norm().item()


def _comp_reversed(W_A, W_B):
    return ((W_B @ W_A).norm() / (W_A.norm() * W_B.norm())).item()


def _comp_sum_of_norms(W_A, W_B):
    return ((W_A @ W_B).norm() / (W_A.norm() + W_B.norm())).item()


KNOWN_MISTAKES["get_comp_score"] = {
    "not normalised: divide ‖W_A W_B‖ by ‖W_A‖ · ‖W_B‖": _comp_unnormalised,
    "the product is in the wrong order: W_A @ W_B (W_A writes, W_B reads)": _comp_reversed,
    "normalise by the PRODUCT of the norms, not their sum": _comp_sum_of_norms,
}


@torch.no_grad()
def test_get_comp_score(get_comp_score) -> CheckResult:
    model = folded_model()
    induction, previous = best_heads()["induction"], best_heads()["previous"]
    gen = torch.Generator().manual_seed(0)
    W_A, W_B = torch.randn(6, 4, generator=gen), torch.randn(4, 5, generator=gen)
    W_OV = model.OV[previous].AB
    W_QK = model.QK[induction].AB
    return check(
        "get_comp_score",
        get_comp_score,
        SOLUTION.get_comp_score,
        [
            Case(
                f"W_OV of head {previous[0]}.{previous[1]} and W_QK.T of head {induction[0]}.{induction[1]}",
                (W_OV, W_QK.T),
            ),
            Case(f"W_OV of head {previous[0]}.{previous[1]} and W_OV of head 1.0", (W_OV, model.OV[1, 0].AB)),
            Case("random 6×4 and 4×5 matrices", (W_A, W_B)),
        ],
        known_mistakes=KNOWN_MISTAKES["get_comp_score"],
    )


def _comp(model, kind="K", *, normalise=True, transpose_out=False, reader=None):
    """Composition scores with one classic mistake: ``reader`` forces the reading matrix of another kind."""
    W_A = model.OV[0].AB
    W_B = {"Q": model.QK[1].AB, "K": model.QK[1].AB.transpose(-1, -2), "V": model.OV[1].AB}[reader or kind]
    products = (W_A[:, None] @ W_B[None]).norm(dim=(-2, -1))
    if normalise:
        products = products / (W_A.norm(dim=(-2, -1))[:, None] * W_B.norm(dim=(-2, -1))[None])
    return products.T if transpose_out else products


def _comp_keys_for_queries(model, kind):
    """Q and K swapped: W_QK.T for Q-composition, W_QK for K-composition."""
    return _comp(model, kind, reader={"Q": "K", "K": "Q"}.get(kind, kind))


KNOWN_MISTAKES["composition_scores"] = {
    "not normalised: divide each ‖W_A W_B‖ by ‖W_A‖ · ‖W_B‖": lambda m, kind: _comp(m, kind, normalise=False),
    "Q and K are mixed up: the queries read through W_QK (x_q W_QK x_k^T), the keys through W_QK.T — pick W_B from `kind`": _comp_keys_for_queries,
    "that is V-composition (W_B = W_OV of layer 1): Q- and K-composition read through W_QK": lambda m, kind: _comp(
        m, kind, reader="V"
    ),
    "rows and columns are swapped: out[i, j] pairs layer-0 head i with layer-1 head j": lambda m, kind: _comp(
        m, kind, transpose_out=True
    ),
}


@torch.no_grad()
def test_composition_scores(composition_scores) -> CheckResult:
    folded, small = folded_model(), _small_random_model()
    return check(
        "composition_scores",
        composition_scores,
        SOLUTION.composition_scores,
        [
            Case(f'kind="K" on the course model {MODEL_NAME} (folded)', (folded, "K")),
            Case(f'kind="Q" on the course model {MODEL_NAME} (folded)', (folded, "Q")),
            Case(f'kind="V" on the course model {MODEL_NAME} (folded)', (folded, "V")),
            Case('kind="Q" on a random 2-layer model with 3 heads', (small, "Q")),
            Case('kind="K" on a random 2-layer model with 3 heads', (small,), {"kind": "K"}),
        ],
        index_names=("head_0", "head_1"),
        known_mistakes=KNOWN_MISTAKES["composition_scores"],
    )


def _qk_decomposition(model, cache, head, *, scale=True, key_shift=1, swap=False, sqrt=True, both_q=False):
    """The decomposition of the reference with one classic mistake switched on."""
    n = (cache["hook_embed"].shape[1] - 1) // 2
    head_out = torch.einsum("bphd,hdm->bphm", cache["z", 0], model.W_O[0])
    embed = cache["hook_embed"][:, :, None]
    pieces = torch.cat([embed, cache["hook_pos_embed"][:, :, None].expand_as(embed), head_out], dim=2)
    if scale:
        pieces = pieces / cache["blocks.1.ln1.hook_scale"][..., None]
    queries = pieces[:, n + 1 :] @ model.W_Q[1, head]
    keys = pieces[:, n + key_shift : 2 * n + key_shift] @ (model.W_Q if both_q else model.W_K)[1, head]
    out = torch.einsum("bqid,bqjd->ij", queries, keys) / (queries.shape[0] * queries.shape[1])
    out = out / model.cfg.d_head**0.5 if sqrt else out
    return out.T if swap else out


@functools.cache
def folded_run(seq_len: int = SEQ_LEN, batch: int = 4, seed: int = 1) -> ActivationCache:
    """The folded model's cache on :func:`rep_tokens`."""
    with torch.no_grad():
        return folded_model().run_with_cache(rep_tokens(seq_len, batch, seed))[1]


KNOWN_MISTAKES["induction_qk_decomposition"] = {
    "the pieces are not divided by layer 1's LayerNorm scale cache['blocks.1.ln1.hook_scale']": lambda m, c, h: (
        _qk_decomposition(m, c, h, scale=False)
    ),
    "off by one: the key is the token AFTER the earlier copy, position q - n + 1": lambda m, c, h: _qk_decomposition(
        m, c, h, key_shift=0
    ),
    "rows and columns are swapped: rows are what the QUERY reads, columns what the KEY reads": lambda m, c, h: (
        _qk_decomposition(m, c, h, swap=True)
    ),
    "the scores are not divided by sqrt(d_head)": lambda m, c, h: _qk_decomposition(m, c, h, sqrt=False),
    "the keys go through W_K, not W_Q": lambda m, c, h: _qk_decomposition(m, c, h, both_q=True),
}


@torch.no_grad()
def test_induction_qk_decomposition(induction_qk_decomposition) -> CheckResult:
    model, induction = folded_model(), best_heads()["induction"][1]
    other = (induction + 1) % model.cfg.n_heads
    return check(
        "induction_qk_decomposition",
        induction_qk_decomposition,
        SOLUTION.induction_qk_decomposition,
        [
            Case(
                f"the induction head 1.{induction}, 4 repeated sequences (seq_len={SEQ_LEN})",
                (model, folded_run(), induction),
            ),
            Case(f"head 1.{other}, 2 repeated sequences (seq_len=12)", (model, folded_run(12, 2, 7), other)),
        ],
        index_names=("q_piece", "k_piece"),
        tol=Tolerance(atol=1e-3, rtol=1e-3),
        known_mistakes=KNOWN_MISTAKES["induction_qk_decomposition"],
    )


def _effective(model, layer, heads, *, mean=False, first_only=False, products=False):
    """The effective circuit with one classic mistake: averaged, first head only, or a product of the heads' circuits."""
    heads = heads[:1] if first_only else heads
    if products:
        circuit = model.W_E @ model.OV[layer, heads[0]]
        for h in heads[1:]:
            circuit = circuit @ model.OV[layer, h]
        return circuit @ model.W_U
    W_V = torch.cat([model.W_V[layer, h] for h in heads], dim=1)
    W_O = torch.cat([model.W_O[layer, h] for h in heads], dim=0) / (len(heads) if mean else 1)
    return FactoredMatrix(model.W_E @ W_V, W_O @ model.W_U)


def _compare_circuits(actual: Any, expected: FactoredMatrix) -> str | None:
    """Compare two circuits on their first 256 rows (never the whole d_vocab × d_vocab matrix)."""
    if not isinstance(actual, (FactoredMatrix, Tensor)):
        return f"output is a {type(actual).__name__}, expected a FactoredMatrix"
    if tuple(actual.shape) != tuple(expected.shape):
        return f"output has shape {tuple(actual.shape)} but expected {tuple(expected.shape)} (d_vocab, d_vocab)"
    rows = actual[:256]
    rows = rows.AB if isinstance(rows, FactoredMatrix) else rows
    return describe_difference(
        rows, expected[:256].AB, Tolerance(atol=1e-3, rtol=1e-3), ("token", "output"), "the first 256 rows"
    )


KNOWN_MISTAKES["effective_ov_circuit"] = {
    "that is the MEAN of the heads' circuits: the heads' outputs add up in the residual stream, so sum them": lambda m, l, h: (
        _effective(m, l, h, mean=True)
    ),
    "only the first head is used: sum W_V W_O over every head in `heads`": lambda m, l, h: _effective(
        m, l, h, first_only=True
    ),
    "the heads' OV circuits are multiplied: heads of one layer act side by side, so their circuits ADD": lambda m, l, h: (
        _effective(m, l, h, products=True)
    ),
}


@torch.no_grad()
def test_effective_ov_circuit(effective_ov_circuit) -> CheckResult:
    model = folded_model()
    induction = best_heads()["induction"][1]
    others = [h for h in range(model.cfg.n_heads) if h != induction]
    return check(
        "effective_ov_circuit",
        effective_ov_circuit,
        SOLUTION.effective_ov_circuit,
        [
            Case(f"layer-1 heads {[induction, *others[:2]]}", (model, 1, [induction, *others[:2]])),
            Case(f"head 1.{induction} alone", (model, 1, [induction])),
            Case("layer-0 heads [0, 1] of a random model", (_small_random_model(), 0, [0, 1])),
        ],
        compare=_compare_circuits,
        known_mistakes=KNOWN_MISTAKES["effective_ov_circuit"],
    )


# --------------------------------------------------------------------------- answers


@torch.no_grad()
def test_answer_induction_key(answer) -> CheckResult:
    return check_answer(
        "answer_induction_key",
        answer,
        lambda a: a == 21,
        "which token x_i sits at position 70, where is its earlier copy, and which token does an induction head "
        "look at relative to that copy?"
        + (" 20 is the earlier copy itself: is that what an induction head attends to?" if answer == 20 else ""),
    )


@torch.no_grad()
def test_answer_composition(answer) -> CheckResult:
    return check_answer(
        "answer_composition",
        answer,
        lambda a: isinstance(a, str) and a.strip().upper().removesuffix("-COMPOSITION") == "K",
        "the previous-token head writes 'the token before me was A' into each position; which of the induction "
        "head's inputs — queries (Q), keys (K) or values (V) — must read that to find the token after A?",
    )


@torch.no_grad()
def test_answer_one_layer(answer) -> CheckResult:
    return check_answer(
        "answer_one_layer",
        answer,
        lambda a: isinstance(a, str) and a.strip().lower() == "b",
        "in one layer, a key at position j is built from token j and position j only; what would it need to know?",
    )


@torch.no_grad()
def test_answer_uniform_loss(answer) -> CheckResult:
    targets = (math.log(check_model().cfg.d_vocab - 1), math.log(check_model().cfg.d_vocab))
    return check_answer(
        "answer_uniform_loss",
        answer,
        lambda a: isinstance(a, (int, float)) and any(abs(a - t) < 0.01 for t in targets),
        "a model that spreads its probability evenly over N tokens gives each 1/N; its loss is -log(1/N). "
        "How many tokens can a random token be?",
    )
