"""environment.yml (conda) and pyproject.toml (pip) must list the same packages and pins."""

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
