"""Find and score the IOI circuit of a course model: per-head evidence, mean ablation, faithfulness.

Everything here runs on template prompts (fixed token positions per template), so a head can be
mean-ablated position by position over a reference distribution: the same templates with three
different names (the "ABC" distribution, in which no name repeats).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from transformer_lens.model_bridge import TransformerBridge

from course_utils.tasks import ioi
from course_utils.zoo.evaluate import share

Head = tuple[int, int]


@dataclass(frozen=True)
class IOIData:
    """Clean prompts grouped by template, their ABC references, and the token positions that matter."""

    batch: ioi.IOIBatch
    reference: Int[torch.Tensor, "batch seq"]
    template_ids: Int[torch.Tensor, " batch"]
    io_pos: Int[torch.Tensor, " batch"]
    s1_pos: Int[torch.Tensor, " batch"]
    s2_pos: Int[torch.Tensor, " batch"]


def ioi_data(model: TransformerBridge, split: ioi.Split = "heldout", n: int = 200, seed: int = 5) -> IOIData:
    """``n`` template prompts of ``split`` with their ABC reference prompts and name positions."""
    tok = model.tokenizer
    prompts = ioi.ioi_prompts(n, split, seed=seed)
    batch = ioi.tokenize(prompts, tok)
    reference = torch.full_like(batch.tokens, tok.pad_token_id)
    for i, p in enumerate(prompts):
        row = [tok.bos_token_id, *tok.encode(ioi.abc_reference(p, seed), add_special_tokens=False)]
        reference[i, : len(row)] = torch.tensor(row)
    io_pos, s1_pos, s2_pos = [], [], []
    for row, end, io_id, s_id in zip(batch.tokens, batch.answer_pos, batch.io_ids, batch.s_ids):
        s_at = (row[: end + 1] == s_id).nonzero().flatten()
        io_pos.append((row[: end + 1] == io_id).nonzero().flatten()[0])
        s1_pos.append(s_at[0])
        s2_pos.append(s_at[-1])
    return IOIData(
        batch,
        reference,
        torch.tensor([p.template_id for p in prompts]),
        torch.stack(io_pos),
        torch.stack(s1_pos),
        torch.stack(s2_pos),
    )


@torch.no_grad()
def head_evidence(model: TransformerBridge, data: IOIData) -> dict[str, Float[torch.Tensor, "layer head"]]:
    """Per head: attention from END to IO, to S (S1 + S2) and to S2 alone, from S2 to S1 (duplicate-token
    score) and from S2 to IO,
    direct logit attribution to IO - S at END (as a fraction of the mean logit difference), and
    the OV name-copying score (see :func:`ov_name_copying`)."""
    b = data.batch
    rows = torch.arange(len(b.tokens))
    logits, cache = model.run_with_cache(b.tokens)
    ld = ioi.logit_diff(logits, data.batch).mean()
    end = b.answer_pos
    scale = cache["ln_final.hook_scale"][rows, end]
    direction = (model.W_U[:, b.io_ids] - model.W_U[:, b.s_ids]).T  # batch d_model
    L, H = model.cfg.n_layers, model.cfg.n_heads
    out = {
        k: torch.zeros(L, H) for k in ("to_io", "to_s", "to_s2", "duplicate", "s2_to_io", "dla_fraction", "ov_copying")
    }
    for layer in range(L):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # batch head q k
        z = cache[f"blocks.{layer}.attn.hook_z"][rows, end]  # batch head d_head
        written = torch.einsum("bhd,hdm->bhm", z, model.W_O[layer]) / scale[:, None]
        dla = torch.einsum("bhm,bm->bh", written, direction).mean(0)
        for head in range(H):
            p = pattern[:, head]
            out["to_io"][layer, head] = p[rows, end, data.io_pos].mean()
            out["to_s"][layer, head] = (p[rows, end, data.s1_pos] + p[rows, end, data.s2_pos]).mean()
            out["to_s2"][layer, head] = p[rows, end, data.s2_pos].mean()
            out["duplicate"][layer, head] = p[rows, data.s2_pos, data.s1_pos].mean()
            out["s2_to_io"][layer, head] = p[rows, data.s2_pos, data.io_pos].mean()
            out["dla_fraction"][layer, head] = dla[head] / ld
            out["ov_copying"][layer, head] = ov_name_copying(model, layer, head)
    return out


@torch.no_grad()
def ov_name_copying(model: TransformerBridge, layer: int, head: int) -> float:
    """Fraction of the single-token names whose embedding, sent through the head's OV circuit and
    the unembedding, ranks that same name first among all names."""
    ids = torch.tensor([ioi.name_token_id(model.tokenizer, name) for name in ioi.NAMES])
    emb = model.W_E[ids]
    emb = emb - emb.mean(-1, keepdim=True)
    emb = emb / emb.pow(2).mean(-1, keepdim=True).sqrt()
    logits = emb @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U[:, ids]
    return share(logits.argmax(-1) == torch.arange(len(ids)))


@torch.no_grad()
def _template_means(model: TransformerBridge, data: IOIData, layers: set[int]) -> dict[int, torch.Tensor]:
    """Mean ``hook_z`` of the reference prompts, per template and position: ``{layer: [batch, pos, head, d_head]}``
    (row i holds the mean over the reference prompts that share prompt i's template)."""
    names = {f"blocks.{layer}.attn.hook_z" for layer in layers}
    _, cache = model.run_with_cache(data.reference, names_filter=lambda n: n in names)
    means = {}
    for layer in layers:
        z = cache[f"blocks.{layer}.attn.hook_z"]
        mean = torch.empty_like(z)
        for t in data.template_ids.unique():
            rows = data.template_ids == t
            mean[rows] = z[rows].mean(0, keepdim=True)
        means[layer] = mean
    return means


@torch.no_grad()
def logit_diff_with_heads_ablated(model: TransformerBridge, data: IOIData, ablate: list[Head]) -> float:
    """Mean logit difference when the heads in ``ablate`` output their reference-distribution mean
    (per template and position) instead of their own output."""
    layers = {layer for layer, _ in ablate}
    means = _template_means(model, data, layers)

    def replace(z, hook):
        layer = int(hook.name.split(".")[1])
        for l, h in ablate:
            if l == layer:
                z[:, :, h] = means[layer][:, : z.shape[1], h]
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", replace) for layer in layers]
    logits = model.run_with_hooks(data.batch.tokens, fwd_hooks=hooks)
    return ioi.logit_diff(logits, data.batch).mean().item()


ROLE_LIMITS = {
    "name mover": "END attends to IO >= 0.4 and to IO more than to S by >= 0.2, OV copies names (>= 0.5), DLA >= 15 %",
    "other-name": "at S2, attends to IO (the name that is not S2's own) >= 0.3",
    "mover from S2": "at END, attends to S2 >= 0.3 and writes IO - S directly (DLA >= 5 %)",
    "duplicate-token": "at S2, attends to S1 (its earlier copy) >= 0.3",
}
"""What qualifies a head for each role (checked by :func:`find_roles`)."""


def find_roles(evidence: dict[str, torch.Tensor]) -> dict[str, list[Head]]:
    """Heads that meet each role's limits in :data:`ROLE_LIMITS`."""

    def heads(mask: torch.Tensor) -> list[Head]:
        return [(int(l), int(h)) for l, h in mask.nonzero().tolist()]

    e = evidence
    return {
        "name mover": heads(
            (e["to_io"] >= 0.4)
            & (e["to_io"] - e["to_s"] >= 0.2)
            & (e["ov_copying"] >= 0.5)
            & (e["dla_fraction"] >= 0.15)
        ),
        "other-name": heads(e["s2_to_io"] >= 0.3),
        "mover from S2": heads((e["to_s2"] >= 0.3) & (e["dla_fraction"] >= 0.05)),
        "duplicate-token": heads(e["duplicate"] >= 0.3),
    }


@torch.no_grad()
def describe(model: TransformerBridge, n: int = 200, seed: int = 5) -> dict[str, object]:
    """The IOI circuit of ``model`` on held-out template prompts: per-head evidence, the heads of each
    role, and mean-ablation figures (each as a share of the clean logit difference):

    - ``removed_by_<role>``: share of the logit difference lost when that role's heads are mean-ablated;
    - ``faithfulness``: share kept when every head outside the circuit (all roles) is mean-ablated.
    """
    data = ioi_data(model, "heldout", n=n, seed=seed)
    evidence = head_evidence(model, data)
    roles = find_roles(evidence)
    clean = ioi.logit_diff(model(data.batch.tokens), data.batch).mean().item()
    out: dict[str, object] = {
        "clean_logit_diff": clean,
        "roles": {k: [f"L{l}H{h}" for l, h in v] for k, v in roles.items()},
    }
    for role, members in roles.items():
        if members:
            out[f"removed_by_{role}"] = 1 - logit_diff_with_heads_ablated(model, data, members) / clean
    circuit = sorted({head for members in roles.values() for head in members})
    outside = [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads) if (l, h) not in circuit]
    out["circuit"] = [f"L{l}H{h}" for l, h in circuit]
    out["faithfulness"] = logit_diff_with_heads_ablated(model, data, outside) / clean if outside else 1.0
    out["evidence"] = {k: [[round(x, 4) for x in row] for row in v.tolist()] for k, v in evidence.items()}
    return out
