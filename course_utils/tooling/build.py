"""Build learner and solution notebooks from the Jupytext sources.

Cells tagged ``exercise`` hold stubs: top-level functions that raise
``NotImplementedError`` and answer variables set to ``...``. The learner notebook keeps
them as they are; the solution notebook replaces every stub that the chapter's
solution module defines with the solution's own source.
"""

import ast
import inspect
from pathlib import Path
from types import ModuleType

import nbformat

from course_utils.chapters import exercise_cells, get, named_nodes
from course_utils.paths import BUILD_DIR


def fill_cell(source: str, solutions: ModuleType) -> str:
    """Replace each stub in ``source`` that ``solutions`` defines with the solution."""
    lines = source.splitlines()
    nodes = [(n, name) for n, name in named_nodes(ast.parse(source)) if hasattr(solutions, name)]
    for node, name in sorted(nodes, key=lambda item: item[0].lineno, reverse=True):
        value = getattr(solutions, name)
        text = inspect.getsource(value).rstrip() if callable(value) else f"{name} = {value!r}"
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        lines[start : node.end_lineno] = text.splitlines()
    return "\n".join(lines)


def build_chapter(chapter: str, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``learner/<chapter>.ipynb`` and ``solutions/<chapter>.ipynb`` (default: under
    ``build/notebooks/``); return both paths."""
    record = get(chapter)
    out_dir = out_dir if out_dir is not None else BUILD_DIR / "notebooks"
    learner = record.source()
    solution = record.source()
    module = record.solutions()
    for cell in exercise_cells(solution):
        cell.source = fill_cell(cell.source, module)
    written = []
    for kind, nb in (("learner", learner), ("solutions", solution)):
        path = out_dir / kind / f"{chapter}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, path)
        written.append(path)
    return written[0], written[1]
