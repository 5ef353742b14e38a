"""The one notebook runner: execute a notebook in a fresh Jupyter kernel, for ``make progress``, ``make sheets``,
``make grade`` and ``benchmarks/run_course.py``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec
from nbclient import NotebookClient

from course_utils.tooling import sandbox as sandbox_kernel

QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]
"""ipykernel 7 warns on every start that it uses TCP without encryption (local, harmless): silence it."""
CELL_TIMEOUT = "CellTimeout"
"""``ename`` of the error output that replaces a cell stopped by the per-cell time limit."""
OUTPUT_LIMIT = 200_000
"""Characters of printed text kept per cell; the rest is dropped with a note."""
HEADLESS_ENV = {
    "PLOTLY_RENDERER": "plotly_mimetype",
    "TQDM_DISABLE": "1",  # nobody watches a headless run: no progress bars in its outputs
    "PYTHONWARNINGS": "ignore:IProgress not found",  # tqdm's notice names the machine's venv path
}


@dataclass(frozen=True)
class Sandbox:
    """Limits for a kernel that runs someone else's notebook: address space and network."""

    memory_bytes: int | None = None

    def env(self) -> dict[str, str]:
        env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        if self.memory_bytes:
            env[sandbox_kernel.MEMORY_ENV] = str(self.memory_bytes)
        return env


class SandboxKernelManager(AsyncKernelManager):
    """Starts ``course_utils/tooling/sandbox.py`` (limits, then an IPython kernel) instead of ipykernel."""

    @property
    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, sandbox_kernel.__file__, "-f", "{connection_file}"],
            display_name="Python 3 (grading sandbox)",
            language="python",
        )


class _Client(NotebookClient):
    """nbclient, with a cell that ran past the time limit marked as such and printing capped."""

    def output(self, outs: list, msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        if msg["msg_type"] == "stream":
            kept = sum(len(o.get("text", "")) for o in outs if o.get("output_type") == "stream")
            if kept >= OUTPUT_LIMIT:
                return None
            text = msg["content"]["text"]
            if kept + len(text) > OUTPUT_LIMIT:
                msg["content"]["text"] = text[: OUTPUT_LIMIT - kept] + "\n[… more output was dropped]\n"
        return super().output(outs, msg, display_id, cell_index)


def execute_in_kernel(
    nb: nbformat.NotebookNode,
    cwd: Path,
    timeout: int,
    *,
    strict_checks: bool,
    notebook_timeout: float | None = None,
    sandbox: Sandbox | None = None,
    extra_env: dict[str, str] | None = None,
) -> str | None:
    """Execute ``nb`` in place, every cell even after an error, in a kernel started in ``cwd``.

    A cell that runs longer than ``timeout`` seconds is interrupted and gets an error
    output named :data:`CELL_TIMEOUT`; the next cells still run. ``notebook_timeout``
    bounds the whole run (the kernel is then shut down). ``strict_checks`` sets
    ``COURSE_STRICT_CHECKS=1`` (a failed check raises) or removes it; the kernel renders
    plotly figures as JSON and shows no progress bars (:data:`HEADLESS_ENV`). ``sandbox``
    runs the kernel under :class:`Sandbox` limits. Printed text is capped per cell.
    Returns ``None``, or a one-line reason when the run stopped early (the notebook's
    time limit, a dead kernel). Errors inside cells are left in the cells' outputs.
    """
    env = {k: v for k, v in os.environ.items() if k != "COURSE_STRICT_CHECKS"}
    env.update(HEADLESS_ENV)
    if strict_checks:
        env["COURSE_STRICT_CHECKS"] = "1"
    if sandbox is not None:
        env.update(sandbox.env())
    env.update(extra_env or {})
    client = _Client(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={
            "ename": CELL_TIMEOUT,
            "evalue": f"the cell ran longer than {timeout} s and was stopped",
            "traceback": [],
        },
        on_cell_executed=_mark_timeout,
        extra_arguments=QUIET_KERNEL,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(cwd)}},
    )
    if sandbox is not None:
        client.kernel_manager_class = SandboxKernelManager

    async def run() -> None:
        await asyncio.wait_for(client.async_execute(env=env), notebook_timeout)

    started = time.monotonic()
    try:
        asyncio.run(run())
    except Exception as err:  # noqa: BLE001 - a dead kernel stops this notebook only
        # nbclient turns the cancellation at the deadline into DeadKernelError: tell them apart by the clock.
        if notebook_timeout is not None and time.monotonic() - started >= notebook_timeout:
            return f"the notebook ran longer than {notebook_timeout:g} s and was stopped"
        lines = str(err).strip().splitlines()
        return f"{type(err).__name__}{': ' + lines[0] if lines else ''}"
    return None


def _mark_timeout(cell: nbformat.NotebookNode, cell_index: int, execute_reply: dict[str, Any]) -> None:
    """Replace the ``KeyboardInterrupt`` of a cell stopped by the time limit by a :data:`CELL_TIMEOUT` error."""
    content = execute_reply.get("content", {})
    if content.get("ename") != CELL_TIMEOUT:
        return
    cell.outputs = [
        o for o in cell.outputs if not (o.get("output_type") == "error" and o.get("ename") == "KeyboardInterrupt")
    ]
    cell.outputs.append(nbformat.v4.new_output("error", ename=CELL_TIMEOUT, evalue=content["evalue"], traceback=[]))


def execution_errors(nb: nbformat.NotebookNode, width: int = 200) -> list[str]:
    """One line per error output of an executed notebook: ``"cell 7: NameError: name 'x' is not defined"``."""
    return [
        f"cell {index}: {output.get('ename')}: {str(output.get('evalue', ''))[:width]}"
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
