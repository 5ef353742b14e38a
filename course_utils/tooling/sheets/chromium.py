"""Headless Chromium without network: sheets printed to PDF, their DOM after scripts ran, screenshots."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # No network at all: a page that needs a CDN visibly fails.
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(args: Sequence[str], *, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium with a throw-away profile and no network."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("Chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="sheets-chromium-") as profile:
        return subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def print_pdf(page: Path, pdf: Path | None = None) -> Path:
    """Print ``page`` to PDF with headless Chromium (the print stylesheet applies)."""
    pdf = pdf or page.with_suffix(".pdf")
    run_chromium(
        ["--virtual-time-budget=15000", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.resolve().as_uri()]
    )
    if not pdf.exists():
        raise RuntimeError(f"Chromium wrote no PDF for {page}")
    return pdf


def dump_dom(page: Path, *, budget_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran (headless Chromium, no network)."""
    result = run_chromium([f"--virtual-time-budget={budget_ms}", "--dump-dom", Path(page).resolve().as_uri()])
    if result.returncode != 0 or "<html" not in result.stdout:
        raise RuntimeError(f"Chromium could not render {page}: {result.stderr.strip()[-500:]}")
    return result.stdout


def screenshot(page: Path, png: Path, *, width: int = 1280, height: int = 1600, budget_ms: int = 20000) -> Path:
    """Save a PNG of ``page`` rendered at ``width`` × ``height`` CSS pixels."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    run_chromium(
        [
            f"--virtual-time-budget={budget_ms}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            Path(page).resolve().as_uri(),
        ]
    )
    if not png.exists():
        raise RuntimeError(f"Chromium wrote no screenshot of {page}")
    return png


def page_height(dom: str, default: int = 1600) -> int:
    """The full height that ``sheet.js`` recorded on ``<html data-sheet-height>``."""
    match = re.search(r'data-sheet-height="(\d+)"', dom)
    return int(match.group(1)) if match else default
