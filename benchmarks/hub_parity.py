"""Hub parity figures: wall time and peak kernel memory of every solution notebook run on the hub
model it names (``HUB_MODEL_NAME``), offline, from a simulated Hugging Face cache of random-weight
models with the hub models' architectures (``course_utils/tooling/simulated_hub.py``).

    .venv/bin/python benchmarks/hub_parity.py                  # the hub models' real widths (d_head 64)
    .venv/bin/python benchmarks/hub_parity.py --d-head 8 01 06 # the parity test's small widths

Target (a figure to report, not a test): peak RSS ≤ 6 GB per notebook, so that a laptop runs it.
"""

import argparse
import tempfile
import time
from pathlib import Path

from run_course import PeakChildMemory

from course_utils.chapters import available_chapters, resolve
from course_utils.tooling.simulated_hub import build_simulated_hub, cell_errors, hub_model_name, run_on_hub_model

TARGET_GB = 6.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*")
    parser.add_argument(
        "--d-head", type=int, default=64, help="head width of the stand-ins (64: the hub models' widths)"
    )
    args = parser.parse_args()
    chapters = [resolve(c) for c in args.chapters] or available_chapters()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        names = sorted({hub_model_name(c) for c in chapters})
        home = build_simulated_hub(Path(tmp) / "hf_home", names, d_head=args.d_head)
        print(f"simulated cache of {', '.join(names)} (d_head {args.d_head}) in {time.perf_counter() - start:.0f} s\n")
        print(f"{'chapter':26} {'hub model':18} {'wall s':>7} {'peak RSS GB':>12}")
        for chapter in chapters:
            with PeakChildMemory() as memory:
                start = time.perf_counter()
                nb, stopped = run_on_hub_model(chapter, home, Path(tmp) / "build")
                seconds = time.perf_counter() - start
            problem = stopped or next(iter(cell_errors(nb)), "")
            over = "  over target" if memory.peak / 2**30 > TARGET_GB else ""
            print(
                f"{chapter:26} {hub_model_name(chapter):18} {seconds:7.1f} {memory.peak / 2**30:12.2f}{over}"
                f"{'   ✗ ' + problem[:100] if problem else ''}",
                flush=True,
            )


if __name__ == "__main__":
    main()
