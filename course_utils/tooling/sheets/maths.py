"""Maths in markdown cells as MathML, which browsers render without MathJax."""

from __future__ import annotations

import re

import nbformat
from latex2mathml.converter import convert


def math_to_mathml(nb: nbformat.NotebookNode) -> None:
    """Replace ``$…$`` and ``$$…$$`` in markdown cells by MathML, in place.

    Code spans and fenced code are left alone; TeX that fails to convert stays as it is.
    """

    def replace(match: re.Match) -> str:
        if match["code"]:
            return match["code"]
        tex, display = (match["display"], "block") if match["display"] is not None else (match["inline"], "inline")
        try:
            return convert(as_array(tex.strip()), display=display)
        except Exception:  # noqa: BLE001 - unknown TeX stays readable as source
            return match.group(0)

    pattern = re.compile(
        r"(?P<code>```.*?```|`[^`\n]*`)|\$\$(?P<display>.+?)\$\$|(?<![\\$\w])\$(?P<inline>[^$\n]+?)\$(?![\w$])", re.S
    )
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = pattern.sub(replace, cell.source)


_ALIGNED = re.compile(r"\\begin\{(aligned|align\*?|split|gathered|gather\*?)\}(.*?)\\end\{\1\}", re.S)


def as_array(tex: str) -> str:
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
