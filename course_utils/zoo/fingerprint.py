"""Find the first computation of a retrain whose result depends on the machine.

``python -m course_utils.zoo.fingerprint NAME [--steps N] [--out FILE]`` runs the first N optimizer
steps (default 1) of NAME's recipe (later phases scaled alike, at least one step each), from the
seeded model the zoo starts from, under the zoo's pinned numerics, and writes one line per ATen
operation: its index, name, output shape and a hash of its output bytes.
Run it on two machines and diff the files: the first line that differs names the first operation
whose result depends on the CPU (the README's "Across CPU vendors" says why this is needed).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from course_utils.course_models import COURSE_MODELS, course_model
from course_utils.zoo import checkpoint, determinism
from course_utils.zoo.recipes import build_streams


def tensor_hash(t: torch.Tensor) -> str:
    """First 12 hex digits of the sha256 of a tensor's values (dtype and shape included)."""
    data = t.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:12]


class OpLog(TorchDispatchMode):
    """Records ``index op shape hash`` for every tensor an ATen operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t.is_meta:
                self.lines.append(f"{len(self.lines)} {func} {tuple(t.shape)} {tensor_hash(t)}")
        return out


def fingerprint(name: str, steps: int = 1) -> Iterator[str]:
    """The op lines of ``steps`` steps of ``name``'s first phase (later phases scaled alike), then a hash
    of every weight."""
    recipe = course_model(name).recipe()
    tokenizer = checkpoint.load_tokenizer(checkpoint.MODELS_DIR)
    streams = build_streams(tokenizer)
    model = recipe.seeded_model(tokenizer)
    log = OpLog()
    with log:
        recipe.fit(model, streams, tokenizer, steps_scale=steps / recipe.phases[0].steps)
    yield from log.lines
    for key, value in model.state_dict().items():
        yield f"weight {key} {tensor_hash(value)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.zoo.fingerprint", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=list(COURSE_MODELS))
    parser.add_argument("--steps", type=int, default=1, help="steps of the first phase (default 1)")
    parser.add_argument("--out", type=Path, help="write the lines here (default: standard output)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    determinism.apply_in_process(determinism.THREADS)
    print(determinism.describe(determinism.THREADS), file=sys.stderr)
    lines = list(fingerprint(args.name, args.steps))
    text = "\n".join(lines) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        print(f"{len(lines)} lines written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if not determinism.is_pinned():
        determinism.reexec_pinned("course_utils.zoo.fingerprint", sys.argv[1:])
    sys.exit(main())
