"""Hub models: resolve a name to a Hugging Face repository, download it into the Hugging Face
cache, and load it from there, online or offline.

Two formats live on the hub. Models in the Hugging Face format (``gpt2``, ``gpt2-medium``) load
through ``TransformerBridge.boot_transformers``. Legacy TransformerLens repositories
(``NeelNanda/Attn_Only_2L512W_C4_Code``: a TransformerLens-style ``config.json`` and a
``*final.pth`` state dict, no ``model_type``) load with the pieces of TransformerLens's
``boot_tl_legacy`` (``transformer_lens/model_bridge/sources/tl_legacy.py``), from the cache, so
that a model downloaded once also loads offline.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.sources import tl_legacy
from transformer_lens.supported_models import get_official_model_name
from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint
from transformers import PreTrainedTokenizerFast

HUB_PREFIX = "hub:"
HUB_HOST = "huggingface.co"
LEGACY_FILES = ["config.json", "*final.pth"]
"""What a legacy TransformerLens model needs from its repository (not its training checkpoints)."""
TRANSFORMERS_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]
"""Config, weights and tokenizer files of a Hugging Face model (not its other frameworks' weights)."""


class ModelUnavailableError(RuntimeError):
    """The model name is unknown, or names a hub model that is neither cached nor downloadable here."""


def hub_repo(name: str) -> str | None:
    """The Hugging Face repository of a TransformerLens name, alias or ``owner/name`` (``hub:`` prefix
    allowed), or None if ``name`` is none of these."""
    bare = name.removeprefix(HUB_PREFIX)
    try:
        return get_official_model_name(bare)
    except ValueError:
        return bare if "/" in bare else None


def is_legacy(repo: str) -> bool:
    """True for a legacy TransformerLens repository (no Hugging Face ``model_type``)."""
    return repo.startswith(tl_legacy.TL_LEGACY_PREFIXES)


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face hub answers on port 443 and offline mode is not forced."""
    if hf_constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def cached_folder(repo: str) -> Path | None:
    """The repository's snapshot folder in the Hugging Face cache, or None if it was never downloaded."""
    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def is_cached(repo: str) -> bool:
    """True if the model and its tokenizer can be loaded from the Hugging Face cache alone."""
    folder = cached_folder(repo)
    if folder is None or not (folder / "config.json").is_file():
        return False
    if not is_legacy(repo):
        return True
    tokenizer = _legacy_config(folder).get("tokenizer_name")
    return any(folder.glob("*final.pth")) and (tokenizer is None or cached_folder(tokenizer) is not None)


def download(repo: str) -> Path:
    """Download the files ``load_hub_model`` needs into the Hugging Face cache (a legacy model's
    tokenizer repository too); return the model's snapshot folder."""
    patterns = LEGACY_FILES if is_legacy(repo) else TRANSFORMERS_FILES
    folder = Path(snapshot_download(repo, allow_patterns=patterns))
    if is_legacy(repo) and (tokenizer := _legacy_config(folder).get("tokenizer_name")):
        snapshot_download(tokenizer, allow_patterns=TRANSFORMERS_FILES)
    return folder


def load_hub_model(repo: str, device: torch.device) -> TransformerBridge:
    """Load ``repo`` in eval mode: from the cache when the hub is unreachable, else downloading what is missing."""
    online = hub_reachable()
    if not online and not is_cached(repo):
        raise ModelUnavailableError(
            f"Cannot download {repo!r}: {HUB_HOST} is not reachable (offline, or HF_HUB_OFFLINE is set) "
            f"and it is not in the Hugging Face cache ({hf_constants.HF_HUB_CACHE}). Use a course model, "
            f"or, once online, run `python -m course_utils download {repo}` to use it offline later."
        )
    if online and is_legacy(repo):
        download(repo)
    with _offline(not online):
        if is_legacy(repo):
            return _load_legacy(repo, device).eval()
        return TransformerBridge.boot_transformers(repo, device=device).eval()


@contextlib.contextmanager
def _offline(enabled: bool) -> Iterator[None]:
    """Make huggingface_hub and transformers read only the cache (no request that would time out)."""
    before = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = before or enabled
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = before


def _legacy_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _load_legacy(repo: str, device: torch.device) -> TransformerBridge:
    """``boot_tl_legacy`` on the cached files: its config derivation and checkpoint conversion,
    with the weights read from the snapshot folder instead of listing the repository online."""
    folder = cached_folder(repo)
    cfg = tl_legacy.derive_tl_legacy_config(repo)
    if getattr(cfg, "original_architecture", "neel") != "neel":
        raise ModelUnavailableError(
            f"{repo!r} uses an older TransformerLens layout; load it online with TransformerBridge.boot_tl_legacy."
        )
    # A tokenizer-only repository (no model config.json, which AutoTokenizer needs); its tokenizer.json
    # defines it. add_bos_token as TransformerLens sets it (it would reload the tokenizer with AutoTokenizer).
    tokenizer = (
        PreTrainedTokenizerFast.from_pretrained(cfg.tokenizer_name, add_bos_token=True) if cfg.tokenizer_name else None
    )
    bridge = TransformerBridge.boot_native(cfg, tokenizer=tokenizer, device=device, model_name=repo)
    (weights_file,) = sorted(folder.glob("*final.pth"))[:1]
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    converted = convert_tl_checkpoint({k: v.float() for k, v in state.items()}, cfg)
    converted.setdefault("unembed.bias", torch.zeros(cfg.d_vocab))
    bridge.load_state_dict(converted, strict=True)
    return bridge
