"""Load the course's own models, hub models when online, and tiny random models for tests."""

from __future__ import annotations

import difflib

import torch
import transformer_lens.model_bridge.sources  # noqa: F401 - registers TransformerBridge.boot_native
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from course_utils.checkpoint import load_checkpoint, load_tokenizer
from course_utils.course_models import COURSE_MODELS
from course_utils.device import get_device
from course_utils.hub import ModelUnavailableError, hub_repo, load_hub_model


def load_model(name: str, device: str | torch.device | None = None) -> TransformerBridge:
    """Return an eval-mode ``TransformerBridge`` for ``name``.

    - A course model (``"attn-only-1l"``, ``"attn-only-2l"``, ``"gelu-4l"``) loads from
      the course's ``models/`` folder (the repository's, or the installed package's copy),
      offline, in well under a second. A missing or changed file raises ``CheckpointError``
      with the one command that restores it.
      Course names are matched without regard to case (``"attn-only-2L"``).
    - Any other TransformerLens name or alias (``"gpt2-small"``, ``"tiny-stories-1M"``)
      loads from the Hugging Face hub (``course_utils.hub``): downloaded when online, read from
      the Hugging Face cache offline (fill it with ``python -m course_utils download NAME``).
      Course and hub names overlap (the hub also has ``attn-only-2l``): write
      ``"hub:attn-only-2l"`` for the hub one.
    """
    device = torch.device(device) if device is not None else get_device()
    course = {m.lower(): m for m in COURSE_MODELS}
    if name.lower() in course:
        return load_checkpoint(course[name.lower()], device=device)
    repo = hub_repo(name)
    if repo is None:
        close = difflib.get_close_matches(name.lower(), list(course), n=1, cutoff=0.6)
        hint = f"Did you mean {course[close[0]]!r}? " if close else ""
        raise ModelUnavailableError(
            f"Unknown model {name!r}. {hint}Course models (offline): {', '.join(COURSE_MODELS)}. "
            "Hub models take a TransformerLens name such as 'gpt2-small' or 'hub:attn-only-2l'."
        )
    return load_hub_model(repo, device)


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
