"""Chapter 02's "What we found": every sentence of that section, recomputed on the course model.

The notebook prints the numbers of :func:`course_utils.checks.early_decoding.findings` and
states qualitative claims about them; these tests assert each claim with bounds loose enough
for a retrain that tells the same story, and tight enough that another story fails here."""

from __future__ import annotations

import pytest
import torch

from course_utils.checks import early_decoding as checks


@pytest.fixture(scope="module")
def found():
    return checks.findings()


def test_the_model_answers_the_held_out_forms(found):
    assert found.capitals_bare.top1 >= 0.9 and found.capitals_qa.top1 >= 0.9
    assert found.towns.top1 >= 0.5


def test_every_answer_is_built_over_depth(found):
    """ "For towns and for both forms of the capitals, the answer is far from the top after block 0
    (median rank 10 or more) and the median row from which it stays top-1 is 'block 2 out' or later"."""
    for group in (found.towns, found.capitals_bare, found.capitals_qa):
        assert group.median_rank[1] >= 10 and group.top1_depth >= 3, group


def test_the_seed_prompt_rises_the_same_way():
    lens = checks.lens(checks.CAPITAL_PROMPT.text)
    ranks = checks.SOLUTION.answer_rank_per_layer(lens, checks.answer_token(checks.CAPITAL_PROMPT))
    assert ranks[1] >= 10 and ranks[-1] == 0, ranks


def test_towns_fall_block_after_block(found):
    """ "For towns the median rank falls block after block, never rising again on the way to the top"."""
    ranks = found.towns.median_rank
    assert all(later <= earlier for earlier, later in zip(ranks[1:], ranks[2:])), ranks
    assert ranks[-1] == 0, ranks


def test_mlp0_matters_most_mostly_indirectly(found):
    """ "Zeroing MLP 0 costs more than any other MLP, for towns and capitals; for towns its direct
    removal costs less than half of that"."""
    for group in (found.towns, found.capitals_bare, found.capitals_qa):
        zero = group.mlp_zero_nats
        assert zero[0] == max(zero) and zero[0] >= 2, group
    assert found.towns.mlp_direct_nats[0] < found.towns.mlp_zero_nats[0] / 2


def test_mlp3_writes_the_towns_answer(found):
    """ "Among the later MLPs, MLP 3 costs the towns' answer the most (more than 1 nat), and nearly
    all of that directly"."""
    zero, direct = found.towns.mlp_zero_nats, found.towns.mlp_direct_nats
    assert zero[3] == max(zero[1:]) and zero[3] > 1, zero
    assert direct[3] >= 0.8 * zero[3], (zero, direct)


def test_tracing_at_the_towns_last_token_recovers_little(found):
    """ "Restoring the town's last token, at any depth, recovers less than half of the answer's probability"."""
    assert found.n_traced >= 4
    assert max(found.tracing) < 0.5, found.tracing


def test_the_name_is_read_over_several_blocks(found):
    """ "Restoring every token of the town's name after block 0 still brings back more than half of
    the answer, less after block 1 and less again after block 2"."""
    whole = found.tracing_whole_subject
    assert whole[1] > 0.5 and whole[1] > whole[2] > whole[3], whole


def test_the_chapters_example_rises_too():
    prompt = checks.town_prompt()
    ranks = checks.SOLUTION.answer_rank_per_layer(checks.lens(prompt.text), checks.answer_token(prompt))
    assert ranks[1] > 0 and ranks[-1] == 0


def test_the_batched_trace_of_the_findings_is_the_reference_trace():
    prompt = checks.town_prompt()
    swap = checks.subject_swap(prompt)
    answer = checks.answer_token(prompt)
    reference = checks.SOLUTION.causal_trace(checks.model(), swap.clean, swap.corrupted, answer, swap.subject_pos)
    torch.testing.assert_close(checks.batched_trace(swap, answer), reference, atol=1e-4, rtol=1e-3)
