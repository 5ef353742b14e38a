"""Seeded randomness, so every figure in the course is reproducible."""

import random

import numpy as np
import torch


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch ``Generator`` seeded the same way.

    Pass the generator to ``torch.randint(..., generator=g)`` when a function must
    draw the same numbers whatever ran before it.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
