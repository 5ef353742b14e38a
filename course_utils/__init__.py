"""Shared helpers for the course: model loading, devices, seeding, plots and checks.

>>> from course_utils import load_model
>>> model = load_model("attn-only-2l")   # a course model: offline, eval mode
"""

from course_utils.device import get_device
from course_utils.models import ModelUnavailableError, load_model, random_model
from course_utils.plotting import bar, heatmap, line, position_labels
from course_utils.rng import seed_everything

__all__ = [
    "ModelUnavailableError",
    "bar",
    "get_device",
    "heatmap",
    "line",
    "load_model",
    "position_labels",
    "random_model",
    "seed_everything",
]
