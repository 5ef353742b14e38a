"""Command line: ``python -m course_utils build|workspace|progress|sheets`` (see ``--help``).

  build      learner and solution notebooks into build/notebooks/
  workspace  copy the learner notebooks into workspace/ (yours; never overwritten without asking), start JupyterLab
  progress   run your workspace notebooks headless and print which checks pass
  sheets     exercise and solution sheets as offline HTML pages in build/sheets/
"""
import argparse
import sys
from pathlib import Path

from course_utils.build import build_chapter
from course_utils.chapters import available_chapters, resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils", description="The course's command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build learner and solution notebooks into build/notebooks/")
    build.add_argument("chapters", nargs="*", help="chapters to build, e.g. 01 02 (default: all)")

    workspace = sub.add_parser("workspace", help="copy the learner notebooks into your workspace and start JupyterLab")
    workspace.add_argument("chapters", nargs="*", help="chapters to copy, e.g. 01 02 (default: all)")
    workspace.add_argument("--dir", type=Path, default=None, help="workspace folder (default: workspace/)")
    workspace.add_argument("--force", action="store_true", help="replace notebooks you changed (a backup is kept)")
    workspace.add_argument("--no-lab", action="store_true", help="only copy the notebooks; do not start JupyterLab")

    progress = sub.add_parser("progress", help="run your workspace notebooks headless and print which checks pass")
    progress.add_argument("chapters", nargs="*", help="chapters to run, e.g. 01 02 (default: all in the workspace)")
    progress.add_argument("--dir", type=Path, default=None, help="workspace folder (default: workspace/)")
    progress.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")

    sheets = sub.add_parser("sheets", help="render exercise and solution sheets (offline HTML) into build/sheets/")
    sheets.add_argument("chapters", nargs="*", help="chapters to render, e.g. 01 02 (default: all)")
    sheets.add_argument("--out", type=Path, default=None, help="output folder (default: build/sheets/)")
    sheets.add_argument("--no-execute", action="store_true", help="do not execute the solution notebooks")
    sheets.add_argument("--pdf", action="store_true", help="also print each sheet to PDF (needs Chromium)")
    sheets.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")

    args = parser.parse_args(argv)
    chapters = [resolve(c) for c in args.chapters] or available_chapters()
    if args.command == "build":
        for chapter in chapters:
            learner, solution = build_chapter(chapter)
            print(f"built {learner.relative_to(learner.parents[2])} and {solution.relative_to(solution.parents[2])}")
    elif args.command == "workspace":
        from course_utils import workspace as ws

        dest = args.dir or ws.DEFAULT_WORKSPACE
        if not chapters:
            print("No chapter exists yet: nothing to copy.")
            return 1
        ws.prepare_workspace(chapters, dest, force=args.force, ask=ws.default_ask())
        if not args.no_lab:
            return ws.start_lab(dest)
    elif args.command == "progress":
        from course_utils import progress as pr
        from course_utils.workspace import DEFAULT_WORKSPACE

        dest = args.dir or DEFAULT_WORKSPACE
        if not args.chapters:
            chapters = [c for c in available_chapters() if (dest / f"{c}.ipynb").exists()]
        if not chapters:
            print(f"No chapter notebook in {dest}: run `make lab` (or python -m course_utils workspace --no-lab) first.")
            return 0
        print(f"Running your notebooks in {dest} (copies: your files are not changed).", flush=True)
        results = pr.collect_progress(chapters, dest, timeout=args.timeout, log=lambda s: print(s, flush=True))
        print()
        print(pr.format_table(results))
    elif args.command == "sheets":
        from course_utils import sheets as sh

        if args.pdf and sh.find_chromium() is None:
            print("--pdf needs Chromium (Debian: apt-get install chromium); writing HTML sheets only.")
            args.pdf = False
        results = sh.build_sheets(
            chapters, args.out, execute=not args.no_execute, timeout=args.timeout, pdf=args.pdf
        )
        return 0 if all(r.ok for r in results) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
