"""Chapter 01 (hooks basics): the references agree with the library, the checks recognise the classic
mistakes however a learner writes them, reject those they find by other means (masks, in-place edits,
hooks left attached, shapes) and accept correct alternatives. ``tests/test_chapter_checks.py`` proves
that each known mistake is rejected by name."""

import functools
import json
import math

import pytest
import torch

from check_helpers import rejected
from course_utils.chapters import CHAPTERS, solution_module
from course_utils.checks import hooks_basics as checks

S = solution_module("01_hooks_basics")


@pytest.fixture(scope="module")
def model():
    return checks.check_model()


# ----------------------------------------------------------------- the references agree with the library


def test_reference_recomputations_match_the_models_cache(model):
    cache = checks.batch_cache()
    for layer in range(model.cfg.n_layers):
        q, k, v, z = (cache[name, layer] for name in ("q", "k", "v", "z"))
        pattern = S.attention_pattern(q, k)
        torch.testing.assert_close(pattern, cache["pattern", layer], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(S.attention_scores(q, k).softmax(-1), cache["pattern", layer], atol=1e-5, rtol=1e-5)
        for head, pos in [(0, 0), (model.cfg.n_heads - 1, -1), (1, 5)]:
            torch.testing.assert_close(S.head_z(pattern, v, head, pos), z[:, pos, head], atol=1e-5, rtol=1e-5)
        out = S.attn_out_from_z(z, model.W_O[layer], model.b_O[layer])
        torch.testing.assert_close(out, cache["attn_out", layer], atol=1e-4, rtol=1e-4)


def test_reference_loss_and_counts_agree_with_a_direct_computation(model):
    tokens = model.to_tokens(checks.CODE_TEXT)
    logits = model(tokens)
    n_correct, n_total = S.count_correct_predictions(model, checks.CODE_TEXT)
    assert n_total == tokens.shape[1] - 1 and 0 <= n_correct <= n_total
    assert n_correct == sum(int(logits[0, i].argmax()) == int(tokens[0, i + 1]) for i in range(n_total))
    clean = torch.nn.functional.cross_entropy(logits[0, :-1], tokens[0, 1:]).item()
    assert math.isclose(model(tokens, return_type="loss").item(), clean, rel_tol=1e-5)

    # ablating a head through its values (z = pattern @ v) gives the same loss as through z
    def zero_v(v, hook):
        v[:, :, 2] = 0.0

    via_v = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[("blocks.1.attn.hook_v", zero_v)]).item()
    assert math.isclose(S.head_ablation_loss(model, tokens, 1, 2), via_v, rel_tol=1e-5)
    assert not model.list_hooks()


def test_previous_token_reference_matches_the_cache(model):
    cache = checks.batch_cache()
    table = S.previous_token_attention(model, checks.batch_tokens())
    for layer in range(model.cfg.n_layers):
        pattern = cache["pattern", layer]
        for head in range(model.cfg.n_heads):
            expected = torch.stack([pattern[:, head, q, q - 1] for q in range(1, pattern.shape[-1])]).mean()
            assert math.isclose(table[layer, head].item(), expected.item(), rel_tol=1e-5, abs_tol=1e-6)


# ----------------------------------------------------------------- count_correct_predictions


def test_counts_reject_bos_counted_as_a_prediction():
    def counts_bos(model, text):
        tokens = model.to_tokens(text)
        predictions = model(tokens)[0, :-1].argmax(-1)
        return int((predictions == tokens[0, 1:]).sum()), tokens.shape[1]  # BOS counted

    rejected(checks.test_count_correct_predictions(counts_bos), "n_total is", "is BOS counted?")


@pytest.mark.parametrize(
    "compare, phrase",
    [
        (lambda p, t: p[:-1] == t[:-1], "the logits at position i predict token i + 1"),
        (lambda p, t: p[1:] == t[1:], "the logits at position i predict token i + 1"),
        (lambda p, t: p[1:] == t[:-1], "shifted the wrong way"),
    ],
)
def test_counts_reject_off_by_one(compare, phrase):
    def off_by_one(model, text):
        tokens = model.to_tokens(text)
        predictions = model(tokens)[0].argmax(-1)
        return int(compare(predictions, tokens[0]).sum()), tokens.shape[1] - 1

    rejected(checks.test_count_correct_predictions(off_by_one), "n_correct is", phrase)


def test_counts_reject_missing_bos():
    def no_bos(model, text):
        tokens = model.to_tokens(text, prepend_bos=False)
        predictions = model(tokens)[0, :-1].argmax(-1)
        return int((predictions == tokens[0, 1:]).sum()), tokens.shape[1] - 1

    rejected(checks.test_count_correct_predictions(no_bos), "Keep the default BOS")


def test_counts_reject_a_tensor_instead_of_a_tuple():
    def as_tensor(model, text):
        return torch.tensor(S.count_correct_predictions(model, text))

    rejected(checks.test_count_correct_predictions(as_tensor), "expected a tuple (n_correct, n_total)")


def test_counts_accept_a_loop_and_tensor_numbers():
    def loop(model, text):
        tokens = model.to_tokens(text)[0]
        logits = model(tokens[None])[0]
        correct = 0
        for i in range(1, len(tokens)):
            correct += int(logits[i - 1].argmax() == tokens[i])
        return torch.tensor(correct), torch.tensor(len(tokens) - 1)

    def via_str_tokens(model, text):
        logits, tokens = model(text), model.to_tokens(text)
        right = logits.argmax(-1)[:, :-1] == tokens[:, 1:]
        return right.sum().item(), len(model.to_str_tokens(text)) - 1

    assert checks.test_count_correct_predictions(loop)
    assert checks.test_count_correct_predictions(via_str_tokens)


# ----------------------------------------------------------------- attention_scores


@pytest.mark.parametrize(
    "fill, phrases",
    [(None, ["must be masked (-inf)"]), (0.0, ["is 0, but key", "must be masked (-inf)"])],
    ids=["no_mask", "masked_with_0"],
)
def test_scores_reject_future_keys_left_unmasked(fill, phrases):
    def wrong(q, k):
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
        if fill is None:
            return scores
        n = scores.shape[-1]
        return scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), fill)

    rejected(checks.test_attention_scores(wrong), *phrases)


def test_scores_reject_scaling_the_cached_q_in_place():
    def in_place(q, k):
        q /= q.shape[-1] ** 0.5  # writes into the cached activation
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k)
        n = scores.shape[-1]
        return scores.masked_fill(torch.ones(n, n).triu(1).bool(), float("-inf"))

    rejected(checks.test_attention_scores(in_place), "modified its input (argument 1) in place")
    # the cached inputs were copies: the next check still sees clean activations
    assert checks.test_attention_scores(S.attention_scores)


def test_scores_accept_loops_large_negative_masks_and_float64():
    def loop(q, k):
        batch, n_pos, n_heads, d_head = q.shape
        out = torch.empty(batch, n_heads, n_pos, n_pos, dtype=q.dtype)
        for h in range(n_heads):
            for i in range(n_pos):
                out[:, h, i] = (q[:, i, None, h] * k[:, :, h]).sum(-1) / math.sqrt(d_head)
                out[:, h, i, i + 1 :] = -1e9
        return out

    def matmul_float64(q, k):
        qh, kh = q.double().permute(0, 2, 1, 3), k.double().permute(0, 2, 1, 3)
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(q.shape[-1])
        mask = torch.tril(torch.ones_like(scores[0, 0])).bool()
        return torch.where(mask, scores, torch.finfo(torch.float64).min)

    assert checks.test_attention_scores(loop)
    assert checks.test_attention_scores(matmul_float64)


# ----------------------------------------------------------------- attention_pattern


def test_pattern_rejects_a_mask_written_into_the_cached_k():
    def in_place(q, k):
        k.mul_(1 / math.sqrt(k.shape[-1]))
        return S.attention_pattern(q, k * math.sqrt(k.shape[-1]))

    rejected(checks.test_attention_pattern(in_place), "modified its input (argument 2) in place")


def test_pattern_accepts_reuse_of_scores_and_float64():
    def via_scores(q, k):
        return torch.softmax(S.attention_scores(q.double(), k.double()), dim=-1)

    def manual_softmax(q, k):
        scores = torch.einsum("bihd,bjhd->bhij", q, k) / q.shape[-1] ** 0.5
        n = scores.shape[-1]
        keep = torch.tril(torch.ones(n, n, dtype=torch.bool))
        e = torch.exp(scores - scores.max(-1, keepdim=True).values) * keep
        return e / e.sum(-1, keepdim=True)

    assert checks.test_attention_pattern(via_scores)
    assert checks.test_attention_pattern(manual_softmax)


# ----------------------------------------------------------------- head_z


def test_head_z_rejects_writing_into_the_cached_pattern():
    def in_place(pattern, v, head, pos):
        weights = pattern[:, head, pos]  # a view into the cached pattern
        weights /= weights.sum(-1, keepdim=True) + 1.0  # so this writes into the cache
        return torch.einsum("bk,bkd->bd", weights, v[:, :, head])

    rejected(checks.test_head_z(in_place), "modified its input (argument 1) in place")


def test_head_z_accepts_a_loop_and_a_matmul():
    def loop(pattern, v, head, pos):
        out = torch.zeros(v.shape[0], v.shape[-1])
        for key in range(pattern.shape[-1]):
            out += pattern[:, head, pos, key, None] * v[:, key, head]
        return out

    def matmul(pattern, v, head, pos):
        return (pattern[:, head] @ v[:, :, head])[:, pos]

    assert checks.test_head_z(loop)
    assert checks.test_head_z(matmul)


# ----------------------------------------------------------------- attn_out_from_z


def test_attn_out_accepts_a_loop_over_heads_and_a_flattened_matmul():
    def loop(z, W_O, b_O):
        out = b_O.expand(z.shape[0], z.shape[1], -1).clone()
        for h in range(z.shape[2]):
            out = out + z[:, :, h] @ W_O[h]
        return out

    def flattened(z, W_O, b_O):
        return z.flatten(-2) @ W_O.flatten(0, 1) + b_O

    assert checks.test_attn_out_from_z(loop)
    assert checks.test_attn_out_from_z(flattened)


def test_attn_out_rejects_writing_into_the_cached_z():
    def in_place(z, W_O, b_O):
        z[:, :, 0] *= 2.0
        return S.attn_out_from_z(z, W_O, b_O)

    rejected(checks.test_attn_out_from_z(in_place), "modified its input (argument 1) in place")


# ----------------------------------------------------------------- previous_token_attention


def test_previous_token_rejects_a_hook_left_attached(model):
    def leaves_hook(model, tokens):
        store = {}

        def record(pattern, hook):
            store[hook.layer()] = pattern.diagonal(-1, -2, -1).mean(dim=(0, 2))

        for layer in range(model.cfg.n_layers):
            model.add_hook(f"blocks.{layer}.attn.hook_pattern", record)
        model(tokens)
        return torch.stack([store[layer] for layer in range(model.cfg.n_layers)])

    rejected(checks.test_previous_token_attention(leaves_hook), "left a hook attached to blocks.0.attn.hook_pattern")
    assert not model.list_hooks(), "the harness must remove the leftover hook"


def test_previous_token_accepts_a_cache_and_a_context_manager():
    def from_cache(model, tokens):
        _, cache = model.run_with_cache(tokens)
        rows = []
        for layer in range(model.cfg.n_layers):
            pattern = cache["pattern", layer]
            n = pattern.shape[-1]
            rows.append(pattern[:, :, torch.arange(1, n), torch.arange(0, n - 1)].mean(dim=(0, 2)))
        return torch.stack(rows).double()

    def with_context(model, tokens):
        out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)

        def record(pattern, hook, out):
            for q in range(1, pattern.shape[-1]):
                out[hook.layer()] += pattern[:, :, q, q - 1].mean(0) / (pattern.shape[-1] - 1)

        names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
        with model.hooks(fwd_hooks=[(n, functools.partial(record, out=out)) for n in names]):
            model(tokens)
        return out

    assert checks.test_previous_token_attention(from_cache)
    assert checks.test_previous_token_attention(with_context)


# ----------------------------------------------------------------- head_ablation_loss


def test_ablation_rejects_add_hook_without_removal(model):
    def leaves_hook(model, tokens, layer, head):
        def zero(z, hook):
            z[:, :, head] = 0.0

        model.add_hook(f"blocks.{layer}.attn.hook_z", zero)
        return model(tokens, return_type="loss").item()

    rejected(checks.test_head_ablation_loss(leaves_hook), "left a hook attached to blocks.0.attn")
    assert not model.list_hooks(), "the harness must remove the leftover hook"
    # and the next check is not polluted by it
    assert checks.test_head_ablation_loss(S.head_ablation_loss)


def test_ablation_accepts_other_hook_points_and_the_context_manager():
    def via_pattern(model, tokens, layer, head):
        def zero(pattern, hook):
            return torch.where(torch.arange(pattern.shape[1])[None, :, None, None] == head, 0.0, pattern)

        return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", zero)])

    def via_context(model, tokens, layer, head):
        def zero(v, hook):
            v = v.clone()
            v[:, :, head] = 0.0
            return v

        with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_v", zero)]):
            logits = model(tokens)
        return (
            torch.nn.functional.cross_entropy(logits[0, :-1], tokens[0, 1:]).item()
            if tokens.shape[0] == 1
            else (torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item())
        )

    assert checks.test_head_ablation_loss(via_pattern)
    assert checks.test_head_ablation_loss(via_context)


# ----------------------------------------------------------------- answer_rank_and_prob


def test_rank_and_prob_accepts_sorting_log_probs_and_a_list():
    def by_sorting(model, prompt, answer):
        a = model.to_single_token(answer)
        log_probs = model(model.to_tokens(prompt))[0].log_softmax(-1).double()
        order = log_probs.argsort(dim=-1, descending=True)
        ranks = (order == a).nonzero()[:, 1]
        return ranks, log_probs[:, a].exp()

    assert checks.test_answer_rank_and_prob(by_sorting)


def test_rank_and_prob_rejects_the_last_position_only():
    rejected(
        checks.test_answer_rank_and_prob(lambda m, p, a: tuple(x[-1:] for x in S.answer_rank_and_prob(m, p, a))),
        "shape",
    )


def test_rank_and_prob_reference_agrees_with_the_loss(model):
    """At the last position of a prompt extended by the answer, -log P(answer) is the per-token loss."""
    ranks, probs = S.answer_rank_and_prob(model, checks.PROMPT, checks.ANSWER)
    tokens = model.to_tokens(checks.PROMPT + checks.ANSWER)
    loss = model(tokens, return_type="loss", loss_per_token=True)[0, -1]
    assert math.isclose(-math.log(probs[-1].item()), loss.item(), rel_tol=1e-4)


# ----------------------------------------------------------------- top_neurons


def test_top_neurons_accepts_sorting_and_a_gelu_of_hook_pre():
    def by_sorting(model, tokens, layer, pos, k=5):
        _, cache = model.run_with_cache(tokens)
        acts = cache[f"blocks.{layer}.mlp.hook_post"][0, pos]
        order = acts.argsort(descending=True)[:k]
        return order, acts[order].double()

    def from_hook_pre(model, tokens, layer, pos, k=5):
        _, cache = model.run_with_cache(tokens)
        acts = torch.nn.functional.gelu(cache[f"blocks.{layer}.mlp.hook_pre"][0, pos])
        top = acts.topk(k)
        return top.indices, top.values

    assert checks.test_top_neurons(by_sorting)
    assert checks.test_top_neurons(from_hook_pre)


def test_mlp_neurons_are_wider_than_the_residual_stream():
    model = checks.mlp_check_model()
    _, cache = model.run_with_cache(checks.mlp_tokens())
    assert cache["blocks.0.mlp.hook_post"].shape[-1] == model.cfg.d_mlp != model.cfg.d_model
    assert cache["blocks.0.hook_mlp_out"].shape[-1] == model.cfg.d_model


# ----------------------------------------------------------------- answers and the notebook


def test_answers_pass_and_wrong_answers_fail():
    assert checks.test_answer_hook_returns_none(S.answer_hook_returns_none)
    assert checks.test_answer_n_loss_positions(S.answer_n_loss_positions)
    assert checks.test_answer_most_important_head(S.answer_most_important_head)
    assert checks.test_answer_pattern_after_z_ablation(S.answer_pattern_after_z_ablation)
    assert not checks.test_answer_pattern_after_z_ablation("a")
    assert not checks.test_answer_hook_returns_none("a")
    assert (
        "'b'" not in checks.test_answer_hook_returns_none("c").message
    )  # the hint makes one think, it does not answer
    assert not checks.test_answer_n_loss_positions(25)
    layer, head = S.answer_most_important_head
    assert not checks.test_answer_most_important_head((layer, (head + 1) % checks.check_model().cfg.n_heads))
    assert checks.test_answer_most_important_head([layer, head])
    assert checks.test_answer_hook_returns_none(...).status == "not attempted"


def test_answers_match_what_the_model_does(model):
    # Q3 is read from the ablation table; a retrained model can change it (then update the solution)
    table = checks.ablation_loss_increase()
    assert divmod(int(table.argmax()), table.shape[1]) == tuple(S.answer_most_important_head)
    # Q4: zeroing a head's z in a cached run leaves that head's pattern as in the clean run
    tokens = model.to_tokens(checks.CODE_TEXT)
    _, clean = model.run_with_cache(tokens)
    with model.hooks(fwd_hooks=[("blocks.0.attn.hook_z", functools.partial(_zero_head, head=2))]):
        _, ablated = model.run_with_cache(tokens)
    assert torch.equal(ablated["pattern", 0], clean["pattern", 0])
    assert (ablated["z", 0][:, :, 2] == 0).all() and not torch.equal(ablated["pattern", 1], clean["pattern", 1])


def test_batched_ablation_table_equals_one_run_per_head(model):
    tokens = model.to_tokens(checks.CODE_TEXT)
    clean = model(tokens, return_type="loss").item()
    expected = torch.tensor(
        [
            [S.head_ablation_loss(model, tokens, layer, head) - clean for head in range(model.cfg.n_heads)]
            for layer in range(model.cfg.n_layers)
        ]
    )
    torch.testing.assert_close(checks.ablation_loss_increase(), expected, atol=1e-5, rtol=1e-4)


def _zero_head(z, hook, head):
    z[:, :, head] = 0.0


def test_notebook_uses_the_checks_text_and_the_course_model():
    source = "\n".join(cell.source for cell in CHAPTERS["01_hooks_basics"].source().cells)
    assert f"CODE_TEXT = '''{checks.CODE_TEXT}'''" in source
    assert 'MODEL_NAME = "attn-only-2l"' in source
    assert f"PROMPT, ANSWER = {json.dumps(checks.PROMPT)}, {json.dumps(checks.ANSWER)}" in source
