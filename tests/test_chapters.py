"""Structural tests run for every chapter: stubs match solutions, every check is wired."""
import ast
import inspect
import re

import pytest

from course_utils.build import exercise_cells, fill_cell, read_source, stub_nodes
from course_utils.chapters import available_chapters, checks_module, solution_module

CHAPTERS = available_chapters()


def test_course_has_chapters():
    assert CHAPTERS, "no chapter notebook found in notebooks/"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_stub_signatures_match_solutions(chapter):
    solutions = solution_module(chapter)
    for name, node in stub_nodes(chapter).items():
        assert hasattr(solutions, name), f"{chapter}: stub {name} has no solution"
        if isinstance(node, ast.FunctionDef):
            solved = ast.parse(inspect.getsource(getattr(solutions, name))).body[0]
            assert ast.dump(node.args) == ast.dump(solved.args), f"{chapter}: {name} signature differs"
            assert ast.dump(node.returns) == ast.dump(solved.returns) if node.returns else True


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_stubs_raise_not_implemented_or_are_ellipsis(chapter):
    for name, node in stub_nodes(chapter).items():
        if isinstance(node, ast.FunctionDef):
            last = node.body[-1]
            assert isinstance(last, ast.Raise) and "NotImplementedError" in ast.unparse(last), (
                f"{chapter}: stub {name} must end with `raise NotImplementedError(...)`"
            )
            assert ast.get_docstring(node), f"{chapter}: stub {name} needs a docstring"
        else:
            assert isinstance(node.value, ast.Constant) and node.value.value is ..., f"{chapter}: {name} must be `...`"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_stub_is_checked_in_the_notebook(chapter):
    source = "\n".join(c.source for c in read_source(chapter).cells if c.cell_type == "code")
    checks = checks_module(chapter)
    for name in stub_nodes(chapter):
        check_name = f"test_{name}"
        assert hasattr(checks, check_name), f"{chapter}: no check {check_name} in {checks.__name__}"
        assert f"checks.{check_name}({name})" in source, f"{chapter}: notebook never calls checks.{check_name}({name})"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_cells_compile(chapter):
    solutions = solution_module(chapter)
    for cell in exercise_cells(read_source(chapter)):
        filled = fill_cell(cell.source, solutions)
        compile(filled, chapter, "exec")
        assert "NotImplementedError" not in filled, f"{chapter}: a stub was not replaced by its solution"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_learner_notebook_never_imports_solutions(chapter):
    for cell in read_source(chapter).cells:
        assert not re.search(r"^\s*(from|import)\s+solutions", cell.source, re.M), f"{chapter}: imports solutions"
        assert "sys.path" not in cell.source, f"{chapter}: no sys.path manipulation in notebooks"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_ends_with_checked_questions_and_going_further(chapter):
    cells = read_source(chapter).cells
    headings = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Check your understanding" in c.source]
    assert headings, f"{chapter}: no '## Check your understanding' section"
    after = "\n".join(c.source for c in cells[headings[-1]:] if c.cell_type == "code")
    answers = [name for name in stub_nodes(chapter) if name.startswith("answer_") and f"checks.test_{name}(" in after]
    assert answers, f"{chapter}: 'Check your understanding' has no checked answer_* question"
    assert any("## Going further" in c.source for c in cells[headings[-1]:]), f"{chapter}: no '## Going further' list"
