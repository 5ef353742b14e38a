"""Time `make grade` on a synthetic class: copies of the six students of tests/test_grade.py.

    .venv/bin/python benchmarks/grade_class.py [--students 30] [--jobs 2] [--timeout 60]

The class grades chapter 01 (solutions, stubs, wrong answers, an infinite loop, a corrupt
notebook, nothing handed in, in turn). Prints the grader's own summary line and the wall time.
A figure to report, not a test.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from course_utils.__main__ import main  # noqa: E402
from test_grade import synthetic_class  # noqa: E402 - the test's students, so the two never drift apart


def run(students: int, jobs: int, timeout: int) -> float:
    with tempfile.TemporaryDirectory(prefix="grade-bench-") as tmp:
        tmp = Path(tmp)
        synthetic_class(tmp / "six", tmp / "nb")
        archetypes = sorted((tmp / "six").iterdir())
        for i in range(students):
            shutil.copytree(
                archetypes[i % len(archetypes)],
                tmp / "class" / f"student{i:02d}_{archetypes[i % len(archetypes)].name}",
            )
        started = time.perf_counter()
        main(
            [
                "grade",
                str(tmp / "class"),
                "--out",
                str(tmp / "out" / "grades.csv"),
                "--jobs",
                str(jobs),
                "--timeout",
                str(timeout),
            ]
        )
        return time.perf_counter() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--timeout", type=int, default=60, help="seconds per cell (the infinite loop's demo cell waits this long)"
    )
    args = parser.parse_args()
    seconds = run(args.students, args.jobs, args.timeout)
    print(f"{args.students} students × chapter 01, --jobs {args.jobs}, --timeout {args.timeout}: {seconds:.0f} s wall")
