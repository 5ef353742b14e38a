"""Every check of every chapter in the registry: it passes the reference solution, says "not
implemented yet" for a stub (an unanswered ``...`` for an answer), and stays fast once its
inputs are cached. The chapters' own test files prove that each check rejects the classic
mistakes and accepts correct alternatives."""

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
