"""Measurements reported in the model cards and asserted by the tests."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from transformer_lens.model_bridge import TransformerBridge

from course_utils.tasks import facts, ioi, recall, ternary
from course_utils.tasks.repeated import repeated_tokens


def share(hits: torch.Tensor) -> float:
    """Fraction of true entries, in float64: 180 hits of 200 meet a 0.9 bar (a float32 mean gives 0.8999999762)."""
    return hits.double().mean().item()


def _right_pad(rows: list[list[int]], pad_id: int) -> tuple[Int[torch.Tensor, "b s"], Int[torch.Tensor, " b"]]:
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
    return tokens, torch.tensor([len(r) - 1 for r in rows])


def _last_logits(
    model: TransformerBridge, tokens: Int[torch.Tensor, "b s"], last: Int[torch.Tensor, " b"], chunk: int = 64
) -> Float[torch.Tensor, "b vocab"]:
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
        rows = [
            [tok.bos_token_id, *tok.encode(p.prefix, add_special_tokens=False)[-max_len:]]
            for p in ternary.load_ternary_eval(kind)
        ]
        tokens, last = _right_pad(rows, tok.pad_token_id)
        probs = _last_logits(model, tokens, last).softmax(-1)
        out[f"{kind}_top1"] = share(probs.argmax(-1) == else_id)
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
        "accuracy": share(diff > 0),
        "top1": share(final.argmax(-1) == batch.io_ids),
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
        "top1": share(final.argmax(-1) == answers),
        "rank_by_layer": ranks.mean(-1).tolist(),
        "n_prompts": len(prompts),
    }


def lm_loss(
    model: TransformerBridge, stream: Int[torch.Tensor, " n"], seq_len: int = 128, n_windows: int = 64, seed: int = 0
) -> float:
    """Mean next-token loss on evenly spaced BOS-prefixed windows of a held-out token stream."""
    seq_len = min(seq_len, model.cfg.n_ctx)
    starts = torch.linspace(0, len(stream) - seq_len, n_windows).long()
    bos = torch.full((n_windows, 1), model.tokenizer.bos_token_id, dtype=torch.long)
    tokens = torch.cat([bos, stream[starts[:, None] + torch.arange(seq_len - 1)]], dim=1)
    with torch.no_grad():
        return model(tokens, return_type="loss").item()


# Behaviour across the context window ----------------------------------------------------------

POSITION_BIN = 16
"""Width of the position bins in the "behaviour by position" tables."""


def _binned(
    values: Float[torch.Tensor, "batch pos"], first_pos: int, bin_width: int = POSITION_BIN
) -> dict[str, float]:
    """Mean of ``values`` per bin of absolute positions (``values[:, j]`` is position ``first_pos + j``)."""
    out = {}
    n = values.shape[-1]
    start = first_pos - first_pos % bin_width
    while start < first_pos + n:
        lo, hi = max(start, first_pos), min(start + bin_width, first_pos + n)
        out[f"{start}-{start + bin_width - 1}"] = values[:, lo - first_pos : hi - first_pos].mean().item()
        start += bin_width
    return out


def previous_token_by_position(
    model: TransformerBridge, stream: Int[torch.Tensor, " n"], n_windows: int = 32
) -> tuple[int, dict[str, float]]:
    """The layer-0 head with the highest mean attention to the previous token on full-context windows
    of ``stream`` (held-out code), and that head's score per position bin of the query."""
    seq_len = model.cfg.n_ctx
    starts = torch.linspace(0, len(stream) - seq_len, n_windows).long()
    bos = torch.full((n_windows, 1), model.tokenizer.bos_token_id, dtype=torch.long)
    tokens = torch.cat([bos, stream[starts[:, None] + torch.arange(seq_len - 1)]], dim=1)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    prev = cache["blocks.0.attn.hook_pattern"].diagonal(offset=-1, dim1=-2, dim2=-1)  # batch head query-1
    head = int(prev.mean(dim=(0, 2)).argmax())
    return head, _binned(prev[:, head], first_pos=1)


def induction_by_position(model: TransformerBridge, batch: int = 32, seed: int = 4321) -> tuple[int, dict[str, float]]:
    """The last-layer head with the highest induction score on BOS + x + x filling the context, and
    its score per position bin of the query (queries in the second copy only)."""
    seq_len = (model.cfg.n_ctx - 1) // 2
    tokens = repeated_tokens(batch, seq_len, model.cfg.d_vocab, model.tokenizer.bos_token_id, seed=seed)
    name = f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern"
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=name)
    scores = cache[name].diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)[..., -seq_len:]  # batch head query
    head = int(scores.mean(dim=(0, 2)).argmax())
    return head, _binned(scores[:, head], first_pos=seq_len + 1)


def _with_preamble(tok, text: str, preamble: list[int], n_ctx: int = 128) -> list[int]:
    """BOS + preamble + newline + text, the preamble cut (from its start) to fit ``n_ctx`` tokens."""
    body = tok.encode(text, add_special_tokens=False)
    preamble = preamble[max(0, len(preamble) - (n_ctx - 2 - len(body))) :]
    return [tok.bos_token_id, *(preamble + tok.encode("\n", add_special_tokens=False) if preamble else []), *body]


def ioi_by_preamble(
    model: TransformerBridge,
    stream: Int[torch.Tensor, " n"],
    split: ioi.Split = "heldout_templates",
    lengths: tuple[int, ...] = (0, 25, 50, 75, 100),
    n: int = 200,
    seed: int = 31,
) -> dict[int, dict[str, float]]:
    """IOI accuracy and mean logit difference with ``k`` tokens of ordinary held-out text (``stream``)
    before each prompt, for each ``k`` in ``lengths``."""
    tok = model.tokenizer
    prompts = ioi.ioi_prompts(n, split, seed=seed)
    io = torch.tensor([ioi.name_token_id(tok, p.io) for p in prompts])
    s = torch.tensor([ioi.name_token_id(tok, p.s) for p in prompts])
    starts = torch.linspace(0, len(stream) - max(lengths) - 1, n).long().tolist()
    out = {}
    for k in lengths:
        rows = [_with_preamble(tok, p.text, stream[a : a + k].tolist()) for p, a in zip(prompts, starts)]
        tokens, last = _right_pad(rows, tok.pad_token_id)
        final = _last_logits(model, tokens, last)
        diff = final[torch.arange(n), io] - final[torch.arange(n), s]
        out[k] = {
            "accuracy": share(diff > 0),
            "logit_diff": diff.mean().item(),
            "tokens": float(tokens.shape[1]),
        }
    return out


def ternary_by_preamble(
    model: TransformerBridge, stream: Int[torch.Tensor, " n"], lengths: tuple[int, ...] = (0, 60, 110)
) -> dict[int, float]:
    """Mean P(`` else``) at the end of held-out trusted ternaries (their last line only), with ``k``
    tokens of unrelated held-out code (``stream``) before the line, for each ``k`` in ``lengths``."""
    tok = model.tokenizer
    else_id = tok.encode(" else", add_special_tokens=False)[0]
    lines = [p.prefix.splitlines()[-1] for p in ternary.load_ternary_eval("trusted")]
    starts = torch.linspace(0, len(stream) - max(lengths) - 1, len(lines)).long().tolist()
    out = {}
    for k in lengths:
        rows = [_with_preamble(tok, line, stream[a : a + k].tolist()) for line, a in zip(lines, starts)]
        tokens, last = _right_pad(rows, tok.pad_token_id)
        out[k] = _last_logits(model, tokens, last).softmax(-1)[:, else_id].mean().item()
    return out


# Fact recall (facts-4l) -----------------------------------------------------------------------


def _zero_row(x: torch.Tensor, hook: object, row: int) -> torch.Tensor:
    x[row] = 0
    return x


def _restore_row(x: torch.Tensor, hook: object, row: int, pos: slice, clean: torch.Tensor) -> torch.Tensor:
    x[row, pos] = clean[pos]
    return x


@torch.no_grad()
def recall_depth(model: TransformerBridge, prompts: list[recall.RecallPrompt]) -> dict[str, object]:
    """Where in depth the answer appears, on ``prompts`` (per prompt: one cached run, one batched run of
    the MLP ablations, and for causal tracing a corrupted run and one batched run of the restorations):

    - ``rank_by_layer``: median logit-lens rank of the answer at the last position, after the
      embedding (index 0) and after each block;
    - ``top1_depth``: median depth from which the answer is, and stays, the top token (index as above;
      ``n_layers + 1`` if never);
    - ``mlp_removal_nats``: mean drop of the answer's log-probability when one MLP's output is zeroed;
    - ``mlp_dla_fraction``: each MLP's mean direct contribution to the answer's centred logit, as a
      fraction of that logit;
    - ``tracing``: causal tracing at the subject's last token — with the subject swapped for another
      of the same length, restoring the clean ``resid_pre`` of block L there recovers this mean
      fraction of the answer's probability (index L; the last entry restores ``resid_post`` of the
      last block);
    - ``tracing_subject``: the same, restoring every token of the subject;
    - ``top1``: accuracy.
    """
    tok, n_layers = model.tokenizer, model.cfg.n_layers
    ranks, depths, top1 = [], [], []
    removal = torch.zeros(n_layers)
    dla = torch.zeros(n_layers)
    tracing = torch.zeros(2, n_layers + 1)
    n_traced = 0
    resid_names = [f"blocks.{l}.hook_resid_pre" for l in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]
    for prompt in prompts:
        tokens = torch.tensor([[tok.bos_token_id, *tok.encode(prompt.text, add_special_tokens=False)]])
        answer = tok.encode(prompt.answer, add_special_tokens=False)[0]
        logits, cache = model.run_with_cache(tokens)
        final = logits[0, -1]
        top1.append(int(final.argmax() == answer))
        lens = cache.accumulated_resid(apply_ln=True, pos_slice=-1)[:, 0] @ model.W_U
        rank = (lens > lens[:, answer : answer + 1]).sum(-1)
        ranks.append(rank)
        is_top = (rank == 0).tolist()
        depth = n_layers + 1
        while depth > 0 and is_top[depth - 1]:
            depth -= 1
        depths.append(depth)
        log_p = final.log_softmax(-1)[answer]
        scale = cache["ln_final.hook_scale"][0, -1]
        direction = model.W_U[:, answer] - model.W_U.mean(-1)
        centred = final[answer] - final.mean()
        for layer in range(n_layers):
            dla[layer] += (cache[f"blocks.{layer}.hook_mlp_out"][0, -1] / scale @ direction) / centred
        # One batched run: copy ``layer`` of the prompt has block ``layer``'s MLP output zeroed.
        ablated = model.run_with_hooks(
            tokens.expand(n_layers, -1),
            fwd_hooks=[
                (f"blocks.{layer}.hook_mlp_out", functools.partial(_zero_row, row=layer)) for layer in range(n_layers)
            ],
        )
        removal += log_p - ablated[:, -1].log_softmax(-1)[:, answer]
        start, stop = recall.subject_span(tok, prompt.text, prompt.subject)
        corrupted_text = recall.corrupted_subject(tok, prompt, stop - start)
        if corrupted_text is None:
            continue
        corrupted = torch.tensor([[tok.bos_token_id, *tok.encode(corrupted_text, add_special_tokens=False)]])
        if corrupted.shape != tokens.shape:
            continue
        p_clean = final.softmax(-1)[answer]
        p_corrupt = model(corrupted)[0, -1].softmax(-1)[answer]
        if p_clean - p_corrupt < 0.1:
            continue
        # One batched run: copy i of the corrupted prompt gets the clean state at ``resid_names[i]``
        # at the subject's last token, copy len(resid_names) + i at all of its tokens.
        spans = (slice(stop - 1, stop), slice(start, stop))
        restored = model.run_with_hooks(
            corrupted.expand(2 * len(resid_names), -1),
            fwd_hooks=[
                (name, functools.partial(_restore_row, row=k * len(resid_names) + i, pos=span, clean=cache[name][0]))
                for k, span in enumerate(spans)
                for i, name in enumerate(resid_names)
            ],
        )
        p = restored[:, -1].softmax(-1)[:, answer].view(2, -1)
        tracing += (p - p_corrupt) / (p_clean - p_corrupt)
        n_traced += 1
    n = len(prompts)
    return {
        "top1": sum(top1) / n,
        "rank_by_layer": torch.stack(ranks).float().median(0).values.tolist(),
        "top1_depth": float(torch.tensor(depths).float().median()),
        "mlp_removal_nats": (removal / n).tolist(),
        "mlp_dla_fraction": (dla / n).tolist(),
        "tracing": (tracing[0] / max(n_traced, 1)).tolist(),
        "tracing_subject": (tracing[1] / max(n_traced, 1)).tolist(),
        "n_traced": n_traced,
    }


def recall_metrics(model: TransformerBridge, stream: Int[torch.Tensor, " n"], max_prompts: int = 80) -> dict:
    """facts-4l's card: top-1 per relation and held-out form, with a preamble of ordinary text, and
    :func:`recall_depth` on the held-out forms: Q/A about subjects never asked in training, and the bare
    statement (at most ``max_prompts`` each)."""
    out: dict = {}
    tok = model.tokenizer
    for relation in recall.RELATIONS:
        for form in ("qa_heldout", "qa", "bare"):
            prompts = recall.eval_prompts(relation, form)
            rows = [[tok.bos_token_id, *tok.encode(p.text, add_special_tokens=False)] for p in prompts]
            tokens, last = _right_pad(rows, tok.pad_token_id)
            answers = torch.tensor([tok.encode(p.answer, add_special_tokens=False)[0] for p in prompts])
            out[f"{relation}_{form}_top1"] = share(_last_logits(model, tokens, last).argmax(-1) == answers)
        prompts = recall.eval_prompts(relation, "qa")
        starts = torch.linspace(0, len(stream) - 101, len(prompts)).long().tolist()
        by_pre = {}
        for k in (0, 50, 100):
            rows = [_with_preamble(tok, p.text, stream[a : a + k].tolist()) for p, a in zip(prompts, starts)]
            tokens, last = _right_pad(rows, tok.pad_token_id)
            answers = torch.tensor([tok.encode(p.answer, add_special_tokens=False)[0] for p in prompts])
            by_pre[k] = share(_last_logits(model, tokens, last).argmax(-1) == answers)
        out[f"{relation}_qa_top1_by_preamble_tokens"] = by_pre
        for form in ("qa_heldout", "bare"):
            prompts = recall.eval_prompts(relation, form)[:max_prompts]
            out[f"{relation}_{form}_depth"] = recall_depth(model, prompts)
    return out
