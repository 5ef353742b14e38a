"""The figures each course model must reach (asserted by the tests, printed in the model cards).

One function per model, ``metrics -> [Check]``; :data:`course_utils.course_models.COURSE_MODELS` names each model's."""

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


def attn_only_2l(m: dict) -> list[Check]:
    out = [
        Check("best layer-1 induction score", m["best_layer1_induction"], ">=", 0.6),
        Check("best layer-0 previous-token score", m["best_layer0_previous_token"], ">=", 0.4),
        Check("second-repeat loss / first-repeat loss", m["second_repeat_loss"] / m["first_repeat_loss"], "<", 0.5),
    ]
    out += [
        Check(f"previous-token head on held-out code, positions {b}", v, ">=", 0.9)
        for b, v in m["previous_token_by_position"].items()
    ]
    out += [
        Check(f"induction head on a repeat filling the context, queries {b}", v, ">=", 0.8)
        for b, v in m["induction_by_position"].items()
    ]
    return out


def attn_only_1l(m: dict) -> list[Check]:
    by_pre = {int(k): v for k, v in m["p_else_by_preamble_tokens"].items()}
    base = by_pre[0]
    return [
        Check(
            "P(else) on trusted prefixes > P(else) at random positions",
            m["trusted_p_else"] - m["random_position_p_else"],
            ">",
            0.0,
        ),
        Check(
            "P(else) drops when ` if` is replaced (trusted)",
            m["trusted_p_else"] - m["trusted_p_else_if_replaced"],
            ">",
            0.0,
        ),
        *[
            Check(f"P(else) after {k} tokens of other code / without", v / base, ">=", 0.5)
            for k, v in by_pre.items()
            if k
        ],
    ]


IOI_ACCURACY = 0.9
"""gelu-4l's IOI accuracy bar, on every held-out split and after 0-100 tokens of ordinary text."""


def gelu_4l(m: dict) -> list[Check]:
    out = []
    for split in ("heldout_pairs", "heldout_templates", "heldout"):
        out.append(Check(f"IOI accuracy, {split}", m[f"ioi_{split}_accuracy"], ">=", IOI_ACCURACY))
        out.append(Check(f"IOI mean logit diff IO-S, {split}", m[f"ioi_{split}_logit_diff"], ">=", 2.0))
    for k, v in m["ioi_by_preamble_tokens"].items():
        out.append(
            Check(
                f"IOI accuracy, held-out templates after {k} tokens of stories",
                v["accuracy"],
                ">=",
                IOI_ACCURACY,
            )
        )
        out.append(Check(f"IOI logit diff, held-out templates after {k} tokens of stories", v["logit_diff"], ">=", 2.0))
    circuit = m["ioi_circuit"]
    out.append(
        Check(
            "IOI circuit alone (other heads mean-ablated) keeps this share of the logit diff",
            circuit["faithfulness"],
            ">=",
            0.8,
        )
    )
    for role in ("other-name", "mover from S2"):
        out.append(
            Check(
                f"mean-ablating the {role} heads removes this share of the logit diff",
                circuit.get(f"removed_by_{role}", 0.0),
                ">=",
                0.5,
            )
        )
    return out


RECALL_PREAMBLE_TOKENS = (50, 100)
"""facts-4l's few-shot Q/A is gated (top-1 >= 0.9) after this many tokens of ordinary text; after
100 the question ends at the last positions of the context."""


def facts_4l(m: dict) -> list[Check]:
    out = [Check('bare statement top-1 ("The capital of Poland is")', m["capital_bare_top1"], ">=", 0.8)]
    for relation in ("capital", "language", "country"):
        out.append(Check(f"{relation}: few-shot Q/A top-1, any shots", m[f"{relation}_qa_top1"], ">=", 0.9))
        out.append(
            Check(
                f"{relation}: Q/A top-1, subjects never asked in training", m[f"{relation}_qa_heldout_top1"], ">=", 0.9
            )
        )
        pre = {int(k): v for k, v in m[f"{relation}_qa_top1_by_preamble_tokens"].items()}
        out += [
            Check(f"{relation}: Q/A top-1 after {k} tokens of stories", pre[k], ">=", 0.9)
            for k in RECALL_PREAMBLE_TOKENS
        ]
    for form in ("qa_heldout", "bare"):
        depth = m[f"country_{form}_depth"]
        out.append(Check(f"towns ({form}): median depth from which the answer is top-1", depth["top1_depth"], ">=", 2))
        out.append(Check(f"towns ({form}): median logit-lens rank after block 0", depth["rank_by_layer"][1], ">=", 10))
    removal = m["country_qa_heldout_depth"]["mlp_removal_nats"]
    layer = max(range(1, len(removal)), key=removal.__getitem__)
    out.append(
        Check(
            f"towns (qa_heldout): zeroing MLP {layer}, the largest after block 0, costs (nats)", removal[layer], ">=", 2
        )
    )
    return out
