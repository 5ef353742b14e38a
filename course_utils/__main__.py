"""Command line: ``python -m course_utils build|workspace|progress|sheets|grade`` (see ``--help``).

build      learner and solution notebooks into build/notebooks/
workspace  copy the learner notebooks into workspace/ (yours; never overwritten without asking), start JupyterLab
progress   run your workspace notebooks headless and print which checks pass
sheets     exercise and solution sheets as offline HTML pages in build/sheets/
grade      run a class's notebooks (one folder per student) and write grades.csv and feedback pages
download   fetch hub models into the Hugging Face cache while online, so that load_model finds them offline
"""

import argparse
import json
import sys
from pathlib import Path

from course_utils.chapters import available_chapters, resolve
from course_utils.tooling.build import build_chapter


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
    progress.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")

    sheets = sub.add_parser("sheets", help="render exercise and solution sheets (offline HTML) into build/sheets/")
    sheets.add_argument("chapters", nargs="*", help="chapters to render, e.g. 01 02 (default: all)")
    sheets.add_argument("--out", type=Path, default=None, help="output folder (default: build/sheets/)")
    sheets.add_argument("--no-execute", action="store_true", help="do not execute the solution notebooks")
    sheets.add_argument("--pdf", action="store_true", help="also print each sheet to PDF (needs Chromium)")
    sheets.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")

    grade = sub.add_parser("grade", help="run a class's notebooks and write grades.csv and feedback pages")
    grade.add_argument("submissions", type=Path, help="folder with one folder per student, holding their NN_name.ipynb")
    grade.add_argument("chapters", nargs="*", help="chapters to grade (default: every chapter someone handed in)")
    grade.add_argument("--out", type=Path, default=None, help="the CSV (default: build/grades/grades.csv)")
    grade.add_argument(
        "--html", type=Path, default=None, help="folder for the feedback pages (default: beside the CSV)"
    )
    grade.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell (default 300)")
    grade.add_argument("--notebook-timeout", type=int, default=1800, help="seconds allowed per notebook (default 1800)")
    grade.add_argument("--memory-gb", type=float, default=8.0, help="address space per kernel, GiB (default 8)")
    grade.add_argument("--jobs", type=int, default=None, help="notebooks run at once (default: the number of cores)")

    download = sub.add_parser("download", help="fetch hub models into the Hugging Face cache, for offline use later")
    download.add_argument("models", nargs="+", help="hub model names, e.g. gpt2-small gpt2-medium hub:attn-only-2l")

    args = parser.parse_args(argv)
    if args.command == "download":
        return _download(args.models)
    try:
        chapters = [resolve(c) for c in args.chapters] or available_chapters()
    except ValueError as err:
        print(err)
        return 2
    if args.command == "build":
        for chapter in chapters:
            learner, solution = build_chapter(chapter)
            print(f"built {learner.relative_to(learner.parents[2])} and {solution.relative_to(solution.parents[2])}")
    elif args.command == "workspace":
        from course_utils.tooling import workspace as ws

        dest = args.dir or ws.DEFAULT_WORKSPACE
        if not chapters:
            print("No chapter exists yet: nothing to copy.")
            return 1
        ws.prepare_workspace(chapters, dest, force=args.force, ask=ws.default_ask())
        if not args.no_lab:
            return ws.start_lab(dest)
    elif args.command == "progress":
        from course_utils.tooling import progress as pr
        from course_utils.tooling.workspace import DEFAULT_WORKSPACE

        dest = args.dir or DEFAULT_WORKSPACE
        if not args.chapters:
            chapters = [c for c in available_chapters() if (dest / f"{c}.ipynb").exists()]
        if not chapters:
            print(
                f"No chapter notebook in {dest}: run `make lab` (or python -m course_utils workspace --no-lab) first."
            )
            return 0
        log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
        log(f"Running your notebooks in {dest} (copies: your files are not changed).")
        results = pr.collect_progress(chapters, dest, limits=pr.RunLimits(cell_timeout=args.timeout), log=log)
        if args.json:
            print(json.dumps([r.as_dict() for r in results], indent=1, ensure_ascii=False))
        else:
            print()
            print(pr.format_table(results))
    elif args.command == "sheets":
        from course_utils.tooling import sheets as sh

        if args.pdf and sh.find_chromium() is None:
            print("--pdf needs Chromium (Debian: apt-get install chromium); writing HTML sheets only.")
            args.pdf = False
        results = sh.build_sheets(chapters, args.out, execute=not args.no_execute, timeout=args.timeout, pdf=args.pdf)
        return 0 if all(r.ok for r in results) else 1
    elif args.command == "grade":
        return _grade(args, chapters if args.chapters else [])
    return 0


def _grade(args: argparse.Namespace, chosen: list[str]) -> int:
    from course_utils.tooling import grade as gr
    from course_utils.tooling.kernel import Sandbox
    from course_utils.tooling.progress import RunLimits

    if not args.submissions.is_dir():
        print(f"{args.submissions} is not a folder: give the folder that holds one folder per student.")
        return 1
    chapters = gr.graded_chapters(args.submissions, chosen)
    out = args.out or gr.GRADES_DIR / "grades.csv"
    html_dir = args.html or out.parent
    limits = RunLimits(args.timeout, args.notebook_timeout, Sandbox(int(args.memory_gb * 2**30)))
    jobs = args.jobs or gr.default_jobs()
    grades = gr.grade_class(args.submissions, chapters, limits=limits, jobs=jobs)
    for student in grades.students:
        if not student.notebooks:
            print(f"  {student.name}: no chapter notebook handed in")
        if student.ignored:
            print(f"  {student.name}: not graded (not a chapter's notebook name): {', '.join(student.ignored)}")
    gr.write_csv(grades.rows, out)
    index = gr.write_html(grades, html_dir)
    notebooks = sum(len(s.notebooks) for s in grades.students)
    print(
        f"Graded {_count(len(grades.students), 'student')} × {_count(len(chapters), 'chapter')} "
        f"({_count(notebooks, 'notebook')}, {jobs} at a time) "
        f"in {grades.seconds:.0f} s. {grades.total()} Wrote {out} and {index}."
    )
    return 0


def _download(names: list[str]) -> int:
    from course_utils import hub
    from course_utils.course_models import COURSE_MODELS

    repos = {name: hub.hub_repo(name) for name in names if name.lower() not in COURSE_MODELS}
    for name in names:
        if name.lower() in COURSE_MODELS:
            print(f"{name}: a course model, shipped with the course (nothing to download; 'hub:{name}' is the hub's).")
    unknown = [name for name, repo in repos.items() if repo is None]
    if unknown:
        print(
            f"Not a hub model name: {', '.join(unknown)} (use TransformerLens names such as gpt2-small or hub:attn-only-2l)."
        )
        return 2
    if repos and not hub.hub_reachable():
        print(f"{hub.HUB_HOST} is not reachable (offline, or HF_HUB_OFFLINE is set): connect and run this again.")
        return 1
    for name, repo in repos.items():
        folder = hub.download(repo)
        print(f"{name}: {repo} is in the Hugging Face cache ({folder})")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


if __name__ == "__main__":
    sys.exit(main())
