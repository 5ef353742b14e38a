"""Retrain the course's model zoo from scratch: ``python -m course_utils.zoo [--only NAME ...] [--verify]``.

The full run retrains the tokenizer, rebuilds the ternary evaluation set, trains, evaluates and
saves every model with its card, and updates the manifest of the output folder (``models/`` by
default). ``--only`` reuses the shipped tokenizer so the other checkpoints stay valid. ``--verify``
retrains into a temporary folder and compares every retrained file with the shipped one.

The command restarts itself with pinned CPU numerics (:mod:`course_utils.zoo.determinism`), so
the files are byte-identical on a machine like the one that trained them (not yet across CPU
vendors: see the README).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course_utils.course_models import COURSE_MODELS, course_model
from course_utils.tasks import ternary
from course_utils.zoo import checkpoint, corpus, determinism
from course_utils.zoo.cards import render_card
from course_utils.zoo.recipes import build_heldout_streams, build_streams
from course_utils.zoo.tokenizer import train_tokenizer
from course_utils.zoo.train import TrainLog

WALL_TIME_LINE = "- wall time:"
"""The one line of a model card that differs between identical retrains."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m course_utils.zoo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", choices=list(COURSE_MODELS), help="train only this model (repeatable)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=determinism.THREADS,
        help=f"torch CPU threads (default {determinism.THREADS}, as the shipped files were trained)",
    )
    parser.add_argument(
        "--steps-scale",
        type=float,
        default=1.0,
        help="multiply every recipe's steps (for quick smoke runs; cards record the real count)",
    )
    parser.add_argument(
        "--out", type=Path, help="folder to write into (default models/; with --verify a temporary one)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="train models side by side in this many processes (default 2; each uses --threads)",
    )
    parser.add_argument(
        "--cards",
        action="store_true",
        help="no training: re-evaluate the saved models and rewrite their cards (after a change of "
        "evaluation or thresholds); the training figures are read from the old cards",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="retrain, compare every retrained file with the shipped one, exit 1 on any difference",
    )
    return parser.parse_args(argv)


def retrain(
    names: list[str], out: Path, threads: int, steps_scale: float, reuse_tokenizer: bool
) -> tuple[list[str], list[str]]:
    """Train ``names`` into ``out``; return (files written, relative to ``out``; failed checks)."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    if reuse_tokenizer:
        tokenizer = checkpoint.load_tokenizer(
            out if (out / checkpoint.TOKENIZER_DIR).is_dir() else checkpoint.MODELS_DIR
        )
        if not (out / checkpoint.TOKENIZER_DIR).is_dir():
            checkpoint.save_tokenizer(tokenizer, out)  # a complete models folder: load_checkpoint(models_dir=out)
    else:
        checkpoint.save_tokenizer(train_tokenizer(), out)
        tokenizer = checkpoint.load_tokenizer(out)
        written += sorted(k for k in checkpoint.read_manifest(out) if k.startswith(checkpoint.TOKENIZER_DIR + "/"))
    if "attn-only-1l" in names:
        eval_file = out / ternary.EVAL_FILE.name
        ternary.save_eval_set(ternary.build_eval_set(corpus.unseen_code_files(), corpus.code_roots()), eval_file)
        checkpoint.record_files([eval_file.name], out)
        written.append(eval_file.name)
    streams = build_streams(tokenizer)
    failed = []
    for name in names:
        entry = course_model(name)
        recipe = entry.recipe()
        model = recipe.seeded_model(tokenizer)
        log = recipe.fit(model, streams, tokenizer, steps_scale)
        metrics = entry.evaluate(model, streams)
        checks = entry.thresholds(metrics)
        sizes = checkpoint.save_checkpoint(
            model, name, render_card(recipe, log, metrics, checks, threads), recipe.config, out
        )
        written += list(sizes)
        print(f"\n{name}: {log.steps} steps, {log.seconds:.0f} s, files {sizes}")
        for check in checks:
            print(
                f"  [{'PASS' if check.passed else 'FAIL'}] {check.description}: {check.value:.4g} "
                f"(required {check.op} {check.limit:g})"
            )
        failed += [f"{name}: {c.description}" for c in checks if not c.passed]
    return written, failed


def _groups(names: list[str], jobs: int) -> list[list[str]]:
    """Split models into ``jobs`` groups of similar total training steps (longest first)."""
    groups: list[list[str]] = [[] for _ in range(min(jobs, len(names)))]
    cost = [0] * len(groups)
    for name in sorted(names, key=lambda n: -course_model(n).recipe().cost):
        i = cost.index(min(cost))
        groups[i].append(name)
        cost[i] += course_model(name).recipe().cost
    return [sorted(g, key=names.index) for g in groups if g]


def retrain_in_parallel(
    names: list[str], out: Path, args: argparse.Namespace, reuse_tokenizer: bool
) -> tuple[list[str], list[str]]:
    """The tokenizer first (unless reused), then one ``--only`` process per group of models, side by
    side; each writes into ``out`` (the manifest is locked) and its checks' verdict is its exit code."""
    written: list[str] = []
    if not reuse_tokenizer:
        checkpoint.save_tokenizer(train_tokenizer(), out)
        written += sorted(k for k in checkpoint.read_manifest(out) if k.startswith(checkpoint.TOKENIZER_DIR + "/"))
    groups = _groups(names, args.jobs)
    print(f"training side by side: {' | '.join(', '.join(g) for g in groups)}", flush=True)
    procs = []
    for group in groups:
        cmd = [
            sys.executable,
            "-m",
            "course_utils.zoo",
            "--out",
            str(out),
            "--threads",
            str(args.threads),
            "--steps-scale",
            str(args.steps_scale),
            "--jobs",
            "1",
        ]
        procs.append((group, subprocess.Popen(cmd + [a for n in group for a in ("--only", n)])))
    failed = [f"{', '.join(group)}: a check failed or the run stopped" for group, p in procs if p.wait() != 0]
    for group in groups:
        written += [f"{name}/{f}" for name in group for f in ("config.json", "model.safetensors", "MODEL_CARD.md")]
        if "attn-only-1l" in group:
            written.append(ternary.EVAL_FILE.name)
    return written, failed


def _log_from_card(text: str) -> TrainLog:
    """The training figures a card reports (steps, tokens, wall time, final loss), as a log that renders
    the same lines again."""

    def number(label: str) -> float:
        line = next(line for line in text.splitlines() if line.startswith(f"- {label}"))
        return float(re.search(r":\s*([\d,.]+)", line).group(1).replace(",", ""))

    return TrainLog(
        steps=int(number("steps")),
        tokens=int(number("tokens seen")),
        seconds=number("wall time"),
        losses=[number("final training loss")],
    )


def rewrite_cards(names: list[str], out: Path, threads: int) -> list[str]:
    """Re-evaluate each saved model and rewrite its card; return the failed checks."""
    tokenizer = checkpoint.load_tokenizer(out)
    streams = build_heldout_streams(tokenizer)
    failed = []
    for name in names:
        entry = course_model(name)
        card = entry.card(out)
        log = _log_from_card(card.read_text())
        metrics = entry.evaluate(checkpoint.load_checkpoint(name, models_dir=out), streams)
        checks = entry.thresholds(metrics)
        card.write_text(render_card(entry.recipe(), log, metrics, checks, threads))
        checkpoint.record_files([f"{name}/MODEL_CARD.md"], out)
        failed += [f"{name}: {c.description}" for c in checks if not c.passed]
        print(f"{name}: card rewritten; {sum(not c.passed for c in checks)} failed checks", flush=True)
    return failed


def _card_body(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith(WALL_TIME_LINE)]


def compare(files: list[str], shipped: Path, retrained: Path) -> list[tuple[str, str, str, str]]:
    """Rows (file, shipped sha256, retrained sha256, same?) for files relative to both folders.

    Model cards count as the same when only their wall-time line differs."""
    rows = []
    for rel in files:
        new = checkpoint.sha256_file(retrained / rel)
        if not (shipped / rel).is_file():
            rows.append((rel, "(missing)", new, "NO"))
            continue
        old = checkpoint.sha256_file(shipped / rel)
        if old == new:
            same = "yes"
        elif rel.endswith("MODEL_CARD.md") and _card_body(shipped / rel) == _card_body(retrained / rel):
            same = "yes (wall time differs)"
        else:
            same = "NO"
        rows.append((rel, old, new, same))
    return rows


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{'file':<{width}}  {'shipped':<12}  {'retrained':<12}  same?")
    for rel, old, new, same in rows:
        print(f"{rel:<{width}}  {old[:12]:<12}  {new[:12]:<12}  {same}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads < 1 or args.steps_scale <= 0:
        print("error: --threads must be >= 1 and --steps-scale > 0", file=sys.stderr)
        return 2
    if args.verify and args.steps_scale != 1:
        print("error: --verify retrains the real recipes; drop --steps-scale", file=sys.stderr)
        return 2
    if args.verify and args.out is not None and args.out.resolve() == checkpoint.MODELS_DIR.resolve():
        print("error: --verify compares with models/; give it another --out folder (or none)", file=sys.stderr)
        return 2
    determinism.apply_in_process(args.threads)
    print(determinism.describe(args.threads))
    for problem in determinism.problems(args.threads):
        print(f"warning: not reproducible: {problem}", file=sys.stderr)
    names = args.only or list(COURSE_MODELS)
    start = time.perf_counter()
    if args.cards:
        failed = rewrite_cards(names, args.out or checkpoint.MODELS_DIR, args.threads)
        return 1 if failed else 0
    with tempfile.TemporaryDirectory(prefix="zoo-verify-") as tmp:
        out = args.out or (Path(tmp) if args.verify else checkpoint.MODELS_DIR)
        try:
            if args.jobs > 1 and len(names) > 1:
                written, failed = retrain_in_parallel(names, out, args, reuse_tokenizer=bool(args.only))
            else:
                written, failed = retrain(names, out, args.threads, args.steps_scale, reuse_tokenizer=bool(args.only))
        except (corpus.CorpusError, checkpoint.CheckpointError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"\nzoo done in {time.perf_counter() - start:.0f} s; {len(failed)} failed checks")
        if not args.verify:
            return 1 if failed else 0
        rows = compare(written, checkpoint.MODELS_DIR, out)
    print_table(rows)
    differ = [r[0] for r in rows if r[3] == "NO"]
    print(
        f"\n{len(rows) - len(differ)} of {len(rows)} retrained files match the shipped ones"
        + (f"; differ: {', '.join(differ)}" if differ else "")
    )
    return 1 if differ or failed else 0


if __name__ == "__main__":
    if not determinism.is_pinned():
        determinism.reexec_pinned("course_utils.zoo", sys.argv[1:])
    sys.exit(main())
