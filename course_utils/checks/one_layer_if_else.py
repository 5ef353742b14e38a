"""Learner checks for chapter 06: ``if … else`` in a one-layer attention-only model.

Every check runs the learner's function and the reference on the course model
``attn-only-1l`` and on real held-out ternary prefixes (``course_utils.tasks.ternary``).
Inputs are cached, so each check takes well under a second after the first call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import einops
import torch
from torch import Tensor
from transformer_lens import FactoredMatrix

from course_utils.chapters import solutions_for
from course_utils.harness import (
    Case,
    CheckResult,
    Tolerance,
    cached_by_inputs,
    check,
    check_answer,
    describe_difference,
)
from course_utils.models import load_model
from course_utils.tasks.ternary import load_ternary_eval

SOLUTION = solutions_for(__name__)
MODEL_NAME = "attn-only-1l"
OMISSIONS = ("direct path", "positional embeddings", "biases", "final LN scale")
"""What a quick, approximate decomposition of the `` else`` logit tends to leave out."""
KNOWN_MISTAKES: dict[str, dict[str, Callable]] = {}
"""Exercise → diagnosis → a function with the learner's signature that makes that mistake; each
section below adds its exercises, and each check passes ``known_mistakes=KNOWN_MISTAKES[name]``."""


# --------------------------------------------------------------------------- shared helpers


def prefix_tokens(model, text: str) -> Tensor:
    """``[1, pos]`` tokens: BOS then ``text``, keeping the last ``n_ctx - 1`` text tokens."""
    ids = model.tokenizer.encode(text, add_special_tokens=False)[-(model.cfg.n_ctx - 1) :]
    return torch.tensor([[model.tokenizer.bos_token_id, *ids]])


def layer_norm(x: Tensor, ln, eps: float) -> Tensor:
    """The LayerNorm ``ln`` (a bridge LayerNorm, for its ``w`` and ``b``) applied to each row of ``x``."""
    x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * ln.w + ln.b


def approximate_else_logit(
    model, tokens: Tensor, pattern: Tensor, scale: Tensor, omit: frozenset[str] | set[str] = frozenset()
) -> Tensor:
    """The final `` else`` logit rebuilt from its parts, leaving out the parts named in ``omit``.

    ``pattern`` (``[batch, n_heads, pos]``) is the final position's attention and ``scale``
    (``[batch]``) the final LayerNorm's scale there, both from the actual run. ``omit`` ⊆
    :data:`OMISSIONS`. With nothing omitted the result equals the model's logit.
    "positional embeddings" drops ``W_pos`` from the direct path and from every value
    vector (values then come from ``ln1(W_E[token])``); "biases" drops ``b_V``, ``b_O``, the
    final LayerNorm's bias and ``b_U``; "final LN scale" normalises every part by its own
    scale (``ln_final`` applied to each part alone, as the OV circuit does) instead of the
    residual's frozen scale. Returns ``[batch]``. (The notebook shows the same function.)
    """
    unknown = set(omit) - set(OMISSIONS)
    if unknown:
        raise ValueError(f"unknown omissions {sorted(unknown)}; choose from {OMISSIONS}")
    else_token = model.to_single_token(" else")
    n = tokens.shape[1]
    direction = model.ln_final.w * model.W_U[:, else_token]
    use_pos = "positional embeddings" not in omit
    use_bias = "biases" not in omit

    def read(x: Tensor) -> Tensor:
        """``x[batch, ..., d_model]`` → its `` else`` logit share, with the frozen or its own LN scale."""
        centred = x - x.mean(-1, keepdim=True)
        if "final LN scale" in omit:
            own = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
            return (centred / own) @ direction
        return (centred @ direction) / scale.view(-1, *[1] * (x.dim() - 2))

    total = torch.zeros(tokens.shape[0])
    if "direct path" not in omit:
        total = total + read(model.W_E[tokens[:, -1]])
        if use_pos:
            total = total + read(model.W_pos[n - 1].expand(tokens.shape[0], -1))
    residual = model.W_E[tokens] + (model.W_pos[:n] if use_pos else 0)
    values = einops.einsum(
        layer_norm(residual, model.blocks[0].ln1, model.cfg.eps),
        model.W_V[0],
        "batch src d_model, head d_model d_head -> batch src head d_head",
    )
    if use_bias:
        values = values + model.b_V[0]
    per_source = einops.einsum(
        values, model.W_O[0], "batch src head d_head, head d_head d_model -> batch head src d_model"
    )
    total = total + (pattern * read(per_source)).sum((1, 2))
    if use_bias:
        total = total + read(model.b_O[0].expand(tokens.shape[0], -1))
        total = total + model.ln_final.b @ model.W_U[:, else_token] + model.b_U[else_token]
    return total


# --------------------------------------------------------------------------- cached inputs


@functools.cache
def check_model():
    """The course model the checks run on."""
    model = load_model(MODEL_NAME, device="cpu")
    with torch.no_grad():
        model(torch.tensor([[model.tokenizer.bos_token_id]]))  # one forward wires the bridge's hooks, as in a notebook
    return model


@functools.cache
def check_prefixes() -> tuple[Tensor, Tensor]:
    """One short trusted and one short anomalous held-out prefix, as ``[1, pos]`` tokens."""
    model = check_model()
    picked = []
    for kind in ("trusted", "anomalous"):
        items = sorted(load_ternary_eval(kind), key=lambda p: (len(p.prefix), p.prefix))
        picked.append(prefix_tokens(model, items[len(items) // 4].prefix))
    return tuple(picked)


@functools.cache
def pair_batch() -> Tensor:
    """Two prompts cut to the same length (their last 24 tokens after BOS): a ``[2, 25]`` batch."""
    trusted, anomalous = check_prefixes()
    rows = [torch.cat([t[:, :1], t[:, -24:]], dim=1) for t in (trusted, anomalous)]
    return torch.cat(rows)


def _token(text: str) -> int:
    return check_model().to_single_token(text)


def _heal(model) -> bool:
    """Undo a TransformerLens 4.3 pitfall; return True if it had happened.

    Calling ``model.blocks[0].ln1`` on a weight (an ``nn.Parameter`` such as ``model.W_E``)
    registers that Parameter on the attention module, after which every forward pass fails.
    """
    healed = False
    for block in model.blocks:
        params = block.attn._parameters
        if "_captured_pre_ln_residual" in params:
            del params["_captured_pre_ln_residual"]
            block.attn._captured_pre_ln_residual = None
            healed = True
    return healed


class _Guarded:
    """Call the learner's ``fn``; if it broke ``model`` through the ``ln1`` pitfall, repair it and say so.

    ``__code__`` is the learner's, so the harness still points error lines into their code.
    """

    def __init__(self, fn: Callable, model) -> None:
        self.fn, self.model = fn, model
        self.__code__ = getattr(fn, "__code__", None)

    def __call__(self, *args, **kwargs):
        out = self.fn(*args, **kwargs)
        if _heal(self.model):
            raise RuntimeError(
                "your function called the model's ln1 module on a weight matrix, which in TransformerLens 4.3 "
                "breaks every later forward pass — write the LayerNorm by hand (see the hint)"
            )
        return out


_cached_reference = functools.cache(cached_by_inputs)
"""A solution function -> the same function computed once per set of (cached) inputs."""


def _fresh(value):
    """A copy of a tensor or FactoredMatrix input (models, numbers and strings are passed as they are)."""
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, FactoredMatrix):
        return FactoredMatrix(value.A.clone(), value.B.clone())
    return value


def _run_check(name, learner_fn, reference_fn, cases, **kwargs) -> CheckResult:
    """``check`` without gradients, on fresh copies of the cached inputs.

    A learner's function that modifies its input in place is reported by the harness and
    cannot spoil the cached inputs for later runs. The reference's outputs are computed once
    per set of cached inputs (:func:`course_utils.harness.cached_by_inputs`).
    """
    fresh = [
        Case(c.label, tuple(_fresh(a) for a in c.args), {k: _fresh(v) for k, v in c.kwargs.items()}) for c in cases
    ]
    expected = {}
    with torch.no_grad():
        for case, original in zip(fresh, cases):
            output = _cached_reference(reference_fn)(*original.args, **original.kwargs)
            expected[tuple(map(id, case.args))] = output

        def reference(*args, **_):
            return expected[tuple(map(id, args))]

        return check(name, learner_fn, reference, fresh, **kwargs)


# --------------------------------------------------------------------------- OV circuit


def _ln(x: Tensor, ln) -> Tensor:
    return layer_norm(x, ln, check_model().cfg.eps)


def _ov_wrong_order(model, head):
    return FactoredMatrix(
        _ln(_ln(model.W_E, model.blocks[0].ln1) @ model.W_O[0, head].T @ model.W_V[0, head].T, model.ln_final),
        model.W_U,
    )


def _ov_no_ln1(model, head):
    return FactoredMatrix(_ln(model.W_E @ model.W_V[0, head] @ model.W_O[0, head], model.ln_final), model.W_U)


def _ov_no_ln_final(model, head):
    return FactoredMatrix(_ln(model.W_E, model.blocks[0].ln1) @ model.W_V[0, head] @ model.W_O[0, head], model.W_U)


def _ov_transposed(model, head):
    return SOLUTION.ov_circuit(model, head).T


def _ov_with_pos0(model, head):
    x = _ln(model.W_E + model.W_pos[0], model.blocks[0].ln1)
    return FactoredMatrix(_ln(x @ model.W_V[0, head] @ model.W_O[0, head], model.ln_final), model.W_U)


def _ov_with_b_v(model, head):
    x = (_ln(model.W_E, model.blocks[0].ln1) @ model.W_V[0, head] + model.b_V[0, head]) @ model.W_O[0, head]
    return FactoredMatrix(_ln(x, model.ln_final), model.W_U)


def _ov_plain_normalisation(model, head):
    """LayerNorms that centre and scale but skip their weight and bias."""

    def normalise(x):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()

    return FactoredMatrix(normalise(normalise(model.W_E) @ model.W_V[0, head] @ model.W_O[0, head]), model.W_U)


OV_TOL = Tolerance(atol=1e-3, rtol=1e-3)


def _compare_ov(actual, expected: FactoredMatrix) -> str | None:
    """Compare two factored circuits on the rows and columns the chapter reads."""
    if not isinstance(actual, FactoredMatrix):
        return (
            f"output is a {type(actual).__name__}, expected a FactoredMatrix (keep it factored: vocab × vocab is big)"
        )
    if tuple(actual.shape) != tuple(expected.shape):
        return f"output has shape {tuple(actual.shape)} but expected {tuple(expected.shape)}"
    rows = torch.tensor([_token(t) for t in (" if", ")", " x", " None")])
    cols = torch.tensor([_token(t) for t in (" else", " if", ":")])
    for what, a, e in (
        ("rows for ' if', ')', ' x', ' None'", actual.A[rows] @ actual.B, expected.A[rows] @ expected.B),
        ("columns for ' else', ' if', ':'", actual.A @ actual.B[:, cols], expected.A @ expected.B[:, cols]),
    ):
        diff = describe_difference(a, e, OV_TOL, what=what)
        if diff:
            return diff
    return None


KNOWN_MISTAKES["ov_circuit"] = {
    "is the OV circuit composed in the wrong order? A row vector x goes through x @ W_V @ W_O": _ov_wrong_order,
    "rows should be source tokens and columns output tokens — is it transposed?": _ov_transposed,
    "is ln1 missing? The embedding is normalised before W_V": _ov_no_ln1,
    "is ln_final missing? The head's output is normalised before W_U": _ov_no_ln_final,
    "the circuit uses the token embedding alone, without a positional embedding": _ov_with_pos0,
    "leave b_V out: the circuit is ln_final(ln1(W_E) W_V W_O) W_U": _ov_with_b_v,
    "are the LayerNorms' weights and biases (ln.w, ln.b) missing?": _ov_plain_normalisation,
}


def test_ov_circuit(ov_circuit) -> CheckResult:
    model = check_model()
    last = model.cfg.n_heads - 1
    return _run_check(
        "ov_circuit",
        _Guarded(ov_circuit, model),
        SOLUTION.ov_circuit,
        [Case("head 0", (model, 0)), Case(f"head {last}", (model, last))],
        compare=_compare_ov,
        known_mistakes=KNOWN_MISTAKES["ov_circuit"],
    )


# --------------------------------------------------------------------------- OV ranks


@functools.cache
def _ov(head: int) -> FactoredMatrix:
    with torch.no_grad():
        return SOLUTION.ov_circuit(check_model(), head)


def _ranks_from_bottom(ov, src, out):
    column, row = ov.A @ ov.B[:, out], ov.A[src] @ ov.B
    return int((column < column[src]).sum()), int((row < row[out]).sum())


def _ranks_one_based(ov, src, out):
    a, b = SOLUTION.ov_ranks(ov, src, out)
    return a + 1, b + 1


def _ranks_swapped(ov, src, out):
    a, b = SOLUTION.ov_ranks(ov, src, out)
    return b, a


def _ranks_transposed(ov, src, out):
    return SOLUTION.ov_ranks(ov.T, src, out)


KNOWN_MISTAKES["ov_ranks"] = {
    "is rank 0 the smallest entry? Rank 0 should be the largest": _ranks_from_bottom,
    "ranks start at 0 (the largest entry has rank 0), not 1": _ranks_one_based,
    "are the two ranks returned in the wrong order? (source rank, output rank)": _ranks_swapped,
    "did you read rows and columns the other way round? Rows are sources, columns outputs": _ranks_transposed,
}


def test_ov_ranks(ov_ranks) -> CheckResult:
    last = check_model().cfg.n_heads - 1
    if_, else_, paren = _token(" if"), _token(" else"), _token(")")
    return _run_check(
        "ov_ranks",
        ov_ranks,
        SOLUTION.ov_ranks,
        [
            Case("head 0, ' if' → ' else'", (_ov(0), if_, else_)),
            Case(f"head {last}, ' if' → ' else'", (_ov(last), if_, else_)),
            Case("head 0, ')' → ':'", (_ov(0), paren, _token(":"))),
        ],
        known_mistakes=KNOWN_MISTAKES["ov_ranks"],
    )


# --------------------------------------------------------------------------- QK scores


def _qk(model, key_token, query_pos, key_pos, *, pos=True, ln=True, bias=True, scale=True, swap=False):
    def embed(tokens, p):
        x = model.W_E[tokens] + (model.W_pos[p] if pos else 0)
        return _ln(x, model.blocks[0].ln1) if ln else x

    every, one = embed(slice(None), query_pos), embed(key_token, key_pos)
    wq, wk, bq, bk = model.W_Q[0], model.W_K[0], model.b_Q[0], model.b_K[0]
    if swap:
        every, one = embed(slice(None), key_pos), embed(key_token, query_pos)
        wq, wk, bq, bk = wk, wq, bk, bq
    q = einops.einsum(every, wq, "vocab d, head d e -> head vocab e") + (bq[:, None] if bias else 0)
    k = einops.einsum(one, wk, "d, head d e -> head e") + (bk if bias else 0)
    out = einops.einsum(q, k, "head vocab e, head e -> head vocab")
    return out / model.cfg.d_head**0.5 if scale else out


KNOWN_MISTAKES["qk_scores"] = {
    "are the positional embeddings missing? Each residual is W_E[token] + W_pos[position]": functools.partial(
        _qk, pos=False
    ),
    "is ln1 missing? Queries and keys are computed from ln1(residual)": functools.partial(_qk, ln=False),
    "are b_Q and b_K missing?": functools.partial(_qk, bias=False),
    "did you forget to divide by sqrt(d_head)?": functools.partial(_qk, scale=False),
    "are queries and keys swapped? Every vocabulary token is a query here; the key is fixed": functools.partial(
        _qk, swap=True
    ),
}


def test_qk_scores(qk_scores) -> CheckResult:
    model = check_model()
    if_, paren = _token(" if"), _token("(")
    return _run_check(
        "qk_scores",
        _Guarded(qk_scores, model),
        SOLUTION.qk_scores,
        [
            Case("key ' if' at 10, queries at 14", (model, if_, 14, 10)),
            Case("key ' if' at 3, queries at 30", (model, if_, 30, 3)),
            Case("key '(' at 20, queries at 25", (model, paren, 25, 20)),
        ],
        index_names=("head", "query token"),
        known_mistakes=KNOWN_MISTAKES["qk_scores"],
        time_limit=60,  # every vocabulary token is a query: running them through the model is slow but right
    )


# --------------------------------------------------------------------------- exact decomposition


def _decomposition_with(model, tokens, **changes):
    """The reference decomposition with some parts replaced (for the known mistakes)."""
    out = SOLUTION.else_logit_decomposition(model, tokens)
    for key, make in changes.items():
        out[key] = make(model, tokens, out)
    return out


def _zeros_like(key):
    return lambda model, tokens, out: torch.zeros_like(out[key])


def _heads_from_pattern(pattern_of: Callable) -> Callable:
    """Head × source terms computed with a wrong choice of attention weights."""

    def make(model, tokens, out):
        _, cache = model.run_with_cache(tokens)
        else_token = model.to_single_token(" else")
        direction = model.ln_final.w * model.W_U[:, else_token]
        per_source = einops.einsum(cache["v", 0], model.W_O[0], "b s h e, h e d -> b h s d")
        per_source = per_source - per_source.mean(-1, keepdim=True)
        scale = cache["ln_final.hook_scale"][:, -1, 0]
        return pattern_of(cache["pattern", 0]) * (per_source @ direction) / scale[:, None, None]

    return make


def _heads_own_ln_scale(model, tokens, out):
    _, cache = model.run_with_cache(tokens)
    else_token = model.to_single_token(" else")
    per_source = einops.einsum(cache["v", 0], model.W_O[0], "b s h e, h e d -> b h s d")
    pattern = cache["pattern", 0][:, :, -1, :, None]
    return _ln(pattern * per_source, model.ln_final) @ model.W_U[:, else_token]


def _recomputed_ln_everywhere(model, tokens):
    """Every part passed through ``ln_final`` on its own (its own scale), instead of the frozen scale."""
    out = SOLUTION.else_logit_decomposition(model, tokens)
    _, cache = model.run_with_cache(tokens)
    else_token = model.to_single_token(" else")
    direction = model.ln_final.w * model.W_U[:, else_token]

    def own(x):
        c = x - x.mean(-1, keepdim=True)
        return c / (c.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt() @ direction

    n = tokens.shape[1]
    per_source = einops.einsum(cache["v", 0], model.W_O[0], "b s h e, h e d -> b h s d")
    out["embed"] = own(model.W_E[tokens[:, -1]])
    out["pos_embed"] = own(model.W_pos[n - 1]).expand(tokens.shape[0])
    out["heads"] = own(cache["pattern", 0][:, :, -1, :, None] * per_source)
    out["biases"] = (
        own(model.b_O[0]).expand(tokens.shape[0]) + model.ln_final.b @ model.W_U[:, else_token] + model.b_U[else_token]
    )
    return out


def _heads_wrong_ov_order(model, tokens, out):
    _, cache = model.run_with_cache(tokens)
    else_token = model.to_single_token(" else")
    x = _ln(model.W_E[tokens] + model.W_pos[: tokens.shape[1]], model.blocks[0].ln1)
    per_source = einops.einsum(
        x, model.W_O[0].transpose(-1, -2), model.W_V[0].transpose(-1, -2), "b s d, h d e, h e f -> b h s f"
    )
    per_source = per_source - per_source.mean(-1, keepdim=True)
    direction = model.ln_final.w * model.W_U[:, else_token]
    scale = cache["ln_final.hook_scale"][:, -1, 0]
    return cache["pattern", 0][:, :, -1] * (per_source @ direction) / scale[:, None, None]


def _heads_no_pos(model, tokens, out):
    _, cache = model.run_with_cache(tokens)
    else_token = model.to_single_token(" else")
    x = _ln(model.W_E[tokens], model.blocks[0].ln1)
    values = einops.einsum(x, model.W_V[0], "b s d, h d e -> b s h e") + model.b_V[0]
    per_source = einops.einsum(values, model.W_O[0], "b s h e, h e d -> b h s d")
    per_source = per_source - per_source.mean(-1, keepdim=True)
    direction = model.ln_final.w * model.W_U[:, else_token]
    scale = cache["ln_final.hook_scale"][:, -1, 0]
    return cache["pattern", 0][:, :, -1] * (per_source @ direction) / scale[:, None, None]


def _b_v_in_biases(model, tokens):
    """b_V moved from the head terms into the biases (the total is unchanged)."""
    out = SOLUTION.else_logit_decomposition(model, tokens)
    _, cache = model.run_with_cache(tokens)
    else_token = model.to_single_token(" else")
    direction = model.ln_final.w * model.W_U[:, else_token]
    scale = cache["ln_final.hook_scale"][:, -1, 0]
    per_head = einops.einsum(model.b_V[0], model.W_O[0], "h e, h e d -> h d")
    share = (per_head - per_head.mean(-1, keepdim=True)) @ direction  # [head]
    pattern = cache["pattern", 0][:, :, -1]
    out["heads"] = out["heads"] - pattern * share[None, :, None] / scale[:, None, None]
    out["biases"] = out["biases"] + share.sum() / scale
    return out


def _heads_scale_per_source(model, tokens, out):
    _, cache = model.run_with_cache(tokens)
    else_token = model.to_single_token(" else")
    direction = model.ln_final.w * model.W_U[:, else_token]
    per_source = einops.einsum(cache["v", 0], model.W_O[0], "b s h e, h e d -> b h s d")
    per_source = per_source - per_source.mean(-1, keepdim=True)
    scale = cache["ln_final.hook_scale"][:, :, 0]  # [batch, pos]: every position's own scale
    return cache["pattern", 0][:, :, -1] * (per_source @ direction) / scale[:, None, :]


def _replacing(**changes) -> Callable:
    """A mistake that replaces some parts of the reference decomposition (see ``_decomposition_with``)."""
    return lambda model, tokens: _decomposition_with(model, tokens, **changes)


KNOWN_MISTAKES["else_logit_decomposition"] = {
    "the direct path (embed and pos_embed) is missing — the residual at the final position also goes "
    "straight to the unembedding": _replacing(embed=_zeros_like("embed"), pos_embed=_zeros_like("pos_embed")),
    "pos_embed is zero — the final position's W_pos also reaches the unembedding": _replacing(
        pos_embed=_zeros_like("pos_embed")
    ),
    "are the values computed without positional embeddings? Source position s holds "
    "ln1(W_E[token] + W_pos[s])": _replacing(heads=_heads_no_pos),
    "the biases are missing (b_O through the final LayerNorm, the final LayerNorm's bias, b_U)": _replacing(
        biases=_zeros_like("biases")
    ),
    "is the final LayerNorm scale recomputed for each part? Freeze it at its value in the run": _recomputed_ln_everywhere,
    "are the head terms normalised by their own LayerNorm scale? Freeze the final position's scale "
    "from the run": _replacing(heads=_heads_own_ln_scale),
    "are the attention weights read with query and key swapped? Use pattern[:, head, -1, src] "
    "(the final query)": _replacing(heads=_heads_from_pattern(lambda p: p[:, :, :, -1])),
    "are the attention weights taken from the wrong head?": _replacing(
        heads=_heads_from_pattern(lambda p: p[:, :, -1].roll(1, dims=1))
    ),
    "are the attention weights taken from the wrong query position? Use the final position (-1)": _replacing(
        heads=_heads_from_pattern(lambda p: p[:, :, -2])
    ),
    "is the OV circuit composed in the wrong order? A row vector x goes through x @ W_V @ W_O": _replacing(
        heads=_heads_wrong_ov_order
    ),
    "is each source divided by the LayerNorm scale at its own position? Every part uses the final "
    "position's scale": _replacing(heads=_heads_scale_per_source),
    "b_V belongs in the head terms (the value vectors include it), not in the biases": _b_v_in_biases,
}


def test_else_logit_decomposition(else_logit_decomposition) -> CheckResult:
    model = check_model()
    trusted, anomalous = check_prefixes()
    batch = pair_batch()
    return _run_check(
        "else_logit_decomposition",
        _Guarded(else_logit_decomposition, model),
        SOLUTION.else_logit_decomposition,
        [
            Case(f"a trusted prefix ({trusted.shape[1]} tokens)", (model, trusted)),
            Case(f"an anomalous prefix ({anomalous.shape[1]} tokens)", (model, anomalous)),
            Case("a batch of 2 cut prefixes", (model, batch)),
        ],
        index_names=("batch", "head", "source position"),
        known_mistakes=KNOWN_MISTAKES["else_logit_decomposition"],
    )


def _contribution(model, tokens, head, source_token, *, scale=True, centre=True, weights=True, mask=True, ln_w=True):
    """The reference's source contribution with one classic mistake switched off."""
    _, cache = model.run_with_cache(tokens)
    out = cache["v", 0][:, :, head] @ model.W_O[0, head]
    if centre:
        out = out - out.mean(-1, keepdim=True)
    direction = model.W_U[:, _token(" else")] * (model.ln_final.w if ln_w else 1)
    terms = (cache["pattern", 0][:, head, -1] if weights else 1) * (out @ direction)
    if scale:
        terms = terms / cache["ln_final.hook_scale"][:, -1]
    return (terms * (tokens == source_token) if mask else terms).sum(-1)


def _swapped(tokens: Tensor, old: int, new: int) -> Tensor:
    swapped = tokens.clone()
    swapped[swapped == old] = new
    return swapped


KNOWN_MISTAKES["source_contribution"] = {
    "not divided by the final LayerNorm's scale at the final position (cache['ln_final.hook_scale'][:, -1])": lambda m, t, h, s: (
        _contribution(m, t, h, s, scale=False)
    ),
    "not centred: the final LayerNorm subtracts each vector's mean first": lambda m, t, h, s: _contribution(
        m, t, h, s, centre=False
    ),
    "the attention weights of the final query are missing": lambda m, t, h, s: _contribution(m, t, h, s, weights=False),
    "summed over every source position: keep only those holding `source_token`": lambda m, t, h, s: _contribution(
        m, t, h, s, mask=False
    ),
    "the final LayerNorm's weight ln_final.w is missing": lambda m, t, h, s: _contribution(m, t, h, s, ln_w=False),
}


def test_source_contribution(source_contribution) -> CheckResult:
    model = check_model()
    trusted, _ = check_prefixes()
    batch = pair_batch()
    if_, head = _token(" if"), min(top_if_heads())
    other = (head + 1) % model.cfg.n_heads
    return _run_check(
        "source_contribution",
        _Guarded(source_contribution, model),
        SOLUTION.source_contribution,
        [
            Case(f"head {head} reading ' if', a batch of 2 cut prefixes", (model, batch, head, if_)),
            Case(f"head {other} reading ' if', a trusted prefix", (model, trusted, other, if_)),
            Case(
                f"head {head} reading ' elif' after ' if' was replaced by it",
                (model, _swapped(batch, if_, _token(" elif")), head, _token(" elif")),
            ),
        ],
        index_names=("batch",),
        known_mistakes=KNOWN_MISTAKES["source_contribution"],
    )


# --------------------------------------------------------------------------- detector


@functools.cache
def _features() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(6)
    mix = torch.randn(4, 4, generator=gen)
    train = torch.randn(200, 4, generator=gen) @ mix + 1.0
    test = torch.cat([torch.randn(20, 4, generator=gen) @ mix + 1.0, torch.randn(20, 4, generator=gen) * 2])
    return train, test


def _maha_fit_on_test(train, test, ridge=1e-3):
    return SOLUTION.mahalanobis_scores(test, test, ridge)


def _maha_covariance_not_inverted(train, test, ridge=1e-3):
    mu = train.mean(0)
    cov = torch.cov(train.T) + ridge * torch.eye(train.shape[1])
    c = test - mu
    return ((c @ cov) * c).sum(-1)


def _maha_sqrt(train, test, ridge=1e-3):
    return SOLUTION.mahalanobis_scores(train, test, ridge).sqrt()


def _maha_biased(train, test, ridge=1e-3):
    mu = train.mean(0)
    cov = torch.cov(train.T, correction=0) + ridge * torch.eye(train.shape[1])
    c = test - mu
    return (c * torch.linalg.solve(cov, c.T).T).sum(-1)


def _maha_no_ridge(train, test, ridge=1e-3):
    return SOLUTION.mahalanobis_scores(train, test, 0.0)


KNOWN_MISTAKES["mahalanobis_scores"] = {
    "the mean and covariance must come from the training rows, not the test rows": _maha_fit_on_test,
    "is the covariance used without inverting it? Solve with (C + ridge·I)": _maha_covariance_not_inverted,
    "return the squared distance (no square root)": _maha_sqrt,
    "use torch.cov's convention (divide by n − 1)": _maha_biased,
    "is the ridge missing? Add ridge·I to the covariance": _maha_no_ridge,
}


def test_mahalanobis_scores(mahalanobis_scores) -> CheckResult:
    train, test = _features()
    return _run_check(
        "mahalanobis_scores",
        mahalanobis_scores,
        SOLUTION.mahalanobis_scores,
        [Case("200 training rows, 40 test rows", (train, test)), Case("ridge 0.5", (train, test), {"ridge": 0.5})],
        index_names=("test row",),
        known_mistakes=KNOWN_MISTAKES["mahalanobis_scores"],
    )


def _auroc_ties_win(normal, anomalous):
    return float((anomalous[:, None] >= normal[None, :]).double().mean())


def _auroc_ties_lose(normal, anomalous):
    return float((anomalous[:, None] > normal[None, :]).double().mean())


def _auroc_reversed(normal, anomalous):
    return 1.0 - SOLUTION.auroc(normal, anomalous)


@functools.cache
def _auroc_cases() -> tuple[Case, ...]:
    gen = torch.Generator().manual_seed(0)
    return (
        Case(
            "60 normal vs 50 anomalous scores", (torch.randn(60, generator=gen), torch.randn(50, generator=gen) + 1.0)
        ),
        Case("scores with ties", (torch.tensor([0.0, 1.0, 1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 2.0, 4.0]))),
        Case("perfect separation", (torch.zeros(3), torch.ones(2))),
    )


KNOWN_MISTAKES["auroc"] = {
    "ties should count one half, not a win for the anomalous score": _auroc_ties_win,
    "ties should count one half, not a loss for the anomalous score": _auroc_ties_lose,
    "is it upside down? Higher scores mean more anomalous, so a perfect detector gets 1.0": _auroc_reversed,
}


def test_auroc(auroc) -> CheckResult:
    return _run_check(
        "auroc",
        auroc,
        SOLUTION.auroc,
        list(_auroc_cases()),
        tol=Tolerance(atol=1e-6, rtol=1e-6),
        known_mistakes=KNOWN_MISTAKES["auroc"],
    )


# --------------------------------------------------------------------------- answers


def test_answer_qk_is_exact(answer_qk_is_exact) -> CheckResult:
    return check_answer(
        "answer_qk_is_exact",
        answer_qk_is_exact,
        lambda a: a is True,
        "look at the formula for score(q, k) in section 4: what is each query and each key computed from, in a model "
        "with a single layer? Where could the rest of the context come in?",
    )


@functools.cache
def omission_gaps() -> dict[str, float]:
    """Mean |approximation − logit| over every held-out trusted prefix (the notebook's table), one omission at a time."""
    model = check_model()
    rows = [prefix_tokens(model, p.prefix)[0] for p in load_ternary_eval("trusted")]
    totals = dict.fromkeys(OMISSIONS, 0.0)
    with torch.no_grad():
        for length in sorted({len(r) for r in rows}):
            tokens = torch.stack([r for r in rows if len(r) == length])
            logits, cache = model.run_with_cache(
                tokens, names_filter=lambda n: n in ("blocks.0.attn.hook_pattern", "ln_final.hook_scale")
            )
            logit = logits[:, -1, model.to_single_token(" else")]
            pattern, scale = cache["pattern", 0][:, :, -1], cache["ln_final.hook_scale"][:, -1, 0]
            for name in OMISSIONS:
                totals[name] += (
                    (approximate_else_logit(model, tokens, pattern, scale, {name}) - logit).abs().sum().item()
                )
    return {name: total / len(rows) for name, total in totals.items()}


def test_answer_biggest_omission(answer_biggest_omission) -> CheckResult:
    gaps = omission_gaps()
    close_to_worst = {name for name, gap in gaps.items() if gap >= 0.9 * max(gaps.values())}
    return check_answer(
        "answer_biggest_omission",
        answer_biggest_omission,
        lambda a: a in close_to_worst,
        f"answer one of {list(OMISSIONS)}: the part whose omission alone moves the rebuilt logit furthest "
        "from the model's — read it off the trusted column of the table of gaps in section 5",
    )


@functools.cache
def top_if_heads() -> frozenset[int]:
    """The heads whose OV circuit ranks `` if`` highest among sources for `` else`` (several if tied)."""
    if_, else_ = _token(" if"), _token(" else")
    ranks = [SOLUTION.ov_ranks(_ov(head), if_, else_)[0] for head in range(check_model().cfg.n_heads)]
    return frozenset(h for h, r in enumerate(ranks) if r == min(ranks))


def test_answer_top_if_head(answer_top_if_head) -> CheckResult:
    return check_answer(
        "answer_top_if_head",
        answer_top_if_head,
        lambda a: isinstance(a, int) and not isinstance(a, bool) and a in top_if_heads(),
        "give the head (an int) whose OV circuit ranks ' if' highest among all source tokens for promoting ' else' "
        "(rank 0 = top; the table of ov_ranks)",
    )
