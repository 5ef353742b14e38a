"""Classroom sheets: every chapter as static HTML pages that work offline.

``python -m course_utils sheets`` builds each chapter's notebooks, executes the solution
notebook, and writes into ``build/sheets/``:

- ``<chapter>-exercises.html``: the learner notebook (instructions and stubs, no
  solution code, not executed);
- ``<chapter>-solutions.html``: the solution notebook, executed, with every output;
- ``index.html``: links to every sheet.

Figures render without the network. The executed notebooks hold plotly figures as
plotly's JSON mime bundle and circuitsvis views as HTML that either inlines
circuitsvis's bundled JavaScript (``circuitsvis/dist/cdn/iife.js``, 1.3 MB, once per
view) or, when the kernel was online, imports ``esm.js`` from unpkg. The build turns
each figure into a ``<div>`` plus a one-line call, and inlines each library that the
page uses once, in its ``<head>``: plotly.js from the installed ``plotly`` package
(``plotly.offline.get_plotlyjs()``) and circuitsvis's ``iife.js`` from the installed
``circuitsvis`` package. The page template drops what nbconvert's ``lab`` template
loads from CDNs (require.js, MathJax, mermaid). Maths in markdown is converted to
MathML (which browsers render natively) with ``latex2mathml`` (``aligned`` blocks, which
it lacks, are rewritten as ``array``).

The kernel shows no progress bars (``TQDM_DISABLE=1``), and :func:`clean_streams` drops
any left on stderr and removes the build machine's folders from printed text.

A print stylesheet (``sheets_assets/sheet.css``) keeps figures whole on paper;
``--pdf`` prints every sheet to PDF with headless Chromium.
"""
from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from latex2mathml.converter import convert

from course_utils.build import build_chapter
from course_utils.chapters import BUILD_DIR, REPO_ROOT
from course_utils.kernel import execute_in_kernel

SHEETS_DIR = BUILD_DIR / "sheets"
ASSETS_DIR = Path(__file__).resolve().parent / "sheets_assets"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
LIBRARY_SLOT = "<!-- sheet-libraries -->"
KINDS = {"exercise": "Exercise sheet", "solution": "Solution sheet"}
ERRORS_SHOWN = 5

# Where a page would fetch something from the network (checked before libraries are inlined).
_EXTERNAL = [
    re.compile(r"<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^\"'\s>]+", re.I),
    re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^\"'\s>]+", re.I),
    re.compile(r"\bimport\b[^;]*?\bfrom\s*[\"'](?:https?:)?//[^\"']+", re.I),
    re.compile(r"\bimport\s*\(\s*[\"'](?:https?:)?//[^\"']+", re.I),
    re.compile(r"@import\s+(?:url\()?\s*[\"']?(?:https?:)?//[^\"')\s]+", re.I),
    re.compile(r"require(?:js)?\.config\s*\(", re.I),
]
# A circuitsvis view as circuitsvis.utils.render emits it: a div, then a module script
# that either inlines iife.js and calls CircuitsVis.render, or imports from a CDN.
_CV_DIV = re.compile(r'<div id="(circuits-vis-[0-9a-zA-Z-]+)"')
_CV_CALL = re.compile(
    r'render\(\s*"(?P<id>circuits-vis-[0-9a-zA-Z-]+)",\s*(?:CircuitsVis\.)?(?P<name>[A-Za-z_$][\w$]*),\s*'
    r"(?P<props>.*)\)\s*</script>\s*$",
    re.S,
)


@dataclass
class PageFigures:
    """What one page's outputs hold, after :func:`prepare_outputs`."""

    plotly: int = 0
    circuitsvis: int = 0
    problems: list[str] = field(default_factory=list)


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


# --------------------------------------------------------------------------- libraries


@functools.cache
def plotly_js() -> str:
    """plotly.js, from the installed ``plotly`` package (no network)."""
    from plotly.offline import get_plotlyjs

    return _inline_safe(get_plotlyjs())


def circuitsvis_js_path() -> Path:
    """The browser bundle that the installed ``circuitsvis`` package ships.

    It defines the global ``CircuitsVis`` (React and every view included). The package
    ships only this IIFE build: the ES module ``esm.js`` that its online HTML imports
    lives on unpkg and is not in the package.
    """
    import circuitsvis

    path = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    if not path.exists():
        raise FileNotFoundError(f"circuitsvis {circuitsvis.__version__} ships no {path}: cannot render its views offline")
    return path


@functools.cache
def circuitsvis_js() -> str:
    text = circuitsvis_js_path().read_text(encoding="utf-8")
    text = re.sub(r"^//# sourceMappingURL=.*$", "", text, flags=re.M)
    return _inline_safe(text)


def _inline_safe(js: str) -> str:
    """Make JavaScript safe inside an inline ``<script>``: no ``</script`` may appear."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.I)


# --------------------------------------------------------------------------- outputs


def plotly_figure_html(figure: dict, div_id: str) -> str:
    """A ``<div>`` and the ``Plotly.newPlot`` call for one figure, without plotly.js."""
    import plotly.io as pio

    figure = dict(figure)
    config = {"displaylogo": False, "responsive": True, **(figure.pop("config", None) or {})}
    return pio.to_html(
        figure,
        config=config,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        default_width="100%",
        default_height="480px",
        validate=False,
    )


def circuitsvis_view_html(source: str) -> str | None:
    """Rewrite one circuitsvis output to call the page's ``CircuitsVis`` global.

    Accepts both forms that ``circuitsvis.utils.render`` emits (inlined bundle, or an
    import from unpkg); returns None when ``source`` is not a circuitsvis view.
    """
    start = source.rfind("render(")
    div = _CV_DIV.search(source)
    match = _CV_CALL.search(source[start:]) if start >= 0 and div else None
    if not match or match["id"] != div.group(1):
        return None
    view_id, name, props = match["id"], match["name"], match["props"].strip()
    return (
        f'<div id="{view_id}" class="circuitsvis-view" data-view="{html.escape(name)}" style="margin: 15px 0;"></div>\n'
        "<script>\n(function () {\n  try {\n"
        f'    CircuitsVis.render("{view_id}", CircuitsVis.{name}, {props});\n'
        "  } catch (err) {\n"
        f'    var box = document.createElement("pre"); box.className = "sheet-js-error";\n'
        f'    box.textContent = "circuitsvis {name} failed: " + err;\n'
        f'    document.getElementById("{view_id}").after(box);\n'
        "  }\n})();\n</script>"
    )


def prepare_outputs(nb: nbformat.NotebookNode, prefix: str = "fig") -> PageFigures:
    """Turn plotly and circuitsvis outputs into offline HTML, in place; count them."""
    found = PageFigures()
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data:
                found.plotly += 1
                figure = data[PLOTLY_MIME]
                figure = json.loads(figure) if isinstance(figure, str) else figure
                output["data"] = {"text/html": plotly_figure_html(figure, f"{prefix}-plotly-{found.plotly}")}
                continue
            source = data.get("text/html")
            if source is None:
                continue
            source = "".join(source) if isinstance(source, list) else source
            if "circuits-vis-" in source and "render(" in source:
                view = circuitsvis_view_html(source)
                if view is None:
                    found.problems.append(f"cell {index}: a circuitsvis output in an unknown form was left as it is")
                    continue
                found.circuitsvis += 1
                output["data"] = {"text/html": view}
            elif "plotly" in source.lower() and ("cdn.plot.ly" in source or "require" in source):
                found.problems.append(f"cell {index}: a plotly figure rendered as HTML that loads plotly.js itself")
    return found


_PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\d+(?:\.\d+)?(?:it|s)/(?:s|it)\]")


def machine_prefixes() -> list[str]:
    """Folders of the machine that built a sheet (the repository, the venv, the home folder), longest first."""
    folders = {str(REPO_ROOT), sys.prefix, sys.base_prefix, str(Path.home())}
    return sorted((f for f in folders if len(f) > 1), key=len, reverse=True)


def clean_streams(nb: nbformat.NotebookNode) -> None:
    """Drop progress bars printed on stderr, and the build machine's folders from every printed text, in place."""
    prefixes = machine_prefixes()

    def anonymise(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix + os.sep, "").replace(prefix, "")
        return text

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output["text"]
                if output.get("name") == "stderr":
                    text = "".join(line for line in re.split(r"(?<=[\r\n])", text) if not _PROGRESS_BAR.search(line))
                output["text"] = anonymise(text)
                if not output["text"].strip():
                    continue
            elif output.get("output_type") == "error":
                output["evalue"] = anonymise(str(output.get("evalue", "")))
                output["traceback"] = [anonymise(line) for line in output.get("traceback", [])]
            kept.append(output)
        cell.outputs = kept


def external_references(page: str) -> list[str]:
    """Every place where ``page`` would load something from the network."""
    return [m.group(0)[:120] for pattern in _EXTERNAL for m in pattern.finditer(page)]


# --------------------------------------------------------------------------- maths


def math_to_mathml(nb: nbformat.NotebookNode) -> None:
    """Replace ``$…$`` and ``$$…$$`` in markdown cells by MathML, in place.

    Code spans and fenced code are left alone; TeX that fails to convert stays as it is.
    """
    def replace(match: re.Match) -> str:
        if match["code"]:
            return match["code"]
        tex, display = (match["display"], "block") if match["display"] is not None else (match["inline"], "inline")
        try:
            return convert(_as_array(tex.strip()), display=display)
        except Exception:  # noqa: BLE001 - unknown TeX stays readable as source
            return match.group(0)

    pattern = re.compile(
        r"(?P<code>```.*?```|`[^`\n]*`)|\$\$(?P<display>.+?)\$\$|(?<![\\$\w])\$(?P<inline>[^$\n]+?)\$(?![\w$])", re.S
    )
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = pattern.sub(replace, cell.source)


_ALIGNED = re.compile(r"\\begin\{(aligned|align\*?|split|gathered|gather\*?)\}(.*?)\\end\{\1\}", re.S)


def _as_array(tex: str) -> str:
    """Rewrite ``aligned``-like environments (which latex2mathml lacks) as ``array``.

    Columns alternate right/left as in ``aligned``; ``gathered`` is one centred column.
    """

    def replace(match: re.Match) -> str:
        body = match.group(2).strip()
        if match.group(1).startswith("gather"):
            return f"\\begin{{array}}{{c}}{body}\\end{{array}}"
        columns = 1 + max(row.count("&") for row in re.split(r"\\\\", body))
        spec = "".join("rl"[i % 2] for i in range(columns))
        return f"\\begin{{array}}{{{spec}}}{body}\\end{{array}}"

    return _ALIGNED.sub(replace, tex)


# --------------------------------------------------------------------------- rendering


@functools.cache
def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="sheet",
        extra_template_basedirs=[str(ASSETS_DIR / "templates")],
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


def render_page(
    nb: nbformat.NotebookNode, *, chapter: str, kind: str, links: Sequence[tuple[str, str]] = ()
) -> tuple[str, PageFigures, list[str]]:
    """One sheet as a complete HTML page; also what it holds and its network references.

    ``nb`` is changed in place (figures rewritten, maths converted).
    """
    figures = prepare_outputs(nb, prefix=re.sub(r"\W", "-", f"{chapter}-{kind}"))
    math_to_mathml(nb)
    nb.metadata["title"] = f"{chapter} · {KINDS[kind]}"
    resources = {
        "sheet": {
            "chapter": chapter,
            "kind": kind,
            "kind_label": KINDS[kind],
            "links": list(links),
            "css": (ASSETS_DIR / "sheet.css").read_text(encoding="utf-8"),
            "js": (ASSETS_DIR / "sheet.js").read_text(encoding="utf-8"),
        }
    }
    page, _ = _exporter().from_notebook_node(nb, resources=resources)
    external = external_references(page)
    libraries = []
    if figures.plotly:
        libraries.append(f'<script type="text/javascript" data-library="plotly">{plotly_js()}</script>')
    if figures.circuitsvis:
        libraries.append(f'<script type="text/javascript" data-library="circuitsvis">{circuitsvis_js()}</script>')
    if LIBRARY_SLOT not in page:
        raise RuntimeError("the sheet template lost its library slot")
    page = page.replace(LIBRARY_SLOT, "\n".join(libraries), 1)
    return page, figures, external


def execute_notebook(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 600) -> list[str]:
    """Execute ``nb`` in place (every cell, even after an error); return one line per error.

    The kernel runs with ``COURSE_STRICT_CHECKS=1`` (a failed check is an error); figures come
    out as plotly JSON (see :func:`course_utils.kernel.execute_in_kernel`).
    """
    stopped = execute_in_kernel(nb, cwd, timeout, strict_checks=True)
    if stopped is not None:
        return [f"execution stopped: {stopped[:200]}"]
    errors = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                errors.append(f"cell {index}: {output.get('ename')}: {str(output.get('evalue', ''))[:200]}")
    return errors


# --------------------------------------------------------------------------- the build


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


MANIFEST = "sheets.json"


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
    rows = []
    for chapter, e in entries.items():
        status = "ok" if not e["problems"] else "; ".join(e["problems"])[:300]
        executed = "" if e["executed"] else " (not executed)"
        rows.append(
            "<tr>"
            f"<td>{html.escape(chapter)}</td>"
            f'<td><a href="{html.escape(e["exercises"])}">exercises</a></td>'
            f'<td><a href="{html.escape(e["solutions"])}">solutions</a>{executed}</td>'
            f"<td>{e['plotly']} plotly · {e['circuitsvis']} circuitsvis</td>"
            f"<td>{e['seconds']:.1f} s · {html.escape(e['built'])}</td>"
            f'<td class="{"ok" if not e["problems"] else "bad"}">{html.escape(status)}</td>'
            "</tr>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Course sheets</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 920px; margin: 2em auto; padding: 0 24px; line-height: 1.5; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left; vertical-align: top; }}
td.ok {{ color: #26734d; }} td.bad {{ color: #b00; }}
@media print {{ a {{ color: inherit; }} }}
</style></head>
<body><main>
<h1>Hands-on mechanistic interpretability: sheets</h1>
<p>Each chapter has an <em>exercise sheet</em> (instructions and stubs, no solutions) and a
<em>solution sheet</em> (the reference solutions, executed, with every figure). The pages need
no network and print with their figures kept whole.</p>
<table><thead><tr><th>chapter</th><th>exercise sheet</th><th>solution sheet</th><th>figures</th><th>built</th><th>status</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</main></body></html>
"""
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- Chromium

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # No network at all: a page that needs a CDN visibly fails.
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(args: Sequence[str], *, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium with a throw-away profile and no network."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("Chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="sheets-chromium-") as profile:
        return subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def print_pdf(page: Path, pdf: Path | None = None) -> Path:
    """Print ``page`` to PDF with headless Chromium (the print stylesheet applies)."""
    pdf = pdf or page.with_suffix(".pdf")
    run_chromium(["--virtual-time-budget=15000", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.resolve().as_uri()])
    if not pdf.exists():
        raise RuntimeError(f"Chromium wrote no PDF for {page}")
    return pdf


def dump_dom(page: Path, *, budget_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran (headless Chromium, no network)."""
    result = run_chromium([f"--virtual-time-budget={budget_ms}", "--dump-dom", Path(page).resolve().as_uri()])
    if result.returncode != 0 or "<html" not in result.stdout:
        raise RuntimeError(f"Chromium could not render {page}: {result.stderr.strip()[-500:]}")
    return result.stdout


def screenshot(page: Path, png: Path, *, width: int = 1280, height: int = 1600, budget_ms: int = 20000) -> Path:
    """Save a PNG of ``page`` rendered at ``width`` × ``height`` CSS pixels."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    run_chromium(
        [f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}", f"--screenshot={png}", Path(page).resolve().as_uri()]
    )
    if not png.exists():
        raise RuntimeError(f"Chromium wrote no screenshot of {page}")
    return png


def page_height(dom: str, default: int = 1600) -> int:
    """The full height that ``sheet.js`` recorded on ``<html data-sheet-height>``."""
    match = re.search(r'data-sheet-height="(\d+)"', dom)
    return int(match.group(1)) if match else default


def sample_notebook() -> nbformat.NotebookNode:
    """A small notebook that looks executed: markdown, a plotly figure, two circuitsvis views.

    The views come in both forms circuitsvis emits (inlined bundle and CDN import), so a
    page rendered from it exercises every rewrite. Used by the tests.
    """
    import circuitsvis as cv
    import plotly.express as px
    import plotly.io as pio
    import torch

    figure = px.line(x=[0, 1, 2, 3], y=[0.0, 1.0, 4.0, 9.0], title="Squares", labels={"x": "n", "y": "n²"})
    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(figure.to_plotly_json())
    heat = px.imshow([[1, 2], [3, 4]], title="A heatmap", labels={"x": "key position", "y": "query position"})
    heat_bundle = pio.renderers["plotly_mimetype"].to_mimebundle(heat.to_plotly_json())
    attention = torch.tril(torch.ones(2, 4, 4))
    attention = attention / attention.sum(-1, keepdim=True)
    view = cv.attention.attention_patterns(tokens=["<bos>", "A", "B", "A"], attention=attention)
    new = nbformat.v4
    nb = new.new_notebook()
    nb.cells = [
        new.new_markdown_cell("# A sample sheet\n\nA figure, a heatmap and two attention views.\n\n"
                              "<details><summary>Hint</summary>A hint.</details>"),
        new.new_code_cell("figure", outputs=[new.new_output("display_data", data=bundle)]),
        new.new_code_cell("heat", outputs=[new.new_output("display_data", data=heat_bundle)]),
        new.new_code_cell(
            "view  # offline form",
            execution_count=1,
            outputs=[new.new_output("execute_result", data={"text/html": view.local_src, "text/plain": "view"}, execution_count=1)],
        ),
        new.new_code_cell(
            "view  # online form",
            execution_count=2,
            outputs=[new.new_output("execute_result", data={"text/html": view.cdn_src, "text/plain": "view"}, execution_count=2)],
        ),
    ]
    return nb
