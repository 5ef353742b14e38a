"""Grade a class: ``python -m course_utils grade SUBMISSIONS`` (or ``make grade ARGS=...``).

``SUBMISSIONS`` holds one folder per student, each with any of that student's chapter
notebooks named as in ``workspace/`` (``01_hooks_basics.ipynb``, …). Every notebook is
read once (never written), executed as a copy in a temporary folder by its own sandboxed
kernel (:class:`course_utils.tooling.kernel.Sandbox`: memory cap, no network) under a per-cell
and a per-notebook time limit, several at a time, and read as ``make progress`` reads a
learner's notebooks (:func:`course_utils.tooling.progress.chapter_progress`). Writes:

- ``grades.csv``: ``student,chapter,exercise,status,message``, one row per student,
  graded chapter and exercise or answer; ``status`` is ``passed``, ``failed``, ``not
  attempted`` or ``error`` (the notebook could not run; ``message`` says why);
- ``index.html``: the class summary (per exercise, how many students passed, failed, did
  not attempt; the most common diagnosis; a plotly chart that works offline);
- ``students/<name>.html``: each student's feedback, every diagnosis in full.

The grade trusts what the notebook's checks report: a student who forges a check's
output in their notebook is not detected.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from course_utils.chapters import available_chapters
from course_utils.harness import ERROR, FAILED, NOT_ATTEMPTED, PASSED
from course_utils.paths import BUILD_DIR
from course_utils.tooling.progress import (
    ChapterProgress,
    ExerciseStatus,
    RunLimits,
    chapter_progress,
    expected_checks,
    total_line,
)

GRADES_DIR = BUILD_DIR / "grades"
COLUMNS = ("student", "chapter", "exercise", "status", "message")
STATUS_ORDER = (PASSED, FAILED, NOT_ATTEMPTED, ERROR)
COLOURS = {PASSED: "#2e8b57", FAILED: "#c0392b", NOT_ATTEMPTED: "#b0b0b0", ERROR: "#7d3c98"}


@dataclass
class Student:
    name: str
    folder: Path
    notebooks: dict[str, Path] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    student: str
    chapter: str
    exercise: str
    status: str
    message: str


@dataclass
class ClassGrades:
    chapters: list[str]
    students: list[Student]
    rows: list[Row]
    notes: dict[tuple[str, str], str]
    seconds: float

    def total(self) -> str:
        exercises = [ExerciseStatus(r.exercise, r.status) for r in self.rows]
        return total_line(exercises, "checks")


def find_students(submissions: Path, chapters: Sequence[str]) -> list[Student]:
    """One :class:`Student` per folder of ``submissions`` (sorted), with the chapter notebooks found in it."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder (expected one folder per student)")
    students = []
    for folder in sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith(".")):
        student = Student(folder.name, folder)
        for path in sorted(folder.glob("*.ipynb")):
            if path.stem in chapters and path.is_file():
                student.notebooks[path.stem] = path
            else:
                student.ignored.append(path.name)
        students.append(student)
    return students


def graded_chapters(submissions: Path, chosen: Sequence[str] = ()) -> list[str]:
    """``chosen``, or every course chapter that at least one student handed in (all if none did)."""
    if chosen:
        return list(chosen)
    everything = available_chapters()
    handed_in = {p.stem for p in Path(submissions).glob("*/*.ipynb")}
    return [c for c in everything if c in handed_in] or everything


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def grade_class(
    submissions: Path,
    chapters: Sequence[str],
    *,
    limits: RunLimits,
    jobs: int | None = None,
    expected: Callable[[str], Sequence[str]] = expected_checks,
    show_progress: bool = True,
) -> ClassGrades:
    """Run every student's notebooks (``jobs`` at a time) and return one row per student × chapter × exercise."""
    started = time.perf_counter()
    students = find_students(submissions, chapters)
    names = {chapter: list(expected(chapter)) for chapter in chapters}
    jobs = jobs or default_jobs()
    # Each kernel gets its share of the cores; torch's default (all cores each) only makes them fight.
    threads = str(max(1, default_jobs() // jobs))
    limits = dataclasses.replace(
        limits, extra_env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **limits.extra_env}
    )
    work = [(s, c) for s in students for c in chapters if c in s.notebooks]
    results: dict[tuple[str, str], ChapterProgress] = {}
    with (
        ThreadPoolExecutor(max_workers=jobs) as pool,
        tqdm(total=len(work), desc="grading", unit="notebook", disable=not show_progress or not work) as bar,
    ):
        futures = {pool.submit(_grade_one, s, c, names[c], limits): (s.name, c) for s, c in work}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.set_postfix_str(" ".join(futures[future]), refresh=False)
            bar.update()
    rows, notes = [], {}
    for student in students:
        for chapter in chapters:
            result = results.get((student.name, chapter)) or ChapterProgress(
                chapter, [ExerciseStatus(n, NOT_ATTEMPTED, f"no {chapter}.ipynb handed in") for n in names[chapter]]
            )
            if result.note:
                notes[(student.name, chapter)] = result.note
            rows += [Row(student.name, chapter, e.name, e.status, e.message) for e in result.exercises]
    return ClassGrades(list(chapters), students, rows, notes, time.perf_counter() - started)


def _grade_one(student: Student, chapter: str, expected: Sequence[str], limits: RunLimits) -> ChapterProgress:
    try:
        return chapter_progress(chapter, student.notebooks[chapter], expected, limits)
    except Exception as err:  # noqa: BLE001 - one notebook that breaks the runner must not stop the class
        reason = f"the grader could not run it: {type(err).__name__}: {str(err).strip()[:200]}"
        return ChapterProgress(chapter, [ExerciseStatus(n, ERROR, reason) for n in expected], note=reason)


# --------------------------------------------------------------------------- outputs


def write_csv(rows: Sequence[Row], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows((r.student, r.chapter, r.exercise, r.status, r.message) for r in rows)
    return path


def read_csv(path: Path) -> list[Row]:
    with Path(path).open(newline="", encoding="utf-8") as f:
        return [Row(**row) for row in csv.DictReader(f)]


def page_name(student: str) -> str:
    """A safe file name for a student's page: ``'Ana María'`` → ``'Ana_Mar_a.html'`` (kept unique by the caller)."""
    return (re.sub(r"[^A-Za-z0-9_.-]", "_", student).strip("._") or "student") + ".html"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 24px; line-height: 1.45; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0 1.5em; }
td, th { border-bottom: 1px solid #ddd; padding: 5px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
.passed { color: #2e8b57; } .failed { color: #c0392b; } .not-attempted { color: #777; } .error { color: #7d3c98; }
.status { white-space: nowrap; font-weight: 600; }
.message { white-space: pre-wrap; word-break: break-word; }
.note { background: #fdf2e9; border-left: 4px solid #e67e22; padding: 4px 10px; }
@media print { a { color: inherit; } }
"""
_MARK = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "·", ERROR: "!"}


def _page(title: str, body: str, head: str = "") -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style>{head}</head>\n<body><main>\n{body}\n</main></body></html>\n"
    )


def _status_cell(status: str) -> str:
    return f'<td class="status {status.replace(" ", "-")}">{_MARK[status]} {html.escape(status)}</td>'


def student_page(student: str, grades: ClassGrades, summary_link: str = "../index.html") -> str:
    """One student's feedback: per chapter, each exercise's status and whole diagnosis."""
    mine = [r for r in grades.rows if r.student == student]
    parts = [f"<h1>Feedback for {html.escape(student)}</h1>", f'<p><a href="{summary_link}">class summary</a></p>']
    parts.append(f"<p>{html.escape(total_line([ExerciseStatus(r.exercise, r.status) for r in mine]))}</p>")
    for chapter in grades.chapters:
        rows = [r for r in mine if r.chapter == chapter]
        passed = sum(r.status == PASSED for r in rows)
        parts.append(f"<h2>{html.escape(chapter)} <small>({passed}/{len(rows)} passed)</small></h2>")
        note = grades.notes.get((student, chapter))
        if note:
            parts.append(f'<p class="note">{html.escape(note)}</p>')
        parts.append("<table><thead><tr><th>exercise</th><th>status</th><th>diagnosis</th></tr></thead><tbody>")
        parts += [
            f"<tr><td><code>{html.escape(r.exercise)}</code></td>{_status_cell(r.status)}"
            f'<td class="message">{html.escape(r.message if r.status != PASSED else "")}</td></tr>'
            for r in rows
        ]
        parts.append("</tbody></table>")
    return _page(f"Feedback: {student}", "\n".join(parts))


def class_chart(grades: ClassGrades) -> dict:
    """A stacked plotly bar chart (as a figure dict): per exercise, students per status."""
    import plotly.graph_objects as go

    exercises = list(dict.fromkeys((r.chapter, r.exercise) for r in grades.rows))
    labels = [f"{chapter[:2]} · {exercise}" for chapter, exercise in exercises]
    counts = Counter((r.chapter, r.exercise, r.status) for r in grades.rows)
    figure = go.Figure(
        [
            go.Bar(
                name=status, x=labels, y=[counts[(c, e, status)] for c, e in exercises], marker_color=COLOURS[status]
            )
            for status in STATUS_ORDER
            if any(counts[(c, e, status)] for c, e in exercises)
        ]
    )
    figure.update_layout(
        barmode="stack",
        title=f"Where the class stands: students per exercise ({len(grades.students)} students)",
        xaxis_title="chapter · exercise",
        yaxis_title="students",
        legend_title_text="status",
    )
    figure.update_xaxes(type="category", tickangle=-45)
    figure.update_yaxes(dtick=max(1, len(grades.students) // 10))
    return figure.to_plotly_json()


def summary_page(grades: ClassGrades, pages: dict[str, str]) -> str:
    """The class summary: a chart, a table per exercise with the most common diagnosis, a table per student."""
    from course_utils.tooling.sheets import plotly_figure_html, plotly_js

    parts = ["<h1>Class summary</h1>"]
    parts.append(
        f"<p>{len(grades.students)} students · chapters {html.escape(', '.join(grades.chapters))} · "
        f"{html.escape(grades.total())} Graded in {grades.seconds:.0f} s.</p>"
    )
    if grades.rows:
        parts.append(plotly_figure_html(class_chart(grades), "class-chart"))
    parts.append("<h2>Per exercise</h2><table><thead><tr><th>chapter</th><th>exercise</th>")
    parts += [f"<th>{html.escape(s)}</th>" for s in STATUS_ORDER]
    parts.append("<th>most common diagnosis</th></tr></thead><tbody>")
    by_exercise: dict[tuple[str, str], list[Row]] = {}
    for row in grades.rows:
        by_exercise.setdefault((row.chapter, row.exercise), []).append(row)
    for (chapter, exercise), rows in by_exercise.items():
        counts = Counter(r.status for r in rows)
        failures = Counter(r.message for r in rows if r.status == FAILED and r.message)
        common = ""
        if failures:
            message, n = failures.most_common(1)[0]
            common = f"{html.escape(message)} <small>({n} student{'s' if n != 1 else ''})</small>"
        parts.append(
            f"<tr><td>{html.escape(chapter)}</td><td><code>{html.escape(exercise)}</code></td>"
            + "".join(f'<td class="num">{counts[s]}</td>' for s in STATUS_ORDER)
            + f'<td class="message">{common}</td></tr>'
        )
    parts.append("</tbody></table><h2>Per student</h2><table><thead><tr><th>student</th>")
    parts += [f"<th>{html.escape(c)}</th>" for c in grades.chapters]
    parts.append("<th>notes</th></tr></thead><tbody>")
    for student in grades.students:
        cells = []
        for chapter in grades.chapters:
            rows = [r for r in grades.rows if r.student == student.name and r.chapter == chapter]
            cells.append(f'<td class="num">{sum(r.status == PASSED for r in rows)}/{len(rows)}</td>')
        notes = [
            f"{c}: {grades.notes[(student.name, c)]}" for c in grades.chapters if (student.name, c) in grades.notes
        ]
        if not student.notebooks:
            notes.insert(0, "no notebook handed in")
        if student.ignored:
            notes.append("not graded (unknown name): " + ", ".join(student.ignored))
        parts.append(
            f'<tr><td><a href="students/{html.escape(pages[student.name])}">{html.escape(student.name)}</a></td>'
            + "".join(cells)
            + f'<td class="message">{html.escape("; ".join(notes))}</td></tr>'
        )
    parts.append("</tbody></table>")
    head = f'<script type="text/javascript" data-library="plotly">{plotly_js()}</script>' if grades.rows else ""
    return _page("Class summary", "\n".join(parts), head)


def write_html(grades: ClassGrades, out_dir: Path) -> Path:
    """``index.html`` (class summary) and ``students/<name>.html`` in ``out_dir``; return the summary's path."""
    out_dir = Path(out_dir)
    (out_dir / "students").mkdir(parents=True, exist_ok=True)
    pages: dict[str, str] = {}
    for student in grades.students:
        name = page_name(student.name)
        while name in pages.values():
            name = name.removesuffix(".html") + "_.html"
        pages[student.name] = name
        (out_dir / "students" / name).write_text(student_page(student.name, grades), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(summary_page(grades, pages), encoding="utf-8")
    return index
