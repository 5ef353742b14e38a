"""Pinned CPU numerics for the zoo, so a retrain writes byte-identical files on x86-64 CPUs with AVX2.

Measured: identical files from retrains on AMD EPYC machines (with AVX-512 kernels switched off),
and on one Intel Xeon for the model trained there; but an Intel Xeon retrain of the models trained
on an AMD EPYC gives other weights (attn-only-1l, attn-only-2l, gelu-4l), although MKL runs its
COMPATIBLE branch on one thread there too (``MKL_VERBOSE=1``) and no oneDNN kernel runs in the
attention-only models' training (``ONEDNN_VERBOSE=1``). Which kernel still depends on the CPU is open;
``python -m course_utils.zoo.fingerprint`` finds it from two machines' outputs. The suspects are the
ops whose bits depend on MKL's code branch (measured by switching ``MKL_CBWR`` between COMPATIBLE and
AVX2): matrix products (mm, bmm) and ATen's sqrt, exp, log, erf and fractional powers, which go
through MKL's vector math library (under COMPATIBLE its sqrt is not even correctly rounded: 790 of
4096 values differ from IEEE sqrt); softmax, log-softmax, layer norm, GELU, sin, cos and sums do not.

By default PyTorch picks kernels for the CPU at hand, and kernels of different vector widths or
instruction sets add floating-point numbers in different orders. Measured on an AVX-512 EPYC
(20 training steps of a gelu-4l-shaped model): ATen's AVX-512 kernels (the default here), its AVX2
kernels and oneDNN's AVX-512 GELU each give other weights. MKL picks its matrix-product code by
CPU vendor and model; ``MKL_CBWR=COMPATIBLE`` is the code branch MKL documents as the same on Intel
and AMD CPUs (it also changes the weights; see above for what was measured across vendors).
Training amplifies any last-bit difference.

These variables act only if set before torch is imported, so ``python -m course_utils.zoo``
restarts itself with them (:func:`reexec_pinned`). The thread count (1) is part of the pin: MKL
reproduces its results only for a fixed number of threads, and parallel reductions split by thread.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import NoReturn

PINNED_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's own kernels (sums, softmax, layer norm, AdamW): 8-float vectors
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN kernels (the GELU forward)
    "MKL_CBWR": "COMPATIBLE",  # MKL matrix products: the same code on Intel and AMD CPUs
    "MKL_DYNAMIC": "FALSE",  # MKL and OpenMP use exactly the requested number of threads
    "OMP_DYNAMIC": "FALSE",
    "PYTHONHASHSEED": "0",  # set and dict order of strings
}
THREADS = 1
"""Torch CPU threads of a reproducible run (the shipped files were trained with 1 each; ``--jobs`` trains
models side by side in separate processes instead)."""


def is_pinned(env: Mapping[str, str] = os.environ) -> bool:
    """Whether ``env`` carries every pinned value."""
    return all(env.get(k) == v for k, v in PINNED_ENV.items())


def pinned_environ(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """A copy of ``env`` with the pinned values (overriding any set from outside)."""
    return {**env, **PINNED_ENV}


def reexec_pinned(module: str, argv: list[str]) -> NoReturn:
    """Replace this process by ``python -m module *argv`` with the pinned environment."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], pinned_environ())


def apply_in_process(threads: int) -> None:
    """The in-process part of the pin: thread count, and an error for any nondeterministic op."""
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def describe(threads: int) -> str:
    """One line for the log: what is pinned, and what this process actually runs with."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    pins = " ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in PINNED_ENV)
    return f"numerics: {pins}; torch {torch.__version__}, CPU capability {capability}, {threads} thread(s)"


def problems(threads: int) -> list[str]:
    """Why this process would not reproduce the shipped files (empty when it should)."""
    import torch

    found = []
    if not is_pinned():
        found.append("the environment is not pinned (run `python -m course_utils.zoo`, which pins it)")
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX2":
        found.append(
            f"torch runs {capability} kernels instead of AVX2" + (" (this CPU has no AVX2)" if is_pinned() else "")
        )
    if threads != THREADS:
        found.append(f"{threads} threads instead of {THREADS}")
    return found
