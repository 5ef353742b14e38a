"""The model registry: one :class:`CourseModel` record per course model.

The loader (``load_model``), the checkpoint reader, ``python -m course_utils.zoo``, the model
cards and the zoo's tests all read :data:`COURSE_MODELS`. A record names its recipe (how the
model is trained and evaluated, :mod:`course_utils.zoo.recipes`) and its thresholds (the
figures it must reach, :mod:`course_utils.zoo.thresholds`) as ``"module:attribute"``; they
are imported only when asked for, so a learner's ``load_model`` never imports the training code.
Adding a model is a recipe, a thresholds function and one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from course_utils import paths

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from course_utils.zoo.recipes import Recipe, Streams
    from course_utils.zoo.thresholds import Check

CARD = "MODEL_CARD.md"


@dataclass(frozen=True)
class CourseModel:
    """One course model: its name (its folder in ``models/``), its recipe and its thresholds."""

    name: str
    recipe_ref: str
    """``"module:attribute"`` of its :class:`~course_utils.zoo.recipes.Recipe`."""
    thresholds_ref: str
    """``"module:attribute"`` of its ``metrics -> [Check]`` function."""

    def recipe(self) -> Recipe:
        """How it is trained, and its evaluation."""
        return _resolve(self.recipe_ref)

    def evaluate(self, model: TransformerBridge, streams: Streams) -> dict:
        """Its figures, measured by its recipe's evaluation (the ones its card reports)."""
        return self.recipe().evaluate(model, streams)

    def thresholds(self, metrics: dict) -> list[Check]:
        """Each required figure of ``metrics`` (from :meth:`evaluate`) against its limit."""
        return _resolve(self.thresholds_ref)(metrics)

    def card(self, models_dir: Path | None = None) -> Path:
        """Its model card, ``models/<name>/MODEL_CARD.md``."""
        return (models_dir or paths.MODELS_DIR) / self.name / CARD


def _resolve(ref: str) -> Any:
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


COURSE_MODELS: dict[str, CourseModel] = {
    m.name: m
    for m in (
        CourseModel(
            "attn-only-1l", "course_utils.zoo.recipes:ATTN_ONLY_1L", "course_utils.zoo.thresholds:attn_only_1l"
        ),
        CourseModel(
            "attn-only-2l", "course_utils.zoo.recipes:ATTN_ONLY_2L", "course_utils.zoo.thresholds:attn_only_2l"
        ),
        CourseModel("gelu-4l", "course_utils.zoo.recipes:GELU_4L", "course_utils.zoo.thresholds:gelu_4l"),
        CourseModel("facts-4l", "course_utils.zoo.recipes:FACTS_4L", "course_utils.zoo.thresholds:facts_4l"),
    )
}
"""Every course model, by name; ``name in COURSE_MODELS`` and ``", ".join(COURSE_MODELS)`` read the names."""


def course_model(name: str) -> CourseModel:
    """The record of course model ``name``."""
    try:
        return COURSE_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown course model {name!r}; course models: {', '.join(COURSE_MODELS)}") from None
