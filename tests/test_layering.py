"""The learner's runtime stays apart from the training code and the tooling.

A learner's notebook imports ``course_utils`` (``load_model``, plots), the harness, a chapter's
checks and the task data; none of that may pull in the zoo's training code (a trainer, the
recipes, the corpora) or the tooling (notebook build, kernels, workspace, progress, grading,
sheets and their Chromium helpers)."""

import json
import subprocess
import sys

from course_utils.chapters import CHAPTERS
from course_utils.paths import REPO_ROOT

LEARNER_IMPORTS = [
    "course_utils",
    "course_utils.harness",
    "course_utils.plotting",
    "course_utils.findings",
    "course_utils.tasks.ioi",
    "course_utils.tasks.facts",
    "course_utils.tasks.recall",
    "course_utils.tasks.ternary",
    "course_utils.tasks.repeated",
    "course_utils.tasks.english",
    *(chapter.checks_name for chapter in CHAPTERS.values()),
]
FORBIDDEN = ("course_utils.zoo", "course_utils.tooling", "course_utils.__main__")


def _imported_after(modules: list[str]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('course_utils'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_learner_imports_pull_in_neither_training_code_nor_tooling():
    loaded = _imported_after(LEARNER_IMPORTS)
    assert "course_utils.checkpoint" in loaded and "course_utils.course_models" in loaded
    leaked = [m for m in loaded if m.startswith(FORBIDDEN)]
    assert not leaked, f"a learner's imports load {leaked}"


def test_loading_a_model_imports_no_training_code():
    code = (
        "import json, sys\n"
        "from course_utils import load_model\n"
        "load_model('attn-only-1l', device='cpu')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('course_utils.zoo', 'course_utils.tooling')))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(out.stdout.splitlines()[-1]) == []
