"""Every claim of each chapter's "What we found" section, recomputed on the shipped course model.

The inputs are built with the reference solutions, the way the notebooks build them with the
learner's functions; ``course_utils.findings`` turns them into sentences and decides each claim.
A retrained model that changes the story fails here, naming the claim that no longer holds.
"""
import math

import pytest
import torch

from course_utils.chapters import solution_module
from course_utils.findings import Finding, induction_findings, report
from course_utils.models import load_model


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
        return torch.randn(cfg.d_model, cfg.d_head, generator=generator) @ torch.randn(cfg.d_head, cfg.d_model, generator=generator)

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
