"""The chapter registry: one :class:`Chapter` record per chapter, and where its files live.

A chapter is four files that share one name, ``NN_slug``: the notebook source
(``notebooks/NN_slug.py``), its reference solutions (``solutions/NN_slug.py``), its learner
checks (``course_utils/checks/slug.py``) and the tests of those checks
(``tests/test_NN_slug.py``). Its exercises, answers and models are read from the notebook
(its stubs and its parameters cell), never typed a second time. Build, progress, sheets,
grading, the benchmarks and the tests iterate over :data:`CHAPTERS`; adding a chapter is
adding its four files and one entry here (``tests/test_registry.py`` fails when they disagree).
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nbformat

from course_utils import paths

EXERCISE_TAG = "exercise"
_MODEL_LINE = re.compile(r'^MODEL_NAME\s*=\s*"(?P<name>[^"]+)"(?P<comment>.*)$', re.M)
_HUB_LINE = re.compile(r'^HUB_MODEL_NAME\s*=\s*"(?P<name>[^"]+)"', re.M)
_ONLINE_COMMENT = re.compile(r'online[^"]*"(?P<name>[^"]+)"')


@dataclass(frozen=True)
class Chapter:
    """One chapter. ``notebook``, ``solutions_module`` and ``checks_module`` default to the
    course's layout (see the module docstring); tests give them to register a chapter kept elsewhere."""

    number: int
    slug: str
    title: str
    notebook_path: Path | None = None
    solutions_module: str = ""
    checks_module: str = ""

    @property
    def name(self) -> str:
        """``"02_early_decoding"``: the name of its files and of its built notebooks."""
        return f"{self.number:02d}_{self.slug}"

    @property
    def notebook(self) -> Path:
        """The Jupytext source, ``notebooks/NN_slug.py``."""
        return self.notebook_path or paths.NOTEBOOKS_DIR / f"{self.name}.py"

    @property
    def solutions_name(self) -> str:
        return self.solutions_module or f"solutions.{self.name}"

    @property
    def checks_name(self) -> str:
        return self.checks_module or f"course_utils.checks.{self.slug}"

    def solutions(self) -> ModuleType:
        """The reference solutions (``solutions/NN_slug.py``; its name starts with a digit, so imported by string)."""
        return importlib.import_module(self.solutions_name)

    def checks(self) -> ModuleType:
        """The learner checks, ``course_utils.checks.<slug>``."""
        return importlib.import_module(self.checks_name)

    def known_mistakes(self) -> dict[str, dict[str, Callable]]:
        """The classic mistakes its checks name: exercise → diagnosis → a function with the learner's
        signature that makes that mistake (the checks module's ``KNOWN_MISTAKES``)."""
        return self.checks().KNOWN_MISTAKES

    def source(self) -> nbformat.NotebookNode:
        """The notebook, read from its Jupytext source."""
        return read_source(self.notebook)

    def stubs(self) -> dict[str, ast.FunctionDef | ast.Assign]:
        """Every top-level ``def`` and single-name assignment of its exercise cells, in notebook order."""
        return dict(_stubs(self.notebook, self.notebook.stat().st_mtime_ns))

    @property
    def exercises(self) -> list[str]:
        """The functions the learner writes (the stubs that are ``def``s), in notebook order."""
        return [name for name, node in self.stubs().items() if isinstance(node, ast.FunctionDef)]

    @property
    def answers(self) -> list[str]:
        """The check-your-understanding answers (``answer_… = ...``), in notebook order."""
        return [name for name, node in self.stubs().items() if not isinstance(node, ast.FunctionDef)]

    @property
    def checked(self) -> list[str]:
        """Everything the notebook checks: each stub, in notebook order (``checks.test_<name>``)."""
        return list(self.stubs())

    @property
    def model(self) -> str:
        """The course model of the parameters cell: ``MODEL_NAME = "gelu-4l"``."""
        match = _MODEL_LINE.search(self.notebook.read_text())
        if match is None:
            raise ValueError(f'{self.notebook.name} has no `MODEL_NAME = "..."` line in its parameters cell')
        return match["name"]

    @property
    def hub_model(self) -> str | None:
        """The hub model to try online: ``HUB_MODEL_NAME = "..."`` if the notebook sets one, else the
        first name in the ``online:`` comment of its ``MODEL_NAME`` line (None if neither)."""
        text = self.notebook.read_text()
        hub = _HUB_LINE.search(text)
        if hub:
            return hub["name"]
        model = _MODEL_LINE.search(text)
        online = _ONLINE_COMMENT.search(model["comment"]) if model else None
        return online["name"] if online else None


CHAPTERS: dict[str, Chapter] = {
    c.name: c
    for c in (
        Chapter(1, "hooks_basics", "Hooks basics"),
        Chapter(2, "early_decoding", "Early decoding: the logit lens"),
        Chapter(3, "residual_stream", "The residual stream"),
        Chapter(4, "activation_patching", "Activation patching"),
        Chapter(5, "induction_circuits", "Induction circuits"),
        Chapter(6, "one_layer_if_else", "`if … else` in a one-layer model"),
    )
}
"""Every chapter, by name, in course order."""


def get(chapter: str) -> Chapter:
    """The chapter named ``chapter`` (its full name: ``"02_early_decoding"``)."""
    try:
        return CHAPTERS[chapter]
    except KeyError:
        raise ValueError(f"Unknown chapter {chapter!r}; chapters are {', '.join(CHAPTERS)}") from None


def available_chapters() -> list[str]:
    """Names of the chapters whose notebook source exists (all of them in a complete course)."""
    return [name for name, c in CHAPTERS.items() if c.notebook.exists()]


def resolve(chapter: str) -> str:
    """Accept ``"02"``, ``"2"`` or ``"02_early_decoding"``; return the full chapter name."""
    for name, c in CHAPTERS.items():
        if chapter in (name, f"{c.number:02d}", str(c.number)):
            return name
    raise ValueError(f"Unknown chapter {chapter!r}; chapters are {', '.join(CHAPTERS)}")


def solutions_for(checks_module: str) -> ModuleType:
    """The reference solutions of the chapter whose checks module is ``checks_module`` (its ``__name__``)."""
    for c in CHAPTERS.values():
        if c.checks_name == checks_module:
            return c.solutions()
    raise ValueError(f"{checks_module} is not the checks module of any chapter in course_utils.chapters.CHAPTERS")


def read_source(path: Path) -> nbformat.NotebookNode:
    """A Jupytext percent script, read as a notebook."""
    import jupytext  # only the tooling reads sources: a learner's import stays light

    return jupytext.read(path)


def exercise_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The code cells tagged ``exercise`` (those that hold the stubs)."""
    return [c for c in nb.cells if c.cell_type == "code" and EXERCISE_TAG in c.metadata.get("tags", [])]


def named_nodes(tree: ast.Module):
    """Each top-level ``def`` and single-name assignment of ``tree``, with its name."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node, node.name
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            yield node, node.targets[0].id


@functools.lru_cache(maxsize=64)
def _stubs(path: Path, mtime_ns: int) -> tuple[tuple[str, ast.FunctionDef | ast.Assign], ...]:
    stubs: dict[str, ast.FunctionDef | ast.Assign] = {}
    for cell in exercise_cells(read_source(path)):
        for node, name in named_nodes(ast.parse(cell.source)):
            stubs[name] = node
    return tuple(stubs.items())


def solution_module(chapter: str) -> ModuleType:
    """The reference solutions of ``chapter`` (its full name)."""
    return get(chapter).solutions()
