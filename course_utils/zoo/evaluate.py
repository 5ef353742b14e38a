"""Measurements reported in the model cards and asserted by the tests."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from transformer_lens.model_bridge import TransformerBridge

from course_utils.tasks import facts, ioi, ternary
from course_utils.tasks.repeated import repeated_tokens


def _right_pad(rows: list[list[int]], pad_id: int) -> tuple[Int[torch.Tensor, "b s"], Int[torch.Tensor, " b"]]:
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
    return tokens, torch.tensor([len(r) - 1 for r in rows])


def _last_logits(model: TransformerBridge, tokens: Int[torch.Tensor, "b s"], last: Int[torch.Tensor, " b"],
                 chunk: int = 64) -> Float[torch.Tensor, "b vocab"]:
    out = []
    with torch.no_grad():
        for i in range(0, len(tokens), chunk):
            logits = model(tokens[i : i + chunk], return_type="logits")
            out.append(logits[torch.arange(len(logits)), last[i : i + chunk]])
    return torch.cat(out)


@dataclass(frozen=True)
class InductionScores:
    """Per-head scores on BOS + random tokens repeated, and the loss on each half."""

    induction: Float[torch.Tensor, "layer head"]
    """Mean attention from each second-half token to the token after its earlier copy."""
    previous_token: Float[torch.Tensor, "layer head"]
    """Mean attention from each token to the one before it."""
    first_half_loss: float
    second_half_loss: float


def induction_scores(model: TransformerBridge, seq_len: int = 50, batch: int = 32, seed: int = 0) -> InductionScores:
    """Induction and previous-token scores of every head, plus first/second-repeat loss."""
    tokenizer = model.tokenizer
    tokens = repeated_tokens(batch, seq_len, model.cfg.d_vocab, tokenizer.bos_token_id, seed=seed)
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    pattern = torch.stack([cache[name] for name in names])  # layer batch head q k
    induction = pattern.diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)[..., -seq_len:]
    prev = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)[..., 1:]
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    return InductionScores(
        induction=induction.mean(dim=(1, 3)),
        previous_token=prev.mean(dim=(1, 3)),
        first_half_loss=losses[:, 1:seq_len].mean().item(),
        second_half_loss=losses[:, seq_len:].mean().item(),
    )


def ternary_metrics(model: TransformerBridge, n_random: int = 400, seed: int = 0) -> dict[str, float]:
    """P(`` else``) at the end of held-out ternary prefixes (top-1 rate and mean probability per kind),
    at random positions of those prefixes, and after replacing the last `` if`` by `` and``."""
    tok = model.tokenizer
    if_id, else_id, and_id = (tok.encode(w, add_special_tokens=False)[0] for w in (" if", " else", " and"))
    max_len = model.cfg.n_ctx - 1
    out: dict[str, float] = {}
    rng = random.Random(seed)
    random_rows = []
    for kind in ("trusted", "anomalous"):
        rows = [[tok.bos_token_id, *tok.encode(p.prefix, add_special_tokens=False)[-max_len:]]
                for p in ternary.load_ternary_eval(kind)]
        tokens, last = _right_pad(rows, tok.pad_token_id)
        probs = _last_logits(model, tokens, last).softmax(-1)
        out[f"{kind}_top1"] = (probs.argmax(-1) == else_id).float().mean().item()
        out[f"{kind}_p_else"] = probs[:, else_id].mean().item()
        ablated = []
        for row in rows:
            ifs = [i for i, t in enumerate(row) if t == if_id]
            if ifs:
                ablated.append(row[: ifs[-1]] + [and_id] + row[ifs[-1] + 1 :])
        tokens, last = _right_pad(ablated, tok.pad_token_id)
        out[f"{kind}_p_else_if_replaced"] = _last_logits(model, tokens, last).softmax(-1)[:, else_id].mean().item()
        random_rows += [row[: rng.randrange(2, len(row))] for row in rows]
    sample = rng.sample(random_rows, min(n_random, len(random_rows)))
    tokens, last = _right_pad(sample, tok.pad_token_id)
    out["random_position_p_else"] = _last_logits(model, tokens, last).softmax(-1)[:, else_id].mean().item()
    return out


def ioi_metrics(model: TransformerBridge, split: ioi.Split, n: int = 400, seed: int = 123) -> dict[str, float]:
    """IOI accuracy (logit IO > logit S), top-1 rate of IO, and mean logit difference IO - S."""
    prompts = ioi.ioi_prompts(n, split, seed=seed)
    batch = ioi.tokenize(prompts, model.tokenizer)
    final = _last_logits(model, batch.tokens, batch.answer_pos)
    rows = torch.arange(len(final))
    diff = final[rows, batch.io_ids] - final[rows, batch.s_ids]
    return {
        "accuracy": (diff > 0).float().mean().item(),
        "top1": (final.argmax(-1) == batch.io_ids).float().mean().item(),
        "logit_diff": diff.mean().item(),
    }


def fact_metrics(model: TransformerBridge, relation: str, n_shots: int = 2, seed: int = 7) -> dict[str, object]:
    """Top-1 accuracy on few-shot prompts, and the answer's mean logit-lens rank after each layer
    (``rank_by_layer[0]`` is the embedding, ``[-1]`` the final residual stream)."""
    tok = model.tokenizer
    prompts = facts.fact_prompts(relation, n_shots=n_shots, seed=seed)
    rows = [[tok.bos_token_id, *tok.encode(p.text, add_special_tokens=False)] for p in prompts]
    tokens, last = _right_pad(rows, tok.pad_token_id)
    answers = torch.tensor([tok.encode(p.answer, add_special_tokens=False)[0] for p in prompts])
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
        rows_idx = torch.arange(len(tokens))
        resid = torch.stack([cache[name][rows_idx, last] for name in names])  # point batch d_model
        centered = resid - resid.mean(-1, keepdim=True)
        normed = centered / (centered.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
        lens = (normed * model.ln_final.weight + model.ln_final.bias) @ model.W_U + model.b_U
    answer_logit = lens[:, rows_idx, answers]
    ranks = (lens > answer_logit[..., None]).sum(-1).float()
    final = logits[rows_idx, last]
    return {
        "top1": (final.argmax(-1) == answers).float().mean().item(),
        "rank_by_layer": ranks.mean(-1).tolist(),
        "n_prompts": len(prompts),
    }


def lm_loss(model: TransformerBridge, stream: Int[torch.Tensor, " n"], seq_len: int = 128, n_windows: int = 64, seed: int = 0) -> float:
    """Mean next-token loss on evenly spaced BOS-prefixed windows of a held-out token stream."""
    seq_len = min(seq_len, model.cfg.n_ctx)
    starts = torch.linspace(0, len(stream) - seq_len, n_windows).long()
    bos = torch.full((n_windows, 1), model.tokenizer.bos_token_id, dtype=torch.long)
    tokens = torch.cat([bos, stream[starts[:, None] + torch.arange(seq_len - 1)]], dim=1)
    with torch.no_grad():
        return model(tokens, return_type="loss").item()
