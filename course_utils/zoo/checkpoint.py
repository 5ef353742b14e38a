"""Save and load the course's checkpoints under ``models/``, verified against ``models/manifest.json``.

``models/`` is the repository's folder, or the installed package's copy (see ``course_utils/paths.py``).

Layout::

    models/tokenizer/                 saved PreTrainedTokenizerFast
    models/<name>/config.json         TransformerBridgeConfig fields
    models/<name>/model.safetensors   the bridge's state_dict (fp32, or fp16 above ~10 MB)
    models/<name>/MODEL_CARD.md
    models/manifest.json              {"files": {relative path: sha256}}
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
from pathlib import Path

import torch
import transformer_lens.model_bridge.sources  # noqa: F401 - registers TransformerBridge.boot_native
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerFast

from course_utils import paths

COURSE_MODELS: tuple[str, ...] = ("attn-only-1l", "attn-only-2l", "gelu-4l", "facts-4l")
MODELS_DIR: Path = paths.MODELS_DIR
TOKENIZER_DIR = "tokenizer"
MANIFEST = "manifest.json"
FP16_ABOVE_BYTES = 10_500_000
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


def read_manifest(models_dir: Path = MODELS_DIR) -> dict[str, str]:
    """Relative path -> sha256 for every shipped file (empty if there is no manifest yet)."""
    path = models_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text())["files"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is not a valid manifest ({err}); {restore_hint(models_dir, MANIFEST)}") from None


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


def verify(relative_path: str, models_dir: Path = MODELS_DIR) -> Path:
    """Return the file's path after checking it exists and matches the manifest."""
    path = models_dir / relative_path
    for missing, rel in ((models_dir / MANIFEST, MANIFEST), (path, relative_path)):
        if not missing.is_file():
            raise CheckpointError(f"missing file {missing}; {restore_hint(models_dir, rel)}")
    expected = read_manifest(models_dir).get(relative_path)
    if expected is None:
        raise CheckpointError(f"{path} is not listed in {models_dir / MANIFEST}; {restore_hint(models_dir, MANIFEST)}")
    if sha256_file(path) != expected:
        raise CheckpointError(f"checksum mismatch for {path} (changed or corrupt); {restore_hint(models_dir, relative_path)}")
    return path


def load_tokenizer(models_dir: Path = MODELS_DIR) -> PreTrainedTokenizerFast:
    """The course tokenizer (byte-level BPE, ``<|endoftext|>`` as BOS/EOS/PAD/UNK)."""
    folder = models_dir / TOKENIZER_DIR
    for rel in sorted(k for k in read_manifest(models_dir) if k.startswith(TOKENIZER_DIR + "/")):
        verify(rel, models_dir)
    if not (folder / "tokenizer.json").is_file():
        hint = restore_hint(models_dir, f"{TOKENIZER_DIR}/tokenizer.json")
        raise CheckpointError(f"missing file {folder / 'tokenizer.json'}; {hint}")
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def load_config(name: str, models_dir: Path = MODELS_DIR) -> dict:
    """The model's TransformerBridgeConfig fields."""
    path = verify(f"{name}/config.json", models_dir)
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); {restore_hint(models_dir, f'{name}/config.json')}") from None


def load_checkpoint(
    name: str, device: str | torch.device = "cpu", models_dir: Path = MODELS_DIR
) -> TransformerBridge:
    """Load a course model as an fp32, eval-mode ``TransformerBridge`` with the course tokenizer."""
    if not (models_dir / name).is_dir() and name not in COURSE_MODELS:
        raise CheckpointError(f"unknown model {name!r}; course models: {', '.join(COURSE_MODELS)}")
    config = load_config(name, models_dir)
    weights = verify(f"{name}/model.safetensors", models_dir)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {weights} ({err}); {restore_hint(models_dir, f'{name}/model.safetensors')}") from None
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


def save_checkpoint(
    model: TransformerBridge, name: str, card_text: str, config: dict, models_dir: Path = MODELS_DIR
) -> dict[str, int]:
    """Write config, weights (fp16 if fp32 would exceed ~10 MB) and model card; update the manifest.

    ``config`` is the dict the model was booted from. Returns file sizes in bytes.
    """
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()}  # clone: tied weights share memory
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
