"""Every claim of each chapter's "What we found" section, recomputed on the shipped course model.

The inputs are built with the reference solutions, the way the notebooks build them with the
learner's functions; ``course_utils.findings`` turns them into sentences and decides each claim.
A retrained model that changes the story fails here, naming the claim that no longer holds.
"""

import pytest
import torch

from course_utils.chapters import solution_module
from course_utils.checks import hooks_basics as hooks_checks
from course_utils.checks import one_layer_if_else as if_else_checks
from course_utils.checks import residual_stream as residual_checks
from course_utils.findings import (
    Finding,
    hooks_findings,
    if_else_findings,
    induction_findings,
    report,
    residual_findings,
)
from course_utils.models import load_model
from course_utils.tasks import ioi
from course_utils.tasks.ternary import load_ternary_eval


@pytest.fixture(scope="module", autouse=True)
def _no_grad():
    grad = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    yield
    torch.set_grad_enabled(grad)


def assert_all_hold(findings: list[Finding]) -> None:
    assert findings
    for finding in findings:
        assert finding.holds, f"no longer holds on the course model: {finding.text}"


def test_report_marks_a_claim_that_does_not_hold(capsys):
    report([Finding("a holds", True), Finding("b fails", False)])
    out = capsys.readouterr().out.splitlines()
    assert out == ["• a holds", "✗ does not hold on this model: b fails"]


# --------------------------------------------------------------------------- chapter 01


def test_hooks_findings_hold_on_the_course_models():
    S = solution_module("01_hooks_basics")
    model, mlp_model = hooks_checks.check_model(), hooks_checks.mlp_check_model()
    tokens = model.to_tokens(hooks_checks.CODE_TEXT)
    n_correct, n_total = S.count_correct_predictions(model, hooks_checks.CODE_TEXT)
    ranks, probs = S.answer_rank_and_prob(model, hooks_checks.PROMPT, hooks_checks.ANSWER)
    _, mlp_cache = mlp_model.run_with_cache(mlp_model.to_tokens(hooks_checks.CODE_TEXT))
    findings = hooks_findings(
        n_correct=n_correct,
        n_total=n_total,
        prev_table=S.previous_token_attention(model, tokens),
        loss_increase=hooks_checks.ablation_loss_increase(),
        clean_loss=model(tokens, return_type="loss").item(),
        answer=hooks_checks.ANSWER,
        answer_ranks=ranks.tolist(),
        answer_probs=probs.tolist(),
        mlp_shapes={
            name: tuple(mlp_cache[name].shape)
            for name in ("blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out")
        },
        d_model=mlp_model.cfg.d_model,
        d_mlp=mlp_model.cfg.d_mlp,
    )
    assert len(findings) == 5
    assert_all_hold(findings)


# --------------------------------------------------------------------------- chapter 03


def test_residual_findings_hold_on_gelu_4l():
    S = solution_module("03_residual_stream")
    model, cache, io, s = residual_checks.ioi_inputs()
    logits, _ = residual_checks.run(residual_checks.ioi_prompt().text)
    values, _ = S.direct_logit_attribution(model, cache, io)
    true_logit = logits[0, -1, io].item()
    stack, _ = S.decompose_by_hand(cache, model.cfg.n_layers - 1, -1)
    unscaled = ((stack - stack.mean(-1, keepdim=True)) * model.ln_final.w) @ model.W_U[:, io]
    scale = cache["ln_final.hook_scale"][0, -1].item()
    prompts = ioi.ioi_prompts(residual_checks.N_IOI_PROMPTS, split="heldout", seed=residual_checks.IOI_SEED)
    batch = ioi.tokenize(prompts, model.tokenizer)
    _, batch_cache = model.run_with_cache(batch.tokens)
    per_prompt = []
    for i, pos in enumerate(batch.answer_pos.tolist()):
        one = batch_cache.apply_slice_to_batch_dim(slice(i, i + 1))
        per_prompt.append(
            S.head_logit_attribution(model, one, int(batch.io_ids[i]), pos)[0]
            - S.head_logit_attribution(model, one, int(batch.s_ids[i]), pos)[0]
        )
    per_prompt = torch.stack(per_prompt)
    n_rows = model.cfg.n_layers * model.cfg.n_heads
    acc = cache.accumulated_resid(pos_slice=-1)[:, 0]
    centred = acc - acc.mean(-1, keepdim=True)
    normed = (
        centred / (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt() * model.ln_final.w + model.ln_final.b
    )

    def rank(layer_logits):
        return (layer_logits > layer_logits[:, io, None]).sum(-1).tolist()

    attrs, labels = residual_checks.per_position_attribution()
    findings = residual_findings(
        attribution_error=abs(values.sum().item() - true_logit),
        unscaled_error=unscaled.sum().item() + values[-2:].sum().item() - true_logit,
        final_scale=scale,
        true_diffs=per_prompt.sum(1),
        head_map=per_prompt.mean(0)[:n_rows].reshape(model.cfg.n_layers, model.cfg.n_heads),
        io_ranks=rank(normed @ model.W_U + model.b_U),
        raw_ranks=rank(acc @ model.W_U + model.b_U),
        rank_labels=cache.accumulated_resid(pos_slice=-1, return_labels=True)[1],
        component_ranking=S.rank_components(attrs, labels),
    )
    assert len(findings) == 5
    assert_all_hold(findings)


# --------------------------------------------------------------------------- chapter 05


def test_induction_findings_hold_on_attn_only_2l():
    S = solution_module("05_induction_circuits")
    model = load_model("attn-only-2l", device="cpu")
    folded = load_model("attn-only-2l", device="cpu")
    folded.enable_compatibility_mode(disable_warnings=True)
    cfg = model.cfg
    tokens = S.generate_repeated_tokens(model, 50, 10, seed=0)
    logits, cache = model.run_with_cache(tokens)
    losses = S.per_token_loss(logits, tokens)
    prev = cache["pattern", 0].diagonal(-1, -2, -1).mean((0, 2))
    prev_scores = torch.stack([prev, cache["pattern", 1].diagonal(-1, -2, -1).mean((0, 2))])
    ind_scores = S.induction_score(model, tokens)
    ind_heads = [h for h in range(cfg.n_heads) if ind_scores[1, h] >= 0.4]
    best = int(ind_scores[1].argmax())
    generator = torch.Generator().manual_seed(0)

    def low_rank():
        return torch.randn(cfg.d_model, cfg.d_head, generator=generator) @ torch.randn(
            cfg.d_head, cfg.d_model, generator=generator
        )

    baseline = sum(S.get_comp_score(low_rank(), low_rank()) for _ in range(200)) / 200
    top1_alone = [S.top_1_acc(folded.W_E @ folded.OV[1, h] @ folded.W_U) for h in ind_heads]
    findings = induction_findings(
        ind_scores=ind_scores,
        prev_scores=prev_scores,
        first_copy_loss=losses[:, 1:50].mean().item(),
        second_copy_loss=losses[:, 51:].mean().item(),
        ablated=torch.stack([S.ablated_induction_scores(model, tokens, h) for h in range(cfg.n_heads)]),
        composition={kind: S.composition_scores(folded, kind) for kind in ("Q", "K", "V")},
        baseline=baseline,
        qk_parts=S.induction_qk_decomposition(folded, folded.run_with_cache(tokens)[1], best),
        piece_names=["token embedding", "positional embedding"] + [f"0.{h}" for h in range(cfg.n_heads)],
        top1_alone=top1_alone,
        top1_together=S.top_1_acc(S.effective_ov_circuit(folded, 1, ind_heads)),
        d_vocab=cfg.d_vocab,
    )
    assert len(findings) == 7
    assert_all_hold(findings)


# --------------------------------------------------------------------------- chapter 06


def _by_length(rows):
    groups = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.shape[1], []).append(i)
    return [(idx, torch.cat([rows[i] for i in idx])) for idx in groups.values()]


def test_if_else_findings_hold_on_attn_only_1l():
    S = solution_module("06_one_layer_if_else")
    model = if_else_checks.check_model()
    cfg = model.cfg
    ELSE, IF = model.to_single_token(" else"), model.to_single_token(" if")
    examples = load_ternary_eval("trusted") + load_ternary_eval("anomalous")
    is_anomalous = torch.tensor([p.kind == "anomalous" for p in examples])
    rows = [if_else_checks.prefix_tokens(model, p.prefix) for p in examples]
    n = len(rows)
    logit, error = torch.zeros(n), torch.zeros(n)
    direct, biases, heads_total, from_if = torch.zeros(n), torch.zeros(n), torch.zeros(n), torch.zeros(n, cfg.n_heads)
    variants = {"all four": set(if_else_checks.OMISSIONS), **{f"only the {o}": {o} for o in if_else_checks.OMISSIONS}}
    gaps = {name: torch.zeros(n) for name in variants}
    for idx, tokens in _by_length(rows):
        logits, cache = model.run_with_cache(tokens)
        logit[idx] = logits[:, -1, ELSE]
        pattern, scale = cache["pattern", 0][:, :, -1], cache["ln_final.hook_scale"][:, -1, 0]
        for name, omit in variants.items():
            gaps[name][idx] = if_else_checks.approximate_else_logit(model, tokens, pattern, scale, omit) - logit[idx]
        parts = S.else_logit_decomposition(model, tokens)
        direct[idx], biases[idx] = parts["embed"] + parts["pos_embed"], parts["biases"]
        heads_total[idx] = parts["heads"].sum((1, 2))
        from_if[idx] = (parts["heads"] * (tokens == IF)[:, None]).sum(-1)
        error[idx] = (direct[idx] + heads_total[idx] + biases[idx] - logit[idx]).abs()
    trusted = (~is_anomalous).nonzero()[:, 0]
    fit, held, anomalous = trusted[::2], trusted[1::2], is_anomalous.nonzero()[:, 0]

    def detector_auroc(x):
        s = S.mahalanobis_scores(x[fit], x)
        return S.auroc(s[held], s[anomalous])

    if_heads = [h for h in range(cfg.n_heads) if S.ov_ranks(S.ov_circuit(model, h), IF, ELSE)[0] < 10]
    cut = [
        torch.cat([r[:, :1], r[:, -32:]], dim=1) for i, r in enumerate(rows) if not is_anomalous[i] and r.shape[1] > 32
    ]
    batch = torch.cat([r for r in cut if (r == IF).sum() == 1][:48])

    def control(changed, source):
        final = model(changed)[:, -1]
        contribution = torch.stack([S.source_contribution(model, changed, h, source).mean() for h in if_heads])
        return final[:, ELSE].mean().item(), final.softmax(-1)[:, ELSE].mean().item(), contribution

    def swap(old, new):
        changed = batch.clone()
        changed[changed == old] = new
        return changed

    paren = batch.clone()
    paren[:, -1] = model.to_single_token(")")
    controls = {
        "' if' (unchanged)": control(batch, IF),
        "'if' (no space)": control(swap(IF, model.to_single_token("if")), model.to_single_token("if")),
        "' elif'": control(swap(IF, model.to_single_token(" elif")), model.to_single_token(" elif")),
        "condition ends in ')'": control(paren, IF),
    }
    findings = if_else_findings(
        decomposition_error=error.max().item(),
        n_prefixes=n,
        if_contribution=from_if[trusted].mean(0),
        logit_parts={
            "the direct path": direct[trusted].mean().item(),
            "the heads reading ' if'": from_if[trusted].sum(-1).mean().item(),
            "the heads reading other tokens": (heads_total - from_if.sum(-1))[trusted].mean().item(),
            "the biases": biases[trusted].mean().item(),
        },
        mean_logit=logit[trusted].mean().item(),
        gaps={name: gap[trusted].abs().mean().item() for name, gap in gaps.items()},
        aurocs={
            "per-head ' if' contributions": detector_auroc(from_if),
            "' else' logit only (behaviour)": detector_auroc(logit[:, None]),
        },
        controls=controls,
        control_heads=if_heads,
    )
    assert len(findings) == 7
    assert_all_hold(findings)
