"""Write the course's checkpoints (config, weights, card, tokenizer) and record them in ``models/manifest.json``.

Reading and verifying them is the learner's side, :mod:`course_utils.checkpoint`; its names are
imported here too, for the zoo's scripts and for the model cards, which name
``course_utils.zoo.checkpoint.load_checkpoint``.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerFast

from course_utils.checkpoint import (  # noqa: F401 - the zoo's scripts and the model cards use them from here
    MANIFEST,
    MODELS_DIR,
    TOKENIZER_DIR,
    CheckpointError,
    load_checkpoint,
    load_tokenizer,
    read_manifest,
    sha256_file,
    verify,
)

FP16_ABOVE_BYTES = 10_500_000


def record_files(relative_paths: list[str], models_dir: Path = MODELS_DIR) -> None:
    """Hash the given files (relative to ``models_dir``) into the manifest, dropping entries whose
    file no longer exists. Safe when several zoo processes write one folder (a file lock)."""
    with open(models_dir / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = {k: v for k, v in read_manifest(models_dir).items() if (models_dir / k).is_file()}
        for rel in relative_paths:
            manifest[rel] = sha256_file(models_dir / rel)
        text = json.dumps({"files": dict(sorted(manifest.items()))}, indent=2) + "\n"
        (models_dir / MANIFEST).write_text(text)


def save_checkpoint(
    model: TransformerBridge, name: str, card_text: str, config: dict, models_dir: Path = MODELS_DIR
) -> dict[str, int]:
    """Write config, weights (fp16 if fp32 would exceed ~10 MB) and model card; update the manifest.

    ``config`` is the dict the model was booted from. Returns file sizes in bytes.
    """
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()
    }  # clone: tied weights share memory
    if sum(v.numel() * 4 for v in state.values()) > FP16_ABOVE_BYTES:
        state = {k: v.to(torch.float16) for k, v in state.items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / "MODEL_CARD.md").write_text(card_text)
    files = [f"{name}/{f}" for f in ("config.json", "model.safetensors", "MODEL_CARD.md")]
    record_files(files, models_dir)
    return {f: (models_dir / f).stat().st_size for f in files}


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, models_dir: Path = MODELS_DIR) -> None:
    """Save the tokenizer folder and record its files in the manifest."""
    folder = models_dir / TOKENIZER_DIR
    tokenizer.save_pretrained(str(folder))
    record_files(sorted(f"{TOKENIZER_DIR}/{p.name}" for p in folder.iterdir() if p.is_file()), models_dir)
