"""Printed text in an executed notebook, cleaned for a sheet: no progress bars, no build machine's folders."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat

from course_utils.paths import REPO_ROOT

_PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\d+(?:\.\d+)?(?:it|s)/(?:s|it)\]")


def machine_prefixes() -> list[str]:
    """Folders of the machine that built a sheet (the repository, the venv, the home folder), longest first."""
    folders = {str(REPO_ROOT), sys.prefix, sys.base_prefix, str(Path.home())}
    return sorted((f for f in folders if len(f) > 1), key=len, reverse=True)


def clean_streams(nb: nbformat.NotebookNode) -> None:
    """Drop progress bars printed on stderr, and the build machine's folders from every printed text, in place."""
    prefixes = machine_prefixes()

    def anonymise(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix + os.sep, "").replace(prefix, "")
        return text

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output["text"]
                if output.get("name") == "stderr":
                    text = "".join(line for line in re.split(r"(?<=[\r\n])", text) if not _PROGRESS_BAR.search(line))
                output["text"] = anonymise(text)
                if not output["text"].strip():
                    continue
            elif output.get("output_type") == "error":
                output["evalue"] = anonymise(str(output.get("evalue", "")))
                output["traceback"] = [anonymise(line) for line in output.get("traceback", [])]
            kept.append(output)
        cell.outputs = kept
