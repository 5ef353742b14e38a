"""Where a learner stands: ``python -m course_utils progress`` (or ``make progress``).

Executes a copy of each notebook in the learner's workspace (their files are only
read), headless, every cell even after an error, and reads the check lines that the
harness prints (``✓ name: …``, ``✗ name: …``, ``… name is not implemented yet.``).
The checks a chapter has are the ``test_<name>`` functions of its checks module, so a
check that printed nothing (its cell was never reached, or was deleted) shows as not
attempted rather than disappearing. Prints a table, chapter × exercise → status, with
the first line of each failure and a total.
"""
from __future__ import annotations

import inspect
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_utils.chapters import checks_module
from course_utils.harness import FAIL, PASS, TODO
from course_utils.kernel import execute_in_kernel

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
SYMBOL = {PASSED: PASS, FAILED: FAIL, NOT_ATTEMPTED: "·"}
# The harness's three line shapes: "✓ name: …", "✗ name: …", "… name is not implemented yet."
CHECK_LINE = re.compile(
    rf"^(?:(?P<mark>[{PASS}{FAIL}]) (?P<name>[A-Za-z_]\w*):(?P<rest>.*)|{TODO} (?P<todo>[A-Za-z_]\w*) (?P<todo_rest>is not .*))$"
)
CHECK_CALL = re.compile(r"\bchecks\.test_(?P<name>\w+)\s*\(")


@dataclass
class ExerciseStatus:
    name: str
    status: str
    detail: str = ""


@dataclass
class ChapterProgress:
    chapter: str
    exercises: list[ExerciseStatus] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(e.status == status for e in self.exercises)


def expected_checks(chapter: str) -> list[str]:
    """The exercise names of a chapter: every ``test_<name>`` function its checks module defines, in order."""
    module = checks_module(chapter)
    functions = [
        fn
        for name, fn in vars(module).items()
        if name.startswith("test_") and inspect.isfunction(fn) and fn.__module__ == module.__name__
    ]
    functions.sort(key=lambda fn: fn.__code__.co_firstlineno)
    return [fn.__name__[len("test_") :] for fn in functions]


def execute_copy(notebook: Path, timeout: int = 600) -> tuple[nbformat.NotebookNode, str]:
    """Execute an in-memory copy of ``notebook``; return it and a note if it stopped early.

    The learner's file is read once and never written; the kernel's working directory
    is a temporary folder, so files the notebook writes do not land in the workspace.
    """
    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory(prefix="course-progress-") as scratch:
        stopped = execute_in_kernel(nb, Path(scratch), timeout, strict_checks=False)
    note = f"the notebook stopped early: {stopped[:200]}" if stopped else ""
    return nb, note


def read_statuses(nb: nbformat.NotebookNode, expected: Sequence[str]) -> list[ExerciseStatus]:
    """Each expected check's status, from the check lines an executed notebook printed."""
    printed: dict[str, ExerciseStatus] = {}
    cell_errors: dict[str, ExerciseStatus] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
        for line in text.splitlines():
            match = CHECK_LINE.match(line.strip())
            if match:
                status = _status_of(match)
                printed[status.name] = status
        errors = [o for o in outputs if o.get("output_type") == "error"]
        if errors:
            err = errors[0]
            for name in CHECK_CALL.findall(cell.source):
                if err.get("ename") == "NotImplementedError":
                    cell_errors[name] = ExerciseStatus(name, NOT_ATTEMPTED, "a stub raised before the check ran")
                else:
                    reason = f"the check's cell raised {err.get('ename')}: {_first_line(err.get('evalue', ''))}"
                    cell_errors[name] = ExerciseStatus(name, FAILED, reason)
    statuses = []
    for name in list(expected) + [n for n in printed if n not in expected]:
        statuses.append(printed.get(name) or cell_errors.get(name) or ExerciseStatus(name, NOT_ATTEMPTED, "not run"))
    return statuses


def _status_of(match: re.Match) -> ExerciseStatus:
    if match["todo"]:
        return ExerciseStatus(match["todo"], NOT_ATTEMPTED, match["todo_rest"].removeprefix("is ").rstrip("."))
    if match["mark"] == PASS:
        return ExerciseStatus(match["name"], PASSED)
    return ExerciseStatus(match["name"], FAILED, match["rest"].strip())


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0][:200] if lines else ""


def chapter_progress(
    chapter: str, notebook: Path, expected: Sequence[str], timeout: int = 600
) -> ChapterProgress:
    if not notebook.exists():
        return ChapterProgress(
            chapter, [ExerciseStatus(n, NOT_ATTEMPTED, "not in your workspace") for n in expected],
            note=f"{notebook.name} is not in your workspace (make lab copies it there)",
        )
    started = time.perf_counter()
    nb, note = execute_copy(notebook, timeout)
    return ChapterProgress(chapter, read_statuses(nb, expected), note, time.perf_counter() - started)


def collect_progress(
    chapters: Sequence[str],
    workspace: Path,
    *,
    expected: Callable[[str], Sequence[str]] = expected_checks,
    timeout: int = 600,
    log: Callable[[str], None] = print,
) -> list[ChapterProgress]:
    results = []
    for chapter in chapters:
        log(f"running {chapter} …")
        results.append(chapter_progress(chapter, Path(workspace) / f"{chapter}.ipynb", list(expected(chapter)), timeout))
    return results


def format_table(results: Sequence[ChapterProgress], width: int = 110) -> str:
    """The progress table: one row per exercise, a line per chapter, and the total."""
    rows = [(r.chapter, e) for r in results for e in r.exercises]
    chapter_w = max([len("chapter")] + [len(r.chapter) for r in results])
    name_w = max([len("exercise")] + [len(e.name) for _, e in rows])
    status_w = len(SYMBOL[NOT_ATTEMPTED]) + 1 + len(NOT_ATTEMPTED)
    detail_w = max(20, width - chapter_w - name_w - status_w - 6)
    lines = [f"{'chapter':<{chapter_w}}  {'exercise':<{name_w}}  {'status':<{status_w}}  first failure line"]
    lines.append("-" * min(width, chapter_w + name_w + status_w + 6 + detail_w))
    for result in results:
        for i, ex in enumerate(result.exercises):
            detail = ex.detail if ex.status != PASSED else ""
            detail = " ".join(detail.split())
            detail = detail if len(detail) <= detail_w else detail[: detail_w - 1].rstrip() + "…"
            status = f"{SYMBOL[ex.status]} {ex.status}"
            chapter = result.chapter if i == 0 else ""
            lines.append(f"{chapter:<{chapter_w}}  {ex.name:<{name_w}}  {status:<{status_w}}  {detail}".rstrip())
        if not result.exercises:
            lines.append(f"{result.chapter:<{chapter_w}}  (no checks found)")
        total = len(result.exercises)
        summary = f"{result.count(PASSED)}/{total} passed"
        if result.seconds:
            summary += f" · ran in {result.seconds:.0f} s"
        if result.note:
            summary += f" · {result.note}"
        lines.append(f"{'':<{chapter_w}}  {summary}")
        lines.append("")
    n = sum(len(r.exercises) for r in results)
    passed = sum(r.count(PASSED) for r in results)
    failed = sum(r.count(FAILED) for r in results)
    todo = sum(r.count(NOT_ATTEMPTED) for r in results)
    lines.append(f"Total: {passed} of {n} checks passed, {failed} failed, {todo} not attempted.")
    return "\n".join(lines)
