"""Load the course's own models, hub models when online, and tiny random models for tests."""
from __future__ import annotations

import os
import socket

import torch
import transformer_lens.model_bridge.sources  # noqa: F401 - registers TransformerBridge.boot_native
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.supported_models import get_official_model_name

from course_utils.checkpoint import load_checkpoint, load_tokenizer
from course_utils.course_models import COURSE_MODELS
from course_utils.device import get_device

HUB_PREFIX = "hub:"
HUB_HOST = "huggingface.co"


class ModelUnavailableError(RuntimeError):
    """The model name is unknown, or names a hub model that cannot be downloaded here."""


def load_model(name: str, device: str | torch.device | None = None) -> TransformerBridge:
    """Return an eval-mode ``TransformerBridge`` for ``name``.

    - A course model (``"attn-only-1l"``, ``"attn-only-2l"``, ``"gelu-4l"``) loads from
      the course's ``models/`` folder (the repository's, or the installed package's copy),
      offline, in well under a second. A missing or changed file raises ``CheckpointError``
      with the one command that restores it.
    - Any other TransformerLens name or alias (``"gpt2-small"``, ``"tiny-stories-1M"``)
      is downloaded from the Hugging Face hub, which needs a network connection.
      Course and hub names overlap (the hub also has ``attn-only-2l``): write
      ``"hub:attn-only-2l"`` for the hub one.
    """
    device = torch.device(device) if device is not None else get_device()
    if name in COURSE_MODELS:
        return load_checkpoint(name, device=device)
    hub_name = name.removeprefix(HUB_PREFIX)
    try:
        official = get_official_model_name(hub_name)
    except ValueError:
        official = hub_name if "/" in hub_name else None
    if official is None:
        raise ModelUnavailableError(
            f"Unknown model {name!r}. Course models (offline): {', '.join(COURSE_MODELS)}. "
            "Hub models (online) take a TransformerLens name such as 'gpt2-small' or 'hub:attn-only-2l'."
        )
    if not hub_reachable():
        raise ModelUnavailableError(
            f"Cannot download {official!r}: {HUB_HOST} is not reachable (offline, or HF_HUB_OFFLINE is set). "
            f"Use a course model instead ({', '.join(COURSE_MODELS)}), or connect and try again."
        )
    model = TransformerBridge.boot_transformers(official, device=device)
    return model.eval()


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face hub answers on port 443 and offline mode is not forced."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def random_model(
    n_layers: int = 2,
    attn_only: bool = False,
    d_model: int = 32,
    n_heads: int = 4,
    n_ctx: int = 64,
    seed: int = 0,
) -> TransformerBridge:
    """A tiny random-weight model with the course tokenizer, for fast tests.

    Its LayerNorm weights and biases are randomised too: a fresh LayerNorm (weight 1,
    bias 0) is idempotent, which would hide "LayerNorm applied twice" mistakes.
    """
    tokenizer = load_tokenizer()
    cfg = TransformerBridgeConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        d_mlp=None if attn_only else 4 * d_model,
        n_ctx=n_ctx,
        d_vocab=len(tokenizer),
        attn_only=attn_only,
        normalization_type="LN",
        act_fn="gelu",
        seed=seed,
    )
    model = TransformerBridge.boot_native(cfg, tokenizer=tokenizer)
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for key, value in state.items():
        noise = torch.randn(value.shape, generator=gen)
        if key.split(".")[-2] in ("ln1", "ln2", "ln_final"):
            state[key] = 1.0 + 0.5 * noise if key.endswith("weight") else 0.3 * noise
        elif key.endswith("bias"):
            state[key] = 0.1 * noise
    model.load_state_dict(state)
    return model.eval()
