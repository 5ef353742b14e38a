"""Every check of every chapter in the registry: it passes the reference solution, says "not
implemented yet" for a stub (an unanswered ``...`` for an answer), stays fast once its inputs are
cached, and rejects each of its chapter's ``KNOWN_MISTAKES`` with that mistake's diagnosis. The
chapters' own test files prove that the checks accept correct alternatives and reject the mistakes
they find by other means (a wrong shape, an input modified in place, a hook left attached…)."""

import time

import pytest

from check_helpers import stub
from course_utils.chapters import CHAPTERS

WARM_SECONDS = 2.0
"""Generous bound on a check's second run (the target is well under a second; benchmarks/run_course.py
prints the medians): a check that recomputes its reference each time fails it."""

CASES = [
    pytest.param(chapter, name, id=f"{chapter[:2]}-{name}")
    for chapter, record in CHAPTERS.items()
    for name in record.stubs()
]


def _check(chapter: str, name: str):
    return getattr(CHAPTERS[chapter].checks(), f"test_{name}")


@pytest.mark.parametrize("chapter, name", CASES)
def test_solution_passes_fast(chapter, name, capsys):
    check, solution = _check(chapter, name), getattr(CHAPTERS[chapter].solutions(), name)
    capsys.readouterr()
    result = check(solution)
    assert result, result.message
    assert result.name == name and "\n" not in result.message
    assert capsys.readouterr().out.startswith(f"✓ {name}")
    started = time.perf_counter()
    check(solution)
    assert time.perf_counter() - started < WARM_SECONDS, f"{name}: a second run took over {WARM_SECONDS} s"


@pytest.mark.parametrize("chapter, name", CASES)
def test_stub_is_not_attempted(chapter, name):
    unanswered = stub if name in CHAPTERS[chapter].exercises else ...
    result = _check(chapter, name)(unanswered)
    assert result.status == "not attempted" and not result
    assert result.message == f"… {name} is not {'implemented' if unanswered is stub else 'answered'} yet."


MISTAKES = [
    pytest.param(chapter, exercise, diagnosis, id=f"{chapter[:2]}-{exercise}-{i}")
    for chapter, record in CHAPTERS.items()
    for exercise, mistakes in record.known_mistakes().items()
    for i, diagnosis in enumerate(mistakes)
]


INVISIBLE_MISTAKES = {
    "did you leave out the unembedding bias b_U?": "facts-4l's b_U is all zeros, so leaving it out changes "
    "nothing on the course model; the diagnosis is for models whose unembedding has a bias",
}
"""Known mistakes that the check's inputs cannot reveal, each with the reason. Any other known mistake
that a check passes is a check that cannot catch it: the test fails."""


@pytest.mark.parametrize("chapter, exercise, diagnosis", MISTAKES)
def test_known_mistake_is_rejected_with_its_diagnosis(chapter, exercise, diagnosis):
    """The harness names the first diagnosis whose mistake gives the learner's output: this one, or an
    earlier one of the same exercise that gives the same output on the failing case."""
    mistakes = CHAPTERS[chapter].known_mistakes()[exercise]
    result = _check(chapter, exercise)(mistakes[diagnosis])
    if result:
        assert diagnosis in INVISIBLE_MISTAKES, (
            f"the check passes this known mistake, so it cannot catch it: {diagnosis}"
        )
        pytest.skip(INVISIBLE_MISTAKES[diagnosis])
    assert result.status == "failed" and "\n" not in result.message, result.message
    named = list(mistakes)[: list(mistakes).index(diagnosis) + 1]
    assert any(result.message.endswith(f" — {d}") for d in named), f"{diagnosis!r} is not named: {result.message}"


@pytest.mark.parametrize("chapter", list(CHAPTERS))
def test_known_mistakes_are_of_the_chapters_exercises(chapter):
    record = CHAPTERS[chapter]
    mistakes = record.known_mistakes()
    unknown = sorted(set(mistakes) - set(record.exercises))
    assert not unknown, f"KNOWN_MISTAKES of {record.checks_name} names no exercise of {chapter}: {unknown}"
    for exercise, by_diagnosis in mistakes.items():
        assert by_diagnosis, f"{exercise}: an empty entry in KNOWN_MISTAKES"
        assert all(callable(fn) for fn in by_diagnosis.values()), exercise
