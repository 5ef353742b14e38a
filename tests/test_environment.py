"""environment.yml (conda) and pyproject.toml (pip) must list the same packages and pins."""

import os
import subprocess
import sys
import tomllib

import yaml

from course_utils.paths import REPO_ROOT


def _pyproject_deps() -> set[str]:
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return set(data["project"]["dependencies"])


def _conda_pip_deps() -> set[str]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    return {d for d in pip_sections[0] if not d.startswith("-e")}


def test_environment_yml_matches_pyproject():
    assert _conda_pip_deps() == _pyproject_deps()


def test_every_dependency_is_pinned():
    unpinned = [d for d in _pyproject_deps() if "==" not in d]
    assert not unpinned, f"pin these: {unpinned}"


def test_python_versions_agree():
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    assert data["project"]["requires-python"] == ">=3.11"
    assert "python=3.11" in env["dependencies"]


GROUPED = """\
import os
import pytest

pytestmark = pytest.mark.xdist_group("one")


@pytest.mark.parametrize("i", range(6))
def test_worker(i):
    with open("workers.txt", "a") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""


def test_the_pinned_pytest_keeps_an_xdist_group_on_one_worker(tmp_path):
    """`make test` puts the sheets' tests in one xdist group, so that each sheet is built once. pytest
    9.2 silently breaks pytest-xdist 3.8's grouping (it spreads the group over the workers, and the
    sheets are then built twice): this fails if an upgrade does that again."""
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "xdist",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},  # the workers start faster without nbmake & co.
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    workers = set((tmp_path / "workers.txt").read_text().split())
    assert len(workers) == 1, f"the group's 6 tests ran on workers {sorted(workers)}"
