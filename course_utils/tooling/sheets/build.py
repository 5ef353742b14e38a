"""``make sheets``: build each chapter's notebooks, execute the solution notebook, write both pages and the index."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import nbformat

from course_utils.paths import BUILD_DIR
from course_utils.tooling.build import build_chapter
from course_utils.tooling.kernel import execute_in_kernel, execution_errors
from course_utils.tooling.sheets.chromium import print_pdf
from course_utils.tooling.sheets.figures import PageFigures
from course_utils.tooling.sheets.page import ASSETS_DIR, render_page
from course_utils.tooling.sheets.streams import clean_streams

SHEETS_DIR = BUILD_DIR / "sheets"
MANIFEST = "sheets.json"
ERRORS_SHOWN = 5


@dataclass
class SheetResult:
    """One chapter's sheets and how the build went."""

    chapter: str
    exercise_page: Path
    solution_page: Path
    executed: bool
    seconds: float
    figures: PageFigures
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    pdfs: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.external and not self.figures.problems


def execute_notebook(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 600) -> list[str]:
    """Execute ``nb`` in place (every cell, even after an error); return one line per error.

    The kernel runs with ``COURSE_STRICT_CHECKS=1`` (a failed check is an error); figures come
    out as plotly JSON (see :func:`course_utils.tooling.kernel.execute_in_kernel`).
    """
    stopped = execute_in_kernel(nb, cwd, timeout, strict_checks=True)
    if stopped is not None:
        return [f"execution stopped: {stopped[:200]}"]
    return execution_errors(nb)


def build_sheets(
    chapters: Sequence[str],
    out_dir: Path | None = None,
    *,
    notebooks_dir: Path | None = None,
    build: Callable[[str, Path], tuple[Path, Path]] = build_chapter,
    execute: bool = True,
    timeout: int = 600,
    pdf: bool = False,
    log: Callable[[str], None] = print,
) -> list[SheetResult]:
    """Write an exercise and a solution sheet per chapter, and ``index.html``; return what happened.

    ``out_dir`` defaults to ``build/sheets`` and ``notebooks_dir`` to ``build/notebooks``."""
    out_dir = Path(out_dir) if out_dir is not None else SHEETS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else BUILD_DIR / "notebooks"
    results = []
    for chapter in chapters:
        started = time.perf_counter()
        learner_path, solution_path = build(chapter, notebooks_dir)
        exercise_page = out_dir / f"{chapter}-exercises.html"
        solution_page = out_dir / f"{chapter}-solutions.html"

        learner = nbformat.read(learner_path, as_version=4)
        for cell in learner.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        page, _, external = render_page(
            learner, chapter=chapter, kind="exercise", links=[("solution sheet", solution_page.name)]
        )
        exercise_page.write_text(page, encoding="utf-8")

        solution = nbformat.read(solution_path, as_version=4)
        errors = execute_notebook(solution, solution_path.parent, timeout) if execute else []
        clean_streams(solution)
        page, figures, more_external = render_page(
            solution, chapter=chapter, kind="solution", links=[("exercise sheet", exercise_page.name)]
        )
        solution_page.write_text(page, encoding="utf-8")
        external += more_external

        result = SheetResult(
            chapter, exercise_page, solution_page, execute, time.perf_counter() - started, figures, errors, external
        )
        if pdf:
            result.pdfs = [print_pdf(p) for p in (exercise_page, solution_page)]
        results.append(result)
        log(_summary_line(result))
        problems = errors + figures.problems + [f"network reference: {e}" for e in external]
        for line in problems[:ERRORS_SHOWN]:
            log(f"    ! {line}")
        if len(problems) > ERRORS_SHOWN:
            log(f"    ! … and {len(problems) - ERRORS_SHOWN} more (see the solution sheet)")
    write_index(results, out_dir)
    log(f"index: {out_dir / 'index.html'}")
    return results


def _summary_line(result: SheetResult) -> str:
    mark = "✓" if result.ok else "✗"
    what = "executed" if result.executed else "not executed"
    return (
        f"{mark} {result.chapter}: {result.exercise_page.name}, {result.solution_page.name} "
        f"({what}; {result.figures.plotly} plotly, {result.figures.circuitsvis} circuitsvis; {result.seconds:.1f} s)"
    )


def write_index(results: Sequence[SheetResult], out_dir: Path) -> Path:
    """``index.html`` listing every chapter with sheets in ``out_dir`` (earlier builds included).

    Each build records its chapters in ``sheets.json``, so building one chapter keeps
    the others in the index.
    """
    out_dir = Path(out_dir)
    manifest_path = out_dir / MANIFEST
    try:
        entries = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        entries = {}
    for r in results:
        entries[r.chapter] = {
            "exercises": r.exercise_page.name,
            "solutions": r.solution_page.name,
            "plotly": r.figures.plotly,
            "circuitsvis": r.figures.circuitsvis,
            "seconds": round(r.seconds, 1),
            "executed": r.executed,
            "problems": r.errors + r.figures.problems + [f"network reference: {e}" for e in r.external],
            "built": time.strftime("%Y-%m-%d %H:%M"),
        }
    entries = {c: e for c, e in sorted(entries.items()) if (out_dir / e["solutions"]).exists()}
    manifest_path.write_text(json.dumps(entries, indent=1, ensure_ascii=False), encoding="utf-8")
    path = out_dir / "index.html"
    path.write_text(_index_template().render(entries=entries), encoding="utf-8")
    return path


@functools.cache
def _index_template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ASSETS_DIR / "templates"), autoescape=True)
    return env.get_template("index.html.j2")
