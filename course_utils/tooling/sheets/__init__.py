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

A print stylesheet (``assets/sheet.css``) keeps figures whole on paper;
``--pdf`` prints every sheet to PDF with headless Chromium.

Modules: :mod:`.build` (the build and the index), :mod:`.page` (one notebook as a page),
:mod:`.figures` (plotly and circuitsvis offline), :mod:`.maths` (TeX to MathML),
:mod:`.streams` (printed text cleaned), :mod:`.chromium` (PDF, DOM and screenshots).
"""

from course_utils.tooling.sheets.build import MANIFEST, SHEETS_DIR, SheetResult, build_sheets, write_index
from course_utils.tooling.sheets.chromium import dump_dom, find_chromium, print_pdf
from course_utils.tooling.sheets.figures import (
    PageFigures,
    circuitsvis_view_html,
    external_references,
    plotly_figure_html,
    plotly_js,
    prepare_outputs,
)
from course_utils.tooling.sheets.maths import math_to_mathml
from course_utils.tooling.sheets.page import render_page
from course_utils.tooling.sheets.streams import clean_streams

__all__ = [
    "MANIFEST",
    "SHEETS_DIR",
    "PageFigures",
    "SheetResult",
    "build_sheets",
    "circuitsvis_view_html",
    "clean_streams",
    "dump_dom",
    "external_references",
    "find_chromium",
    "math_to_mathml",
    "plotly_figure_html",
    "plotly_js",
    "prepare_outputs",
    "print_pdf",
    "render_page",
    "write_index",
]
