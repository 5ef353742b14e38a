"""The notebook build: solution notebooks get the solution's code, learner ones keep stubs."""
import importlib

from course_utils.build import build_chapter, fill_cell
from course_utils.chapters import available_chapters


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


def test_build_writes_both_notebooks(tmp_path):
    chapter = available_chapters()[0]
    learner, solution = build_chapter(chapter, out_dir=tmp_path)
    assert learner.exists() and solution.exists()
    assert "NotImplementedError" in learner.read_text()
    assert '"outputs": []' in solution.read_text() or "outputs" in solution.read_text()
