"""Chapter 03 checks: the references are right, wrong labels are named, and the checks accept correct
alternatives (TransformerLens's own helpers, einsum, loops, float64). ``tests/test_chapter_checks.py``
proves that each known mistake is rejected by name."""

import pytest
import torch

from course_utils.chapters import solution_module
from course_utils.checks import residual_stream as checks

SOLUTION = solution_module("03_residual_stream")


def _mistake(exercise: str, phrase: str):
    """The known mistake of ``exercise`` whose diagnosis contains ``phrase``."""
    return next(fn for diagnosis, fn in checks.KNOWN_MISTAKES[exercise].items() if phrase in diagnosis)


# --- the reference itself is right --------------------------------------------------------
def test_decomposition_sums_to_the_residual_stream():
    model, cache, _, _ = checks.ioi_inputs()
    for layer in range(model.cfg.n_layers):
        stack, labels = SOLUTION.decompose_by_hand(cache, layer, -1)
        assert labels[-2:] == [f"{layer}_attn_out", f"{layer}_mlp_out"]
        torch.testing.assert_close(stack.sum(0), cache["resid_post", layer][0, -1], atol=1e-4, rtol=0)
        torch.testing.assert_close(stack[:-2].sum(0), cache["resid_pre", layer][0, -1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("fn", ["direct_logit_attribution", "head_logit_attribution"])
def test_attributions_sum_to_the_logit(fn):
    model, cache, io, s = checks.ioi_inputs()
    logits, _ = checks.run(checks.ioi_prompt().text)
    for token in (io, s):
        values, labels = getattr(SOLUTION, fn)(model, cache, token)
        assert len(values) == len(labels) and labels[-2:] == ["ln_final.b", "b_U"]
        assert abs(values.sum().item() - logits[0, -1, token].item()) <= 1e-3
    model, fcache, ftoken, fpos = checks.fact_inputs()
    flogits, _ = checks.run(checks.facts.few_shot_prompt("capital", checks.FACT_SUBJECT).text)
    values, _ = getattr(SOLUTION, fn)(model, fcache, ftoken, fpos)
    assert abs(values.sum().item() - flogits[0, fpos, ftoken].item()) <= 1e-3
    rmodel, rcache, rtoken = checks.random_inputs()
    values, labels = getattr(SOLUTION, fn)(rmodel, rcache, rtoken)
    assert abs(values.sum().item() - rcache["unembed.hook_out"][0, -1, rtoken].item()) <= 1e-3
    assert values[labels.index("b_U")].abs() > 1e-3  # the random model's b_U is not zero


def test_ignoring_the_scale_breaks_the_sum():
    model, cache, io, _ = checks.ioi_inputs()
    logits, _ = checks.run(checks.ioi_prompt().text)
    wrong, _ = _mistake("direct_logit_attribution", "divide by the final")(model, cache, io)
    assert abs(wrong.sum().item() - logits[0, -1, io].item()) > 1e-2


def test_heads_plus_b_O_make_each_attention_output():
    model, cache, io, _ = checks.ioi_inputs()
    values, labels = SOLUTION.head_logit_attribution(model, cache, io)
    per_layer, _ = SOLUTION.direct_logit_attribution(model, cache, io)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    heads = values[: n_layers * n_heads].reshape(n_layers, n_heads).sum(1)
    attn = per_layer[2:-2:2]  # the {l}_attn_out rows
    torch.testing.assert_close(heads.sum() + values[labels.index("b_O")], attn.sum(), atol=1e-4, rtol=0)


# --- the classic mistakes ----------------------------------------------------------------------
def test_the_issue_mistakes_are_all_covered():
    """LN scale ignored, LN per component, wrong position, b_U double-counted (both attribution checks)."""
    for exercise in ("direct_logit_attribution", "head_logit_attribution"):
        text = " ".join(checks.KNOWN_MISTAKES[exercise])
        for phrase in (
            "divide by the final LayerNorm's scale",
            "each component separately",
            "own scale",
            "position -1 instead of `pos`",
            "unembedding bias counted more than once",
        ):
            assert phrase in text


def test_wrong_labels_are_named():
    model, cache, io, _ = checks.ioi_inputs()

    def renamed(model, cache, answer_token, pos=-1):
        values, labels = SOLUTION.direct_logit_attribution(model, cache, answer_token, pos)
        return values, ["embedding"] + labels[1:]

    def without_constants(model, cache, answer_token, pos=-1):
        values, labels = SOLUTION.direct_logit_attribution(model, cache, answer_token, pos)
        return values[:-2], labels[:-2]

    message = checks.test_direct_logit_attribution(renamed).message
    assert "label 0 is 'embedding' but expected 'embed'" in message
    message = checks.test_direct_logit_attribution(without_constants).message
    assert "labels but expected" in message and "b_U" in message
    message = checks.test_direct_logit_attribution(
        lambda *a, **k: SOLUTION.direct_logit_attribution(*a, **k)[0]
    ).message
    assert "expected a tuple (values, labels)" in message


# --- correct alternatives are accepted ----------------------------------------------------------
def decompose_with_transformer_lens(cache, layer, pos):
    stack, labels = cache.decompose_resid(layer=layer + 1, pos_slice=pos, return_labels=True)
    return stack[:, 0], labels


def decompose_float64(cache, layer, pos):
    stack, labels = SOLUTION.decompose_by_hand(cache, layer, pos)
    return stack.double(), labels


def dla_with_transformer_lens(model, cache, answer_token, pos=-1):
    stack, labels = cache.decompose_resid(pos_slice=pos, return_labels=True)  # [component, 1, d_model]
    normalised = cache.apply_ln_to_stack(stack, pos_slice=pos)[:, 0]  # centred and divided by the frozen scale
    direction = model.ln_final.w * model.W_U[:, answer_token]
    values = torch.einsum("cd,d->c", normalised, direction)
    constants = torch.stack([torch.dot(model.ln_final.b, model.W_U[:, answer_token]), model.b_U[answer_token]])
    return torch.cat([values, constants]), labels + ["ln_final.b", "b_U"]


def dla_loop_float64(model, cache, answer_token, pos=-1):
    pos = pos % cache["hook_embed"].shape[1]
    scale = cache["ln_final.hook_scale"][0, pos, 0].double()
    direction = (model.ln_final.w * model.W_U[:, answer_token]).double()
    parts = [("embed", "hook_embed"), ("pos_embed", "hook_pos_embed")] + [
        (f"{l}_{kind}_out", f"blocks.{l}.hook_{kind}_out")
        for l in range(model.cfg.n_layers)
        for kind in ("attn", "mlp")
    ]
    values, labels = [], []
    for label, hook_name in parts:
        x = cache[hook_name][0, pos].double()
        values.append(((x - x.mean()) / scale * direction).sum())
        labels.append(label)
    values += [
        (model.ln_final.b.double() * model.W_U[:, answer_token].double()).sum(),
        model.b_U[answer_token].double(),
    ]
    return torch.stack(values), labels + ["ln_final.b", "b_U"]


def heads_with_transformer_lens(model, cache, answer_token, pos=-1):
    stack, labels = cache.get_full_resid_decomposition(
        expand_neurons=False, apply_ln=True, pos_slice=pos, return_labels=True
    )
    values = stack[:, 0] @ (model.ln_final.w * model.W_U[:, answer_token])
    constants = torch.stack([model.ln_final.b @ model.W_U[:, answer_token], model.b_U[answer_token]])
    labels = ["b_O" if label == "bias" else label for label in labels]
    return torch.cat([values, constants]), labels + ["ln_final.b", "b_U"]


def heads_loop(model, cache, answer_token, pos=-1):
    scale = cache["ln_final.hook_scale"][0, pos]
    w_u = model.W_U[:, answer_token]

    def attribute(x):
        return ((x - x.mean()) / scale * model.ln_final.w * w_u).sum()

    values, labels = [], []
    for l in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            values.append(attribute(cache["z", l][0, pos, h] @ model.W_O[l, h]))
            labels.append(f"L{l}H{h}")
    for l in range(model.cfg.n_layers):
        values.append(attribute(cache["mlp_out", l][0, pos]))
        labels.append(f"{l}_mlp_out")
    for name, x in (
        ("embed", cache["hook_embed"][0, pos]),
        ("pos_embed", cache["hook_pos_embed"][0, pos]),
        ("b_O", model.b_O.sum(0)),
    ):
        values.append(attribute(x))
        labels.append(name)
    values += [model.ln_final.b @ w_u, model.b_U[answer_token]]
    return torch.stack(values), labels + ["ln_final.b", "b_U"]


ALTERNATIVES = [
    ("decompose_by_hand", decompose_with_transformer_lens),
    ("decompose_by_hand", decompose_float64),
    ("direct_logit_attribution", dla_with_transformer_lens),
    ("direct_logit_attribution", dla_loop_float64),
    ("head_logit_attribution", heads_with_transformer_lens),
    ("head_logit_attribution", heads_loop),
]


@pytest.mark.parametrize("name, variant", ALTERNATIVES, ids=[v.__name__ for _, v in ALTERNATIVES])
def test_check_accepts_a_correct_alternative(name, variant):
    result = getattr(checks, f"test_{name}")(variant)
    assert result, result.message


# --- check your understanding -------------------------------------------------------------------
ANSWERS = {
    "answer_unscaled_sum_is_times": (["scale", " Scale "], ["1/scale", "d_model", 2.0]),
    "answer_prompt_independent_rows": (
        [{"ln_final.b", "b_U"}, ["b_U", "ln_final.b"]],
        [{"b_U"}, {"b_O", "b_U", "ln_final.b"}],
    ),
    "answer_scaling_changes_rank": ([False], [True, "no", 0]),
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_answer_checks_accept_variants_and_reject_wrong_answers(name):
    right, wrong = ANSWERS[name]
    check = getattr(checks, f"test_{name}")
    for answer in right:
        assert check(answer), answer
    for answer in wrong:
        assert not check(answer), answer


def test_top_ioi_head_answer():
    right = checks.top_ioi_head()
    assert right in checks.accepted_top_heads()
    assert checks.test_answer_top_ioi_head(right.lower())
    diff = checks.mean_head_logit_diff()
    layer, head = divmod(int(diff.argmin()), diff.shape[1])
    assert not checks.test_answer_top_ioi_head(f"L{layer}H{head}")


# --- reading an attribution tensor ------------------------------------------------------------
def test_reading_checks_accept_divmod_and_sorted():
    def by_divmod(attrs, labels):
        rest, pos = divmod(int(attrs.argmax()), attrs.shape[2])
        component, batch = divmod(rest, attrs.shape[1])
        return labels[component], batch, pos

    def by_sorted(attrs, labels):
        totals = attrs.double().sum(-1).sum(-1).tolist()
        return [label for _, label in sorted(zip(totals, labels), reverse=True)]

    assert checks.test_top_attribution(by_divmod)
    assert checks.test_rank_components(by_sorted)


def test_the_notebooks_first_attempt_is_the_flat_modulo_mistake():
    attrs, labels = checks.per_position_attribution()
    flat_modulo = _mistake("top_attribution", "FASTEST-moving index")
    assert flat_modulo(attrs, labels) != SOLUTION.top_attribution(attrs, labels)
