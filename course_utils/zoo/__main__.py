"""Retrain the course's model zoo from scratch: ``python -m course_utils.zoo [--only NAME ...]``.

The full run retrains the tokenizer, rebuilds the ternary evaluation set, trains, evaluates and
saves every model with its card, and updates ``models/manifest.json``. ``--only`` reuses the
shipped tokenizer so the other checkpoints stay valid.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import torch
import transformer_lens.model_bridge.sources  # noqa: F401 - registers TransformerBridge.boot_native
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from course_utils.tasks import ternary
from course_utils.zoo import checkpoint, corpus
from course_utils.zoo.cards import render_card
from course_utils.zoo.recipes import RECIPES, build_streams
from course_utils.zoo.thresholds import checks_for
from course_utils.zoo.tokenizer import train_tokenizer
from course_utils.zoo.train import tie_embeddings, train


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m course_utils.zoo", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(RECIPES), help="train only this model (repeatable)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="multiply every recipe's steps (for quick smoke runs; cards record the real count)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads < 1 or args.steps_scale <= 0:
        print("error: --threads must be >= 1 and --steps-scale > 0", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    names = args.only or list(RECIPES)
    start = time.perf_counter()
    try:
        if args.only:
            tokenizer = checkpoint.load_tokenizer()
        else:
            checkpoint.save_tokenizer(train_tokenizer())
            tokenizer = checkpoint.load_tokenizer()
        if "attn-only-1l" in names:
            ternary.save_eval_set(ternary.build_eval_set(corpus.unseen_code_files()))
            checkpoint.record_files([ternary.EVAL_FILE.name])
        streams = build_streams(tokenizer)
    except (corpus.CorpusError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    failed = []
    for name in names:
        recipe = RECIPES[name]
        random.seed(0)
        torch.manual_seed(0)
        steps = max(1, round(recipe.steps * args.steps_scale))
        model = TransformerBridge.boot_native(TransformerBridgeConfig.from_dict(recipe.config), tokenizer=tokenizer)
        if recipe.tie_embeddings:
            tie_embeddings(model)
        log = train(model, recipe.make_batches(streams, tokenizer, recipe), steps, recipe.lr,
                    warmup=min(recipe.warmup, steps), desc=name)
        metrics = recipe.evaluate(model, streams)
        checks = checks_for(name, metrics)
        sizes = checkpoint.save_checkpoint(model, name, render_card(recipe, log, metrics, checks, args.threads),
                                           recipe.config)
        print(f"\n{name}: {log.steps} steps, {log.seconds:.0f} s, files {sizes}")
        for check in checks:
            print(f"  [{'PASS' if check.passed else 'FAIL'}] {check.description}: {check.value:.4g} "
                  f"(required {check.op} {check.limit:g})")
        failed += [f"{name}: {c.description}" for c in checks if not c.passed]
    print(f"\nzoo done in {time.perf_counter() - start:.0f} s; {len(failed)} failed checks")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
