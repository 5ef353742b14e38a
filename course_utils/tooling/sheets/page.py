"""One notebook as a complete, offline HTML page (nbconvert with the sheet template)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat

from course_utils.tooling.sheets.figures import (
    PageFigures,
    circuitsvis_js,
    external_references,
    plotly_js,
    prepare_outputs,
)
from course_utils.tooling.sheets.maths import math_to_mathml

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
LIBRARY_SLOT = "<!-- sheet-libraries -->"
KINDS = {"exercise": "Exercise sheet", "solution": "Solution sheet"}


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
