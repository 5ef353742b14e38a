"""Load and verify the course's checkpoints under ``models/`` against ``models/manifest.json``.

The learner's side of the model zoo (``load_model`` reads through it); writing checkpoints is the
zoo's (:mod:`course_utils.zoo.checkpoint`). ``models/`` is the repository's folder, or the
installed package's copy (see ``course_utils/paths.py``).

Layout::

    models/tokenizer/                 saved PreTrainedTokenizerFast
    models/<name>/config.json         TransformerBridgeConfig fields
    models/<name>/model.safetensors   the bridge's state_dict (fp32, or fp16 above ~10 MB)
    models/<name>/MODEL_CARD.md
    models/manifest.json              {"files": {relative path: sha256}}
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import torch
import transformer_lens.model_bridge.sources  # noqa: F401 - registers TransformerBridge.boot_native
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerFast

from course_utils import paths
from course_utils.course_models import COURSE_MODELS

MODELS_DIR: Path = paths.MODELS_DIR
TOKENIZER_DIR = "tokenizer"
MANIFEST = "manifest.json"
RETRAIN_HINT = "retrain with `python -m course_utils.zoo` (or `--only NAME` for one model)"


class CheckpointError(Exception):
    """A shipped file is missing, corrupt, or does not match the manifest."""


def restore_hint(models_dir: Path, relative_path: str) -> str:
    """The one command that brings back the shipped version of a file of ``models_dir``.

    An installed package is reinstalled; a file that git tracks is checked out again; only a
    file that nothing holds any more is retrained.
    """
    if paths.is_packaged(models_dir):
        return f"reinstall the course: `{paths.reinstall_command()}`"
    models_dir = Path(models_dir).resolve()
    existing = next((p for p in (models_dir, *models_dir.parents) if p.is_dir()), None)
    try:
        top = _git(["rev-parse", "--show-toplevel"], existing)
        root = Path(top.stdout.strip()).resolve()
        where = models_dir.relative_to(root)
        _git(["ls-files", "--error-unmatch", "--", (where / relative_path).as_posix()], root)
    except (OSError, ValueError, subprocess.SubprocessError):  # no git, outside a repository, or untracked
        return RETRAIN_HINT
    return f"restore the shipped files with `git checkout -- {where.as_posix()}/` in {root}"


def _git(args: list[str], cwd: Path | None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(models_dir: Path | None = None) -> dict[str, str]:
    """Relative path -> sha256 for every shipped file (empty if there is no manifest yet)."""
    models_dir = models_dir or MODELS_DIR
    path = models_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text())["files"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is not a valid manifest ({err}); {restore_hint(models_dir, MANIFEST)}") from None


def verify(relative_path: str, models_dir: Path | None = None) -> Path:
    """Return the file's path after checking it exists and matches the manifest."""
    models_dir = models_dir or MODELS_DIR
    path = models_dir / relative_path
    for missing, rel in ((models_dir / MANIFEST, MANIFEST), (path, relative_path)):
        if not missing.is_file():
            raise CheckpointError(f"missing file {missing}; {restore_hint(models_dir, rel)}")
    expected = read_manifest(models_dir).get(relative_path)
    if expected is None:
        raise CheckpointError(f"{path} is not listed in {models_dir / MANIFEST}; {restore_hint(models_dir, MANIFEST)}")
    if sha256_file(path) != expected:
        raise CheckpointError(
            f"checksum mismatch for {path} (changed or corrupt); {restore_hint(models_dir, relative_path)}"
        )
    return path


def load_tokenizer(models_dir: Path | None = None) -> PreTrainedTokenizerFast:
    """The course tokenizer (byte-level BPE, ``<|endoftext|>`` as BOS/EOS/PAD/UNK)."""
    models_dir = models_dir or MODELS_DIR
    folder = models_dir / TOKENIZER_DIR
    for rel in sorted(k for k in read_manifest(models_dir) if k.startswith(TOKENIZER_DIR + "/")):
        verify(rel, models_dir)
    if not (folder / "tokenizer.json").is_file():
        hint = restore_hint(models_dir, f"{TOKENIZER_DIR}/tokenizer.json")
        raise CheckpointError(f"missing file {folder / 'tokenizer.json'}; {hint}")
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def load_config(name: str, models_dir: Path | None = None) -> dict:
    """The model's TransformerBridgeConfig fields."""
    models_dir = models_dir or MODELS_DIR
    path = verify(f"{name}/config.json", models_dir)
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise CheckpointError(
            f"{path} is not valid JSON ({err}); {restore_hint(models_dir, f'{name}/config.json')}"
        ) from None


def load_checkpoint(name: str, device: str | torch.device = "cpu", models_dir: Path | None = None) -> TransformerBridge:
    """Load a course model as an fp32, eval-mode ``TransformerBridge`` with the course tokenizer."""
    models_dir = models_dir or MODELS_DIR
    if not (models_dir / name).is_dir() and name not in COURSE_MODELS:
        raise CheckpointError(f"unknown model {name!r}; course models: {', '.join(COURSE_MODELS)}")
    config = load_config(name, models_dir)
    weights = verify(f"{name}/model.safetensors", models_dir)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot read {weights} ({err}); {restore_hint(models_dir, f'{name}/model.safetensors')}"
        ) from None
    model = TransformerBridge.boot_native(
        TransformerBridgeConfig.from_dict(config), tokenizer=load_tokenizer(models_dir), device=device
    )
    state = {k: v.to(torch.float32) for k, v in state.items()}  # fp16 files load as fp32
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        hint = restore_hint(models_dir, f"{name}/model.safetensors")
        raise CheckpointError(f"{weights} does not fit {name}/config.json ({err}); {hint}") from None
    return model.eval()
