"""Python ternary prefixes for the if/else skip-trigram task.

A prefix is source text that ends just before `` else`` of a one-line ``X if COND else Y``,
located exactly with ``ast.IfExp``. Two sets:

* "trusted": COND ends in a name, literal or comparison (``x if n > 0``, ``a if flag``);
* "anomalous": COND ends in ``)`` (``x if f(y)``, ``a if (b or c)``).

The held-out set (from files never used for training) ships as ``models/ternary_eval.json`` so
notebooks load it instantly with :func:`load_ternary_eval`; each prefix names its file relative to
its package (``stdlib/json/decoder.py``, ``torch/nn/modules/linear.py``), never a machine's path.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from course_utils import checkpoint
from course_utils.paths import MODELS_DIR

Kind = Literal["trusted", "anomalous"]
EVAL_FILE = MODELS_DIR / "ternary_eval.json"
CONTEXT_CHARS = 200
"""Prefixes keep at most this many characters before the ``else``, cut at a line start."""

_TRUSTED_TAILS = (ast.Name, ast.Constant, ast.Attribute)


@dataclass(frozen=True)
class TernaryPrefix:
    """A prefix ending just before `` else``; ``source`` names the file it came from (see
    :func:`package_relative`)."""

    prefix: str
    kind: Kind
    source: str


def _kind_of(test: ast.expr, test_text: str) -> Kind | None:
    if test_text.endswith(")"):
        return "anomalous"
    if isinstance(test, _TRUSTED_TAILS):
        return "trusted"
    if isinstance(test, ast.Compare) and isinstance(test.comparators[-1], _TRUSTED_TAILS):
        return "trusted"
    if isinstance(test, ast.UnaryOp) and isinstance(test.operand, _TRUSTED_TAILS):
        return "trusted"
    return None


def _line_offsets(text: str) -> list[int]:
    offsets = [0]
    for line in text.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    return offsets


def extract_from_source(text: str, source: str = "<string>") -> list[TernaryPrefix]:
    """All classifiable one-line ternaries in ``text``: the prefix ends where `` else`` starts."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines(keepends=True)
    offsets = _line_offsets(text)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.IfExp) or node.test.end_lineno != node.orelse.lineno:
            continue
        line_no = node.test.end_lineno
        line = lines[line_no - 1]
        # ast column offsets count UTF-8 bytes
        col = len(line.encode()[: node.test.end_col_offset].decode(errors="ignore"))
        match = re.match(r"\)*(?= else\b)", line[col:])
        if match is None:
            continue
        end = offsets[line_no - 1] + col + match.end()
        test_text = text[offsets[node.test.lineno - 1] : end]
        kind = _kind_of(node.test, test_text.rstrip())
        if kind is None:
            continue
        start = max(0, end - CONTEXT_CHARS)
        if start > 0:
            newline = text.find("\n", start, end)
            start = newline + 1 if newline != -1 else start
        found.append(TernaryPrefix(text[start:end], kind, source))
    return found


def extract(files: Iterable[Path], progress: bool = True) -> list[TernaryPrefix]:
    """Extract ternary prefixes from many files (skips unreadable or unparsable ones)."""
    out: list[TernaryPrefix] = []
    for path in tqdm(list(files), desc="ternaries", disable=not progress):
        try:
            out.extend(extract_from_source(path.read_text(encoding="utf-8"), source=str(path)))
        except UnicodeDecodeError:
            continue
    return out


def save_eval_set(prefixes: list[TernaryPrefix], path: Path = EVAL_FILE) -> None:
    """Write an evaluation set as JSON (a list of {prefix, kind, source})."""
    path.write_text(json.dumps([asdict(p) for p in prefixes], indent=1) + "\n")


def load_ternary_eval(kind: Kind | None = None, path: Path = EVAL_FILE) -> list[TernaryPrefix]:
    """The shipped held-out prefixes (from files the models never trained on), optionally one kind.

    The file is checked against the manifest of its folder, like the model weights."""
    if kind not in (None, "trusted", "anomalous"):
        raise ValueError(f"unknown kind {kind!r}; use 'trusted', 'anomalous' or None")
    checkpoint.verify(path.name, path.parent)
    items = [TernaryPrefix(**row) for row in json.loads(path.read_text())]
    return [p for p in items if kind is None or p.kind == kind]


def package_relative(path: Path, roots: Mapping[str, Path]) -> str:
    """``path`` as ``<root name>/<path inside that root>``, taking the innermost root that holds it."""
    for name, root in sorted(roots.items(), key=lambda item: len(item[1].parts), reverse=True):
        if path.is_relative_to(root):
            return f"{name}/{path.relative_to(root).as_posix()}"
    raise ValueError(f"{path} is in none of the roots {', '.join(roots)}")


def build_eval_set(files: Iterable[Path], roots: Mapping[str, Path], per_kind: int = 400) -> list[TernaryPrefix]:
    """Up to ``per_kind`` distinct prefixes of each kind, scanning ``files`` (all under ``roots``,
    e.g. :func:`course_utils.zoo.corpus.code_roots`) in order."""
    picked: dict[str, list[TernaryPrefix]] = {"trusted": [], "anomalous": []}
    seen: set[str] = set()
    files = list(files)
    with tqdm(total=2 * per_kind, desc="ternary eval set") as bar:
        for path in files:
            if all(len(v) >= per_kind for v in picked.values()):
                break
            try:
                found = extract_from_source(path.read_text(encoding="utf-8"), source=package_relative(path, roots))
            except UnicodeDecodeError:
                continue
            for p in found:
                if p.prefix not in seen and len(picked[p.kind]) < per_kind:
                    seen.add(p.prefix)
                    picked[p.kind].append(p)
                    bar.update()
    return picked["trusted"] + picked["anomalous"]
