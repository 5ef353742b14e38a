"""Chapter 02 (early decoding): the references agree with TransformerLens, the checks recognise
classic mistakes written in other ways than the known ones, reject those they find by other means,
and accept correct alternative implementations. ``tests/test_chapter_checks.py`` proves that each
known mistake is rejected by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_utils import random_model
from course_utils.chapters import solution_module
from course_utils.checks import early_decoding as checks

S = solution_module("02_early_decoding")


def run_check(name, fn):
    return getattr(checks, f"test_{name}")(fn)


def _mistake(exercise: str, phrase: str):
    """The known mistake of ``exercise`` whose diagnosis contains ``phrase``."""
    return next(fn for diagnosis, fn in checks.KNOWN_MISTAKES[exercise].items() if phrase in diagnosis)


def test_wrong_answers_are_rejected():
    assert not checks.test_answer_ln_twice_detectable_with_fresh_ln(True)
    assert not checks.test_answer_ln_twice_detectable_with_fresh_ln("True")  # a bool typed as a string is read as one
    n = checks.model().cfg.n_layers
    assert not checks.test_answer_gpt2_medium_lens_rows(24)
    assert not checks.test_answer_gpt2_medium_lens_rows(25.5)
    names, gains = checks.block_gains()
    assert not checks.test_answer_biggest_block(names[int(gains.argmin())])
    assert not checks.test_answer_biggest_block("block 2")
    assert not checks.test_answer_most_important_mlp((checks.most_important_mlp() + 1) % n)
    assert not checks.test_answer_most_important_mlp(True)


@pytest.mark.parametrize("spelling", ["{kind} {layer}", "{kind}{layer}", "{KIND}_{layer}", " {kind} {layer} "])
def test_block_answer_spellings(spelling):
    names, gains = checks.block_gains()
    kind, layer = names[int(gains.argmax())].split()
    given = spelling.format(kind=kind, KIND=kind.upper(), layer=layer)
    assert checks.test_answer_biggest_block(given)


# --- 2. the logit lens is right: TransformerLens agrees, the last row is the model's output --
@pytest.mark.parametrize("which", ["course model", "random model"])
def test_logit_lens_matches_transformer_lens_and_model_logits(which):
    model = checks.model() if which == "course model" else random_model(n_layers=4).requires_grad_(False)
    with torch.no_grad():
        logits, cache = model.run_with_cache(checks.town_prompt().text)
    for pos in (-1, 3):
        lens = S.logit_lens(model, cache, pos)
        assert lens.shape == (model.cfg.n_layers + 1, model.cfg.d_vocab)
        torch.testing.assert_close(lens[-1], logits[0, pos], atol=1e-4, rtol=1e-4)
        resid = cache.accumulated_resid(apply_ln=True)[:, 0, pos]
        torch.testing.assert_close(lens, resid @ model.W_U + model.b_U, atol=1e-4, rtol=1e-4)


def test_ln_twice_is_visible_on_the_check_model():
    """The check model's final LayerNorm is not idempotent, so a doubled LN is detectable."""
    lens = checks.lens(checks.town_prompt().text)
    ln_twice_at_final = _mistake("logit_lens", "applied twice at the last row")
    doubled = ln_twice_at_final(checks.model(), checks.run(checks.town_prompt().text)[1])
    assert (doubled[-1] - lens[-1]).abs().max() > 0.1
    torch.testing.assert_close(doubled[:-1], lens[:-1])


def test_rank_convention_is_zero_for_the_top_token():
    lens = checks.lens(checks.town_prompt().text)
    top_token = int(lens[-1].argmax())
    assert S.answer_rank_per_layer(lens, top_token)[-1] == 0
    assert S.reciprocal_rank_per_layer(lens, top_token)[-1] == 1.0


def test_mlp_removal_effect_is_consistent_with_logits_without_mlp():
    model, cache = checks.model(), checks.run(checks.town_prompt().text)[1]
    answer = checks.answer_token(checks.town_prompt())
    effect = S.mlp_removal_effect(model, cache, answer)
    clean = S.decode_residual(model, cache["resid_post", model.cfg.n_layers - 1][0, -1]).log_softmax(-1)[answer]
    for layer in range(model.cfg.n_layers):
        removed = S.logits_without_mlp(model, cache, layer).log_softmax(-1)[answer]
        assert abs((removed - clean).item() - effect[layer].item()) < 1e-4


def test_text_batch_is_deterministic_and_starts_with_bos():
    model = checks.model()
    a = checks.text_batch(model, 3, 20, seed=7)
    assert a.shape == (3, 20)
    assert (a[:, 0] == model.tokenizer.bos_token_id).all()
    assert torch.equal(a, checks.text_batch(model, 3, 20, seed=7))
    assert not torch.equal(a, checks.text_batch(model, 3, 20, seed=8))


# --- 3. classic mistakes written otherwise than the known ones, or found by other means --------
def _ln_twice_everywhere_then_final(model, cache, pos=-1):
    """Written independently of the checks' own version: decode rows, re-using hook_out at the end."""
    n = model.cfg.n_layers
    rows = [S.decode_residual(model, cache["resid_pre", layer][0, pos]) for layer in range(n)]
    rows.append(S.decode_residual(model, cache["ln_final.hook_out"][0, pos]))
    return torch.stack(rows)


def _rank_one_based_with_ge(layer_logits, answer_token):
    return (layer_logits >= layer_logits[:, answer_token, None]).sum(-1)


def _trace_after_the_subject(model, clean, corrupted, answer, subject_pos):
    """Restores the position after the subject (here the last one, as the known mistake does)."""
    return S.causal_trace(model, clean, corrupted, answer, subject_pos + 1)


MISTAKES = [
    ("logit_lens", _ln_twice_everywhere_then_final, "applied twice at the last row"),
    ("answer_rank_per_layer", _rank_one_based_with_ge, "off by one"),
    ("causal_trace", _trace_after_the_subject, "after the subject"),
]


@pytest.mark.parametrize("name, wrong, phrase", MISTAKES, ids=[f"{m[0]}-{m[1].__name__}" for m in MISTAKES])
def test_mistake_is_rejected(name, wrong, phrase):
    result = run_check(name, wrong)
    assert result.status == "failed" and "\n" not in result.message, result.message
    assert phrase in result.message, result.message


def test_logit_lens_without_the_final_row_is_a_shape_error():
    def no_final_row(model, cache, pos=-1):
        return S.logit_lens(model, cache, pos)[:-1]

    result = checks.test_logit_lens(no_final_row)
    assert not result and "shape" in result.message


def test_leftover_hook_is_reported():
    def leaves_a_hook(model, cache, pos=-1):
        model.add_hook("blocks.0.hook_resid_pre", lambda act, hook: None)
        return S.logit_lens(model, cache, pos)

    result = checks.test_logit_lens(leaves_a_hook)
    assert not result and "left a hook" in result.message


# --- 4. correct alternatives are accepted ------------------------------------------------------
def _decode_by_hand(model, resid):
    x = resid.double()
    x = x - x.mean(dim=-1, keepdim=True)
    x = x / (x.pow(2).mean(dim=-1, keepdim=True) + model.cfg.eps).sqrt()
    x = x * model.ln_final.w.double() + model.ln_final.b.double()
    return x @ model.W_U.double() + model.b_U.double()


def _decode_with_unembed(model, resid):
    return model.unembed(model.ln_final(resid))


def _lens_loop(model, cache, pos=-1):
    rows = []
    for layer in range(model.cfg.n_layers):
        rows.append(_decode_by_hand(model, cache[f"blocks.{layer}.hook_resid_pre"][0, pos]))
    rows.append(_decode_by_hand(model, cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][0, pos]))
    return torch.stack(rows)


def _lens_from_resid_post(model, cache, pos=-1):
    """Embeddings, then the output of every block: the same residuals, reached another way."""
    embed = cache["hook_embed"][0, pos] + cache["hook_pos_embed"][0, pos]
    posts = [cache["resid_post", layer][0, pos] for layer in range(model.cfg.n_layers)]
    return _decode_with_unembed(model, torch.stack([embed] + posts))


def _lens_transformer_lens(model, cache, pos=-1):
    resid = cache.accumulated_resid(apply_ln=True)[:, 0, pos]
    return resid @ model.W_U + model.b_U


def _lens_whole_prompt_then_index(model, cache, pos=-1):
    stack = torch.stack([cache["resid_pre", l][0] for l in range(model.cfg.n_layers)] + [cache["resid_post", -1][0]])
    return (model.ln_final(stack) @ model.W_U + model.b_U)[:, pos]


def _rank_argsort_twice(layer_logits, answer_token):
    return layer_logits.argsort(dim=-1, descending=True).argsort(dim=-1)[:, answer_token]


def _rank_loop_on_probs(layer_logits, answer_token):
    probs = layer_logits.double().softmax(-1)
    return torch.tensor([int((row > row[answer_token]).sum()) for row in probs])


def _rank_nonzero(layer_logits, answer_token):
    order = layer_logits.argsort(dim=-1, descending=True)
    return (order == answer_token).nonzero()[:, 1]


def _prob_exp_logsoftmax_double(layer_logits, answer_token):
    return layer_logits.double().log_softmax(dim=-1).exp()[:, answer_token]


def _prob_loop(layer_logits, answer_token):
    return torch.stack([F.softmax(row, dim=0)[answer_token] for row in layer_logits])


def _rr_argsort_double(layer_logits, answer_token):
    return 1.0 / (_rank_argsort_twice(layer_logits, answer_token).double() + 1)


def _topk_argsort_decode(model, layer_logits, k=5):
    order = layer_logits.argsort(dim=-1, descending=True)[:, :k]
    return [[model.tokenizer.decode([int(i)]) for i in row] for row in order]


def _topk_tuples(model, layer_logits, k=5):
    return [list(model.to_str_tokens(layer_logits[l].topk(k).indices)) for l in range(layer_logits.shape[0])]


def _without_mlp_by_components(model, cache, layer, pos=-1):
    """Rebuild the final residual from its parts, leaving the MLP out."""
    parts = [cache["hook_embed"][0, pos], cache["hook_pos_embed"][0, pos]]
    for l in range(model.cfg.n_layers):
        parts.append(cache["attn_out", l][0, pos])
        if l != layer:
            parts.append(cache["mlp_out", l][0, pos])
    return _decode_by_hand(model, torch.stack(parts).sum(0))


def _effect_loop(model, cache, answer_token, pos=-1):
    clean = F.log_softmax(_decode_by_hand(model, cache["resid_post", -1][0, pos]), dim=-1)[answer_token]
    return torch.stack(
        [
            F.log_softmax(S.logits_without_mlp(model, cache, l, pos).double(), dim=-1)[answer_token] - clean
            for l in range(model.cfg.n_layers)
        ]
    )


def _kl_with_f_kl_div(layer_logits):
    logp = layer_logits.log_softmax(-1)
    return F.kl_div(logp, logp[-1:].expand_as(logp), log_target=True, reduction="none").sum(-1)


def _kl_loop_double(layer_logits):
    logp = layer_logits.double().log_softmax(-1)
    return torch.stack([(logp[-1].exp() * (logp[-1] - logp[l])).sum(-1) for l in range(len(logp))])


def _fit_normal_equations(h_from, h_to):
    X = torch.cat([h_from, torch.ones(len(h_from), 1)], 1).double()
    sol = torch.linalg.solve(X.T @ X, X.T @ h_to.double())
    return sol[:-1].float(), sol[-1].float()


def _fit_centred(h_from, h_to):
    mf, mt = h_from.double().mean(0), h_to.double().mean(0)
    W = torch.linalg.lstsq(h_from.double() - mf, h_to.double() - mt).solution
    return W, mt - mf @ W


def _fit_pinv_float32(h_from, h_to):
    X = torch.cat([h_from, torch.ones(len(h_from), 1)], 1)
    sol = torch.linalg.pinv(X.double()).float() @ h_to
    return sol[:-1], sol[-1]


def _before_mlp_resid_mid(model, cache, layer, pos=-1):
    return S.decode_residual(model, cache["resid_mid", layer][0, pos])


def _before_mlp_by_components(model, cache, layer, pos=-1):
    """resid_pre + attention output of the same layer, decoded through the hook-free formula."""
    x = cache["resid_pre", layer][0, pos] + cache["attn_out", layer][0, pos]
    return S.decode_residual(model, x)


def _trace_resid_post_of_previous(model, clean, corrupted, answer, subject_pos):
    """Restores resid_post of block l - 1 (the same vector as resid_pre of block l), embeddings for row 0,
    with a cloning hook and probabilities from log_softmax."""
    n = model.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(n)]
    _, clean_cache = model.run_with_cache(clean)
    p_clean = model(clean)[0, -1].log_softmax(-1)[answer].exp()
    p_corr = model(corrupted)[0, -1].log_softmax(-1)[answer].exp()
    out = []
    for name in names:

        def restore(x, hook, name=name):
            x = x.clone()
            x[0, subject_pos] = clean_cache[name][0, subject_pos]
            return x

        p = model.run_with_hooks(corrupted, fwd_hooks=[(name, restore)])[0, -1].log_softmax(-1)[answer].exp()
        out.append((p - p_corr) / (p_clean - p_corr))
    return torch.tensor(out)


def _trace_with_hooks_context(model, clean, corrupted, answer, subject_pos):
    """The same with `model.hooks(...)` as a context manager and a negative subject index."""
    n = model.cfg.n_layers
    names = [f"blocks.{l}.hook_resid_pre" for l in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]
    _, clean_cache = model.run_with_cache(clean)
    prob = lambda logits: logits[0, -1].softmax(-1)[answer]  # noqa: E731
    p_clean, p_corr = prob(model(clean)), prob(model(corrupted))
    neg = subject_pos - clean.shape[1]
    out = []
    for name in names:

        def restore(x, hook, name=name):
            x[:, neg] = clean_cache[name][:, neg]
            return x

        with model.hooks(fwd_hooks=[(name, restore)]):
            out.append((prob(model(corrupted)) - p_corr) / (p_clean - p_corr))
    return torch.stack(out)


ALTERNATIVES = [
    ("logits_before_mlp", _before_mlp_resid_mid),
    ("logits_before_mlp", _before_mlp_by_components),
    ("causal_trace", _trace_resid_post_of_previous),
    ("causal_trace", _trace_with_hooks_context),
    ("decode_residual", _decode_by_hand),
    ("decode_residual", _decode_with_unembed),
    ("logit_lens", _lens_loop),
    ("logit_lens", _lens_from_resid_post),
    ("logit_lens", _lens_transformer_lens),
    ("logit_lens", _lens_whole_prompt_then_index),
    ("answer_rank_per_layer", _rank_argsort_twice),
    ("answer_rank_per_layer", _rank_loop_on_probs),
    ("answer_rank_per_layer", _rank_nonzero),
    ("answer_prob_per_layer", _prob_exp_logsoftmax_double),
    ("answer_prob_per_layer", _prob_loop),
    ("reciprocal_rank_per_layer", _rr_argsort_double),
    ("top_k_per_layer", _topk_argsort_decode),
    ("top_k_per_layer", _topk_tuples),
    ("logits_without_mlp", _without_mlp_by_components),
    ("mlp_removal_effect", _effect_loop),
    ("kl_to_final", _kl_with_f_kl_div),
    ("kl_to_final", _kl_loop_double),
    ("fit_affine_translator", _fit_normal_equations),
    ("fit_affine_translator", _fit_centred),
    ("fit_affine_translator", _fit_pinv_float32),
]


@pytest.mark.parametrize("name, alternative", ALTERNATIVES, ids=[f"{a[0]}-{a[1].__name__}" for a in ALTERNATIVES])
def test_alternative_is_accepted(name, alternative):
    result = run_check(name, alternative)
    assert result, result.message
