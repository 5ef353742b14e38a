"""Where the course's files are: the repository checkout, or the copies inside an installed package.

Run from a clone (``make setup``'s editable install, or ``PYTHONPATH``), the course reads the
repository's ``models/`` and ``notebooks/`` and writes ``build/`` and ``workspace/`` there.
Installed from a wheel (``pip install git+…``, Colab, JupyterHub), it reads the copies that the
build hook (``setup.py``) packed into ``course_utils/_data/`` and writes into the current folder.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from urllib.parse import unquote, urlparse

DISTRIBUTION = "mechinterp-course"
PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGED_DATA = PACKAGE_DIR / "_data"
"""The installed package's copies of ``models/`` and ``notebooks/`` (absent in a checkout)."""


def find_checkout(root: Path = PACKAGE_DIR.parent) -> Path | None:
    """The repository this package runs from, or None when it runs from an installed wheel."""
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


REPO_ROOT: Path | None = find_checkout()
DATA_ROOT: Path = REPO_ROOT if REPO_ROOT is not None else PACKAGED_DATA
MODELS_DIR: Path = DATA_ROOT / "models"
NOTEBOOKS_DIR: Path = DATA_ROOT / "notebooks"
WORK_ROOT: Path = REPO_ROOT if REPO_ROOT is not None else Path.cwd()
"""Where ``build/`` and ``workspace/`` go: the checkout, or the folder an installed course runs in."""
BUILD_DIR: Path = WORK_ROOT / "build"


def is_packaged(path: Path) -> bool:
    """True if ``path`` lies in the installed package's data (which only a reinstall restores)."""
    return Path(path).resolve().is_relative_to(PACKAGED_DATA.resolve())


def reinstall_command() -> str:
    """The pip command that reinstalls this package from where it was installed from.

    pip records the source of a wheel, a folder or a ``git+`` URL in ``direct_url.json``
    (PEP 610); an install from an index has none, and the package's name is enough.
    """
    try:
        text = importlib.metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
        origin = json.loads(text) if text else {}
    except (importlib.metadata.PackageNotFoundError, ValueError):
        origin = {}
    url, vcs = origin.get("url", ""), origin.get("vcs_info")
    if vcs:
        revision = f"@{vcs['requested_revision']}" if vcs.get("requested_revision") else ""
        spec = f"{DISTRIBUTION} @ {vcs['vcs']}+{url}{revision}"
    elif url.startswith("file:"):
        spec = unquote(urlparse(url).path)
    else:
        spec = f"{DISTRIBUTION} @ {url}" if url else DISTRIBUTION
    return f'pip install --force-reinstall --no-deps "{spec}"'
