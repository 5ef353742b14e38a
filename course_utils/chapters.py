"""The chapter list and where each chapter's files live."""
import importlib
from pathlib import Path
from types import ModuleType

from course_utils.paths import BUILD_DIR, NOTEBOOKS_DIR, REPO_ROOT  # noqa: F401 - build, sheets and tests import them from here

CHAPTERS: tuple[str, ...] = (
    "01_hooks_basics",
    "02_early_decoding",
    "03_residual_stream",
    "04_activation_patching",
    "05_induction_circuits",
    "06_one_layer_if_else",
)


def available_chapters() -> list[str]:
    """Chapters whose notebook source exists (all of them once the course is complete)."""
    return [c for c in CHAPTERS if notebook_source(c).exists()]


def resolve(chapter: str) -> str:
    """Accept ``"02"``, ``"2"`` or ``"02_early_decoding"``; return the full chapter name."""
    for full in CHAPTERS:
        if chapter in (full, full[:2], full[:2].lstrip("0")):
            return full
    raise ValueError(f"Unknown chapter {chapter!r}; chapters are {', '.join(CHAPTERS)}")


def notebook_source(chapter: str) -> Path:
    return NOTEBOOKS_DIR / f"{chapter}.py"


def solution_module(chapter: str) -> ModuleType:
    """``solutions/NN_name.py`` (its name starts with a digit, so it is imported by string)."""
    return importlib.import_module(f"solutions.{chapter}")


def checks_module(chapter: str) -> ModuleType:
    """``course_utils.checks.<name>``: the chapter's learner checks."""
    return importlib.import_module(f"course_utils.checks.{chapter[3:]}")
