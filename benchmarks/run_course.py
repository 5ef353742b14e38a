"""Time the course: wall time and peak memory of every solution notebook, and the median
latency of every learner check, in a summary that fits on one screen.

    make benchmark            # or: .venv/bin/python benchmarks/run_course.py [--repeats 5] [--slowest 5] [chapters…]

Targets (figures to report, not tests): whole course ≤ 5 min on 2 cores, each check
≤ 0.5 s median, peak RSS ≤ 3 GB. Only the slowest checks are listed, with the number over target.
"""

import argparse
import contextlib
import io
import statistics
import threading
import time

import nbformat
import psutil

from course_utils.chapters import CHAPTERS, available_chapters, resolve
from course_utils.paths import BUILD_DIR
from course_utils.tooling.build import build_chapter
from course_utils.tooling.kernel import execute_in_kernel, execution_errors

CHECK_TARGET_S = 0.5


class PeakChildMemory:
    """Sample the summed RSS of this process's descendants (the notebook kernel) every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            total = 0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            self.peak = max(self.peak, total)

    def __enter__(self) -> "PeakChildMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def time_notebook(chapter: str) -> tuple[float, int, str]:
    """Execute the chapter's solution notebook (quiet kernel, strict checks); return (seconds, peak
    kernel RSS in bytes, "" or what went wrong: the first error, or why the run stopped)."""
    _, path = build_chapter(chapter, out_dir=BUILD_DIR / "benchmark")
    nb = nbformat.read(path, as_version=4)
    with PeakChildMemory() as memory:
        start = time.perf_counter()
        stopped = execute_in_kernel(nb, path.parent, timeout=900, strict_checks=True)
        seconds = time.perf_counter() - start
    errors = execution_errors(nb, width=80)
    return seconds, memory.peak, stopped or (errors[0] if errors else "")


def time_checks(chapter: str, repeats: int) -> dict[str, float]:
    """Median seconds of each learner check (one per stub of the chapter), run on the reference solution."""
    record = CHAPTERS[chapter]
    checks, solutions = record.checks(), record.solutions()
    medians = {}
    for name in record.stubs():
        check, target = getattr(checks, f"test_{name}"), getattr(solutions, name)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                check(target)
            times.append(time.perf_counter() - start)
        medians[f"test_{name}"] = statistics.median(times)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*")
    parser.add_argument("--repeats", type=int, default=5, help="runs per check (median reported)")
    parser.add_argument("--slowest", type=int, default=5, help="how many of the slowest checks to list")
    args = parser.parse_args()
    chapters = [resolve(c) for c in args.chapters] or available_chapters()
    print(f"{'chapter':28} {'wall s':>8} {'peak RSS MB':>12}")
    total = 0.0
    for chapter in chapters:
        seconds, peak, problem = time_notebook(chapter)
        total += seconds
        print(f"{chapter:28} {seconds:8.1f} {peak / 2**20:12.0f}{'   ✗ ' + problem if problem else ''}", flush=True)
    print(f"{'whole course':28} {total:8.1f}   (target ≤ 300 s)\n")
    medians = {
        f"{chapter[:2]} {name}": s for chapter in chapters for name, s in time_checks(chapter, args.repeats).items()
    }
    ranked = sorted(medians.items(), key=lambda item: -item[1])
    over = sum(seconds > CHECK_TARGET_S for seconds in medians.values())
    print(f"{len(medians)} checks, median of {args.repeats} runs; {over} over {CHECK_TARGET_S} s; the slowest:")
    for name, seconds in ranked[: args.slowest]:
        print(f"  {name:50} {seconds:8.3f}")


if __name__ == "__main__":
    main()
