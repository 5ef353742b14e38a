"""Learner notebooks (with their stubs) run without any error other than a stub's.

The solution notebooks are executed separately, by `make test-notebooks` (nbmake).
"""

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_utils.chapters import available_chapters
from course_utils.harness import RESULT_MIME
from course_utils.tooling.build import build_chapter


@pytest.mark.slow
@pytest.mark.parametrize("chapter", available_chapters())
def test_learner_notebook_runs_until_a_stub(chapter, tmp_path):
    learner, _ = build_chapter(chapter, out_dir=tmp_path)
    nb = nbformat.read(learner, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as err:
        assert err.ename == "NotImplementedError", f"{chapter}: learner notebook failed with {err.ename}: {err.evalue}"
    reported = [
        out["data"][RESULT_MIME]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if RESULT_MIME in out.get("data", {})
    ]
    assert any(r["message"].endswith("is not implemented yet.") for r in reported), (
        f"{chapter}: no check ran before the first stub error"
    )
