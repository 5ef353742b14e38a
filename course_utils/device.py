"""Pick the fastest available torch device."""

import torch


def get_device() -> torch.device:
    """Return ``cuda`` if available, else ``mps`` (Apple silicon), else ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
