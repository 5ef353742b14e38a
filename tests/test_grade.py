"""Grading a class: discovery, the CSV, the feedback pages, and a synthetic class run for real.

The synthetic class is built from chapter 01's notebooks (the fastest chapter): a student with
the solutions, one with the untouched stubs, one with wrong answers (and deleted, reordered,
renamed and very chatty cells), one with an infinite loop, one with a corrupt notebook and
one who handed in nothing. It starts a kernel per student, so it is marked ``slow``.
"""

import csv

import nbformat
import pytest

from course_utils.__main__ import main
from course_utils.chapters import CHAPTERS
from course_utils.tooling import grade
from course_utils.tooling.build import build_chapter
from course_utils.tooling.progress import ExerciseStatus, expected_checks

CHAPTER = "01_hooks_basics"


def _handmade_grades(tmp_path):
    students = [grade.Student("ana maría", tmp_path), grade.Student("bo<b>", tmp_path)]
    long = "on prompt 1, output at layer 0, head 1 is 0.25 but expected 0.5 " + "and more detail " * 20 + "— THE END"
    rows = [
        grade.Row("ana maría", "01_x", "add", "passed", "matches the reference on 2 inputs"),
        grade.Row("ana maría", "01_x", "mul", "failed", long),
        grade.Row("bo<b>", "01_x", "add", "not attempted", "not implemented yet"),
        grade.Row("bo<b>", "01_x", "mul", "error", "01_x.ipynb is not a readable notebook (truncated)"),
    ]
    notes = {("bo<b>", "01_x"): "01_x.ipynb is not a readable notebook (truncated)"}
    return grade.ClassGrades(["01_x"], students, rows, notes, 12.0), long


def test_students_are_folders_and_only_chapter_notebooks_count(tmp_path):
    (tmp_path / "zed" / "sub").mkdir(parents=True)
    (tmp_path / "amy").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "loose.ipynb").write_text("{}")
    (tmp_path / "amy" / f"{CHAPTER}.ipynb").write_text("{}")
    (tmp_path / "amy" / "scratch.ipynb").write_text("{}")
    students = grade.find_students(tmp_path, [CHAPTER])
    assert [s.name for s in students] == ["amy", "zed"]
    assert students[0].notebooks == {CHAPTER: tmp_path / "amy" / f"{CHAPTER}.ipynb"} and students[0].ignored == [
        "scratch.ipynb"
    ]
    assert students[1].notebooks == {} and students[1].ignored == []
    assert grade.graded_chapters(tmp_path) == [CHAPTER]
    assert grade.graded_chapters(tmp_path, ["02_early_decoding"]) == ["02_early_decoding"]


def test_missing_submissions_folder_is_one_line(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope")]) == 1
    assert (
        capsys.readouterr().out.strip()
        == f"{tmp_path / 'nope'} is not a folder: give the folder that holds one folder per student."
    )


def test_csv_round_trip(tmp_path):
    grades, long = _handmade_grades(tmp_path)
    path = grade.write_csv(grades.rows, tmp_path / "out" / "grades.csv")
    assert path.read_text(encoding="utf-8").splitlines()[0] == "student,chapter,exercise,status,message"
    assert grade.read_csv(path) == grades.rows


def test_feedback_pages_show_every_diagnosis_and_work_offline(tmp_path):
    from course_utils.tooling.sheets import external_references

    grades, long = _handmade_grades(tmp_path)
    index = grade.write_html(grades, tmp_path / "html")
    summary = index.read_text(encoding="utf-8")
    assert external_references(summary) == []
    assert summary.count('data-library="plotly"') == 1 and "Plotly.newPlot(" in summary
    assert (
        'href="students/ana_mar_a.html"' in summary
        and "bo&lt;b&gt;" in summary
        and "<b>" not in summary.split("<main>")[1]
    )
    assert "THE END" in summary  # the most common diagnosis of "mul", whole
    page = (tmp_path / "html" / "students" / "ana_mar_a.html").read_text(encoding="utf-8")
    assert long in page and "✓ passed" in page and "✗ failed" in page
    other = (tmp_path / "html" / "students" / "bo_b.html").read_text(encoding="utf-8")
    assert "not a readable notebook" in other and "! error" in other


def test_the_chart_counts_students_per_status(tmp_path):
    grades, _ = _handmade_grades(tmp_path)
    figure = grade.class_chart(grades)
    bars = {bar["name"]: list(bar["y"]) for bar in figure["data"]}
    assert bars == {"passed": [1, 0], "failed": [0, 1], "not attempted": [1, 0], "error": [0, 1]}
    assert list(figure["data"][0]["x"]) == ["01 · add", "01 · mul"]


def test_total_line_counts_errors():
    exercises = [ExerciseStatus("a", "passed"), ExerciseStatus("b", "error"), ExerciseStatus("c", "not attempted")]
    from course_utils.tooling.progress import total_line

    assert total_line(exercises) == "Total: 1 of 3 checks passed, 0 failed, 1 not attempted, 1 could not run."


# ----------------------------------------------------------------- a synthetic class, run for real


def _cell_index(nb, needle):
    (index,) = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and needle in c.source]
    return index


def _replace_in(nb, needle, old, new):
    cell = nb.cells[_cell_index(nb, needle)]
    assert old in cell.source
    cell.source = cell.source.replace(old, new)


def synthetic_class(root, notebooks_dir):
    """Six students of chapter 01 in ``root`` (see the module's docstring); return every file's bytes.

    ``benchmarks/grade_class.py`` copies them into a larger class."""
    learner_path, solution_path = build_chapter(CHAPTER, notebooks_dir)
    solution = lambda: nbformat.read(solution_path, as_version=4)  # noqa: E731
    name = f"{CHAPTER}.ipynb"

    for student in ("ada", "ben", "cy", "dee", "eve", "fay"):
        (root / student).mkdir(parents=True)
    nbformat.write(solution(), root / "ada" / name)
    nbformat.write(nbformat.read(learner_path, as_version=4), root / "ben" / name)

    cy = solution()  # wrong function, wrong answer, a deleted, a renamed and a misplaced cell, 10 MB of printing
    _replace_in(cy, "def attention_pattern(", "def attention_pattern(", "def _right_pattern(")
    cy.cells[
        _cell_index(cy, "def _right_pattern(")
    ].source += "\n\ndef attention_pattern(q, k):\n    return _right_pattern(q, k).flip(-1)\n"
    _replace_in(cy, "answer_n_loss_positions =", "answer_n_loss_positions = 24", "answer_n_loss_positions = 25")
    del cy.cells[_cell_index(cy, "checks.test_head_z(")]
    _replace_in(cy, "def attn_out_from_z(", "def attn_out_from_z(", "def attn_out(")
    check_q4 = cy.cells.pop(_cell_index(cy, "checks.test_answer_pattern_after_z_ablation("))
    cy.cells.insert(_cell_index(cy, "answer_pattern_after_z_ablation ="), check_q4)
    cy.cells.insert(1, nbformat.v4.new_code_cell("print('chatty ' * 2_000_000)"))
    nbformat.write(cy, root / "cy" / name)

    dee = solution()  # an infinite loop in one function (only its check calls it)
    _replace_in(dee, "def attention_scores(", "    d_head = q.shape[-1]\n", "    while True:\n        pass\n")
    nbformat.write(dee, root / "dee" / name)

    text = (root / "ada" / name).read_text(encoding="utf-8")
    (root / "eve" / name).write_text(text[: len(text) // 2], encoding="utf-8")  # truncated
    (root / "fay" / "notes.ipynb").write_text(text, encoding="utf-8")  # not a chapter's name: not graded
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_synthetic_class_is_graded_row_by_row(tmp_path, capsys):
    root = tmp_path / "submissions"
    before = synthetic_class(root, tmp_path / "nb")
    out = tmp_path / "grades" / "grades.csv"

    code = main(["grade", str(root), "--out", str(out), "--timeout", "120", "--notebook-timeout", "400", "--jobs", "2"])

    assert code == 0
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # the submissions are untouched
    printed = capsys.readouterr().out
    assert (
        "Graded 6 students × 1 chapter (5 notebooks, 2 at a time) in " in printed
        and "fay: no chapter notebook handed in" in printed
    )
    assert "fay: not graded (not a chapter's notebook name): notes.ipynb" in printed

    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "chapter", "exercise", "status", "message"]
    names = expected_checks(CHAPTER)
    answers = CHAPTERS[CHAPTER].answers
    got = {(s, e): (status, message) for s, c, e, status, message in rows[1:] if c == CHAPTER}
    assert len(rows) == 1 + 6 * len(names) == 1 + len(got)

    everything = {n: "passed" for n in names}
    expected_status = {
        "ada": everything,
        "ben": {n: "not attempted" for n in names},
        "cy": everything
        | {
            "attention_pattern": "failed",
            "head_z": "not attempted",
            "attn_out_from_z": "failed",
            "answer_n_loss_positions": "failed",
            "answer_pattern_after_z_ablation": "failed",
        },
        "dee": everything | {"attention_scores": "failed"},
        "eve": {n: "error" for n in names},
        "fay": {n: "not attempted" for n in names},
    }
    for student, statuses in expected_status.items():
        for exercise in names:
            assert got[(student, exercise)][0] == statuses[exercise], (student, exercise, got[(student, exercise)])

    message = {key: value[1] for key, value in got.items()}
    assert all(message[("ben", n)] == "not implemented yet" for n in names if n not in answers)
    assert all(message[("ben", n)] == "not answered yet" for n in answers)
    assert message[("cy", "attention_pattern")].startswith("on ")
    assert message[("cy", "head_z")] == "not run"
    assert (
        message[("cy", "attn_out_from_z")] == "the check's cell raised NameError: name 'attn_out_from_z' is not defined"
    )
    assert message[("cy", "answer_n_loss_positions")].startswith("25 is not right — ")
    assert "24" not in message[("cy", "answer_n_loss_positions")]
    assert "NameError" in message[("cy", "answer_pattern_after_z_ablation")]
    assert "took longer than" in message[("dee", "attention_scores")]
    assert message[("dee", "attention_scores")].endswith("is there an infinite loop?")
    assert all(message[("eve", n)].startswith(f"{CHAPTER}.ipynb is not a readable notebook") for n in names)
    assert all(message[("fay", n)] == f"no {CHAPTER}.ipynb handed in" for n in names)

    summary = (out.parent / "index.html").read_text(encoding="utf-8")
    assert "Plotly.newPlot(" in summary and 'href="students/dee.html"' in summary
    assert "is there an infinite loop?" in (out.parent / "students" / "dee.html").read_text(encoding="utf-8")


def test_an_unknown_chapter_is_one_line(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "99"]) == 2
    assert capsys.readouterr().out.startswith("Unknown chapter '99'")
