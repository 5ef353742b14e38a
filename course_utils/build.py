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

import jupytext
import nbformat

from course_utils.chapters import BUILD_DIR, notebook_source, solution_module

EXERCISE_TAG = "exercise"


def read_source(chapter: str) -> nbformat.NotebookNode:
    return jupytext.read(notebook_source(chapter))


def exercise_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code" and EXERCISE_TAG in c.metadata.get("tags", [])]


def stub_nodes(chapter: str) -> dict[str, ast.FunctionDef | ast.Assign]:
    """Every top-level ``def`` and single-name assignment in the chapter's exercise cells."""
    nodes: dict[str, ast.FunctionDef | ast.Assign] = {}
    for cell in exercise_cells(read_source(chapter)):
        for node, name in _named_nodes(ast.parse(cell.source)):
            nodes[name] = node
    return nodes


def _named_nodes(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node, node.name
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            yield node, node.targets[0].id


def fill_cell(source: str, solutions: ModuleType) -> str:
    """Replace each stub in ``source`` that ``solutions`` defines with the solution."""
    lines = source.splitlines()
    nodes = [(n, name) for n, name in _named_nodes(ast.parse(source)) if hasattr(solutions, name)]
    for node, name in sorted(nodes, key=lambda item: item[0].lineno, reverse=True):
        value = getattr(solutions, name)
        text = inspect.getsource(value).rstrip() if callable(value) else f"{name} = {value!r}"
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        lines[start : node.end_lineno] = text.splitlines()
    return "\n".join(lines)


def build_chapter(chapter: str, out_dir: Path = BUILD_DIR / "notebooks") -> tuple[Path, Path]:
    """Write ``learner/<chapter>.ipynb`` and ``solutions/<chapter>.ipynb``; return both paths."""
    learner = read_source(chapter)
    solution = read_source(chapter)
    module = solution_module(chapter)
    for cell in exercise_cells(solution):
        cell.source = fill_cell(cell.source, module)
    paths = []
    for kind, nb in (("learner", learner), ("solutions", solution)):
        path = out_dir / kind / f"{chapter}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, path)
        paths.append(path)
    return paths[0], paths[1]
