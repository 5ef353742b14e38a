"""A missing or changed model file names the one command that restores it: `git checkout`, a
reinstall, and the retrain only when nothing holds the file any more."""

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from course_utils import checkpoint, paths
from course_utils.checkpoint import MODELS_DIR, CheckpointError, load_checkpoint
from course_utils.tasks.ternary import load_ternary_eval

MODEL = "attn-only-1l"
RETRAIN = "python -m course_utils.zoo"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _copy_models(dest: Path) -> Path:
    for rel in ("tokenizer", MODEL):
        shutil.copytree(MODELS_DIR / rel, dest / rel)
    shutil.copy(MODELS_DIR / "manifest.json", dest / "manifest.json")
    return dest


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo, check=True, capture_output=True
    )


@pytest.fixture
def clone(tmp_path) -> Path:
    """A git repository whose committed models/ holds one course model; returns models/."""
    repo = tmp_path / "repo"
    models = _copy_models(repo / "models")
    _git(repo, "init", "-q")
    _git(repo, "add", "models")
    _git(repo, "commit", "-q", "-m", "models")
    return models


def _error(models_dir: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(MODEL, models_dir=models_dir)
    return str(info.value)


def _run_backquoted_command(message: str, models_dir: Path) -> None:
    """Run the command that the message quotes, in the folder it names."""
    command, where = message.split("`")[1], message.rsplit(" in ", 1)[1]
    assert command == "git checkout -- models/" and Path(where) == models_dir.parent.resolve(), message
    subprocess.run(shlex.split(command), cwd=where, check=True, capture_output=True)


@needs_git
@pytest.mark.parametrize(
    "damage, what",
    [
        (lambda m: (m / MODEL / "config.json").unlink(), "missing file .*config.json"),
        (lambda m: shutil.rmtree(m / MODEL), "missing file .*config.json"),
        (lambda m: (m / "manifest.json").unlink(), "missing file .*manifest.json"),
        (lambda m: (m / MODEL / "model.safetensors").write_bytes(b"changed"), "checksum mismatch .*model.safetensors"),
        (lambda m: (m / "manifest.json").write_text("{"), "not a valid manifest"),
    ],
    ids=["deleted file", "deleted folder", "deleted manifest", "changed weights", "broken manifest"],
)
def test_a_file_that_git_has_is_restored_with_git_checkout(clone, damage, what):
    damage(clone)
    message = _error(clone)
    assert re.search(what, message), message
    assert "`git checkout -- models/`" in message and RETRAIN not in message, message
    _run_backquoted_command(message, clone)
    assert load_checkpoint(MODEL, models_dir=clone).cfg.n_layers == 1


@needs_git
def test_a_file_git_never_had_is_retrained(clone):
    new = clone / "new-model"  # trained here, never committed
    shutil.copytree(clone / MODEL, new)
    manifest = json.loads((clone / "manifest.json").read_text())
    manifest["files"].update(
        {f"new-model/{k.split('/')[1]}": v for k, v in manifest["files"].items() if k.startswith(MODEL)}
    )
    (clone / "manifest.json").write_text(json.dumps(manifest))
    (new / "config.json").unlink()
    with pytest.raises(CheckpointError, match=f"missing file .*new-model.config.json.*{RETRAIN}") as info:
        load_checkpoint("new-model", models_dir=clone)
    assert "git checkout" not in str(info.value)


def test_outside_a_repository_the_retrain_is_the_fix(tmp_path):
    models = _copy_models(tmp_path / "models")
    (models / "manifest.json").unlink()
    message = _error(models)
    assert "missing file" in message and "manifest.json" in message and RETRAIN in message and "git" not in message


def test_an_installed_course_is_reinstalled(tmp_path, monkeypatch):
    data = tmp_path / "site-packages" / "course_utils" / "_data"
    models = _copy_models(data / "models")
    monkeypatch.setattr(paths, "PACKAGED_DATA", data)
    monkeypatch.setattr(
        paths, "reinstall_command", lambda: 'pip install --force-reinstall --no-deps "mechinterp-course"'
    )
    (models / MODEL / "model.safetensors").write_bytes(b"changed")
    message = _error(models)
    assert message.endswith('reinstall the course: `pip install --force-reinstall --no-deps "mechinterp-course"`'), (
        message
    )
    assert RETRAIN not in message and "git" not in message


class _Distribution:
    def __init__(self, direct_url: dict | None):
        self.text = json.dumps(direct_url) if direct_url is not None else None

    def read_text(self, name):
        assert name == "direct_url.json"
        return self.text


@pytest.mark.parametrize(
    "direct_url, spec",
    [
        (
            {
                "url": "https://example.org/course.git",
                "vcs_info": {"vcs": "git", "commit_id": "ab12", "requested_revision": "v1"},
            },
            "mechinterp-course @ git+https://example.org/course.git@v1",
        ),
        (
            {"url": "https://example.org/course.git", "vcs_info": {"vcs": "git", "commit_id": "ab12"}},
            "mechinterp-course @ git+https://example.org/course.git",
        ),
        (
            {"url": "file:///tmp/my%20dist/mechinterp_course-0.1.0-py3-none-any.whl", "archive_info": {}},
            "/tmp/my dist/mechinterp_course-0.1.0-py3-none-any.whl",
        ),
        (
            {"url": "https://example.org/mechinterp_course-0.1.0-py3-none-any.whl", "archive_info": {}},
            "mechinterp-course @ https://example.org/mechinterp_course-0.1.0-py3-none-any.whl",
        ),
        (None, "mechinterp-course"),
    ],
    ids=["git tag", "git", "local wheel", "wheel URL", "index"],
)
def test_the_reinstall_command_names_where_the_course_came_from(monkeypatch, direct_url, spec):
    monkeypatch.setattr(paths.importlib.metadata, "distribution", lambda name: _Distribution(direct_url))
    assert paths.reinstall_command() == f'pip install --force-reinstall --no-deps "{spec}"'


def test_a_checkout_reads_the_repository_folders():
    root = Path(__file__).resolve().parents[1]
    assert paths.REPO_ROOT == root and checkpoint.MODELS_DIR == root / "models"
    assert paths.NOTEBOOKS_DIR == root / "notebooks" and paths.BUILD_DIR == root / "build"
    assert paths.find_checkout(root / "course_utils") is None  # no pyproject.toml: not a checkout (site-packages)


@needs_git
def test_the_ternary_evaluation_set_is_restored_like_the_models(clone):
    missing = clone / "ternary_eval.json"
    shutil.copy(MODELS_DIR / "ternary_eval.json", missing)
    _git(clone.parent, "add", "models")
    _git(clone.parent, "commit", "-q", "-m", "eval set")
    missing.unlink()
    with pytest.raises(
        CheckpointError,
        match="missing file .*ternary_eval.json; restore the shipped files with `git checkout -- models/`",
    ):
        load_ternary_eval(path=missing)
