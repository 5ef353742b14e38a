"""Pinned CPU numerics for the zoo, so a retrain writes byte-identical files on x86-64 CPUs with AVX2.

By default PyTorch picks kernels for the CPU at hand, and kernels of different vector widths or
instruction sets add floating-point numbers in different orders. Measured on an AVX-512 EPYC
(20 training steps of a gelu-4l-shaped model): ATen's AVX-512 kernels (the default here), its AVX2
kernels and oneDNN's AVX-512 GELU each give other weights. Training amplifies any last-bit difference.
So the pin fixes ATen's and oneDNN's kernels at AVX2, and MKL's matrix products at its AVX2 branch of
conditional numerical reproducibility (``MKL_CBWR=AVX2``: fixed cache sizes, deterministic reductions,
static scheduling). Until December 2026 the pin used MKL's ``COMPATIBLE`` (SSE2) branch instead, which
made a gelu-4l step of 32 x 128 tokens take 1.4 s instead of 0.7 s on an AMD EPYC.

Across CPU vendors: an Intel Xeon retrain of models trained on an AMD EPYC (under the old pin) gave
other weights. The fingerprints of one attn-only-1l step on the two machines (``python -m
course_utils.zoo.fingerprint``; ``benchmarks/fingerprints/mkl-compatible/``) agree up to operation 32
and first differ there: the LayerNorm's ``aten.sqrt``. ATen sends ``torch.sqrt`` (like exp, log, erf and
fractional powers) to MKL's vector math library, whose results are not correctly rounded and depend on
the CPU: on the AMD EPYC 16 % of a million float32 square roots differ from IEEE's under every
``MKL_CBWR`` branch, on the Intel Xeon 790 of 4096 under COMPATIBLE and none under AVX2. ``sqrt`` is the
only such function in the zoo's training (its other ops are matrix products, softmax, log-softmax, GELU,
powers of 2, reciprocals and sums), so the pin computes it correctly rounded (:func:`pin_sqrt`). MKL
documents its AVX2 branch as giving the same results on every Intel CPU with AVX2; whether AMD CPUs
run the same code is not documented, and whether oneDNN's GELU differs between vendors is open: diff
an Intel machine's fingerprint against the AMD EPYC's in ``benchmarks/fingerprints/``.

These variables act only if set before torch is imported, so ``python -m course_utils.zoo``
restarts itself with them (:func:`reexec_pinned`). The thread count (1) is part of the pin: MKL
reproduces its results only for a fixed number of threads, and parallel reductions split by thread.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # torch is imported only after the environment is pinned
    import torch

PINNED_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's own kernels (sums, softmax, layer norm, AdamW): 8-float vectors
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN kernels (the GELU forward)
    "MKL_CBWR": "AVX2",  # MKL matrix products: its AVX2 branch, with fixed blocking and reductions
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


def ieee_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``torch.sqrt`` rounded correctly (IEEE 754), as the CPU's own square-root instruction gives it on
    every x86-64 machine: numpy's ``sqrt`` (ATen sends ``torch.sqrt`` to MKL's vector math instead,
    whose results depend on the CPU vendor). Same dtype rules as ``torch.sqrt``."""
    import numpy as np
    import torch

    if x.is_complex():
        raise TypeError("the zoo's pinned sqrt takes real tensors only")
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    wide = torch.float64 if dtype == torch.float64 else torch.float32
    return torch.from_numpy(np.sqrt(x.detach().to(wide).numpy())).to(dtype)


_PINNED_KERNELS: list = []
"""The library that holds the pinned ``aten::sqrt`` CPU kernel (kept alive: dropping it unregisters it)."""


def pin_sqrt() -> None:
    """Replace ATen's CPU kernel of ``torch.sqrt`` (and its in-place form) by :func:`ieee_sqrt`, once per
    process (the LayerNorm takes a ``sqrt``, and AdamW one of every parameter's second moment); part of
    :func:`apply_in_process`."""
    if _PINNED_KERNELS:
        return
    import warnings

    import torch

    def sqrt_(x: torch.Tensor) -> torch.Tensor:
        return x.copy_(ieee_sqrt(x))

    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Warning only once for all operators")
        library.impl("sqrt", ieee_sqrt, "CPU")
        library.impl("sqrt_", sqrt_, "CPU")
    _PINNED_KERNELS.append(library)


def apply_in_process(threads: int) -> None:
    """The in-process part of the pin: thread count, an error for any nondeterministic op, and a
    correctly rounded ``sqrt``."""
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    pin_sqrt()


def describe(threads: int) -> str:
    """One line for the log: what is pinned, and what this process actually runs with."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    pins = " ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in PINNED_ENV)
    sqrt = "correctly rounded sqrt" if _PINNED_KERNELS else "MKL's sqrt"
    return f"numerics: {pins}; {sqrt}; torch {torch.__version__}, CPU capability {capability}, {threads} thread(s)"


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
