"""Chapter 05 (induction circuits): the references agree with the library, the checks reject the
mistakes they find by other means (structure, seeding, shapes, hooks left behind, mistakes written
otherwise than the known ones) and accept correct alternatives. ``tests/test_chapter_checks.py``
proves that each known mistake is rejected by name."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformer_lens import FactoredMatrix

from check_helpers import rejected
from course_utils.chapters import CHAPTERS, solution_module
from course_utils.checks import induction_circuits as checks
from course_utils.tasks.repeated import repeated_tokens
from course_utils.zoo.evaluate import induction_scores

S = solution_module("05_induction_circuits")


@pytest.fixture(scope="module", autouse=True)
def _no_grad():
    """No autograd in this module's checks."""
    grad = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    yield
    torch.set_grad_enabled(grad)


def _mistake(exercise: str, phrase: str):
    """The known mistake of ``exercise`` whose diagnosis contains ``phrase``."""
    return next(fn for diagnosis, fn in checks.KNOWN_MISTAKES[exercise].items() if phrase in diagnosis)


@pytest.fixture(scope="module")
def model():
    return checks.check_model()


@pytest.fixture(scope="module")
def folded():
    return checks.folded_model()


# ----------------------------------------------------------------- the course model and the references


def test_reference_induction_score_matches_the_zoo_evaluation(model):
    tokens = repeated_tokens(32, 50, model.cfg.d_vocab, model.tokenizer.bos_token_id, seed=0)
    torch.testing.assert_close(
        S.induction_score(model, tokens), induction_scores(model).induction, atol=1e-5, rtol=1e-5
    )
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())


def test_reference_repeated_tokens_match_the_task_helper(model):
    ours = S.generate_repeated_tokens(model, 17, 3, seed=4)
    theirs = repeated_tokens(3, 17, model.cfg.d_vocab, model.tokenizer.bos_token_id, seed=4)
    assert torch.equal(ours, theirs)


def test_reference_loss_matches_the_model_loss(model):
    tokens = checks.rep_tokens()
    logits = model(tokens)
    torch.testing.assert_close(S.per_token_loss(logits, tokens), model(tokens, return_type="loss", loss_per_token=True))


def test_reference_logit_attribution_sums_to_the_logits(model):
    """Head attributions + embeddings + biases, through the frozen final LayerNorm, are the logits exactly."""
    tokens = checks.rep_tokens()
    logits, cache = checks.run("repeated")
    heads = S.head_logit_attribution(model, cache, tokens).sum(dim=(-2, -1))
    rest = cache["hook_embed"] + cache["hook_pos_embed"] + model.b_O.sum(0)
    rest = (rest - rest.mean(-1, keepdim=True))[:, :-1] / cache["ln_final.hook_scale"][:, :-1]
    directions = (model.ln_final.w[:, None] * model.W_U)[:, tokens[:, 1:]]
    rest = torch.einsum("bpm,mbp->bp", rest, directions)
    constant = (model.ln_final.b @ model.W_U + model.b_U)[tokens[:, 1:]]
    correct = logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    torch.testing.assert_close(heads + rest + constant, correct, atol=1e-3, rtol=1e-4)


def test_reference_top_1_acc_matches_the_whole_matrix(folded):
    circuit = checks.sub_vocab_ov(*checks.best_heads()["induction"])
    whole = circuit.AB
    expected = (whole.argmax(-1) == torch.arange(whole.shape[0])).float().mean().item()
    for chunk in (1, 100, 512, 5000):
        assert math.isclose(S.top_1_acc(circuit, chunk), expected)


@pytest.mark.parametrize(
    "kind, reader",
    [
        ("Q", lambda m, j: m.QK[1, j].AB),
        ("K", lambda m, j: m.QK[1, j].AB.T),
        ("V", lambda m, j: m.OV[1, j].AB),
    ],
)
def test_reference_composition_matches_the_loop(folded, kind, reader):
    loop = torch.tensor(
        [
            [S.get_comp_score(folded.OV[0, i].AB, reader(folded, j)) for j in range(folded.cfg.n_heads)]
            for i in range(folded.cfg.n_heads)
        ]
    )
    torch.testing.assert_close(S.composition_scores(folded, kind), loop, atol=1e-5, rtol=1e-4)


def test_reference_composition_rejects_an_unknown_kind(folded):
    with pytest.raises(ValueError, match="kind must be"):
        S.composition_scores(folded, "O")


def test_reference_qk_decomposition_adds_up_to_the_bilinear_score(folded):
    """The cells sum to the stripe's mean score computed from the queries and keys without their biases."""
    cache = checks.folded_run()
    n, head = checks.SEQ_LEN, checks.best_heads()["induction"][1]
    b_O = folded.b_O[0] / cache["blocks.1.ln1.hook_scale"]  # the one piece the decomposition leaves out
    q = cache["q", 1][:, :, head] - folded.b_Q[1, head] - b_O @ folded.W_Q[1, head]
    k = cache["k", 1][:, :, head] - folded.b_K[1, head] - b_O @ folded.W_K[1, head]
    stripe = (q[:, n + 1 :] * k[:, 2 : n + 2]).sum(-1).mean() / folded.cfg.d_head**0.5
    torch.testing.assert_close(S.induction_qk_decomposition(folded, cache, head).sum(), stripe, atol=1e-3, rtol=1e-4)


def test_reference_ablated_scores_remove_their_hooks_and_read_the_induction_stripe(model):
    """With the ablation switched off, the stripe read by the check's variant is the clean induction score."""
    tokens = checks.rep_tokens()
    S.ablated_induction_scores(model, tokens, 0)
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())
    clean = S.induction_score(model, tokens)[1]
    unablated = _mistake("ablated_induction_scores", "the ablation changed nothing")
    torch.testing.assert_close(unablated(model, tokens, 0), clean, atol=1e-5, rtol=1e-4)


def test_reference_effective_circuit_of_one_head_is_its_full_ov(folded):
    head = checks.best_heads()["induction"][1]
    one = S.effective_ov_circuit(folded, 1, [head])
    full = folded.W_E @ folded.OV[1, head] @ folded.W_U
    torch.testing.assert_close(one[:64].AB, full[:64].AB, atol=1e-3, rtol=1e-4)


def test_folding_keeps_the_outputs(model, folded):
    tokens = checks.code_tokens()
    torch.testing.assert_close(folded(tokens).log_softmax(-1), model(tokens).log_softmax(-1), atol=1e-4, rtol=1e-4)


def test_reference_ablation_hooks_are_removed(model):
    S.head_ablation_loss_increase(model, checks.rep_tokens(8, 1, 0), "mean")
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())


# ----------------------------------------------------------------- 1 · repeated tokens and loss


def _gen(kind):
    def wrong(model, seq_len, batch=1, seed=0):
        g = torch.Generator().manual_seed(seed)
        half = torch.randint(1, model.cfg.d_vocab, (batch, seq_len), generator=g)
        bos = torch.full((batch, 1), model.tokenizer.bos_token_id)
        if kind == "no_bos":
            return torch.cat([half, half], 1)
        if kind == "interleave":
            return torch.cat([bos, half.repeat_interleave(2, dim=1)], 1)
        if kind == "same_rows":
            return torch.cat([bos, half[:1].expand(batch, -1), half[:1].expand(batch, -1)], 1)
        if kind == "unrepeated":
            other = torch.randint(1, model.cfg.d_vocab, (batch, seq_len), generator=g)
            return torch.cat([bos, half, other], 1)
        if kind == "bos_inside":
            half = torch.randint(
                0, model.cfg.d_vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed + 1000)
            )
            half[:, 0] = 0
            return torch.cat([bos, half, half], 1)
        if kind == "float":
            return torch.cat([bos, half, half], 1).float()
        if kind == "unseeded":
            half = torch.randint(1, model.cfg.d_vocab, (batch, seq_len))
            return torch.cat([bos, half, half], 1)
        if kind == "seed_ignored":
            half = torch.randint(1, model.cfg.d_vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0))
            return torch.cat([bos, half, half], 1)
        raise ValueError(kind)

    return wrong


@pytest.mark.parametrize(
    "kind, phrases",
    [
        ("no_bos", ["did you forget the BOS token"]),
        ("interleave", ["doubled in place", "repeat_interleave"]),
        ("same_rows", ["every row of the batch is the same sequence"]),
        ("unrepeated", ["second copy", "differs from the first copy"]),
        ("bos_inside", ["never BOS"]),
        ("float", ["integer token ids"]),
        ("unseeded", ["two calls with seed=0 gave different tokens"]),
        ("seed_ignored", ["seed=0 and seed=1 gave the same tokens"]),
    ],
)
def test_repeated_tokens_reject_classic_mistakes(kind, phrases):
    rejected(checks.test_generate_repeated_tokens(_gen(kind)), *phrases)


def test_repeated_tokens_accept_other_draws():
    def with_helper(model, seq_len, batch=1, seed=0):
        return repeated_tokens(batch, seq_len, model.cfg.d_vocab, model.tokenizer.bos_token_id, seed=seed)

    def with_repeat_and_torch_seed(model, seq_len, batch=1, seed=0):
        torch.manual_seed(seed)
        block = torch.randint(1, model.cfg.d_vocab, (batch, seq_len))
        return torch.cat([torch.zeros(batch, 1, dtype=torch.long), block.repeat(1, 2)], dim=1)

    def with_numpy(model, seq_len, batch=1, seed=0):
        import numpy as np

        block = np.random.default_rng(seed).integers(1, model.cfg.d_vocab, size=(batch, seq_len))
        return torch.tensor(np.concatenate([np.zeros((batch, 1), dtype=np.int64), block, block], axis=1))

    for fn in (with_helper, with_repeat_and_torch_seed, with_numpy):
        assert checks.test_generate_repeated_tokens(fn), fn.__name__


def test_loss_accepts_cross_entropy_and_float64():
    def with_cross_entropy(logits, tokens):
        return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")

    def in_float64(logits, tokens):
        return S.per_token_loss(logits.double(), tokens)

    def with_a_loop(logits, tokens):
        out = torch.zeros(tokens.shape[0], tokens.shape[1] - 1)
        for b in range(tokens.shape[0]):
            for p in range(tokens.shape[1] - 1):
                out[b, p] = -torch.log_softmax(logits[b, p], -1)[tokens[b, p + 1]]
        return out

    for fn in (with_cross_entropy, in_float64, with_a_loop):
        assert checks.test_per_token_loss(fn), fn.__name__


# ----------------------------------------------------------------- 2 · detectors


def test_detectors_reject_a_strict_threshold_and_an_ignored_threshold():
    def strict(cache, threshold=0.4):
        return {k: v for k, v in S.prev_attn_detector(cache, 0.0).items() if v > threshold or threshold == 0.0}

    def ignores_threshold(cache, threshold=0.4):
        return S.prev_attn_detector(cache, 0.0)

    rejected(checks.test_prev_attn_detector(ignores_threshold), "the threshold is ignored")
    # a strict ">" differs only on exact ties, which real scores never hit: accepted
    assert checks.test_prev_attn_detector(strict)


def test_detectors_accept_loops_and_tensor_scores():
    def prev_loop(cache, threshold=0.4):
        out = {}
        n_layers = cache.model.cfg.n_layers
        for layer in range(n_layers):
            pattern = cache["pattern", layer]
            batch, n_heads, T, _ = pattern.shape
            for head in range(n_heads):
                total = sum(pattern[b, head, q, q - 1].item() for b in range(batch) for q in range(1, T))
                score = total / (batch * (T - 1))
                if score >= threshold:
                    out[f"{layer}.{head}"] = score
        return out

    def current_tensor_values(cache, threshold=0.4):
        scores = {}
        layers = sorted({int(k.split(".")[1]) for k in cache.keys() if k.endswith("hook_pattern")})
        for layer in layers:
            pattern = cache[f"blocks.{layer}.attn.hook_pattern"].double()
            score = torch.einsum("bhqq->bhq", pattern)[..., 1:].mean((0, 2))
            for head in range(len(score)):
                if score[head] >= threshold:
                    scores[f"{layer}.{head}"] = score[head]
        return scores

    def first_with_mask(cache, threshold=0.4):
        out = {}
        for layer in range(cache.model.cfg.n_layers):
            pattern = cache["pattern", layer]
            score = pattern[:, :, :, 0].sum(-1).sub(1.0).div(pattern.shape[-1] - 1).mean(0)
            out.update({f"{layer}.{h}": s for h, s in enumerate(score.tolist()) if s >= threshold})
        return out

    assert checks.test_prev_attn_detector(prev_loop)
    assert checks.test_current_attn_detector(current_tensor_values)
    assert checks.test_first_attn_detector(first_with_mask)


# ----------------------------------------------------------------- 3 · induction score


def test_induction_score_rejects_a_hard_coded_length():
    def fixed(model, tokens):
        seq_len = checks.SEQ_LEN
        _, cache = model.run_with_cache(tokens)
        return torch.stack(
            [
                cache["pattern", l].diagonal(-(seq_len - 1), -2, -1)[..., -seq_len:].mean((0, 2))
                for l in range(model.cfg.n_layers)
            ]
        )

    rejected(checks.test_induction_score(fixed), "seq_len=12")


def test_induction_score_rejects_a_hook_left_behind():
    def leaves_hook(model, tokens):
        model.add_hook("blocks.0.attn.hook_pattern", lambda p, hook: None)
        return S.induction_score(model, tokens)

    rejected(checks.test_induction_score(leaves_hook), "left a hook attached")


def test_induction_score_accepts_a_cache_and_an_index_loop():
    def with_cache(model, tokens):
        seq_len = (tokens.shape[1] - 1) // 2
        _, cache = model.run_with_cache(tokens)
        q = torch.arange(seq_len + 1, 2 * seq_len + 1)
        return torch.stack(
            [cache["pattern", l][:, :, q, q - seq_len + 1].mean((0, 2)) for l in range(model.cfg.n_layers)]
        )

    def with_context_manager(model, tokens):
        seq_len = (tokens.shape[1] - 1) // 2
        out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.float64)

        def hook(pattern, hook):
            for q in range(seq_len + 1, 2 * seq_len + 1):
                out[hook.layer()] += pattern[:, :, q, q - seq_len + 1].double().mean(0) / seq_len

        with model.hooks(fwd_hooks=[(lambda name: name.endswith("hook_pattern"), hook)]):
            model(tokens)
        return out

    assert checks.test_induction_score(with_cache)
    assert checks.test_induction_score(with_context_manager)


# ----------------------------------------------------------------- 4 · attribution and ablation


def test_logit_attribution_accepts_apply_ln_to_stack_and_a_loop():
    def with_apply_ln(model, cache, tokens):
        stack = torch.stack(
            [torch.einsum("bphd,hdm->hbpm", cache["z", l], model.W_O[l]) for l in range(model.cfg.n_layers)]
        )
        n_layers, n_heads = stack.shape[:2]
        stack = stack.flatten(0, 1)  # component batch pos d_model
        scaled = cache.apply_ln_to_stack(stack, layer=None)  # centred and divided by the final scale
        directions = (model.ln_final.w[:, None] * model.W_U)[:, tokens[:, 1:]]
        out = torch.einsum("cbpm,mbp->bpc", scaled[:, :, :-1], directions)
        return out.reshape(*out.shape[:2], n_layers, n_heads)

    def with_loops(model, cache, tokens):
        batch, pos = tokens.shape
        out = torch.zeros(batch, pos - 1, model.cfg.n_layers, model.cfg.n_heads, dtype=torch.float64)
        for l in range(model.cfg.n_layers):
            for h in range(model.cfg.n_heads):
                head_out = (cache["z", l][:, :, h] @ model.W_O[l, h]).double()
                head_out = head_out - head_out.mean(-1, keepdim=True)
                head_out = head_out / cache["ln_final.hook_scale"].double()
                for b in range(batch):
                    cols = (model.ln_final.w[:, None] * model.W_U)[:, tokens[b, 1:]].double()
                    out[b, :, l, h] = (head_out[b, :-1] * cols.T).sum(-1)
        return out

    assert checks.test_head_logit_attribution(with_apply_ln)
    assert checks.test_head_logit_attribution(with_loops)


def test_ablation_rejects_ignoring_the_ablation_argument():
    rejected(
        checks.test_head_ablation_loss_increase(
            lambda m, t, ablation="zero": S.head_ablation_loss_increase(m, t, "zero")
        ),
        'ablation="mean"',
    )


def test_ablation_accepts_the_model_loss_and_a_context_manager():
    def with_model_loss(model, tokens, ablation="zero"):
        seq_len = (tokens.shape[1] - 1) // 2
        clean = model(tokens, return_type="loss", loss_per_token=True)[:, seq_len + 1 :].mean()
        means = {}

        def keep(z, hook):
            means[hook.layer()] = z.mean((0, 1))

        model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_z"), keep)])
        out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
        for layer in range(model.cfg.n_layers):
            for head in range(model.cfg.n_heads):

                def ablate(z, hook, head=head, layer=layer):
                    z = z.clone()
                    z[:, :, head] = 0 if ablation == "zero" else means[layer][head]
                    return z

                with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate)]):
                    loss = model(tokens, return_type="loss", loss_per_token=True)[:, seq_len + 1 :].mean()
                out[layer, head] = loss - clean
        return out

    assert checks.test_head_ablation_loss_increase(with_model_loss)


# ----------------------------------------------------------------- 5 · weights


def test_top_1_acc_accepts_the_whole_matrix_and_a_tensor_result():
    def whole(full_OV_circuit, chunk_size=512):
        AB = full_OV_circuit.AB
        return (AB.argmax(-1) == torch.arange(AB.shape[0])).double().mean().item()

    def tensor_result(full_OV_circuit, chunk_size=512):
        hits = torch.cat(
            [full_OV_circuit[i : i + chunk_size].AB.argmax(-1) for i in range(0, full_OV_circuit.shape[0], chunk_size)]
        )
        return (hits == torch.arange(len(hits))).float().mean()

    assert checks.test_top_1_acc(whole)
    assert checks.test_top_1_acc(tensor_result)


def test_pos_pattern_accepts_separate_q_k_and_a_finite_mask():
    def separate(model, layer, head, n_pos):
        W_pos = model.W_pos[:n_pos]
        q, k = W_pos @ model.W_Q[layer, head], W_pos @ model.W_K[layer, head]
        scores = (q @ k.T).double() / math.sqrt(model.cfg.d_head)
        scores = scores + torch.triu(torch.full((n_pos, n_pos), -1e9, dtype=torch.float64), diagonal=1)
        return torch.softmax(scores, dim=-1)

    assert checks.test_pos_attention_pattern(separate)


def test_comp_score_accepts_factored_matrices_float64_and_tensors():
    def factored(W_A, W_B):
        return (FactoredMatrix(W_A, W_B).norm() / (W_A.norm() * W_B.norm())).item()

    def float64_tensor(W_A, W_B):
        W_A, W_B = W_A.double(), W_B.double()
        return torch.linalg.matrix_norm(W_A @ W_B) / (torch.linalg.matrix_norm(W_A) * torch.linalg.matrix_norm(W_B))

    def by_squares(W_A, W_B):
        return math.sqrt((W_A @ W_B).pow(2).sum().item() / (W_A.pow(2).sum().item() * W_B.pow(2).sum().item()))

    for fn in (factored, float64_tensor, by_squares):
        assert checks.test_get_comp_score(fn), fn.__name__


def test_composition_rejects_a_kind_ignored():
    """K-composition whatever `kind` asks: wrong from the Q case on, where Q and K are mixed up."""
    rejected(checks.test_composition_scores(lambda m, kind: S.composition_scores(m, "K")), "Q and K are mixed up")


def test_composition_accepts_a_loop_einsum_and_factored_matrices():
    def reader(model, kind):
        return {"Q": model.QK[1].AB, "K": model.QK[1].AB.transpose(-1, -2), "V": model.OV[1].AB}[kind]

    def loop(model, kind):
        n, W_B = model.cfg.n_heads, reader(model, kind)
        return torch.tensor([[S.get_comp_score(model.OV[0, i].AB, W_B[j]) for j in range(n)] for i in range(n)])

    def with_einsum(model, kind):
        W_A, W_B = model.OV[0].AB.double(), reader(model, kind).double()
        prod = torch.einsum("iab,jbc->ijac", W_A, W_B)
        return prod.pow(2).sum((-2, -1)).sqrt() / torch.outer(
            W_A.pow(2).sum((-2, -1)).sqrt(), W_B.pow(2).sum((-2, -1)).sqrt()
        )

    def factored(model, kind):
        W_B = {"Q": model.QK[1], "K": model.QK[1].T, "V": model.OV[1]}[kind]
        products = model.OV[0].unsqueeze(1) @ W_B.unsqueeze(0)
        return products.norm() / (model.OV[0].norm()[:, None] * W_B.norm()[None, :])

    for fn in (loop, with_einsum, factored):
        assert checks.test_composition_scores(fn), fn.__name__


def test_ablated_induction_scores_reject_a_layer_1_head_ablated():
    """A layer-1 head's z cannot change layer 1's own pattern: the same scores as no ablation."""

    def ablates_layer_1(model, tokens, head):
        seq_len = (tokens.shape[1] - 1) // 2

        def ablate(z, hook):
            z[:, :, head] = 0.0
            return z

        with model.hooks(fwd_hooks=[("blocks.1.attn.hook_z", ablate)]):
            _, cache = model.run_with_cache(tokens)
        return cache["pattern", 1].diagonal(-(seq_len - 1), -2, -1)[..., -seq_len:].mean((0, 2))

    rejected(checks.test_ablated_induction_scores(ablates_layer_1), "the ablation changed nothing")


def test_ablated_induction_scores_accept_a_context_manager_and_a_cache():
    def with_cache(model, tokens, head):
        seq_len = (tokens.shape[1] - 1) // 2

        def ablate(z, hook):
            z[:, :, head] = 0.0  # in place: the hook's own activation, not an input of the check
            return z

        with model.hooks(fwd_hooks=[("blocks.0.attn.hook_z", ablate)]):
            _, cache = model.run_with_cache(tokens)
        return cache["pattern", 1].diagonal(-(seq_len - 1), -2, -1)[..., -seq_len:].mean((0, 2)).double()

    assert checks.test_ablated_induction_scores(with_cache)


def test_qk_decomposition_accepts_loops_over_pieces():
    def loops(model, cache, head):
        n = (cache["hook_embed"].shape[1] - 1) // 2
        scale = cache["blocks.1.ln1.hook_scale"]
        pieces = [cache["hook_embed"], cache["hook_pos_embed"].expand_as(cache["hook_embed"])]
        pieces += [cache["z", 0][:, :, h] @ model.W_O[0, h] for h in range(model.cfg.n_heads)]
        out = torch.zeros(len(pieces), len(pieces), dtype=torch.float64)
        for i, a in enumerate(pieces):
            q = (a / scale)[:, n + 1 :] @ model.W_Q[1, head]
            for j, b in enumerate(pieces):
                k = (b / scale)[:, 2 : n + 2] @ model.W_K[1, head]
                out[i, j] = (q * k).sum(-1).mean().double() / math.sqrt(model.cfg.d_head)
        return out

    assert checks.test_induction_qk_decomposition(loops)


def test_effective_ov_accepts_a_sum_of_factored_circuits_and_a_dense_matrix():
    def summed_ov(model, layer, heads):
        W_OV = sum(model.W_V[layer, h] @ model.W_O[layer, h] for h in heads)  # d_model x d_model
        return FactoredMatrix(model.W_E @ W_OV, model.W_U)

    def dense(model, layer, heads):
        return S.effective_ov_circuit(model, layer, heads).AB

    for fn in (summed_ov, dense):
        assert checks.test_effective_ov_circuit(fn), fn.__name__


def test_effective_ov_rejects_a_wrong_shape():
    rejected(
        checks.test_effective_ov_circuit(lambda m, l, h: FactoredMatrix(m.W_V[l, h[0]], m.W_O[l, h[0]])),
        "(d_vocab, d_vocab)",
    )


# ----------------------------------------------------------------- answers and the notebook


def test_answers_pass_and_wrong_answers_fail():
    assert checks.test_answer_induction_key(21)
    rejected(checks.test_answer_induction_key(20), "20 is the earlier copy itself")
    assert checks.test_answer_composition("k") and checks.test_answer_composition("K-composition")
    assert not checks.test_answer_composition("Q") and not checks.test_answer_composition("V")
    assert checks.test_answer_one_layer("B") and not checks.test_answer_one_layer("a")
    assert checks.test_answer_uniform_loss(8.32) and checks.test_answer_uniform_loss(math.log(4096))
    assert not checks.test_answer_uniform_loss(math.log2(4096)) and not checks.test_answer_uniform_loss(1 / 4096)


def test_notebook_uses_the_checks_text_and_the_course_model():
    source = "\n".join(cell.source for cell in CHAPTERS["05_induction_circuits"].source().cells)
    assert f"CODE_TEXT = '''{checks.CODE_TEXT}'''" in source
    assert 'MODEL_NAME = "attn-only-2l"' in source
    assert "hub:attn-only-2l" in source
