"""Command line: ``python -m course_utils build`` (see ``--help``)."""
import argparse

from course_utils.build import build_chapter
from course_utils.chapters import available_chapters, resolve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_utils", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build learner and solution notebooks into build/notebooks/")
    build.add_argument("chapters", nargs="*", help="chapters to build, e.g. 01 02 (default: all)")
    args = parser.parse_args(argv)
    if args.command == "build":
        for chapter in [resolve(c) for c in args.chapters] or available_chapters():
            learner, solution = build_chapter(chapter)
            print(f"built {learner.relative_to(learner.parents[2])} and {solution.relative_to(solution.parents[2])}")


if __name__ == "__main__":
    main()
