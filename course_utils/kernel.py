"""Execute a notebook in a fresh Jupyter kernel: shared by ``make progress`` and ``make sheets``."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]
"""ipykernel 7 warns on every start that it uses TCP without encryption (local, harmless): silence it."""


def execute_in_kernel(nb: nbformat.NotebookNode, cwd: Path, timeout: int, *, strict_checks: bool) -> str | None:
    """Execute ``nb`` in place, every cell even after an error, in a kernel started in ``cwd``.

    ``strict_checks`` sets ``COURSE_STRICT_CHECKS=1`` (a failed check raises) or removes it;
    plotly renders figures as JSON (``PLOTLY_RENDERER=plotly_mimetype``) either way.
    Returns ``None``, or "ErrorName: first line of its message" when the run stopped early
    (a timeout, a dead kernel). Errors inside cells are left in the cells' outputs.
    """
    env = {k: v for k, v in os.environ.items() if k != "COURSE_STRICT_CHECKS"}
    env["PLOTLY_RENDERER"] = "plotly_mimetype"
    if strict_checks:
        env["COURSE_STRICT_CHECKS"] = "1"
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        extra_arguments=QUIET_KERNEL,
        resources={"metadata": {"path": str(cwd)}},
    )
    try:
        client.execute(env=env)
    except Exception as err:  # noqa: BLE001 - a timeout or a dead kernel stops this notebook only
        lines = str(err).strip().splitlines()
        return f"{type(err).__name__}{': ' + lines[0] if lines else ''}"
    return None
