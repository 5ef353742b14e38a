"""The sheets render in a real browser with no network: plots drawn, attention views mounted.

Uses Debian's headless ``chromium`` (installed here with apt-get when running as root,
else skipped with a message). Chromium runs with a dead proxy and every host name
unresolvable, so a page that needed a CDN would show empty figures. First on a small
generated sheet (no chapter needed), then on every chapter that exists; each chapter's
screenshot is kept in ``build/sheets/screenshots/<chapter>.png``.
"""

import ast
import inspect
import os
import re
import shutil
import subprocess
import zlib

import pytest
from bs4 import BeautifulSoup

from course_utils.chapters import CHAPTERS, available_chapters, solution_module
from course_utils.tooling import sheets
from sheet_samples import sample_notebook

# One xdist worker builds the sheets once (make test runs with --dist loadgroup).
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("sheets")]

SCREENSHOTS = sheets.SHEETS_DIR / "screenshots"


@pytest.fixture(scope="session")
def chromium():
    found = sheets.find_chromium()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("headless Chromium is not installed (Debian: `apt-get install chromium`, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # The emoji font only makes screenshots show the difficulty marks (🔴🔵) instead of boxes.
    packages = ["chromium", "fonts-noto-color-emoji"]
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *packages], env=env, check=True, capture_output=True, timeout=1800
        )
    except (subprocess.SubprocessError, OSError) as err:
        pytest.skip(f"headless Chromium is not installed and `apt-get install chromium` failed: {err}")
    found = sheets.find_chromium()
    if not found:
        pytest.skip("`apt-get install chromium` ran but no chromium executable was found")
    return found


def rendered(dom: str) -> dict:
    """What the browser drew: per plotly figure the number of traces drawn; per view its size."""
    soup = BeautifulSoup(dom, "html.parser")
    plots = []
    for div in soup.select("div.plotly-graph-div"):
        svgs = div.select("svg.main-svg")
        plots.append({"id": div.get("id"), "main_svg": len(svgs), "traces": len(div.select("g.trace, g.hm, image"))})
    views = [
        {"id": div.get("id"), "elements": len(div.find_all(True)), "text": div.get_text(" ", strip=True)[:80]}
        for div in soup.select("div.circuitsvis-view")
    ]
    errors = [pre.get_text() for pre in soup.select("pre.sheet-js-error")]
    return {"plots": plots, "views": views, "errors": errors}


def assert_all_rendered(found: dict, plotly: int, circuitsvis: int) -> None:
    assert found["errors"] == [], found["errors"]
    assert len(found["plots"]) == plotly, found["plots"]
    for plot in found["plots"]:
        assert plot["main_svg"] >= 1 and plot["traces"] >= 1, f"plotly figure {plot['id']} was not drawn: {plot}"
    assert len(found["views"]) == circuitsvis, found["views"]
    for view in found["views"]:
        assert view["elements"] >= 5, f"circuitsvis view {view['id']} is empty: {view}"


def test_generated_sheet_renders_offline(chromium, tmp_path):
    page, figures, external = sheets.render_page(sample_notebook(), chapter="00_sample", kind="solution")
    assert external == []
    path = tmp_path / "sample.html"
    path.write_text(page, encoding="utf-8")
    png = tmp_path / "sample.png"
    dom = sheets.dump_dom(path, screenshot=png)
    assert_all_rendered(rendered(dom), plotly=figures.plotly, circuitsvis=figures.circuitsvis)
    assert png.stat().st_size > 20_000


def test_generated_sheet_prints_to_pdf_with_its_figures(chromium, tmp_path):
    with_figures = tmp_path / "figures.html"
    with_figures.write_text(sheets.render_page(sample_notebook(), chapter="00_sample", kind="solution")[0])
    text_only = sample_notebook()
    for cell in text_only.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    plain = tmp_path / "plain.html"
    plain.write_text(sheets.render_page(text_only, chapter="00_sample", kind="solution")[0])
    pdf, plain_pdf = sheets.print_pdf(with_figures), sheets.print_pdf(plain)
    assert pdf.read_bytes().startswith(b"%PDF")
    # The figures are drawn into the PDF as vector paths: many more drawing operations than text alone.
    drawn, text_only_drawn = drawing_operations(pdf), drawing_operations(plain_pdf)
    assert drawn > 3 * text_only_drawn + 50, (drawn, text_only_drawn)


def drawing_operations(pdf) -> int:
    """Path operators (line-to, curve-to, rectangle) in a PDF's content streams."""
    count = 0
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf.read_bytes(), re.S):
        try:
            content = zlib.decompress(match.group(1))
        except zlib.error:
            continue
        count += len(re.findall(rb" (?:l|c|re)\n", content))
    return count


@pytest.fixture(scope="session")
def built_sheets():
    """``built_sheets(chapter)``: the chapter's sheets, built once per session into build/sheets/.

    Session scope, not module scope: while the "sheets" xdist group holds, this module's tests run
    back to back on one worker and either scope builds each sheet once. If the grouping breaks (as
    under pytest 9.2, see tests/test_environment.py), other modules' tests run in between, and a
    module fixture would be torn down and every sheet built (its solution notebook executed) again."""
    built = {}

    def get(chapter: str) -> sheets.SheetResult:
        if chapter not in built:
            (built[chapter],) = sheets.build_sheets([chapter], sheets.SHEETS_DIR)
        return built[chapter]

    return get


@pytest.mark.parametrize("chapter", available_chapters())
def test_chapter_sheets_render_offline(chromium, built_sheets, chapter):
    result = built_sheets(chapter)
    assert result.errors == [], f"{chapter}: the solution notebook raised: {result.errors}"
    assert result.external == [], f"{chapter}: the sheets load from the network: {result.external}"
    assert result.figures.problems == [], result.figures.problems
    png = SCREENSHOTS / f"{chapter}.png"
    dom = sheets.dump_dom(result.solution_page, budget_ms=60000, screenshot=png)
    assert_all_rendered(rendered(dom), plotly=result.figures.plotly, circuitsvis=result.figures.circuitsvis)
    assert png.stat().st_size > 20_000


def code_cells(page: str) -> list[str]:
    soup = BeautifulSoup(page, "html.parser")
    return [editor.get_text() for editor in soup.select(".jp-InputArea-editor")]


def defining_cell(cells: list[str], name: str) -> str:
    found = [cell for cell in cells if re.search(rf"^def {name}\(", cell, re.M)]
    assert len(found) == 1, f"{len(found)} code cells define {name}"
    return found[0]


def solution_lines(chapter: str) -> dict[str, list[str]]:
    """Per stub function, the solution's own code lines (20+ characters) that the stub lacks."""
    solutions = solution_module(chapter)
    found = {}
    for name, node in CHAPTERS[chapter].stubs().items():
        if not isinstance(node, ast.FunctionDef):
            continue
        stub_text = ast.unparse(node)  # a line quoted in the stub's docstring is a hint, not a leak
        source = inspect.getsource(getattr(solutions, name))
        function = ast.parse(source).body[0]
        body = function.body[1:] if ast.get_docstring(function) else function.body
        lines = source.splitlines()[body[0].lineno - 1 :] if body else []
        found[name] = [line.strip() for line in lines if len(line.strip()) >= 20 and line.strip() not in stub_text]
    return found


@pytest.mark.parametrize("chapter", available_chapters())
def test_solution_notebook_runs_in_strict_mode_without_error(built_sheets, chapter):
    """The solution notebook, executed for its sheet with COURSE_STRICT_CHECKS=1: no cell raises, so
    every check passes (`make test` executes the solution notebooks here, with the course's runner)."""
    result = built_sheets(chapter)
    assert result.executed and result.errors == [], f"{chapter}: the solution notebook raised: {result.errors}"


@pytest.mark.parametrize("chapter", available_chapters())
def test_exercise_sheet_shows_stubs_not_solutions(built_sheets, chapter):
    result = built_sheets(chapter)
    exercise = code_cells(result.exercise_page.read_text())
    solution = code_cells(result.solution_page.read_text())
    for name, lines in solution_lines(chapter).items():
        stub, solved = defining_cell(exercise, name), defining_cell(solution, name)
        assert "NotImplementedError" in stub, f"{chapter}: the exercise sheet's {name} is not a stub"
        for line in lines:
            assert line in solved, f"{chapter}: the solution sheet's {name} lacks: {line}"
            assert line not in stub, f"{chapter}: the exercise sheet shows solution code of {name}: {line}"
