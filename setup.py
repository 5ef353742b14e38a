"""Build hook: a wheel of the course carries its models and notebook sources.

The repository keeps ``models/`` and ``notebooks/`` at its top level; a wheel (``pip install
git+…``, ``pip wheel .``) gets copies under ``course_utils/_data/``, where
``course_utils/paths.py`` finds them when no checkout is around. Editable installs copy
nothing: they read the repository's folders. Everything else is in ``pyproject.toml``.
"""

import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = Path("course_utils", "_data")


def course_files() -> list[str]:
    """``models/manifest.json``, every file it lists, and the chapter sources ``notebooks/*.py``."""
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())["files"]
    files = ["models/manifest.json", *(f"models/{rel}" for rel in sorted(manifest))]
    files += sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("*.py"))
    missing = [f for f in files if not (ROOT / f).is_file()]
    if missing:
        raise SystemExit(
            f"cannot package the course, missing: {', '.join(missing)} (git checkout -- models/ notebooks/)"
        )
    return files


class BuildPyWithCourseData(build_py):
    """``build_py``, then copy :func:`course_files` into ``course_utils/_data/``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        data = Path(self.build_lib) / DATA
        shutil.rmtree(data, ignore_errors=True)  # no stale file from an earlier build
        for rel in course_files():
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, data / rel)


setup(cmdclass={"build_py": BuildPyWithCourseData})
