"""Chapter 04 checks: they reject the mistakes they find by other means (hooks left attached,
inputs modified in place, wrong shapes) and accept correct alternatives (loops, batched sweeps,
the TransformerLens sweeps, float64); the references agree with the library and the notebook's
claims hold. ``tests/test_chapter_checks.py`` proves that each known mistake is rejected by name."""

import functools

import pytest
import torch
import tqdm
from transformer_lens import patching

from course_utils.checks import activation_patching as checks
from course_utils.models import load_model, random_model

S = checks.SOLUTION


def run_check(name, fn):
    return getattr(checks, f"test_{name}")(fn)


def no_hooks_left(model):
    return not any(hp._forward_hooks for hp in model.hook_dict.values())


@pytest.mark.parametrize(
    "name, wrong",
    [
        ("answer_layer0_position", 14),
        ("answer_layer0_position", "14"),
        ("answer_forward_passes", "c"),
        ("answer_noising_vs_denoising", "b"),
        ("answer_attribution_passes", (1, 0)),
        ("answer_attribution_passes", (2, 1)),
    ],
)
def test_wrong_answers(name, wrong):
    assert not run_check(name, wrong)


def test_answer_layer0_position_is_the_s2_position():
    d = checks.patching_data(checks.N_SWEEP_PROMPTS)
    assert (d["clean_tokens"] != d["corrupted_tokens"]).any(0).nonzero().flatten().tolist() == [
        S.answer_layer0_position
    ]


# --- logit_diff ------------------------------------------------------------------------------------
def _logit_diff_log_softmax(logits, answer_tokens):
    logprobs = logits[:, -1].log_softmax(-1)  # the normaliser cancels in a difference
    picked = logprobs.gather(-1, answer_tokens)
    return picked[:, 0] - picked[:, 1]


def _logit_diff_loop(logits, answer_tokens):
    return torch.stack([logits[i, -1, io] - logits[i, -1, s] for i, (io, s) in enumerate(answer_tokens.tolist())])


@pytest.mark.parametrize(
    "variant",
    [_logit_diff_log_softmax, _logit_diff_loop, lambda logits, a: S.logit_diff(logits.double(), a)],
    ids=["log_softmax", "loop", "float64"],
)
def test_logit_diff_accepts(variant):
    assert checks.test_logit_diff(variant)


# --- normalised_patching_metric ----------------------------------------------------------------------
def test_metric_rejects_a_python_float():
    result = checks.test_normalised_patching_metric(lambda *args: S.normalised_patching_metric(*args).item())
    assert not result and "expected a torch.Tensor" in result.message


def test_metric_rejects_per_prompt_values():
    def per_prompt(logits, a, c, k):
        return (S.logit_diff(logits, a) - k) / (c - k)

    result = checks.test_normalised_patching_metric(per_prompt)
    assert not result and "shape" in result.message


def _metric_per_prompt_then_mean(logits, a, c, k):
    return ((S.logit_diff(logits, a) - k) / (c - k)).mean()  # linear: same as normalising the mean


@pytest.mark.parametrize(
    "variant",
    [_metric_per_prompt_then_mean, lambda logits, a, c, k: S.normalised_patching_metric(logits.double(), a, c, k)],
    ids=["per_prompt_then_mean", "float64"],
)
def test_metric_accepts(variant):
    assert checks.test_normalised_patching_metric(variant)


# --- sweeps: mistakes found by other means ------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "patch_residual_stream",
        "patch_head_outputs",
        "patch_head_outputs_by_pos",
        "patch_residual_stream_fast",
        "attribution_patch_residual",
        "path_patch",
        "mean_ablate_heads",
    ],
)
def test_known_mistakes_leave_no_hooks_on_the_check_model(name):
    """One known mistake piles hooks up with `model.add_hook`: the mistakes clean up after themselves."""
    for wrong in checks.KNOWN_MISTAKES[name].values():
        run_check(name, wrong)
    assert no_hooks_left(checks.check_model())


def test_resid_sweep_that_never_removes_hooks_is_rejected():
    def add_hook_and_forget(model, corrupted_tokens, clean_cache, metric):
        results = torch.zeros(model.cfg.n_layers, corrupted_tokens.shape[1])
        for layer in range(model.cfg.n_layers):
            name = f"blocks.{layer}.hook_resid_pre"
            for pos in range(corrupted_tokens.shape[1]):

                def hook(resid, hook, pos=pos, name=name):
                    resid[:, pos] = clean_cache[name][:, pos]
                    return resid

                model.add_hook(name, hook)
                results[layer, pos] = metric(model(corrupted_tokens))
        return results

    result = checks.test_patch_residual_stream(add_hook_and_forget)
    assert not result and "left a hook attached" in result.message
    assert no_hooks_left(checks.check_model())


def test_resid_sweep_modifying_the_clean_cache_is_rejected():
    def writes_into_cache(model, corrupted_tokens, clean_cache, metric):
        out = S.patch_residual_stream(model, corrupted_tokens, clean_cache, metric)
        clean_cache["blocks.0.hook_resid_pre"][:, 0] += 1.0
        return out

    result = checks.test_patch_residual_stream(writes_into_cache)
    assert not result and "modified its input" in result.message
    checks.patching_data.cache_clear()  # the cached clean cache was changed: rebuild it for the other tests


# --- sweeps: correct alternatives are accepted ------------------------------------------------------
def _resid_in_place_no_return(model, corrupted_tokens, clean_cache, metric):
    """Edits the activation in place and returns None; `model.hooks` context; python-list results."""
    rows = []
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.hook_resid_pre"
        row = []
        for pos in range(corrupted_tokens.shape[1]):

            def hook(resid, hook, pos=pos):
                resid[:, pos] = clean_cache[name][:, pos]

            with model.hooks(fwd_hooks=[(name, hook)]):
                row.append(metric(model(corrupted_tokens)).item())
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


def _resid_mask(model, corrupted_tokens, clean_cache, metric):
    """A mask and torch.where instead of indexing; utilities.get_act_name for the hook name."""
    from transformer_lens import utilities

    n_pos = corrupted_tokens.shape[1]
    out = torch.empty(model.cfg.n_layers, n_pos)
    for layer in range(model.cfg.n_layers):
        name = utilities.get_act_name("resid_pre", layer)
        for pos in range(n_pos):
            mask = (torch.arange(n_pos) == pos)[None, :, None]
            hook = functools.partial(lambda resid, hook, mask: torch.where(mask, clean_cache[name], resid), mask=mask)
            out[layer, pos] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)]))
    return out


def _resid_batched_no_start(model, corrupted_tokens, clean_cache, metric):
    """All positions of a layer in ONE forward pass, from the tokens (no start_at_layer, no skipping)."""
    batch, n_pos = corrupted_tokens.shape
    out = torch.empty(model.cfg.n_layers, n_pos)
    stacked = corrupted_tokens.repeat(n_pos, 1)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.hook_resid_pre"

        def hook(resid, hook):
            for pos in range(n_pos):
                resid[pos * batch : (pos + 1) * batch, pos] = clean_cache[name][:, pos]
            return resid

        logits = model.run_with_hooks(stacked, fwd_hooks=[(name, hook)])
        for pos in range(n_pos):
            out[layer, pos] = metric(logits[pos * batch : (pos + 1) * batch])
    return out


RESID_VARIANTS = {
    "in_place_no_return": _resid_in_place_no_return,
    "mask_where": _resid_mask,
    "batched_one_forward_per_layer": _resid_batched_no_start,
    "fast_solution": S.patch_residual_stream_fast,
    "transformer_lens": lambda m, t, c, metric: patching.get_act_patch_resid_pre(m, t, c, metric),
}


@pytest.mark.parametrize("variant", list(RESID_VARIANTS))
def test_patch_residual_stream_accepts(variant):
    assert checks.test_patch_residual_stream(RESID_VARIANTS[variant])


@pytest.mark.parametrize("variant", ["batched_one_forward_per_layer", "in_place_no_return", "fast_solution"])
def test_patch_residual_stream_fast_accepts(variant):
    """Any exact sweep passes, also one that ignores the promise of ``metric_pos`` (slower, same numbers)."""
    sweep = RESID_VARIANTS[variant]
    accepted = sweep if variant == "fast_solution" else lambda *args, metric_pos=None: sweep(*args)
    assert checks.test_patch_residual_stream_fast(accepted)


def test_patch_residual_stream_fast_rejects_a_sweep_without_metric_pos():
    result = checks.test_patch_residual_stream_fast(
        lambda m, t, c, metric: S.patch_residual_stream_fast(m, t, c, metric)
    )
    assert not result and "metric_pos" in result.message


def _heads_mask(model, corrupted_tokens, clean_cache, metric):
    out = torch.empty(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.float64)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_z"
        for head in range(model.cfg.n_heads):
            mask = torch.zeros(model.cfg.n_heads, 1)
            mask[head] = 1.0

            def hook(z, hook, mask=mask):
                return z * (1 - mask) + clean_cache[name] * mask

            out[layer, head] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)])).item()
    return out


def _heads_one_forward_per_layer(model, corrupted_tokens, clean_cache, metric):
    batch, n_heads = corrupted_tokens.shape[0], model.cfg.n_heads
    out = torch.empty(model.cfg.n_layers, n_heads)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_z"

        def hook(z, hook):
            for h in range(n_heads):
                z[h * batch : (h + 1) * batch, :, h] = clean_cache[name][:, :, h]
            return z

        logits = model.run_with_hooks(corrupted_tokens.repeat(n_heads, 1), fwd_hooks=[(name, hook)])
        for h in range(n_heads):
            out[layer, h] = metric(logits[h * batch : (h + 1) * batch])
    return out


HEAD_VARIANTS = {
    "mask_float64": _heads_mask,
    "batched_heads": _heads_one_forward_per_layer,
    "transformer_lens": lambda m, t, c, metric: patching.get_act_patch_attn_head_out_all_pos(m, t, c, metric),
}


@pytest.mark.parametrize("variant", list(HEAD_VARIANTS))
def test_patch_head_outputs_accepts(variant):
    assert checks.test_patch_head_outputs(HEAD_VARIANTS[variant])


def _head_by_pos_hooks_context(model, corrupted_tokens, clean_cache, metric, heads):
    out = []
    for layer, head in heads:
        name = f"blocks.{layer}.attn.hook_z"
        row = []
        for pos in range(corrupted_tokens.shape[1]):

            def hook(z, hook, pos=pos, head=head):
                z[:, pos, head] = clean_cache[name][:, pos, head]

            with model.hooks(fwd_hooks=[(name, hook)]):
                row.append(metric(model(corrupted_tokens)))
        out.append(torch.stack(row))
    return torch.stack(out)


def test_patch_head_outputs_by_pos_accepts():
    assert checks.test_patch_head_outputs_by_pos(_head_by_pos_hooks_context)


# --- attribution patching ------------------------------------------------------------------------------
def _attribution_retain_grad(model, corrupted_tokens, clean_cache, metric):
    """retain_grad + backward instead of autograd.grad; loops over layers."""
    saved = {}

    def save(resid, hook):
        resid.retain_grad()
        saved[hook.name] = resid

    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    for name in names:
        with model.hooks(fwd_hooks=[(name, save)]):
            metric(model(corrupted_tokens)).backward()
    model.zero_grad(set_to_none=True)
    grads = list(saved.values())  # hook.name is the bridge's own name; the order is the layers' order
    return torch.stack([((clean_cache[n] - g.detach()) * g.grad).sum((0, 2)) for n, g in zip(names, grads)]).detach()


def test_attribution_accepts_retain_grad():
    assert checks.test_attribution_patch_residual(_attribution_retain_grad)


def test_attribution_works_with_frozen_weights():
    model = checks.check_model()
    model.requires_grad_(False)
    try:
        assert checks.test_attribution_patch_residual(S.attribution_patch_residual)
    finally:
        model.requires_grad_(True)


# --- the fast exact sweep ---------------------------------------------------------------------------------
def _suffix_whole_block(model, layer, resid, corrupted_cache):
    """The bridge's own block on the corrupted positions before the suffix followed by the suffix."""
    copies, batch, suffix, d_model = resid.shape
    n_pos = corrupted_cache[f"blocks.{layer}.attn.hook_k"].shape[1]
    before = corrupted_cache[f"blocks.{layer}.hook_resid_pre"][:, : n_pos - suffix]
    stream = torch.cat([before.repeat(copies, 1, 1), resid.reshape(copies * batch, suffix, d_model)], dim=1)
    out = model.blocks[layer](stream)
    out = out[0] if isinstance(out, tuple) else out
    return out[:, -suffix:].reshape(copies, batch, suffix, d_model)


def _suffix_sdpa(model, layer, resid, corrupted_cache):
    """torch's scaled_dot_product_attention with a boolean mask, one copy at a time."""
    block, attn = model.blocks[layer], model.blocks[layer].attn
    out = []
    for copy in resid:
        x = block.ln1(copy)
        q = torch.einsum("bpm,hmd->bhpd", x, attn.W_Q) + attn.b_Q[:, None]
        k = torch.einsum("bpm,hmd->bhpd", x, attn.W_K) + attn.b_K[:, None]
        v = torch.einsum("bpm,hmd->bhpd", x, attn.W_V) + attn.b_V[:, None]
        n_pos, suffix = corrupted_cache[f"blocks.{layer}.attn.hook_k"].shape[1], copy.shape[1]
        k = torch.cat([corrupted_cache[f"blocks.{layer}.attn.hook_k"].transpose(1, 2)[:, :, : n_pos - suffix], k], 2)
        v = torch.cat([corrupted_cache[f"blocks.{layer}.attn.hook_v"].transpose(1, 2)[:, :, : n_pos - suffix], v], 2)
        allowed = torch.arange(n_pos)[None, :] <= torch.arange(n_pos - suffix, n_pos)[:, None]
        z = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        mid = copy + torch.einsum("bhpd,hdm->bpm", z, attn.W_O) + attn.b_O
        out.append(mid + block.mlp(block.ln2(mid)))
    return torch.stack(out)


@pytest.mark.parametrize("variant", [_suffix_whole_block, _suffix_sdpa], ids=["whole_block", "sdpa"])
def test_block_on_suffix_accepts(variant):
    assert checks.test_block_on_suffix(variant)


def _exact_inputs(model, seed=0):
    """Random tokens differing at two positions, the clean cache, and a metric that reads every position."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, model.cfg.d_vocab, (3, 9), generator=gen)
    corrupted = clean.clone()
    corrupted[:, [3, 6]] = torch.randint(0, model.cfg.d_vocab, (3, 2), generator=gen)
    weights = torch.linspace(-1.0, 1.0, 50)
    with torch.no_grad():
        _, cache = model.run_with_cache(clean)
    return model, corrupted, cache, lambda logits: (logits.log_softmax(-1)[..., :50] * weights).mean()


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: random_model(n_layers=3),
        lambda: random_model(n_layers=2, attn_only=True),
        lambda: load_model("attn-only-2l", "cpu"),
    ],
    ids=["random_ln_gelu", "random_attn_only", "attn-only-2l"],
)
def test_fast_sweeps_equal_the_naive_loops_on_other_models(make_model):
    args = _exact_inputs(make_model())
    heads = [(layer, head) for layer in range(args[0].cfg.n_layers) for head in range(args[0].cfg.n_heads)]
    naive = S.patch_residual_stream(*args)
    assert naive.std() > 1e-3  # the patches matter, so equality says something
    assert (S.patch_residual_stream_fast(*args) - naive).abs().max() <= 1e-5
    assert (
        S.patch_head_outputs_by_pos_fast(*args, heads) - S.patch_head_outputs_by_pos(*args, heads)
    ).abs().max() <= 1e-5


@pytest.mark.parametrize("metric_pos", [-1, 4, 7])
def test_fast_sweeps_equal_the_naive_loops_for_a_metric_of_one_position(metric_pos):
    model, corrupted, cache, _ = _exact_inputs(random_model(n_layers=3))
    read = metric_pos % corrupted.shape[1]
    args = (model, corrupted, cache, lambda logits: logits[:, read].log_softmax(-1)[:, :50].mean())
    heads = [(0, 1), (2, 0)]
    naive = S.patch_residual_stream(*args)
    assert naive[:, : read + 1].std() > 1e-3 and (naive[:, read + 1 :] == naive[0, -1]).all()
    assert (S.patch_residual_stream_fast(*args, metric_pos=metric_pos) - naive).abs().max() <= 1e-5
    by_pos = S.patch_head_outputs_by_pos(*args, heads)
    assert (S.patch_head_outputs_by_pos_fast(*args, heads, metric_pos=metric_pos) - by_pos).abs().max() <= 1e-5


def test_fast_sweep_says_when_metric_pos_is_outside_the_prompts():
    args = _exact_inputs(random_model(n_layers=1))
    with pytest.raises(IndexError, match="metric_pos=9, but the prompts have 9 positions"):
        S.patch_residual_stream_fast(*args, metric_pos=9)


def test_fast_sweeps_equal_the_naive_loops_on_the_notebook_batch():
    d = checks.patching_data(checks.N_METRIC_PROMPTS)
    args = (d["model"], d["corrupted_tokens"], d["clean_cache"], d["metric"])
    naive = S.patch_residual_stream(*args)
    assert (S.patch_residual_stream_fast(*args) - naive).abs().max() <= 1e-5
    heads = [(layer, layer % args[0].cfg.n_heads) for layer in range(args[0].cfg.n_layers)]
    by_pos = S.patch_head_outputs_by_pos(*args, heads)
    assert (S.patch_head_outputs_by_pos_fast(*args, heads) - by_pos).abs().max() <= 1e-5


def test_checks_hide_the_progress_bars_of_the_sweeps_they_run(capsys):
    assert checks.test_patch_head_outputs(S.patch_head_outputs)
    assert capsys.readouterr().err == ""
    with tqdm.tqdm(range(2), desc="outside a check") as bar:  # tqdm is itself again afterwards
        list(bar)
    assert "outside a check" in capsys.readouterr().err


# --- section 8, the circuit: checks ---------------------------------------------------------------------
def test_circuit_check_data_mixes_orders_and_templates():
    d = checks.circuit_data()
    assert d["orders"] == {"ABBA", "BABA"}  # otherwise pairing prompts with the wrong positions shows nothing
    assert len(d["template_ids"].unique()) >= 2  # otherwise per-template and whole-batch means agree


def _attention_to_loop(cache, n_layers, query_pos, key_pos):
    """One prompt at a time, float64."""
    out = torch.zeros(n_layers, cache["blocks.0.attn.hook_pattern"].shape[1], dtype=torch.float64)
    for layer in range(n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        for i, (q, k) in enumerate(zip(query_pos.tolist(), key_pos.tolist())):
            out[layer] += pattern[i, :, q, k].double() / len(query_pos)
    return out


def _attention_to_one_hot(cache, n_layers, query_pos, key_pos):
    """One-hot masks and an einsum instead of indexing."""
    n_pos = cache["blocks.0.attn.hook_pattern"].shape[-1]
    q, k = torch.nn.functional.one_hot(query_pos, n_pos).float(), torch.nn.functional.one_hot(key_pos, n_pos).float()
    return torch.stack(
        [torch.einsum("bhqk,bq,bk->h", cache[f"blocks.{l}.attn.hook_pattern"], q, k) / len(q) for l in range(n_layers)]
    )


@pytest.mark.parametrize("variant", [_attention_to_loop, _attention_to_one_hot], ids=["loop", "one_hot"])
def test_attention_to_accepts(variant):
    assert checks.test_attention_to(variant)


def _duplicate_loop(cache, n_layers, tokens, query_pos):
    out = torch.zeros(n_layers, cache["blocks.0.attn.hook_pattern"].shape[1])
    for layer in range(n_layers):
        for i, q in enumerate(query_pos.tolist()):
            earlier = [k for k in range(q) if tokens[i, k] == tokens[i, q]]
            out[layer] += cache[f"blocks.{layer}.attn.hook_pattern"][i, :, q, earlier].sum(-1) / len(query_pos)
    return out


def test_duplicate_token_score_accepts_a_loop():
    assert checks.test_duplicate_token_score(_duplicate_loop)


def _path_patch_store_in_hooks(model, clean_tokens, corrupted_cache, senders, receivers, pos, receiver_input="v"):
    """Records the receivers' inputs with its own hooks (no run_with_cache); one hook per head."""
    recorded = {}
    hooks = []
    for layer, head in senders:
        name = f"blocks.{layer}.attn.hook_z"

        def corrupt(z, hook, name=name, head=head):
            z[:, pos, head] = corrupted_cache[name][:, pos, head]
            return z

        hooks.append((name, corrupt))
    for layer, _ in receivers:
        name = f"blocks.{layer}.attn.hook_{receiver_input}"
        hooks.append((name, lambda act, hook, name=name: recorded.__setitem__(name, act.clone())))
    model.run_with_hooks(clean_tokens, fwd_hooks=hooks)

    def restore(act, hook, name, head):
        act[:, pos, head] = recorded[name][:, pos, head]
        return act

    second = [
        (
            f"blocks.{l}.attn.hook_{receiver_input}",
            functools.partial(restore, name=f"blocks.{l}.attn.hook_{receiver_input}", head=h),
        )
        for l, h in receivers
    ]
    with model.hooks(fwd_hooks=second):
        return model(clean_tokens)


def test_path_patch_accepts_hooks_that_record():
    assert checks.test_path_patch(_path_patch_store_in_hooks)


def _mean_ablate_loop(model, tokens, reference_tokens, template_ids, heads):
    """Means per template computed prompt by prompt, in a dict; a `model.hooks` context."""
    _, reference = model.run_with_cache(reference_tokens)
    means = {}
    for t in set(template_ids.tolist()):
        rows = [i for i, x in enumerate(template_ids.tolist()) if x == t]
        means[t] = {l: sum(reference[f"blocks.{l}.attn.hook_z"][i] for i in rows) / len(rows) for l, _ in heads}

    def ablate(z, hook, layer, head):
        for i, t in enumerate(template_ids.tolist()):
            z[i, :, head] = means[t][layer][:, head]
        return z

    hooks = [(f"blocks.{l}.attn.hook_z", functools.partial(ablate, layer=l, head=h)) for l, h in heads]
    with model.hooks(fwd_hooks=hooks):
        return model(tokens)


def test_mean_ablate_heads_accepts_a_loop():
    assert checks.test_mean_ablate_heads(_mean_ablate_loop)


def test_answer_path_patch_values():
    for wrong in ("a", "c", "d"):
        assert not checks.test_answer_path_patch_values(wrong)


# --- section 8, the circuit: every claim the notebook's prose makes holds on the course model ----------------
NOTEBOOK_CIRCUIT = {"N_CIRCUIT": 96, "SEED": 3, "CORRUPTION": "flip"}  # the notebook's defaults, checked below


def test_notebook_circuit_parameters_are_the_tested_ones():
    from course_utils.chapters import CHAPTERS

    source = CHAPTERS["04_activation_patching"].notebook.read_text()
    assert f"N_CIRCUIT = {NOTEBOOK_CIRCUIT['N_CIRCUIT']}" in source
    assert f"SEED = {NOTEBOOK_CIRCUIT['SEED']}" in source
    assert f'CORRUPTION = "{NOTEBOOK_CIRCUIT["CORRUPTION"]}"' in source
    assert "circuit_pairs = aligned_pairs(N_CIRCUIT, SEED + 1)" in source


@functools.cache
def circuit_findings() -> dict:
    """Section 8 of the notebook, recomputed with the reference solutions and the notebook's defaults."""
    model = checks.check_model()
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    pairs = checks.aligned_ioi_pairs(
        model.tokenizer,
        NOTEBOOK_CIRCUIT["N_CIRCUIT"],
        kind=NOTEBOOK_CIRCUIT["CORRUPTION"],
        seed=NOTEBOOK_CIRCUIT["SEED"] + 1,
    )
    clean = checks.ioi.tokenize([c for c, _ in pairs], model.tokenizer)
    corrupted = checks.ioi.tokenize([k for _, k in pairs], model.tokenizer).tokens
    tokens, answers = clean.tokens, torch.stack([clean.io_ids, clean.s_ids], dim=1)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted)
    clean_ld = S.logit_diff(logits, answers).mean().item()
    metric = functools.partial(
        S.normalised_patching_metric,
        answer_tokens=answers,
        clean_logit_diff=clean_ld,
        corrupted_logit_diff=S.logit_diff(corrupted_logits, answers).mean().item(),
    )
    first = lambda row, t: (row == t).nonzero()[0, 0]  # noqa: E731
    io_pos = torch.stack([first(row, io) for row, io in zip(tokens, clean.io_ids)])
    s1_pos = torch.stack([first(row, s) for row, s in zip(tokens, clean.s_ids)])
    s2_pos = torch.stack([(row == s).nonzero()[-1, 0] for row, s in zip(tokens, clean.s_ids)])
    end_pos = torch.full_like(io_pos, tokens.shape[1] - 1)
    f = dict(
        end_to_io=S.attention_to(cache, n_layers, end_pos, io_pos),
        end_to_s1=S.attention_to(cache, n_layers, end_pos, s1_pos),
        end_to_s2=S.attention_to(cache, n_layers, end_pos, s2_pos),
        duplicate=S.duplicate_token_score(cache, n_layers, tokens, s2_pos),
        s2_to_io=S.attention_to(cache, n_layers, s2_pos, io_pos),
    )
    f["io_minus_s"] = f["end_to_io"] - f["end_to_s1"] - f["end_to_s2"]
    f["corrupted_s2_to_s"] = S.attention_to(
        corrupted_cache, n_layers, s2_pos, s1_pos
    )  # flip: S1's name is the other one
    with torch.no_grad():
        scale = cache["ln_final.hook_scale"][:, -1]
        direction = (model.W_U[:, answers[:, 0]] - model.W_U[:, answers[:, 1]]).T
        f["dla"] = (
            torch.stack(
                [
                    torch.einsum("bhd,hdm,bm->bh", cache[f"blocks.{l}.attn.hook_z"][:, -1], model.W_O[l], direction)
                    .div(scale)
                    .mean(0)
                    for l in range(n_layers)
                ]
            )
            / clean_ld
        )
    masks = {
        "name mover": (f["end_to_io"] >= 0.4) & (f["io_minus_s"] >= 0.2) & (f["dla"] >= 0.15),
        "other-name": f["s2_to_io"] >= 0.4,
        "mover from S2": (f["end_to_s2"] >= 0.3) & (f["dla"] >= 0.05),
        "duplicate-token": f["duplicate"] >= 0.3,
    }
    roles = {role: [(int(l), int(h)) for l, h in mask.nonzero().tolist()] for role, mask in masks.items()}
    f["roles"] = roles
    other_name, movers = roles["other-name"], roles["mover from S2"]
    s2 = int(s2_pos[0])

    def noise_senders(z, hook, layer):
        for l, h in other_name:
            if l == layer:
                z[:, s2, h] = corrupted_cache[f"blocks.{layer}.attn.hook_z"][:, s2, h]
        return z

    hooks = [(f"blocks.{l}.attn.hook_z", functools.partial(noise_senders, layer=l)) for l in {l for l, _ in other_name}]
    with torch.no_grad():
        f["total_effect"] = metric(model.run_with_hooks(tokens, fwd_hooks=hooks)).item()
    f["path"] = {
        part: metric(S.path_patch(model, tokens, corrupted_cache, other_name, movers, s2, part)).item()
        for part in "vkq"
    }
    reference = model.to_tokens([checks.ioi.abc_reference(c) for c, _ in pairs])
    template_ids = torch.tensor([c.template_id for c, _ in pairs])

    def kept(heads):
        return (
            S.logit_diff(S.mean_ablate_heads(model, tokens, reference, template_ids, heads), answers).mean().item()
            / clean_ld
        )

    f["removed"] = {role: 1 - kept(heads) for role, heads in roles.items() if heads}
    circuit = set(other_name) | set(movers)
    f["faithfulness"] = kept([(l, h) for l in range(n_layers) for h in range(n_heads) if (l, h) not in circuit])
    f["clean_ld"] = clean_ld
    return f


def test_claim_no_name_mover():
    """8.1: no head attends from END to IO clearly more than to S; no head passes the name-mover limits."""
    f = circuit_findings()
    assert f["roles"]["name mover"] == []
    assert f["io_minus_s"].max() < 0.1


def test_claim_end_to_io_only_in_layer_0_and_as_much_to_s1():
    f = circuit_findings()
    looking = (f["end_to_io"] >= 0.1).nonzero().tolist()
    assert all(layer == 0 for layer, _ in looking), looking
    for layer, head in looking:
        assert abs(f["end_to_io"][layer, head] - f["end_to_s1"][layer, head]) < 0.15


def test_claim_most_later_heads_attend_from_end_to_s2():
    f = circuit_findings()
    later = f["end_to_s2"][1:]
    assert (later >= 0.3).float().mean() > 0.5


def test_claim_other_name_heads_in_layer_0_and_strongest_at_s2():
    f = circuit_findings()
    assert f["roles"]["other-name"], "no other-name head"
    assert all(layer == 0 for layer, _ in f["roles"]["other-name"])
    assert f["s2_to_io"].max() > f["duplicate"].max()


def test_claim_duplicate_token_weak_before_the_movers():
    f = circuit_findings()
    movers = f["roles"]["mover from S2"]
    assert movers, "no mover from S2"
    first = min(layer for layer, _ in movers)  # the prose: "weak in the layers before the movers"
    assert f["duplicate"][:first].max() < 0.3
    assert min(layer for layer, _ in movers) > max(layer for layer, _ in f["roles"]["other-name"])


def test_claim_movers_read_the_other_name_heads_values():
    """8.3: corrupting the senders destroys the answer; the path into the movers' values carries most of it,
    their keys and queries barely matter."""
    f = circuit_findings()
    assert f["total_effect"] < 0.2
    for layer, head in f["roles"]["other-name"]:  # on the flipped prompt they look at S, the other name there
        assert f["corrupted_s2_to_s"][layer, head] >= 0.4
    assert f["path"]["v"] < 0.5
    assert f["path"]["k"] > 0.9 and f["path"]["q"] > 0.9


def test_claim_ablations_and_faithfulness():
    """8.4: each main role is needed, the duplicate-token heads are not, and the circuit alone suffices."""
    f = circuit_findings()
    assert f["removed"]["other-name"] > 0.5
    assert f["removed"]["mover from S2"] > 0.5
    assert f["removed"].get("duplicate-token", 0.0) < 0.2
    assert f["faithfulness"] > 0.8
    assert f["clean_ld"] > 2


def test_claim_holds_on_heldout_templates():
    """The lead's zoo analysis (held-out names AND templates) tells the same story: no name mover, the heads at
    S2 are needed, and the circuit alone keeps most of the logit difference."""
    from course_utils.zoo import ioi_circuit

    d = ioi_circuit.describe(checks.check_model(), n=100)
    assert d["roles"]["name mover"] == []
    assert d["removed_by_other-name"] > 0.5
    assert d["faithfulness"] > 0.8


def test_claim_unembedding_one_position_costs_more_than_a_block():
    """7, fact 4: on the chapter's model, unembedding one position costs more than a whole block."""
    cfg = load_model(checks.CHECK_MODEL, "cpu").cfg
    block = 4 * cfg.d_model * cfg.n_heads * cfg.d_head + (0 if cfg.attn_only else 2 * cfg.d_model * cfg.d_mlp)
    assert cfg.d_model * cfg.d_vocab > block
