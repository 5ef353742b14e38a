"""Headless Chromium without network: sheets printed to PDF, their DOM after scripts ran, screenshots."""

from __future__ import annotations

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


SCREENSHOT_HEIGHT = 16000
"""Height in CSS pixels of a screenshot: Chromium's largest texture side."""


def dump_dom(
    page: Path,
    *,
    budget_ms: int = 20000,
    screenshot: Path | None = None,
    width: int = 1280,
    height: int = SCREENSHOT_HEIGHT,
) -> str:
    """The page's DOM after its scripts ran (headless Chromium, no network), in a ``width`` × ``height``
    window. With ``screenshot``, the same run also saves a PNG of that window (the page's top
    ``height`` CSS pixels; blank below a shorter page): one browser start instead of two."""
    args = [f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}", "--dump-dom"]
    if screenshot is not None:
        screenshot = Path(screenshot)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.unlink(missing_ok=True)
        args.append(f"--screenshot={screenshot}")
    result = run_chromium([*args, Path(page).resolve().as_uri()])
    if result.returncode != 0 or "<html" not in result.stdout:
        raise RuntimeError(f"Chromium could not render {page}: {result.stderr.strip()[-500:]}")
    if screenshot is not None and not screenshot.exists():
        raise RuntimeError(f"Chromium wrote no screenshot of {page}")
    return result.stdout
