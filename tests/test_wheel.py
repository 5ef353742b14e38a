"""The course installed as a package (``pip install git+…``, Colab, JupyterHub) works without the repository.

The slow test builds a wheel from a copy of this repository and, in a fresh virtual environment
outside the repository (the pinned dependencies come from this environment, so nothing is
downloaded), runs the README's "In Colab or JupyterHub" cell in a Jupyter kernel, with the wheel
for the repository's URL. Then, from that temporary folder, it uses the installed course as a
learner would: every course model, a learner notebook up to its first check, a solution notebook
to its end, and an exercise sheet.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from course_utils.chapters import CHAPTERS, available_chapters
from course_utils.paths import REPO_ROOT

NOT_PACKAGED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "workspace", "__pycache__", "*.egg-info", ".pytest_cache", "*.ipynb"
)
COURSE_ENTRIES = ("mechinterp_course", "__editable__", "course_utils", "solutions")
"""What an install of the course puts into site-packages (editable or not)."""
CHAPTER = "01_hooks_basics"
"""The shortest chapter: its learner notebook runs up to its first check, its solution notebook to the end."""


def test_each_set_up_cell_says_how_to_install_without_installing():
    for chapter in available_chapters():
        setup = next(c for c in CHAPTERS[chapter].source().cells if c.cell_type == "code")
        assert '%pip install "git+' in setup.source, f"{chapter}: the set-up cell has no %pip install hint"
        magics = [line for line in setup.source.splitlines() if line.lstrip().startswith(("%", "!"))]
        assert not magics, f"{chapter}: the set-up cell runs {magics[0]!r} (keep the hint a comment)"


def _run(command: list, cwd: Path, env: dict | None = None, timeout: int = 300) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def build_wheel(dest: Path) -> Path:
    """``pip wheel`` from a copy of the repository (a build leaves setuptools' build/ behind)."""
    source = dest / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_PACKAGED)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            ".",
            "-w",
            dest,
        ],
        source,
    )
    shutil.rmtree(source)
    (wheel,) = dest.glob("mechinterp_course-*.whl")
    return wheel


def fresh_venv(dest: Path) -> Path:
    """A venv whose only packages are this environment's, minus the course; returns its python.

    They are links in one folder that a ``.pth`` line puts on ``sys.path`` (without reading the
    ``.pth`` files in it): pip sees the pinned dependencies as installed, and nothing of this
    environment's editable install of the course (its finder, its metadata) is visible.
    """
    _run([sys.executable, "-m", "venv", "--without-pip", dest], dest.parent)
    python = dest / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], dest.parent).strip())
    dependencies = dest / "dependencies"
    dependencies.mkdir()
    for folder in dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]):
        for entry in Path(folder).iterdir():
            link = dependencies / entry.name
            if not entry.name.startswith(COURSE_ENTRIES) and not link.exists():
                link.symlink_to(entry)
    (site / "course-dependencies.pth").write_text(f"{dependencies}\n")
    return python


def offline_env() -> dict:
    """No PYTHONPATH (it could name the repository), no network; Jupyter's data files (nbconvert's
    templates), which pip would install into the new venv's share/, from this environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COURSE_STRICT_CHECKS", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", PIP_NO_INDEX="1", OMP_NUM_THREADS="1", PLOTLY_RENDERER="plotly_mimetype")
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    return env


def readme_cell() -> str:
    """The code block of the README's "In Colab or JupyterHub" section."""
    section = (REPO_ROOT / "README.md").read_text().split("## In Colab or JupyterHub", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


# Run in the new venv, from the temporary folder.
RUN_A_CELL = textwrap.dedent(
    """
    import sys, nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(sys.argv[1])])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
    print("".join(o.get("text", "") for o in nb.cells[0].outputs))
    """
)

USE_THE_COURSE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import nbformat
    import course_utils
    from course_utils import load_model, paths
    from course_utils.tooling.build import build_chapter
    from course_utils.tooling.kernel import execute_in_kernel
    from course_utils.tooling.sheets import build_sheets
    from course_utils.tasks.ternary import load_ternary_eval
    from course_utils.course_models import COURSE_MODELS

    chapter = sys.argv[1]  # its learner notebook is in this folder (the README cell put it there)
    out = {"course_utils": course_utils.__file__, "repo_root": str(paths.REPO_ROOT), "models_dir": str(paths.MODELS_DIR)}
    out["models"] = {name: load_model(name, device="cpu").cfg.n_layers for name in COURSE_MODELS}
    out["ternary_eval"] = len(load_ternary_eval())
    _, solution_path = build_chapter(chapter)  # into build/notebooks/ of this folder
    out["solution_path"] = str(solution_path)
    (sheet,) = build_sheets([chapter], Path("sheets"), execute=False, log=lambda line: None)
    out["sheet_bytes"] = sheet.exercise_page.stat().st_size

    WHERE = "import course_utils; print('course_utils from', course_utils.__file__)"
    def run(nb, strict):
        nb.cells.insert(0, nbformat.v4.new_code_cell(WHERE))
        started = time.perf_counter()
        stopped = execute_in_kernel(nb, Path.cwd(), timeout=300, strict_checks=strict)
        text = [o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
                for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        errors = [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        return {"stopped": stopped, "errors": errors, "text": "".join(text), "seconds": time.perf_counter() - started}

    learner = nbformat.read(f"{chapter}.ipynb", as_version=4)
    first = next(i for i, c in enumerate(learner.cells) if "exercise" in c.metadata.get("tags", []))
    check = next(i for i, c in enumerate(learner.cells) if i > first and c.cell_type == "code" and "checks.test_" in c.source)
    learner.cells = learner.cells[: check + 1]
    out["learner"] = run(learner, strict=False)
    out["solution"] = run(nbformat.read(solution_path, as_version=4), strict=True)
    print(json.dumps(out))
    """
)


@pytest.fixture
def scratch():
    """A temporary folder outside the repository, removed afterwards with the wheel and the venv in it."""
    with tempfile.TemporaryDirectory(prefix="course-wheel-") as folder:
        yield Path(folder).resolve()


@pytest.mark.slow
@pytest.mark.integration
def test_the_wheel_is_the_whole_course(scratch):
    started = time.perf_counter()
    wheel = build_wheel(scratch / "dist")
    built = time.perf_counter()
    names = zipfile.ZipFile(wheel).namelist()
    manifest = json.loads((REPO_ROOT / "models" / "manifest.json").read_text())["files"]
    for rel in ["manifest.json", *manifest]:
        assert f"course_utils/_data/models/{rel}" in names, f"the wheel lacks models/{rel}"
    for chapter in available_chapters():
        assert f"course_utils/_data/notebooks/{chapter}.py" in names and f"solutions/{chapter}.py" in names
    assert "course_utils/tooling/sheets/assets/sheet.css" in names and not [n for n in names if n.startswith("tests/")]

    python = fresh_venv(scratch / "venv")
    work, env = scratch / "work", offline_env()
    work.mkdir()
    cell, found = re.subn(r'"git\+[^"]+"', f'"{wheel}"', readme_cell())  # the wheel for the repository's URL
    assert found == 1, f"the README's cell should install from one git+ URL:\n{cell}"
    installing = time.perf_counter()
    out = _run([python, "-c", RUN_A_CELL, cell], work, env)
    installed = time.perf_counter()
    print(
        f"\nwheel {wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB, built in {built - started:.1f} s; "
        f"the README cell (install, workspace) took {installed - installing:.1f} s"
    )
    assert "Successfully installed mechinterp-course" in out and out.count("copied") == len(available_chapters()), out
    assert not (work / "build").exists(), "the workspace left built notebooks (solutions included) behind"

    (scratch / "use_the_course.py").write_text(USE_THE_COURSE)
    lines = _run([python, scratch / "use_the_course.py", CHAPTER], work, env)
    result = json.loads(lines.strip().splitlines()[-1])

    venv = (scratch / "venv").resolve()
    assert Path(result["course_utils"]).resolve().is_relative_to(venv), result["course_utils"]
    assert result["repo_root"] == "None" and Path(result["models_dir"]).resolve().is_relative_to(venv)
    assert (
        result["models"] == {"attn-only-1l": 1, "attn-only-2l": 2, "gelu-4l": 4, "facts-4l": 4}
        and result["ternary_eval"] > 0
    )
    assert Path(result["solution_path"]) == work / "build" / "notebooks" / "solutions" / f"{CHAPTER}.ipynb"
    assert result["sheet_bytes"] > 10_000  # the sheet's stylesheet and template came with the wheel
    for kind in ("learner", "solution"):
        run = result[kind]
        assert run["stopped"] is None and not run["errors"], f"{kind} notebook: {run['stopped'] or run['errors'][:3]}"
        assert f"course_utils from {venv}" in run["text"], f"the {kind} kernel did not import the installed course"
    assert "is not implemented yet" in result["learner"]["text"]
    print(
        f"learner up to its first check {result['learner']['seconds']:.0f} s, "
        f"solution {CHAPTER} {result['solution']['seconds']:.0f} s, total {time.perf_counter() - started:.0f} s"
    )
