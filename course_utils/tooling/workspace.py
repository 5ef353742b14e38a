"""The learner's own workspace: ``python -m course_utils workspace`` (or ``make lab``).

Builds the learner notebooks (in a temporary folder) and copies them into ``workspace/``
(ignored by git; in an installed course, ``workspace/`` of the current folder), then
starts JupyterLab there. A notebook already in the workspace is the learner's work: it
is never replaced unless the learner says so (an interactive prompt, or ``--force``),
and even then the old file is first saved under ``workspace/.backups/``. Without a
terminal to ask in, an existing notebook is kept and the command says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from course_utils.paths import REPO_ROOT, WORK_ROOT
from course_utils.tooling.build import build_chapter

DEFAULT_WORKSPACE = WORK_ROOT / "workspace"
BACKUP_DIR = ".backups"

Ask = Callable[[str], bool]


def ask_on_terminal(question: str) -> bool:
    """Ask a yes/no question on the terminal; anything but y/yes means no."""
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def default_ask() -> Ask | None:
    """:func:`ask_on_terminal` when a person is at a terminal, else None (never replace)."""
    return ask_on_terminal if sys.stdin.isatty() and sys.stdout.isatty() else None


def prepare_workspace(
    chapters: Sequence[str],
    dest: Path = DEFAULT_WORKSPACE,
    *,
    force: bool = False,
    ask: Ask | None = None,
    build: Callable[[str, Path], tuple[Path, Path]] = build_chapter,
    build_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Copy each chapter's learner notebook into ``dest``; return ``{chapter: what happened}``.

    What happened is one of ``"copied"`` (new), ``"unchanged"`` (identical file already
    there), ``"replaced"`` (old file backed up, then replaced: ``force`` or the learner said
    yes) and ``"kept"`` (the learner's file was left alone). Notebooks are built into
    ``build_dir`` (default: a temporary folder, so that no solution lands next to the workspace).
    """
    if build_dir is None:
        with tempfile.TemporaryDirectory(prefix="course-build-") as tmp:
            return prepare_workspace(chapters, dest, force=force, ask=ask, build=build, build_dir=Path(tmp), log=log)
    build_dir = Path(build_dir)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    warning = _not_ignored_warning(dest)
    if warning:
        log(warning)
    outcome = {}
    for chapter in chapters:
        learner, _ = build(chapter, build_dir)
        target = dest / learner.name
        if not target.exists():
            shutil.copy2(learner, target)
            outcome[chapter] = "copied"
        elif same_notebook(learner, target):
            outcome[chapter] = "unchanged"
        elif force or (
            ask is not None and ask(f"{_show(target)} differs from the course's version (your work?). Replace it?")
        ):
            backup = backup_file(target)
            shutil.copy2(learner, target)
            outcome[chapter] = "replaced"
            log(f"  your previous {target.name} is saved as {_show(backup)}")
        else:
            outcome[chapter] = "kept"
        log(f"{outcome[chapter]:>9}  {_show(target)}")
    if "kept" in outcome.values():
        how = "answer y when asked" if ask is not None else "no terminal to ask in; pass --force"
        log(f"Your own notebooks were kept. To replace one with the course's version: {how} (a backup is made).")
    return outcome


def same_notebook(a: Path, b: Path) -> bool:
    """Same cells (type, source, tags, outputs), ignoring cell ids and other metadata.

    The build gives cells fresh random ids each time, so the bytes of two builds of the
    same chapter differ; only a change the learner could see counts.
    """
    try:
        return _content(a) == _content(b)
    except (OSError, ValueError, KeyError):
        return False


def _content(path: Path) -> list:
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        (c.get("cell_type"), _text(c.get("source", "")), c.get("metadata", {}).get("tags", []), c.get("outputs", []))
        for c in nb["cells"]
    ]


def _text(source: str | list[str]) -> str:
    return "".join(source) if isinstance(source, list) else source


def backup_file(path: Path) -> Path:
    """Copy ``path`` to ``<its folder>/.backups/<name>.<timestamp><suffix>``; return the copy."""
    backups = path.parent / BACKUP_DIR
    backups.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = backups / f"{path.stem}.{stamp}{path.suffix}"
    n = 1
    while backup.exists():
        backup = backups / f"{path.stem}.{stamp}-{n}{path.suffix}"
        n += 1
    shutil.copy2(path, backup)
    return backup


def lab_command(dest: Path) -> list[str]:
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(dest).resolve()}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers often run as root; JupyterLab refuses it otherwise
    return command


def start_lab(dest: Path) -> int:
    """Run JupyterLab in ``dest`` until the learner stops it (Ctrl-C)."""
    print(f"Starting JupyterLab in {_show(Path(dest))} (Ctrl-C to stop).")
    try:
        return subprocess.call(lab_command(dest), cwd=dest)
    except KeyboardInterrupt:
        return 0


def _not_ignored_warning(dest: Path) -> str | None:
    """A warning when ``dest`` lies inside the repository but git does not ignore it."""
    if REPO_ROOT is None:
        return None
    try:
        Path(dest).resolve().relative_to(REPO_ROOT)
    except ValueError:
        return None
    try:
        status = subprocess.run(
            ["git", "check-ignore", "-q", str(Path(dest).resolve())], cwd=REPO_ROOT, capture_output=True, timeout=10
        ).returncode
    except (OSError, subprocess.TimeoutExpired):
        return None
    if status == 1:
        return f"note: git does not ignore {_show(dest)}; your work there could be committed by mistake (workspace/ is ignored)."
    return None


def _show(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
