"""Structural tests run for every chapter of the registry: its four files exist and agree with
it, stubs match solutions, every check is wired."""

import ast
import inspect
import re
from pathlib import Path

import pytest

from course_utils import chapters
from course_utils.chapters import CHAPTERS, Chapter, exercise_cells
from course_utils.models import COURSE_MODELS
from course_utils.paths import REPO_ROOT
from course_utils.tooling.build import fill_cell

NAMES = list(CHAPTERS)
CHAPTER_FILE = re.compile(r"^(\d\d)_([a-z0-9_]+)$")


def test_course_has_chapters():
    assert NAMES, "no chapter in course_utils.chapters.CHAPTERS"


def _stems(folder: Path, prefix: str = "") -> set[str]:
    return {p.stem.removeprefix(prefix) for p in folder.glob(f"{prefix}*.py") if not p.stem.startswith("_")}


def test_every_chapter_file_has_a_registry_entry_and_every_entry_its_four_files():
    """Adding a chapter is adding its four files and one registry entry: neither alone."""
    registered = {c.name for c in CHAPTERS.values()}
    notebooks = {s for s in _stems(REPO_ROOT / "notebooks") if CHAPTER_FILE.match(s)}
    solutions = {s for s in _stems(REPO_ROOT / "solutions") if CHAPTER_FILE.match(s)}
    tests = {s for s in _stems(REPO_ROOT / "tests", "test_") if CHAPTER_FILE.match(s)}
    checks = _stems(REPO_ROOT / "course_utils" / "checks")
    assert notebooks == registered, f"notebooks/ and the registry differ: {sorted(notebooks ^ registered)}"
    assert solutions == registered, f"solutions/ and the registry differ: {sorted(solutions ^ registered)}"
    assert tests == registered, f"tests/test_NN_*.py and the registry differ: {sorted(tests ^ registered)}"
    slugs = {c.slug for c in CHAPTERS.values()}
    assert checks == slugs, f"course_utils/checks/ and the registry differ: {sorted(checks ^ slugs)}"


def test_registry_keys_numbers_and_order():
    assert list(CHAPTERS) == [c.name for c in CHAPTERS.values()]
    numbers = [c.number for c in CHAPTERS.values()]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("name", NAMES)
def test_chapter_model_is_a_course_model_and_hub_model_is_named(name):
    chapter = CHAPTERS[name]
    assert chapter.model in COURSE_MODELS, f"{name}: MODEL_NAME {chapter.model!r} is not a course model"
    assert chapter.hub_model and chapter.hub_model not in COURSE_MODELS, f"{name}: no hub model to try online"


@pytest.mark.parametrize("name", NAMES)
def test_checks_module_gets_its_solutions_through_the_registry(name):
    chapter = CHAPTERS[name]
    assert chapter.checks().SOLUTION is chapter.solutions()


def test_hub_model_reads_hub_model_name_then_the_online_comment(tmp_path):
    notebook = tmp_path / "98_x.py"
    chapter = Chapter(98, "x", "X", notebook_path=notebook)
    notebook.write_text('MODEL_NAME = "gelu-4l"  # offline course model; online, the original: "gpt2-small"\n')
    assert (chapter.model, chapter.hub_model) == ("gelu-4l", "gpt2-small")
    notebook.write_text('MODEL_NAME = "gelu-4l"  # offline\nHUB_MODEL_NAME = "hub:gelu-4l"  # online\n')
    assert chapter.hub_model == "hub:gelu-4l"
    notebook.write_text('MODEL_NAME = "gelu-4l"\n')
    assert chapter.hub_model is None
    notebook.write_text("x = 1\n")
    with pytest.raises(ValueError, match="no `MODEL_NAME"):
        assert chapter.model


def test_resolve_and_unknown_chapters():
    first = next(iter(CHAPTERS.values()))
    for spelling in (first.name, f"{first.number:02d}", str(first.number)):
        assert chapters.resolve(spelling) == first.name
    with pytest.raises(ValueError, match="Unknown chapter '77'"):
        chapters.resolve("77")
    with pytest.raises(ValueError, match="not the checks module of any chapter"):
        chapters.solutions_for("course_utils.checks.nothing")


@pytest.mark.parametrize("name", NAMES)
def test_exercises_and_answers_are_the_stubs(name):
    chapter = CHAPTERS[name]
    assert chapter.exercises and chapter.answers, f"{name}: no exercise or no answer found"
    assert set(chapter.exercises) | set(chapter.answers) == set(chapter.stubs())
    assert all(a.startswith("answer_") for a in chapter.answers), f"{name}: an answer is not named answer_*"


@pytest.mark.parametrize("name", NAMES)
def test_stub_signatures_match_solutions(name):
    chapter = CHAPTERS[name]
    solutions = chapter.solutions()
    for stub, node in chapter.stubs().items():
        assert hasattr(solutions, stub), f"{name}: stub {stub} has no solution"
        if isinstance(node, ast.FunctionDef):
            solved = ast.parse(inspect.getsource(getattr(solutions, stub))).body[0]
            assert ast.dump(node.args) == ast.dump(solved.args), f"{name}: {stub} signature differs"
            returns = [ast.unparse(n.returns) if n.returns else None for n in (node, solved)]
            assert returns[0] == returns[1], (
                f"{name}: {stub} return annotation differs: stub {returns[0]}, solution {returns[1]}"
            )


@pytest.mark.parametrize("name", NAMES)
def test_stubs_raise_not_implemented_or_are_ellipsis(name):
    for stub, node in CHAPTERS[name].stubs().items():
        if isinstance(node, ast.FunctionDef):
            last = node.body[-1]
            assert isinstance(last, ast.Raise) and "NotImplementedError" in ast.unparse(last), (
                f"{name}: stub {stub} must end with `raise NotImplementedError(...)`"
            )
            assert ast.get_docstring(node), f"{name}: stub {stub} needs a docstring"
        else:
            assert isinstance(node.value, ast.Constant) and node.value.value is ..., f"{name}: {stub} must be `...`"


@pytest.mark.parametrize("name", NAMES)
def test_every_stub_is_checked_in_the_notebook(name):
    chapter = CHAPTERS[name]
    source = "\n".join(c.source for c in chapter.source().cells if c.cell_type == "code")
    checks = chapter.checks()
    for stub in chapter.stubs():
        check_name = f"test_{stub}"
        assert hasattr(checks, check_name), f"{name}: no check {check_name} in {checks.__name__}"
        assert f"checks.{check_name}({stub})" in source, f"{name}: notebook never calls checks.{check_name}({stub})"


@pytest.mark.parametrize("name", NAMES)
def test_solution_cells_compile(name):
    chapter = CHAPTERS[name]
    solutions = chapter.solutions()
    for cell in exercise_cells(chapter.source()):
        filled = fill_cell(cell.source, solutions)
        compile(filled, name, "exec")
        assert "NotImplementedError" not in filled, f"{name}: a stub was not replaced by its solution"


@pytest.mark.parametrize("name", NAMES)
def test_learner_notebook_never_imports_solutions(name):
    for cell in CHAPTERS[name].source().cells:
        assert not re.search(r"^\s*(from|import)\s+solutions", cell.source, re.M), f"{name}: imports solutions"
        assert "sys.path" not in cell.source, f"{name}: no sys.path manipulation in notebooks"


@pytest.mark.parametrize("name", NAMES)
def test_chapter_ends_with_checked_questions_and_going_further(name):
    chapter = CHAPTERS[name]
    cells = chapter.source().cells
    headings = [
        i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Check your understanding" in c.source
    ]
    assert headings, f"{name}: no '## Check your understanding' section"
    after = "\n".join(c.source for c in cells[headings[-1] :] if c.cell_type == "code")
    answers = [a for a in chapter.answers if f"checks.test_{a}(" in after]
    assert answers, f"{name}: 'Check your understanding' has no checked answer_* question"
    assert any("## Going further" in c.source for c in cells[headings[-1] :]), f"{name}: no '## Going further' list"
