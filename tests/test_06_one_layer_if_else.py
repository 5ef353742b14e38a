"""Chapter 06's checks reject the mistakes they find by other means (a plain tensor, the ln1 pitfall,
inputs modified in place) and accept correct alternatives (other factorisations, loops instead of
einsum, float64, …). ``tests/test_chapter_checks.py`` proves that each known mistake is rejected by name."""

import einops
import pytest
import torch
from transformer_lens import FactoredMatrix

from course_utils.chapters import solution_module
from course_utils.checks import one_layer_if_else as checks

S = solution_module("06_one_layer_if_else")


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def run(name, fn):
    return getattr(checks, f"test_{name}")(fn)


# --------------------------------------------------------------------------- OV circuit


def test_ov_circuit_rejects_a_plain_tensor():
    result = run("ov_circuit", lambda model, head: S.ov_circuit(model, head).AB)
    assert not result and "expected a FactoredMatrix" in result.message


def _ov_other_factorisation(model, head):
    """A = [normalised rows, 1], B = [w·W_U ; b·W_U]: a different inner dimension, same product."""
    eps = model.cfg.eps

    def normalise(x):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()

    x = normalise(model.W_E.double()) * model.blocks[0].ln1.w + model.blocks[0].ln1.b
    x = normalise(x @ model.W_V[0, head].double() @ model.W_O[0, head].double())
    A = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
    B = torch.cat([model.ln_final.w[:, None] * model.W_U, (model.ln_final.b @ model.W_U)[None]]).double()
    return FactoredMatrix(A, B)


def _ov_with_modules_on_a_copy(model, head):
    """The bridge's own LayerNorm modules, called on plain tensors (not on the Parameter W_E)."""
    x = model.blocks[0].ln1(model.W_E.detach().clone()) @ model.OV[0, head].AB
    return FactoredMatrix(model.ln_final(x), model.W_U)


@pytest.mark.parametrize("alternative", [_ov_other_factorisation, _ov_with_modules_on_a_copy])
def test_ov_circuit_accepts(alternative):
    result = run("ov_circuit", alternative)
    assert result, result.message


def test_ov_circuit_catches_the_ln1_pitfall_and_repairs_the_model():
    def calls_ln1_on_the_parameter(model, head):
        x = model.blocks[0].ln1(model.W_E) @ model.W_V[0, head] @ model.W_O[0, head]
        return FactoredMatrix(model.ln_final(x), model.W_U)

    result = run("ov_circuit", calls_ln1_on_the_parameter)
    assert not result and "ln1 module on a weight matrix" in result.message
    model = checks.check_model()
    model(torch.tensor([[0, 1, 2]]))  # still runs
    assert run("else_logit_decomposition", S.else_logit_decomposition)


# --------------------------------------------------------------------------- OV ranks


def _ranks_by_sorting(ov, src, out):
    column = ov[:, out].AB[:, 0]
    row = (ov.A[src : src + 1] @ ov.B)[0]
    src_rank = (column.argsort(descending=True) == src).nonzero().item()
    out_rank = (row.argsort(descending=True) == out).nonzero().item()
    return src_rank, out_rank


def test_ov_ranks_accepts_sorting():
    result = run("ov_ranks", _ranks_by_sorting)
    assert result, result.message


# --------------------------------------------------------------------------- QK scores


def _qk_loop_float64(model, key_token, query_pos, key_pos):
    eps = model.cfg.eps
    w, b = model.blocks[0].ln1.w.double(), model.blocks[0].ln1.b.double()

    def ln(x):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.var(-1, unbiased=False, keepdim=True) + eps).sqrt() * w + b

    queries = ln((model.W_E + model.W_pos[query_pos]).double())
    key = ln((model.W_E[key_token] + model.W_pos[key_pos]).double())
    out = []
    for h in range(model.cfg.n_heads):
        q = queries @ model.W_Q[0, h].double() + model.b_Q[0, h].double()
        k = key @ model.W_K[0, h].double() + model.b_K[0, h].double()
        out.append(q @ k / model.cfg.d_head**0.5)
    return torch.stack(out)


def _qk_through_the_model(model, key_token, query_pos, key_pos):
    """Put the key and each query token in a real sequence and read the scores back from hook_q/hook_k."""
    tokens = torch.full((model.cfg.d_vocab, query_pos + 1), key_token)
    tokens[:, query_pos] = torch.arange(model.cfg.d_vocab)
    scores = []
    for chunk in tokens.split(1024):
        _, cache = model.run_with_cache(chunk, names_filter=lambda n: n.endswith(("hook_q", "hook_k")))
        q, k = cache["q", 0][:, query_pos], cache["k", 0][:, key_pos]  # [batch, head, d_head]
        scores.append((q * k).sum(-1) / model.cfg.d_head**0.5)
    return torch.cat(scores).T


@pytest.mark.parametrize("alternative", [_qk_loop_float64, _qk_through_the_model])
def test_qk_scores_accepts(alternative, monkeypatch):
    # Correctness, not speed: on a busy machine the model-based alternative may pass the check's time limit.
    monkeypatch.setenv("COURSE_CHECK_TIME_LIMIT", "600")
    result = run("qk_scores", alternative)
    assert result, result.message


# --------------------------------------------------------------------------- exact decomposition


def _decomposition_from_weights(model, tokens):
    """Recompute values from ln1 by hand (float64), loop over heads; only the pattern and scale come from the run."""
    _, cache = model.run_with_cache(tokens)
    else_token = model.to_single_token(" else")
    eps, n = model.cfg.eps, tokens.shape[1]
    scale = cache["ln_final.hook_scale"][:, -1, 0].double()
    u = (model.ln_final.w * model.W_U[:, else_token]).double()

    def read(x):
        return (x - x.mean(-1, keepdim=True)) @ u

    resid = (model.W_E[tokens] + model.W_pos[:n]).double()
    c = resid - resid.mean(-1, keepdim=True)
    x = (
        c / (c.pow(2).mean(-1, keepdim=True) + eps).sqrt() * model.blocks[0].ln1.w.double()
        + model.blocks[0].ln1.b.double()
    )
    heads = []
    for h in range(model.cfg.n_heads):
        v = x @ model.W_V[0, h].double() + model.b_V[0, h].double()
        heads.append(cache["pattern", 0][:, h, -1].double() * read(v @ model.W_O[0, h].double()) / scale[:, None])
    bias = (
        read(model.b_O[0].double()) / scale
        + (model.ln_final.b @ model.W_U[:, else_token]).double()
        + model.b_U[else_token].double()
    )
    return {
        "embed": read(model.W_E[tokens[:, -1]].double()) / scale,
        "pos_embed": read(model.W_pos[n - 1].double()) / scale,
        "heads": torch.stack(heads, dim=1),
        "biases": bias,
    }


def _decomposition_with_cache_helpers(model, tokens):
    """Use the cache's hook_normalized (LayerNorm without its weight and bias) for the final LayerNorm."""
    _, cache = model.run_with_cache(tokens)
    else_token = model.to_single_token(" else")
    scale = cache["ln_final.hook_scale"][:, -1]  # [batch, 1]
    u = model.ln_final.w * model.W_U[:, else_token]

    def read(x):
        return (x - x.mean(-1, keepdim=True)) @ u

    per_source = einops.einsum(
        cache["pattern", 0][:, :, -1], cache["v", 0], model.W_O[0], "b h s, b s h e, h e d -> b h s d"
    )
    direct = cache["hook_embed"][:, -1], cache["hook_pos_embed"][:, -1]
    return {
        "embed": read(direct[0]) / scale[:, 0],
        "pos_embed": read(direct[1]) / scale[:, 0],
        "heads": read(per_source) / scale[:, :, None],
        "biases": read(model.b_O[0]) / scale[:, 0]
        + model.ln_final.b @ model.W_U[:, else_token]
        + model.b_U[else_token],
    }


@pytest.mark.parametrize("alternative", [_decomposition_from_weights, _decomposition_with_cache_helpers])
def test_decomposition_accepts(alternative):
    result = run("else_logit_decomposition", alternative)
    assert result, result.message


def test_decomposition_sums_to_the_logit():
    model = checks.check_model()
    for tokens in (*checks.check_prefixes(), checks.pair_batch()):
        parts = S.else_logit_decomposition(model, tokens)
        total = parts["embed"] + parts["pos_embed"] + parts["heads"].sum((1, 2)) + parts["biases"]
        logit = model(tokens)[:, -1, model.to_single_token(" else")]
        assert (total - logit).abs().max() < 1e-4


def test_approximation_with_nothing_omitted_is_exact():
    model = checks.check_model()
    tokens = checks.pair_batch()
    logits, cache = model.run_with_cache(tokens)
    pattern, scale = cache["pattern", 0][:, :, -1], cache["ln_final.hook_scale"][:, -1, 0]
    rebuilt = checks.approximate_else_logit(model, tokens, pattern, scale, set())
    assert (rebuilt - logits[:, -1, model.to_single_token(" else")]).abs().max() < 1e-4
    with pytest.raises(ValueError, match="unknown omissions"):
        checks.approximate_else_logit(model, tokens, pattern, scale, {"MLPs"})


# --------------------------------------------------------------------------- detector


def _contribution_from_the_decomposition(model, tokens, head, source_token):
    return (S.else_logit_decomposition(model, tokens)["heads"][:, head] * (tokens == source_token)).sum(-1)


def _contribution_by_loops(model, tokens, head, source_token):
    _, cache = model.run_with_cache(tokens)
    direction = (model.ln_final.w * model.W_U[:, model.to_single_token(" else")]).double()
    out = torch.zeros(tokens.shape[0], dtype=torch.float64)
    for b in range(tokens.shape[0]):
        for p in (tokens[b] == source_token).nonzero()[:, 0].tolist():
            vec = (cache["v", 0][b, p, head] @ model.W_O[0, head]).double()
            read = (vec - vec.mean()) @ direction
            out[b] += cache["pattern", 0][b, head, -1, p] * read / cache["ln_final.hook_scale"][b, -1, 0]
    return out


@pytest.mark.parametrize("alternative", [_contribution_from_the_decomposition, _contribution_by_loops])
def test_source_contribution_accepts(alternative):
    assert run("source_contribution", alternative), alternative.__name__


def test_source_contribution_is_zero_without_the_token():
    tokens = checks.pair_batch()
    absent = next(t for t in range(5, 5000) if not (tokens == t).any())
    assert (S.source_contribution(checks.check_model(), tokens, 3, absent) == 0).all()


def _maha_inverse_float64(train, test, ridge=1e-3):
    train, test = train.double(), test.double()
    mu = train.mean(0)
    centred_train = train - mu
    cov = centred_train.T @ centred_train / (len(train) - 1) + ridge * torch.eye(train.shape[1], dtype=torch.float64)
    d = test - mu
    return torch.einsum("nd,de,ne->n", d, torch.linalg.inv(cov), d)


def test_mahalanobis_accepts_inverse_and_float64():
    result = run("mahalanobis_scores", _maha_inverse_float64)
    assert result, result.message


def _auroc_rank_sum(normal, anomalous):
    """Mann–Whitney U from average ranks (ties share their mean rank)."""
    scores = torch.cat([normal, anomalous]).double()
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    for value in scores.unique():
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[len(normal) :].sum() - len(anomalous) * (len(anomalous) + 1) / 2
    return (u / (len(normal) * len(anomalous))).item()


def test_auroc_accepts_the_rank_statistic():
    result = run("auroc", _auroc_rank_sum)
    assert result, result.message


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    "name, wrong",
    [
        ("answer_qk_is_exact", False),
        ("answer_qk_is_exact", "yes"),
        ("answer_biggest_omission", "MLPs"),
        ("answer_top_if_head", -1),
        ("answer_top_if_head", True),
    ],
)
def test_wrong_answers_are_rejected(name, wrong):
    result = run(name, wrong)
    assert result.status == "failed" and "\n" not in result.message


def test_omission_answer_is_one_of_the_options():
    assert S.answer_biggest_omission in checks.OMISSIONS
    assert set(checks.omission_gaps()) == set(checks.OMISSIONS)


def test_top_if_head_answer_rejects_every_other_head():
    for head in range(checks.check_model().cfg.n_heads):
        if head not in checks.top_if_heads():
            assert not run("answer_top_if_head", head)


def test_in_place_changes_are_reported_and_do_not_spoil_later_checks():
    def centres_in_place(train, test, ridge=1e-3):
        test -= train.mean(0)
        return S.mahalanobis_scores(train - train.mean(0), test, ridge)

    result = run("mahalanobis_scores", centres_in_place)
    assert not result and "modified its input" in result.message
    assert run("mahalanobis_scores", S.mahalanobis_scores)
