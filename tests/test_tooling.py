"""Learner tooling on a tiny fake chapter: the workspace, the progress table, the sheets.

The fake chapter (``99_fake``) is written into ``tmp_path`` and wired in the way the
real ones are (``notebooks/``, ``solutions``, ``course_utils.checks``), so the real
``build_chapter`` builds it. Tests that start a Jupyter kernel are marked ``slow``.
"""

import importlib.util
import json
import os
import sys

import nbformat
import pytest

from course_utils import chapters as chapters_module
from course_utils import paths
from course_utils.__main__ import main
from course_utils.chapters import Chapter
from course_utils.harness import RESULT_MIME
from course_utils.tooling import progress, sheets, workspace
from course_utils.tooling.build import build_chapter
from course_utils.tooling.kernel import CELL_TIMEOUT, OUTPUT_LIMIT, Sandbox, execute_in_kernel
from course_utils.tooling.sandbox import BLOCKED
from course_utils.tooling.sheets import maths
from sheet_samples import sample_notebook

CHAPTER = "99_fake"

NOTEBOOK = '''\
# %% [markdown]
# # A fake chapter
#
# Two functions to write and one question, checked.

# %%
import fake_checks as checks

# %% [markdown]
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵⚪⚪⚪⚪

# %% tags=["exercise"]
def add_one(x: int) -> int:
    """Return ``x + 1``."""
    raise NotImplementedError("write add_one")

# %%
checks.test_add_one(add_one)

# %%
print("demo:", add_one(41))

# %% tags=["exercise"]
def double(x: int) -> int:
    """Return ``2 * x``."""
    raise NotImplementedError("write double")

# %%
checks.test_double(double)

# %% tags=["exercise"]
def triple(x: int) -> int:
    """Return ``3 * x``."""
    raise NotImplementedError("write triple")

# %%
checks.test_triple(triple)

# %%
import plotly.express as px
px.line(x=[0, 1, 2], y=[0, 1, 4], title="A demo figure", labels={"x": "n", "y": "n squared"})

# %%
import circuitsvis as cv
import torch
cv.attention.attention_patterns(tokens=["<bos>", "A", "B"], attention=torch.tril(torch.ones(1, 3, 3)) / 2)

# %% [markdown]
# ## Check your understanding

# %% tags=["exercise"]
answer_layers = ...

# %%
checks.test_answer_layers(answer_layers)
'''

SOLUTIONS = '''\
def add_one(x: int) -> int:
    """Return ``x + 1``."""
    return x + 1  # SOLUTION-MARKER


def double(x: int) -> int:
    """Return ``2 * x``."""
    return x * 2


def triple(x: int) -> int:
    """Return ``3 * x``."""
    return x * 3


answer_layers = 2
'''

CHECKS = """\
from course_utils.harness import Case, check, check_answer

import fake_solutions as SOLUTION

KNOWN_MISTAKES = {"double": {"did you add 2 instead of doubling?": lambda x: x + 2}}


def test_add_one(fn):
    return check("add_one", fn, SOLUTION.add_one, [Case("x = 1", (1,)), Case("x = 5", (5,))])


def test_double(fn):
    return check("double", fn, SOLUTION.double, [Case("x = 1", (1,)), Case("x = 5", (5,))],
                 known_mistakes=KNOWN_MISTAKES["double"])


def test_triple(fn):
    return check("triple", fn, SOLUTION.triple, [Case("x = 2", (2,))])


def test_answer_layers(answer):
    return check_answer("answer_layers", answer, lambda a: a == 2, "count the blocks")
"""


def _import_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_chapter(tmp_path, monkeypatch):
    """Write the fake chapter and make the course's lookups find it; return its folder."""
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    (root / "pkg").mkdir()
    (root / "notebooks" / f"{CHAPTER}.py").write_text(NOTEBOOK)
    (root / "pkg" / "fake_solutions.py").write_text(SOLUTIONS)
    (root / "pkg" / "fake_checks.py").write_text(CHECKS)
    # Registered like a real chapter; its solutions and checks live outside the course's packages.
    chapter = Chapter(
        99, "fake", "A fake chapter", root / "notebooks" / f"{CHAPTER}.py", "fake_solutions", "fake_checks"
    )
    monkeypatch.setitem(chapters_module.CHAPTERS, CHAPTER, chapter)
    monkeypatch.syspath_prepend(str(root / "pkg"))
    # Kernels started by the tools import the same modules.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root / "pkg"), os.environ.get("PYTHONPATH", "")]))
    for name in ("fake_solutions", "fake_checks"):
        monkeypatch.setitem(sys.modules, name, _import_file(name, root / "pkg" / f"{name}.py"))
    return root


def _learner_source(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


# ----------------------------------------------------------------- workspace


def test_workspace_copies_learner_notebooks(fake_chapter, tmp_path):
    dest = tmp_path / "ws"
    log = []
    outcome = workspace.prepare_workspace([CHAPTER], dest, build_dir=tmp_path / "nb", log=log.append)
    assert outcome == {CHAPTER: "copied"}
    copied = nbformat.read(dest / f"{CHAPTER}.ipynb", as_version=4)
    assert "NotImplementedError" in _learner_source(copied)
    assert "SOLUTION-MARKER" not in (dest / f"{CHAPTER}.ipynb").read_text()
    # Same content again: nothing to do, nothing asked.
    outcome = workspace.prepare_workspace([CHAPTER], dest, build_dir=tmp_path / "nb", ask=_never_asked, log=log.append)
    assert outcome == {CHAPTER: "unchanged"}


def _never_asked(question):
    raise AssertionError(f"asked {question!r} although nothing differed")


def _edit_workspace_notebook(path, old, new):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace(old, new)
    nbformat.write(nb, path)
    return path.read_bytes()


def test_workspace_never_overwrites_without_asking(fake_chapter, tmp_path):
    dest = tmp_path / "ws"
    workspace.prepare_workspace([CHAPTER], dest, build_dir=tmp_path / "nb", log=lambda s: None)
    target = dest / f"{CHAPTER}.ipynb"
    mine = _edit_workspace_notebook(target, 'raise NotImplementedError("write add_one")', "return x + 1")

    log = []  # no terminal (ask=None): keep, and say how to replace
    assert workspace.prepare_workspace([CHAPTER], dest, build_dir=tmp_path / "nb", ask=None, log=log.append) == {
        CHAPTER: "kept"
    }
    assert target.read_bytes() == mine
    assert any("--force" in line for line in log)

    questions = []  # the learner says no
    outcome = workspace.prepare_workspace(
        [CHAPTER], dest, build_dir=tmp_path / "nb", ask=lambda q: questions.append(q) or False, log=lambda s: None
    )
    assert outcome == {CHAPTER: "kept"} and target.read_bytes() == mine and len(questions) == 1

    # The learner says yes: replaced, and their version is backed up first.
    outcome = workspace.prepare_workspace(
        [CHAPTER], dest, build_dir=tmp_path / "nb", ask=lambda q: True, log=lambda s: None
    )
    assert outcome == {CHAPTER: "replaced"}
    assert "write add_one" in target.read_text()
    backups = list((dest / workspace.BACKUP_DIR).iterdir())
    assert [b.read_bytes() for b in backups] == [mine]


def test_workspace_force_replaces_with_a_backup(fake_chapter, tmp_path):
    dest = tmp_path / "ws"
    workspace.prepare_workspace([CHAPTER], dest, build_dir=tmp_path / "nb", log=lambda s: None)
    mine = _edit_workspace_notebook(
        dest / f"{CHAPTER}.ipynb", 'raise NotImplementedError("write double")', "return 2 * x"
    )
    outcome = workspace.prepare_workspace([CHAPTER], dest, build_dir=tmp_path / "nb", force=True, log=lambda s: None)
    assert outcome == {CHAPTER: "replaced"}
    assert [b.read_bytes() for b in (dest / workspace.BACKUP_DIR).iterdir()] == [mine]
    assert "write double" in (dest / f"{CHAPTER}.ipynb").read_text()


def test_a_rebuild_of_the_same_chapter_counts_as_unchanged(fake_chapter, tmp_path):
    # Each build gives cells new random ids: the learner must not be asked about that.
    a, _ = build_chapter(CHAPTER, tmp_path / "a")
    b, _ = build_chapter(CHAPTER, tmp_path / "b")
    assert workspace.same_notebook(a, b)


def test_workspace_command_without_lab(fake_chapter, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(chapters_module, "CHAPTERS", {CHAPTER: chapters_module.CHAPTERS[CHAPTER]})
    monkeypatch.setattr(workspace, "start_lab", lambda dest: pytest.fail("--no-lab started JupyterLab"))
    assert main(["workspace", "--dir", str(tmp_path / "ws"), "--no-lab", "99"]) in (0, None)
    assert (tmp_path / "ws" / f"{CHAPTER}.ipynb").exists()
    assert "copied" in capsys.readouterr().out


def test_lab_command_starts_jupyterlab_in_the_workspace(tmp_path):
    command = workspace.lab_command(tmp_path)
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path.resolve()}" in command


def test_the_default_workspace_is_ignored_by_git():
    gitignore = (paths.REPO_ROOT / ".gitignore").read_text().split()
    assert "workspace/" in gitignore


# ----------------------------------------------------------------- progress


def test_a_chapter_registered_alone_is_built_listed_and_tested(fake_chapter, tmp_path, capsys):
    """One registry entry (and its files) is all a chapter needs: the build, progress and the
    registry-wide tests take it up."""
    import test_chapter_checks
    import test_chapters

    record = chapters_module.CHAPTERS[CHAPTER]
    assert CHAPTER in chapters_module.available_chapters() and chapters_module.resolve("99") == CHAPTER
    assert (record.exercises, record.answers) == (["add_one", "double", "triple"], ["answer_layers"])
    assert progress.expected_checks(CHAPTER) == [*record.exercises, *record.answers]
    learner, solution = build_chapter(CHAPTER, tmp_path)
    assert "write add_one" in learner.read_text() and "SOLUTION-MARKER" in solution.read_text()
    for name in record.stubs():
        test_chapter_checks.test_solution_passes_fast(CHAPTER, name, capsys)
        test_chapter_checks.test_stub_is_not_attempted(CHAPTER, name)
    test_chapter_checks.test_known_mistakes_are_of_the_chapters_exercises(CHAPTER)
    for exercise, mistakes in record.known_mistakes().items():
        for diagnosis in mistakes:
            test_chapter_checks.test_known_mistake_is_rejected_with_its_diagnosis(CHAPTER, exercise, diagnosis)
    for test in (
        test_chapters.test_exercises_and_answers_are_the_stubs,
        test_chapters.test_stub_signatures_match_solutions,
        test_chapters.test_stubs_raise_not_implemented_or_are_ellipsis,
        test_chapters.test_every_stub_is_checked_in_the_notebook,
        test_chapters.test_solution_cells_compile,
        test_chapters.test_learner_notebook_never_imports_solutions,
    ):
        test(CHAPTER)


def test_expected_checks_are_the_test_functions_in_order(fake_chapter):
    assert progress.expected_checks(CHAPTER) == ["add_one", "double", "triple", "answer_layers"]


def _executed(cells):
    """A notebook as if executed: (source, check result or None, error name or None) per code cell.

    A check result is (exercise, status, line), published as the harness does in a kernel."""
    nb = nbformat.v4.new_notebook()
    for source, result, error in cells:
        outputs = []
        if result:
            exercise, status, line = result
            data = {"text/plain": line, RESULT_MIME: {"exercise": exercise, "status": status, "message": line}}
            outputs.append(nbformat.v4.new_output("display_data", data=data))
        if error:
            outputs.append(nbformat.v4.new_output("error", ename=error, evalue="boom\nmore", traceback=[]))
        nb.cells.append(nbformat.v4.new_code_cell(source, outputs=outputs))
    return nb


def test_read_statuses_from_published_results():
    nb = _executed(
        [
            ("checks.test_a(a)", ("a", "passed", "✓ a: matches the reference on 2 inputs."), None),
            ("checks.test_b(b)", ("b", "failed", "✗ b: on x = 1, output is 3 but expected 2 — did you add 2?"), None),
            ("checks.test_c(c)", ("c", "not attempted", "… c is not implemented yet."), None),
            ("checks.test_d(d)", None, "NameError"),
            ("y = e(1)\nchecks.test_e(e)", None, "NotImplementedError"),
            ("checks.test_g(g)", None, CELL_TIMEOUT),
            ("print('✓ f: a line that looks like a check is not one')", None, None),
        ]
    )
    nb.cells[-1].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="✓ f: a line that looks like a check\n")
    ]
    statuses = {s.name: s for s in progress.read_statuses(nb, ["a", "b", "c", "d", "e", "f", "g"])}
    assert statuses["a"].status == progress.PASSED and statuses["a"].message == "matches the reference on 2 inputs"
    assert statuses["b"].status == progress.FAILED
    assert statuses["b"].message == "on x = 1, output is 3 but expected 2 — did you add 2?"
    assert statuses["c"].status == progress.NOT_ATTEMPTED and statuses["c"].message == "not implemented yet"
    assert statuses["d"].status == progress.FAILED and "NameError: boom" in statuses["d"].message
    assert statuses["e"].status == progress.NOT_ATTEMPTED
    assert statuses["f"].status == progress.NOT_ATTEMPTED and statuses["f"].message == "not run"
    assert statuses["g"].status == progress.FAILED and "stopped" in statuses["g"].message


def test_a_run_that_stopped_early_marks_the_unreported_checks_as_errors():
    nb = _executed([("checks.test_a(a)", ("a", "passed", "✓ a: matches the reference on 2 inputs."), None)])
    statuses = progress.read_statuses(nb, ["a", "b"], stopped="the notebook ran longer than 60 s and was stopped")
    assert [(s.name, s.status) for s in statuses] == [("a", "passed"), ("b", "error")]
    assert statuses[1].message == "the notebook ran longer than 60 s and was stopped"


LONG_DIAGNOSIS = "on x = 1, output is 3 but expected 2 " + " ".join(f"word{i}" for i in range(60)) + " — THE END"


def _two_chapters():
    return [
        progress.ChapterProgress(
            "01_x",
            [
                progress.ExerciseStatus("a", progress.PASSED, "matches the reference on 2 inputs"),
                progress.ExerciseStatus("b", progress.FAILED, LONG_DIAGNOSIS),
            ],
        ),
        progress.ChapterProgress(
            "02_y", [progress.ExerciseStatus("c", progress.NOT_ATTEMPTED, "not run")], note="stopped"
        ),
    ]


@pytest.mark.parametrize("width", [100, 50])
def test_table_shows_every_diagnosis_whole_within_the_width(width):
    table = progress.format_table(_two_chapters(), width=width)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= width
    assert any(line.startswith("01_x") and " a " in line and "✓ passed" in line for line in lines)
    assert " ".join(table.split()).count(LONG_DIAGNOSIS) == 1  # wrapped, never cut
    assert any("· not attempted" in line for line in lines) and "not run" in table
    assert "1/2 passed" in table and "0/1 passed · stopped" in table
    assert " ".join(table.split()).endswith("Total: 1 of 3 checks passed, 1 failed, 1 not attempted.")


def test_table_width_follows_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    assert max(len(line) for line in progress.format_table(_two_chapters()).splitlines()) <= 70


def test_progress_json(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(progress, "collect_progress", lambda chapters, dest, **kw: _two_chapters())
    (tmp_path / "01_hooks_basics.ipynb").write_text("{}")
    assert main(["progress", "--dir", str(tmp_path), "--json", "01"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["chapter"] == "01_x" and data[0]["exercises"][1] == {
        "name": "b",
        "status": "failed",
        "message": LONG_DIAGNOSIS,
    }


def test_a_chapter_missing_from_the_workspace_is_not_attempted(tmp_path):
    (result,) = progress.collect_progress(["01_x"], tmp_path, expected=lambda c: ["a", "b"], log=lambda s: None)
    assert [e.status for e in result.exercises] == [progress.NOT_ATTEMPTED] * 2
    assert "not in your workspace" in result.note


def test_an_unreadable_notebook_is_an_error_with_the_reason(tmp_path):
    (tmp_path / "01_x.ipynb").write_text('{"cells": [{"cell_type": "code", "sour')
    (result,) = progress.collect_progress(["01_x"], tmp_path, expected=lambda c: ["a"], log=lambda s: None)
    assert [(e.status, e.message.split(" (")[0]) for e in result.exercises] == [
        ("error", "01_x.ipynb is not a readable notebook")
    ]


@pytest.mark.slow
def test_progress_runs_the_learners_notebook_without_changing_it(fake_chapter, tmp_path, capsys):
    dest = tmp_path / "ws"
    workspace.prepare_workspace([CHAPTER], dest, build_dir=tmp_path / "nb", log=lambda s: None)
    path = dest / f"{CHAPTER}.ipynb"
    # The learner solved add_one, got double wrong, deleted triple's check cell, skipped the question.
    _edit_workspace_notebook(path, 'raise NotImplementedError("write add_one")', "return x + 1")
    _edit_workspace_notebook(path, 'raise NotImplementedError("write double")', "return x + 2")
    _edit_workspace_notebook(path, "checks.test_triple(triple)", "")
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns

    (result,) = progress.collect_progress([CHAPTER], dest, log=lambda s: None)

    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in dest.iterdir()) == [path.name]  # nothing written beside it
    statuses = {e.name: e for e in result.exercises}
    assert list(statuses) == ["add_one", "double", "triple", "answer_layers"]
    assert statuses["add_one"].status == progress.PASSED
    assert statuses["double"].status == progress.FAILED
    assert statuses["double"].message.startswith(
        "on x = 1, output is 3 but expected 2 — did you add 2 instead of doubling?"
    )
    assert statuses["triple"].status == progress.NOT_ATTEMPTED and statuses["triple"].message == "not run"
    assert statuses["answer_layers"].status == progress.NOT_ATTEMPTED
    assert statuses["answer_layers"].message == "not answered yet"
    print(progress.format_table([result]))
    assert "Total: 1 of 4 checks passed, 1 failed, 2 not attempted." in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("strict", [True, False])
def test_kernel_run_sets_the_check_mode_and_goes_on_after_a_cell_timeout(tmp_path, strict):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import os; print(os.environ.get('COURSE_STRICT_CHECKS'), os.environ['PLOTLY_RENDERER'], os.environ['TQDM_DISABLE'])"
            ),
            nbformat.v4.new_code_cell("while True:\n    pass"),
            nbformat.v4.new_code_cell("print('x' * 10_000_000)"),
            nbformat.v4.new_code_cell("print('still running')"),
        ]
    )
    assert execute_in_kernel(nb, tmp_path, timeout=3, strict_checks=strict) is None
    assert nb.cells[0].outputs[0]["text"] == f"{'1' if strict else 'None'} plotly_mimetype 1\n"
    (timeout,) = nb.cells[1].outputs
    assert (timeout["ename"], timeout["evalue"]) == (CELL_TIMEOUT, "the cell ran longer than 3 s and was stopped")
    assert (
        len(nb.cells[2].outputs[0]["text"]) < 2 * OUTPUT_LIMIT
        and "more output was dropped" in nb.cells[2].outputs[0]["text"]
    )
    assert nb.cells[3].outputs[0]["text"] == "still running\n"


@pytest.mark.slow
def test_sandboxed_kernel_has_no_network_a_memory_cap_and_a_notebook_limit(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import socket, resource, os\n"
                "try:\n    socket.create_connection(('203.0.113.1', 80), timeout=2)\nexcept OSError as err:\n    print(err)\n"
                "print(resource.getrlimit(resource.RLIMIT_AS)[0], os.environ['HF_HUB_OFFLINE'])\n"
                "import sys; print(any(p.rstrip('/').endswith('course_utils') for p in sys.path))"
            ),
            nbformat.v4.new_code_cell("import time\nfor _ in range(100):\n    time.sleep(0.5)"),
            nbformat.v4.new_code_cell("print('never reached')"),
        ]
    )
    stopped = execute_in_kernel(
        nb, tmp_path, timeout=60, strict_checks=False, notebook_timeout=20, sandbox=Sandbox(6 * 2**30)
    )
    assert (
        nb.cells[0].outputs[0]["text"] == f"{BLOCKED}\n{6 * 2**30} 1\nFalse\n"
    )  # no course module shadows a student's
    assert stopped == "the notebook ran longer than 20 s and was stopped"
    assert not nb.cells[2].get("outputs")


# ----------------------------------------------------------------- sheets (no browser)


def test_page_inlines_each_library_once_and_references_no_network():
    page, figures, external = sheets.render_page(sample_notebook(), chapter="99_fake", kind="solution")
    assert (figures.plotly, figures.circuitsvis, figures.problems) == (2, 2, [])
    assert external == []
    assert page.count('data-library="plotly"') == 1 and page.count("plotly.js v") == 1
    assert page.count('data-library="circuitsvis"') == 1 and page.count("var CircuitsVis=") == 1
    assert "unpkg.com" not in page and "cdn.plot.ly/plotly" not in page and "cdnjs" not in page
    assert "require.config" not in page and 'type="module"' not in page
    assert page.count('class="plotly-graph-div"') == 2 and page.count('class="circuitsvis-view"') == 2
    assert page.count("Plotly.newPlot(") == 2 and page.count("CircuitsVis.render(") == 2
    assert "@media print" in page and "break-inside: avoid" in page


def test_page_without_figures_has_no_library():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Only text"), nbformat.v4.new_code_cell("x = 1")]
    page, figures, external = sheets.render_page(nb, chapter="99_fake", kind="exercise")
    assert (figures.plotly, figures.circuitsvis, external) == (0, 0, [])
    assert "data-library" not in page and "Exercise sheet" in page


def test_circuitsvis_rewrite_handles_both_forms_and_ignores_other_html():
    import circuitsvis as cv
    import torch

    view = cv.attention.attention_patterns(tokens=["a", "b"], attention=torch.ones(1, 2, 2) / 2)
    for source in (view.local_src, view.cdn_src):
        out = sheets.circuitsvis_view_html(source)
        assert out is not None and "CircuitsVis.render(" in out and "CircuitsVis.AttentionPatterns" in out
        assert '"tokens": ["a", "b"]' in out and len(out) < 2000
    assert sheets.circuitsvis_view_html("<b>hello</b>") is None


def test_external_references_are_found():
    page = (
        '<script src="https://cdn.plot.ly/plotly-2.js"></script><link href="//cdn.example/x.css" rel="stylesheet">'
        '<script type="module">import { render } from "https://unpkg.com/circuitsvis/dist/cdn/esm.js";</script>'
        '<script>require.config({paths: {}})</script><script src="local.js"></script>'
    )
    assert len(sheets.external_references(page)) == 4


def test_aligned_maths_becomes_an_array_with_alternating_columns():
    tex = "\\begin{aligned}\nr &= a && \\text{(x)}\\\\\ny &= b\n\\end{aligned}"
    assert maths.as_array(tex) == "\\begin{array}{rlrl}r &= a && \\text{(x)}\\\\\ny &= b\\end{array}"


def test_maths_becomes_mathml():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Inline $W_{OV}$, code `$x$`, and\n$$\\sum_i x_i$$"),
        nbformat.v4.new_markdown_cell("$$\n\\begin{aligned}\nr &= a && \\text{(x)}\\\\\ny &= b\n\\end{aligned}\n$$"),
    ]
    sheets.math_to_mathml(nb)
    assert nb.cells[0].source.count("<math") == 2 and "`$x$`" in nb.cells[0].source
    assert "<mtable" in nb.cells[1].source and "<mi>&</mi>" not in nb.cells[1].source and "$" not in nb.cells[1].source


@pytest.mark.slow
def test_sheets_for_the_fake_chapter(fake_chapter, tmp_path):
    out = tmp_path / "sheets"
    results = sheets.build_sheets([CHAPTER], out, notebooks_dir=tmp_path / "nb", log=lambda s: None)
    (result,) = results
    assert result.ok, (result.errors, result.external, result.figures.problems)
    exercise = result.exercise_page.read_text()
    solution = result.solution_page.read_text()
    # Exercise sheet: the stubs, not the solutions, and not executed.
    assert "write add_one" in exercise and "SOLUTION-MARKER" not in exercise
    assert "data-library" not in exercise and "matches the reference" not in exercise
    # Solution sheet: the solutions, executed (checks passed in strict mode), the figure offline.
    assert "SOLUTION-MARKER" in solution and "write add_one" not in solution
    assert solution.count("matches the reference") == 3 and "answer_layers: correct" in solution
    assert result.figures.plotly == 1 and solution.count('data-library="plotly"') == 1
    assert result.figures.circuitsvis == 1 and solution.count('data-library="circuitsvis"') == 1
    assert solution.count("var CircuitsVis=") == 1 and "unpkg.com" not in solution
    index = (out / "index.html").read_text()
    assert f'href="{CHAPTER}-exercises.html"' in index and f'href="{CHAPTER}-solutions.html"' in index
    assert json.loads((out / sheets.MANIFEST).read_text())[CHAPTER]["plotly"] == 1


@pytest.mark.slow
def test_a_failing_solution_is_reported(fake_chapter, tmp_path):
    # The sheet build takes its solutions from this (wrong) module; the kernel's checks
    # still compare with the right one, so the strict check fails in the solution sheet.
    wrong = fake_chapter / "pkg" / "wrong_solutions.py"
    wrong.write_text(SOLUTIONS.replace("return x * 3", "return x * 4"))
    sys.modules["fake_solutions"] = _import_file("fake_solutions", wrong)  # the fixture restores the right one
    log = []
    (result,) = sheets.build_sheets([CHAPTER], tmp_path / "sheets", notebooks_dir=tmp_path / "nb", log=log.append)
    assert not result.ok and any("CheckFailed" in e and "triple" in e for e in result.errors)
    assert log[0].startswith(f"✗ {CHAPTER}") and any("CheckFailed" in line for line in log)
    assert "CheckFailed" in (tmp_path / "sheets" / "index.html").read_text()


def test_the_prompt_replaces_only_on_yes(monkeypatch):
    for typed, expected in (("y", True), ("Yes", True), ("", False), ("n", False)):
        monkeypatch.setattr("builtins.input", lambda prompt, typed=typed: typed)
        assert workspace.ask_on_terminal("Replace it?") is expected

    def closed(prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", closed)
    assert workspace.ask_on_terminal("Replace it?") is False


def test_solution_sheets_lose_progress_bars_and_machine_paths():
    venv_file = f"{sys.prefix}/lib/python3.11/site-packages/tqdm/auto.py"
    repo_file = f"{paths.REPO_ROOT}/course_utils/tasks/ternary.py"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "x",
                outputs=[
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text=(
                            "patching heads:  50%|█████     | 1/2 [00:00<00:00,  9.81it/s]\r"
                            "patching heads: 100%|██████████| 2/2 [00:00<00:00, 10.02it/s]\n"
                            f"{venv_file}:21: TqdmWarning: IProgress not found.\n"
                        ),
                    ),
                    nbformat.v4.new_output(
                        "stream", name="stderr", text="ternaries:   3%|▎         | 3/100 [00:01<00:40,  2.41s/it]\n"
                    ),
                    nbformat.v4.new_output(
                        "stream",
                        name="stdout",
                        text=f"read {repo_file}\n100%| kept: stdout is the notebook's own text\n",
                    ),
                    nbformat.v4.new_output(
                        "error", ename="ValueError", evalue=f"bad {repo_file}", traceback=[f"File {venv_file}"]
                    ),
                ],
            )
        ]
    )
    sheets.clean_streams(nb)
    outputs = nb.cells[0].outputs
    assert [o.get("name", o["output_type"]) for o in outputs] == ["stderr", "stdout", "error"]
    assert outputs[0]["text"] == "lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n"
    assert outputs[1]["text"] == "read course_utils/tasks/ternary.py\n100%| kept: stdout is the notebook's own text\n"
    page = json.dumps(outputs)
    assert sys.prefix not in page and str(paths.REPO_ROOT) not in page
