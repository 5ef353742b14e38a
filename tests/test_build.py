"""The notebook build: solution notebooks get the solution's code, learner ones keep stubs."""

import importlib
import inspect

import nbformat
import pytest

from course_utils.chapters import CHAPTERS, available_chapters, exercise_cells
from course_utils.tooling.build import build_chapter, fill_cell


def test_fill_cell_replaces_defs_and_answers_only(tmp_path, monkeypatch):
    # a module name no other test imports (sys.modules would hand back the other test's module)
    (tmp_path / "fill_cell_solutions.py").write_text("def f(x: int) -> int:\n    return x + 1\n\nanswer_q = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    solutions = importlib.import_module("fill_cell_solutions")
    source = (
        "import math\n"
        "def f(x: int) -> int:\n"
        '    """Add one."""\n'
        "    raise NotImplementedError\n"
        "answer_q = ...\n"
        "def helper():\n    return 2\n"
    )
    filled = fill_cell(source, solutions)
    assert "return x + 1" in filled and "answer_q = 3" in filled
    assert "NotImplementedError" not in filled
    assert filled.startswith("import math") and "def helper():" in filled


@pytest.mark.parametrize("chapter", available_chapters())
def test_build_writes_both_notebooks(tmp_path, chapter):
    """The learner notebook keeps every stub; the solution notebook has each solution instead, and
    both are the source's cells, unexecuted."""
    record = CHAPTERS[chapter]
    learner_path, solution_path = build_chapter(chapter, out_dir=tmp_path)
    learner, solution = (nbformat.read(p, as_version=4) for p in (learner_path, solution_path))
    source = record.source()
    assert len(learner.cells) == len(solution.cells) == len(source.cells)
    learner_exercises, solution_exercises = exercise_cells(learner), exercise_cells(solution)
    assert [c.source for c in learner_exercises] == [c.source for c in exercise_cells(source)]
    assert all("NotImplementedError" not in c.source for c in solution_exercises)
    solved = "\n".join(c.source for c in solution_exercises)
    for name in record.exercises:
        assert inspect.getsource(getattr(record.solutions(), name)).strip() in solved, f"{name} not filled in"
    for notebook in (learner, solution):
        assert all(c.outputs == [] and c.execution_count is None for c in notebook.cells if c.cell_type == "code")
        assert notebook.metadata["kernelspec"]["name"] == "python3"
