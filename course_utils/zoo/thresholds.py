"""The figures each course model must reach (asserted by the tests, printed in the model cards)."""

from __future__ import annotations

import operator
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One measured figure compared with its required limit."""

    description: str
    value: float
    op: str
    limit: float

    @property
    def passed(self) -> bool:
        return {"<": operator.lt, ">=": operator.ge, ">": operator.gt}[self.op](self.value, self.limit)


def checks_for(name: str, m: dict) -> list[Check]:
    """Checks of the figures in ``m`` (from the recipe's evaluation) for model ``name``."""
    if name == "attn-only-2l":
        return [
            Check("best layer-1 induction score", m["best_layer1_induction"], ">=", 0.6),
            Check("best layer-0 previous-token score", m["best_layer0_previous_token"], ">=", 0.4),
            Check("second-repeat loss / first-repeat loss", m["second_repeat_loss"] / m["first_repeat_loss"], "<", 0.5),
        ]
    if name == "attn-only-1l":
        return [
            Check("P(else) on trusted prefixes > P(else) at random positions",
                  m["trusted_p_else"] - m["random_position_p_else"], ">", 0.0),
            Check("P(else) drops when ` if` is replaced (trusted)",
                  m["trusted_p_else"] - m["trusted_p_else_if_replaced"], ">", 0.0),
        ]
    if name == "gelu-4l":
        out = []
        for split in ("heldout_pairs", "heldout_templates", "heldout"):
            out.append(Check(f"IOI accuracy, {split}", m[f"ioi_{split}_accuracy"], ">=", 0.9))
            out.append(Check(f"IOI mean logit diff IO-S, {split}", m[f"ioi_{split}_logit_diff"], ">=", 2.0))
        for relation in ("capital", "language"):
            out.append(Check(f"fact recall top-1, {relation}", m[f"facts_{relation}_top1"], ">=", 0.9))
            ranks = m[f"facts_{relation}_rank_by_layer"]
            out.append(Check(f"logit-lens rank falls with depth, {relation} (final - embed)", ranks[-1] - ranks[0], "<", 0.0))
        return out
    raise ValueError(f"no checks defined for {name!r}")
