"""Where a learner stands: ``python -m course_utils progress`` (or ``make progress``).

Executes a copy of each notebook in the learner's workspace (their files are only
read), headless, every cell even after an error or a cell time-out, and reads the
outcome that each check publishes as data beside its line (``harness.RESULT_MIME``).
The checks a chapter has are its stubs (:mod:`course_utils.chapters`), so a
check that reported nothing (its cell was never reached, or was deleted) shows as not
attempted rather than disappearing. Prints a table, chapter × exercise → status, with
each failure's whole diagnosis wrapped to the terminal, and a total; ``--json`` prints
the same as data. ``make grade`` reads notebooks the same way (:func:`chapter_progress`).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_utils import chapters
from course_utils.harness import ERROR, FAIL, FAILED, NOT_ATTEMPTED, PASS, PASSED, RESULT_MIME, TODO
from course_utils.tooling.kernel import CELL_TIMEOUT, Sandbox, execute_in_kernel

STATUSES = (PASSED, FAILED, NOT_ATTEMPTED, ERROR)
SYMBOL = {PASSED: PASS, FAILED: FAIL, NOT_ATTEMPTED: "·", ERROR: "!"}
CHECK_CALL = re.compile(r"\bchecks\.test_(?P<name>\w+)\s*\(")


@dataclass
class ExerciseStatus:
    name: str
    status: str
    message: str = ""


@dataclass
class ChapterProgress:
    chapter: str
    exercises: list[ExerciseStatus] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(e.status == status for e in self.exercises)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunLimits:
    """How a notebook is executed: seconds per cell, seconds per notebook, and an optional sandbox."""

    cell_timeout: int = 600
    notebook_timeout: float | None = None
    sandbox: Sandbox | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


def expected_checks(chapter: str) -> list[str]:
    """What a chapter checks, in notebook order: its exercises and answers (the registry's stubs)."""
    return list(chapters.get(chapter).stubs())


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read ``path`` as a notebook; a file that is not one raises ``ValueError`` with a one-line reason."""
    try:
        nb = nbformat.read(path, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
        for cell in nb.cells:
            cell.setdefault("source", "")
            if cell.get("cell_type") == "code":
                cell.setdefault("outputs", [])
                cell.setdefault("metadata", {})
        return nb
    except Exception as err:  # noqa: BLE001 - truncated JSON, another format, a broken structure
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path.name} is not a readable notebook ({reason})") from None


def execute_copy(notebook: Path, limits: RunLimits = RunLimits()) -> tuple[nbformat.NotebookNode, str]:
    """Execute an in-memory copy of ``notebook``; return it and a note if it stopped early.

    The file is read once and never written; the kernel's working directory is a
    temporary folder, so files the notebook writes do not land beside it.
    """
    nb = read_notebook(notebook)
    with tempfile.TemporaryDirectory(prefix="course-run-") as scratch:
        stopped = execute_in_kernel(
            nb,
            Path(scratch),
            limits.cell_timeout,
            strict_checks=False,
            notebook_timeout=limits.notebook_timeout,
            sandbox=limits.sandbox,
            extra_env=limits.extra_env,
        )
    return nb, stopped[:200] if stopped else ""


def read_statuses(nb: nbformat.NotebookNode, expected: Sequence[str], stopped: str = "") -> list[ExerciseStatus]:
    """Each expected check's status, from the results an executed notebook's checks published.

    A check whose cell raised before it reported is failed (not attempted if a stub
    raised); one that never reported is not attempted, or ``error`` with ``stopped`` as
    the reason when the run stopped early.
    """
    reported: dict[str, ExerciseStatus] = {}
    cell_errors: dict[str, ExerciseStatus] = {}
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs", [])
        for output in outputs:
            result = (output.get("data") or {}).get(RESULT_MIME)
            if (
                isinstance(result, dict)
                and result.get("status") in STATUSES
                and isinstance(result.get("exercise"), str)
            ):
                name = result["exercise"]
                reported[name] = ExerciseStatus(
                    name, result["status"], _diagnosis(name, str(result.get("message", "")))
                )
        errors = [o for o in outputs if o.get("output_type") == "error"]
        if errors:
            for name in CHECK_CALL.findall(cell.get("source", "")):
                cell_errors[name] = _cell_error(
                    name, errors[-1] if errors[-1].get("ename") == CELL_TIMEOUT else errors[0]
                )
    missing = ExerciseStatus("", ERROR, stopped) if stopped else ExerciseStatus("", NOT_ATTEMPTED, "not run")
    return [
        reported.get(name) or cell_errors.get(name) or dataclasses.replace(missing, name=name)
        for name in list(expected) + [n for n in reported if n not in expected]
    ]


def _cell_error(name: str, err: dict) -> ExerciseStatus:
    if err.get("ename") == "NotImplementedError":
        return ExerciseStatus(name, NOT_ATTEMPTED, "a stub raised before the check ran")
    if err.get("ename") == CELL_TIMEOUT:
        return ExerciseStatus(name, FAILED, f"the check's cell stopped: {err.get('evalue', '')}")
    return ExerciseStatus(
        name, FAILED, f"the check's cell raised {err.get('ename')}: {_first_line(err.get('evalue', ''))}"
    )


def _diagnosis(name: str, message: str) -> str:
    """The check's line without its mark and name: ``'on x = 1, output is 3 …'``, ``'not implemented yet'``."""
    for prefix in (f"{PASS} {name}: ", f"{FAIL} {name}: ", f"{TODO} {name} is "):
        if message.startswith(prefix):
            return message[len(prefix) :].removesuffix(".")
    return message


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0][:200] if lines else ""


def chapter_progress(
    chapter: str, notebook: Path, expected: Sequence[str], limits: RunLimits = RunLimits()
) -> ChapterProgress:
    """Run a copy of one chapter's notebook and read each expected check's status."""
    if not notebook.exists():
        return ChapterProgress(
            chapter,
            [ExerciseStatus(n, NOT_ATTEMPTED, "not in your workspace") for n in expected],
            note=f"{notebook.name} is not in your workspace (make lab copies it there)",
        )
    started = time.perf_counter()
    try:
        nb, stopped = execute_copy(notebook, limits)
    except ValueError as err:
        return ChapterProgress(chapter, [ExerciseStatus(n, ERROR, str(err)) for n in expected], note=str(err))
    note = f"the notebook stopped early: {stopped}" if stopped else ""
    return ChapterProgress(chapter, read_statuses(nb, expected, stopped), note, time.perf_counter() - started)


def collect_progress(
    chapters: Sequence[str],
    workspace: Path,
    *,
    expected: Callable[[str], Sequence[str]] = expected_checks,
    limits: RunLimits = RunLimits(),
    log: Callable[[str], None] = print,
) -> list[ChapterProgress]:
    results = []
    for chapter in chapters:
        log(f"running {chapter} …")
        results.append(chapter_progress(chapter, Path(workspace) / f"{chapter}.ipynb", list(expected(chapter)), limits))
    return results


def format_table(results: Sequence[ChapterProgress], width: int | None = None) -> str:
    """The progress table: one row per exercise with its whole diagnosis wrapped to ``width``
    (default: the terminal's, ``$COLUMNS`` included), a line per chapter, and the total."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    rows = [(r.chapter, e) for r in results for e in r.exercises]
    chapter_w = max([len("chapter")] + [len(r.chapter) for r in results])
    name_w = max([len("exercise")] + [len(e.name) for _, e in rows])
    status_w = max(len(SYMBOL[s]) + 1 + len(s) for s in STATUSES)
    indent = chapter_w + name_w + status_w + 6
    # A diagnosis narrower than 40 columns is unreadable: it then goes on its own lines below the row.
    beside = width - indent >= 40
    lines = [f"{'chapter':<{chapter_w}}  {'exercise':<{name_w}}  {'status':<{status_w}}  diagnosis"]
    lines.append("-" * min(width, indent + 9))
    for result in results:
        for i, ex in enumerate(result.exercises):
            chapter = result.chapter if i == 0 else ""
            row = f"{chapter:<{chapter_w}}  {ex.name:<{name_w}}  {SYMBOL[ex.status] + ' ' + ex.status:<{status_w}}"
            detail = " ".join(ex.message.split()) if ex.status != PASSED else ""
            if not detail:
                lines.append(row.rstrip())
            elif beside:
                wrapped = textwrap.wrap(detail, width - indent, break_on_hyphens=False)
                lines.append(f"{row}  {wrapped[0]}")
                lines.extend(" " * indent + part for part in wrapped[1:])
            else:
                lines.append(row.rstrip())
                lines.extend(textwrap.wrap(detail, max(20, width), initial_indent="    ", subsequent_indent="    "))
        if not result.exercises:
            lines.append(f"{result.chapter:<{chapter_w}}  (no checks found)")
        summary = f"{result.count(PASSED)}/{len(result.exercises)} passed"
        if result.seconds:
            summary += f" · ran in {result.seconds:.0f} s"
        if result.note:
            summary += f" · {result.note}"
        lines.extend(
            textwrap.wrap(
                summary,
                max(20, width - chapter_w - 2),
                initial_indent=" " * (chapter_w + 2),
                subsequent_indent=" " * (chapter_w + 4),
            )
        )
        lines.append("")
    lines.extend(textwrap.wrap(total_line([e for r in results for e in r.exercises]), max(20, width)))
    return "\n".join(lines)


def total_line(exercises: Sequence[ExerciseStatus], what: str = "checks") -> str:
    """``'Total: 3 of 8 checks passed, 2 failed, 3 not attempted.'`` (and ``, 1 error`` when any)."""
    count = {s: sum(e.status == s for e in exercises) for s in STATUSES}
    line = f"Total: {count[PASSED]} of {len(exercises)} {what} passed, {count[FAILED]} failed, {count[NOT_ATTEMPTED]} not attempted"
    if count[ERROR]:
        line += f", {count[ERROR]} could not run"
    return line + "."
