"""Figures that render offline: plotly and circuitsvis outputs rewritten to use libraries the page inlines."""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

PLOTLY_MIME = "application/vnd.plotly.v1+json"

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
        raise FileNotFoundError(
            f"circuitsvis {circuitsvis.__version__} ships no {path}: cannot render its views offline"
        )
    return path


@functools.cache
def circuitsvis_js() -> str:
    text = circuitsvis_js_path().read_text(encoding="utf-8")
    text = re.sub(r"^//# sourceMappingURL=.*$", "", text, flags=re.M)
    return _inline_safe(text)


def _inline_safe(js: str) -> str:
    """Make JavaScript safe inside an inline ``<script>``: no ``</script`` may appear."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.I)


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


def external_references(page: str) -> list[str]:
    """Every place where ``page`` would load something from the network."""
    return [m.group(0)[:120] for pattern in _EXTERNAL for m in pattern.finditer(page)]
