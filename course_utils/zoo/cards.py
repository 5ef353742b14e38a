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


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    return [
        "| " + " | ".join(str(h) for h in header) + " |",
        "|" + " --- |" * len(header),
        *["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows],
        "",
    ]


def _position_tables(metrics: dict) -> list[str]:
    """ "Behaviour by position": every metric whose value maps a position bin or a preamble length to a figure."""
    lines: list[str] = []
    for key, value in metrics.items():
        if key.endswith("_by_position"):
            lines += [
                f"`{key}` (mean score of the query positions in each bin):",
                "",
                *_table(list(value), [list(value.values())]),
            ]
        elif key.endswith("_by_preamble_tokens"):
            first = next(iter(value.values()))
            if isinstance(first, dict):
                lines += [
                    f"`{key}` (tokens of ordinary text before the prompt):",
                    "",
                    *_table(["preamble tokens", *first], [[k, *v.values()] for k, v in value.items()]),
                ]
            else:
                lines += [
                    f"`{key}` (tokens of other text before the prompt):",
                    "",
                    *_table(["preamble tokens", *value], [["value", *value.values()]]),
                ]
    return ["## Behaviour by position", "", *lines] if lines else []


def _shares(values: list[float]) -> list[str]:
    """Recovered shares to three decimals (tiny negative values print as 0.000, not -0.000)."""
    return [f"{round(v, 3) + 0.0:.3f}" for v in values]


def _depth_tables(metrics: dict) -> list[str]:
    """Fact recall by depth: logit-lens rank, MLP removal and attribution, causal tracing."""
    keys = [k for k, v in metrics.items() if isinstance(v, dict) and "rank_by_layer" in v]
    if not keys:
        return []
    n = len(metrics[keys[0]]["rank_by_layer"])
    lines = [
        "## Fact recall by depth",
        "",
        "Median logit-lens rank of the answer at the last position (0 = top), and the median depth from "
        "which it stays top-1 (0 = embedding, i = after block i-1):",
        "",
        *_table(
            ["prompts", "embed", *[f"after L{i}" for i in range(n - 1)], "top-1 from depth", "top-1"],
            [[k, *metrics[k]["rank_by_layer"], metrics[k]["top1_depth"], metrics[k]["top1"]] for k in keys],
        ),
        "Each MLP: mean loss of the answer's log-probability when its output is zeroed (nats) / its direct "
        "share of the answer's centred logit:",
        "",
        *_table(
            ["prompts", *[f"MLP {i}" for i in range(n - 1)]],
            [
                [
                    k,
                    *[
                        f"{r:.2f} / {d:.0%}"
                        for r, d in zip(metrics[k]["mlp_removal_nats"], metrics[k]["mlp_dla_fraction"])
                    ],
                ]
                for k in keys
            ],
        ),
    ]
    tracing_intros = {
        "tracing": "Causal tracing: the subject swapped for another of the same token length; restoring the clean "
        "residual stream at the subject's last token, before block L, recovers this share of the answer's "
        "probability (to three decimals):",
        "tracing_subject": "The same, restoring the clean residual stream at every token of the subject:",
    }
    for key, intro in tracing_intros.items():
        lines += [
            intro,
            "",
            *_table(
                ["prompts", *[f"L{i}" for i in range(n - 1)], "after last", "prompts traced"],
                [[k, *_shares(metrics[k][key]), metrics[k]["n_traced"]] for k in keys],
            ),
        ]
    return lines


def _circuit_table(metrics: dict) -> list[str]:
    circuit = metrics.get("ioi_circuit")
    if not circuit:
        return []
    from course_utils.zoo.ioi_circuit import ROLE_LIMITS

    ev = circuit["evidence"]
    rows = []
    for role, heads in circuit["roles"].items():
        for head in heads:
            l, h = int(head[1]), int(head[3:])
            rows.append(
                [
                    head,
                    role,
                    ev["to_io"][l][h],
                    ev["to_s2"][l][h],
                    ev["s2_to_io"][l][h],
                    ev["duplicate"][l][h],
                    ev["dla_fraction"][l][h],
                    ev["ov_copying"][l][h],
                ]
            )
    removed = [f"{k.removeprefix('removed_by_')}: {v:.0%}" for k, v in circuit.items() if k.startswith("removed_by_")]
    return [
        "## IOI circuit",
        "",
        f"Held-out template prompts, clean logit difference {circuit['clean_logit_diff']:.2f}. Roles "
        "(`course_utils.zoo.ioi_circuit.ROLE_LIMITS`): "
        + "; ".join(f"**{k}**: {v}" for k, v in ROLE_LIMITS.items())
        + ".",
        "",
        *_table(["head", "role", "END->IO", "END->S2", "S2->IO", "S2->S1", "DLA share", "OV copies names"], rows),
        "Mean-ablating each role's heads (ABC reference prompts, per template and position) removes: "
        + ", ".join(removed)
        + f". The circuit alone ({', '.join(circuit['circuit'])}; every other head "
        f"mean-ablated) keeps {circuit['faithfulness']:.0%} of the logit difference.",
        "",
    ]


def _exploratory_tables(recipe: Recipe) -> list[str]:
    """ "Exploratory runs": the recipe's unshipped variants, one table per study."""
    if not recipe.exploratory:
        return []
    out = ["## Exploratory runs (not shipped)", ""]
    for runs in recipe.exploratory:
        out += [runs.title, "", *_table(list(runs.columns), [list(row) for row in runs.rows])]
    return out


def render_card(recipe: Recipe, log: TrainLog, metrics: dict, checks: list[Check], threads: int) -> str:
    """Markdown card; every figure about this model comes from ``log``, ``metrics`` or ``checks`` (the
    recipe's ``data`` and ``exploratory`` tables give figures of other, unshipped runs)."""
    config_rows = [f"| `{k}` | {v} |" for k, v in sorted(recipe.config.items())]
    scalar_rows = [f"| `{k}` | {_fmt(v)} |" for k, v in metrics.items() if isinstance(v, (int, float))]
    check_rows = [
        f"| {c.description} | {_fmt(c.value)} | {c.op} {c.limit:g} | {'PASS' if c.passed else 'FAIL'} |" for c in checks
    ]
    return "\n".join(
        [
            f"# {recipe.name}",
            "",
            "Trained from scratch by `python -m course_utils.zoo` (seeded, with pinned CPU numerics) for the course's "
            'offline model zoo. Load it with `course_utils.zoo.checkpoint.load_checkpoint("' + recipe.name + '")`. '
            "Reproducible: `python -m course_utils.zoo --verify` retrains it and checks that every file but this "
            "card's wall time is byte-identical, which holds on a machine like the one that trained it, not yet "
            "across CPU vendors (see README).",
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
            *_exploratory_tables(recipe),
            "## Training",
            "",
            "AdamW (betas 0.9/0.98, weight decay 0.01 on matrices), gradient clipping at 1.0; per phase, linear "
            "warmup then cosine decay to 10 %: "
            + "; ".join(f"{p.steps} steps, peak learning rate {p.lr:g}, {p.warmup} warmup steps" for p in recipe.phases)
            + ".",
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
            "",
            *_position_tables(metrics),
            *_depth_tables(metrics),
            *_circuit_table(metrics),
        ]
    )
