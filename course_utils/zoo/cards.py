"""Model cards (MODEL_CARD.md) rendered from a recipe, its training log and measured figures."""

from __future__ import annotations

import json

from course_utils.zoo.recipes import Recipe
from course_utils.zoo.thresholds import Check
from course_utils.zoo.train import TrainLog


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return json.dumps(value if not value or not isinstance(value[0], float) else [round(v, 4) for v in value])
    return str(value)


def _rank_table(metrics: dict) -> list[str]:
    keys = [k for k in metrics if k.endswith("_rank_by_layer")]
    if not keys:
        return []
    n = len(metrics[keys[0]])
    header = "| relation | " + " | ".join(["embed"] + [f"after L{i}" for i in range(n - 1)]) + " |"
    lines = ["", "Logit lens: mean rank of the correct answer (0 = top) on few-shot prompts, by depth:", "",
             header, "|" + " --- |" * (n + 1)]
    for key in keys:
        relation = key.removeprefix("facts_").removesuffix("_rank_by_layer")
        lines.append(f"| {relation} | " + " | ".join(f"{r:.1f}" for r in metrics[key]) + " |")
    return lines


def render_card(recipe: Recipe, log: TrainLog, metrics: dict, checks: list[Check], threads: int) -> str:
    """Markdown card; every figure in it comes from ``log``, ``metrics`` or ``checks``."""
    config_rows = [f"| `{k}` | {v} |" for k, v in sorted(recipe.config.items())]
    scalar_rows = [f"| `{k}` | {_fmt(v)} |" for k, v in metrics.items() if not k.endswith("_by_layer")]
    check_rows = [f"| {c.description} | {_fmt(c.value)} | {c.op} {c.limit:g} | {'PASS' if c.passed else 'FAIL'} |"
                  for c in checks]
    return "\n".join([
        f"# {recipe.name}",
        "",
        "Trained from scratch by `python -m course_utils.zoo` (seeded, with pinned CPU numerics) for the course's "
        "offline model zoo. Load it with `course_utils.zoo.checkpoint.load_checkpoint(\"" + recipe.name + "\")`. "
        "Reproducible: `python -m course_utils.zoo --verify` retrains it and checks that every file but this "
        "card's wall time is byte-identical, which holds on any x86-64 CPU with AVX2 (see README).",
        "",
        "## Architecture",
        "",
        "TransformerLens-native model booted with `TransformerBridge.boot_native`; tokenizer: the course's "
        "4096-token byte-level BPE (`models/tokenizer`, BOS `<|endoftext|>` prepended).",
        "",
        "| field | value |",
        "| --- | --- |",
        *config_rows,
        "",
        "## Data and objective",
        "",
        recipe.data,
        "",
        "## Training",
        "",
        f"AdamW (betas 0.9/0.98, weight decay 0.01 on matrices), peak learning rate {recipe.lr:g}, "
        f"{recipe.warmup} warmup steps then cosine decay to 10 %, gradient clipping at 1.0.",
        "",
        f"- steps: {log.steps}",
        f"- tokens seen (including padding): {log.tokens:,}",
        f"- wall time: {log.seconds:.0f} s on CPU with {threads} torch thread(s)",
        f"- final training loss (mean of last 50 steps): {sum(log.losses[-50:]) / len(log.losses[-50:]):.3f}",
        "",
        "## Measured (by `course_utils.zoo.evaluate`, on held-out data)",
        "",
        "| check | measured | required | result |",
        "| --- | --- | --- | --- |",
        *check_rows,
        "",
        "| metric | value |",
        "| --- | --- |",
        *scalar_rows,
        *_rank_table(metrics),
        "",
    ])
