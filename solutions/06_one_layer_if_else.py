"""Reference solutions for chapter 06: ``if … else`` in a one-layer attention-only model.

Every function is self-contained: it uses only what the notebook's set-up cell imports
(``torch``, ``einops``, ``FactoredMatrix``, jaxtyping's ``Float``/``Int`` and ``Tensor``).
"""

from __future__ import annotations

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix


def ov_circuit(model, head: int) -> FactoredMatrix:
    """The full OV circuit of one head, ``ln_final(ln1(W_E) W_V W_O) W_U``, as a FactoredMatrix.

    Rows are source tokens (the token attended to), columns are output tokens: entry
    ``[s, o]`` is the logit for ``o`` that the head writes when it attends fully to ``s``.
    Each LayerNorm is the model's own (centre, divide by the row's scale, weight, bias),
    applied to every row on its own. Shape ``[d_vocab, d_vocab]``, never materialised.
    """

    def layer_norm(x: Tensor, ln) -> Tensor:
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt() * ln.w + ln.b

    embed_normed = layer_norm(model.W_E, model.blocks[0].ln1)  # [d_vocab, d_model]
    head_out = embed_normed @ model.W_V[0, head] @ model.W_O[0, head]  # [d_vocab, d_model]
    return FactoredMatrix(layer_norm(head_out, model.ln_final), model.W_U)


def ov_ranks(ov: FactoredMatrix, src: int, out: int) -> tuple[int, int]:
    """Two ranks read off an OV circuit (rank 0 = the largest entry).

    Returns ``(rank of src among all sources in column out, rank of out among all outputs in row src)``.
    Ties are broken in ``src``'s / ``out``'s favour (count only strictly larger entries).
    """
    column = ov.A @ ov.B[:, out]  # [d_vocab]: how much each source token promotes `out`
    row = ov.A[src] @ ov.B  # [d_vocab]: what `src` promotes
    src_rank = int((column > column[src]).sum())
    out_rank = int((row > row[out]).sum())
    return src_rank, out_rank


def qk_scores(model, key_token: int, query_pos: int, key_pos: int) -> Float[Tensor, "n_heads d_vocab"]:
    """Pre-softmax attention score of every possible query token on one key, for every head.

    The query token sits at ``query_pos``, the key token ``key_token`` at ``key_pos``. Each
    residual is token embedding + positional embedding, normalised by ``ln1`` on its own;
    queries and keys include their biases; the dot product is divided by ``sqrt(d_head)``.
    """

    def ln1(x: Tensor) -> Tensor:
        x = x - x.mean(-1, keepdim=True)
        return (
            x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt() * model.blocks[0].ln1.w + model.blocks[0].ln1.b
        )

    queries_in = ln1(model.W_E + model.W_pos[query_pos])  # [d_vocab, d_model]
    key_in = ln1(model.W_E[key_token] + model.W_pos[key_pos])  # [d_model]
    q = einops.einsum(queries_in, model.W_Q[0], "vocab d_model, head d_model d_head -> head vocab d_head")
    q = q + model.b_Q[0][:, None, :]
    k = einops.einsum(key_in, model.W_K[0], "d_model, head d_model d_head -> head d_head") + model.b_K[0]
    return einops.einsum(q, k, "head vocab d_head, head d_head -> head vocab") / model.cfg.d_head**0.5


def else_logit_decomposition(model, tokens: Int[Tensor, "batch pos"]) -> dict[str, Tensor]:
    """Split the final position's `` else`` logit into parts that sum to it exactly.

    With the final LayerNorm's scale frozen at its value in the actual run, the logit is
    linear in the residual stream, so each piece of the residual at the final position
    gets its own share. Returns a dict of tensors:

    - ``"embed"``     ``[batch]``: the final token's embedding (direct path);
    - ``"pos_embed"`` ``[batch]``: the final position's positional embedding (direct path);
    - ``"heads"``     ``[batch, n_heads, pos]``: head ``h`` reading source position ``s``:
      attention weight × (value vector, with ``b_V``) @ ``W_O[h]``;
    - ``"biases"``    ``[batch]``: ``b_O`` through the final LayerNorm, plus the final
      LayerNorm's bias and ``b_U`` read at `` else``.
    """
    else_token = model.to_single_token(" else")
    _, cache = model.run_with_cache(tokens)
    scale = cache["ln_final.hook_scale"][:, -1, 0]  # [batch], frozen from the run
    direction = model.ln_final.w * model.W_U[:, else_token]  # [d_model]

    def read(x: Tensor) -> Tensor:
        """Centre, divide by the frozen scale, and dot with the `` else`` direction."""
        centred = x - x.mean(-1, keepdim=True)
        return centred @ direction

    n = tokens.shape[1]
    embed = read(model.W_E[tokens[:, -1]]) / scale
    pos_embed = read(model.W_pos[n - 1]).expand(tokens.shape[0]) / scale
    pattern = cache["pattern", 0][:, :, -1, :]  # [batch, head, src]: the final query's weights
    per_source = einops.einsum(
        cache["v", 0], model.W_O[0], "batch src head d_head, head d_head d_model -> batch head src d_model"
    )
    heads = pattern * read(per_source) / scale[:, None, None]
    biases = read(model.b_O[0]) / scale + model.ln_final.b @ model.W_U[:, else_token] + model.b_U[else_token]
    return {"embed": embed, "pos_embed": pos_embed, "heads": heads, "biases": biases}


def source_contribution(
    model, tokens: Int[Tensor, "batch pos"], head: int, source_token: int
) -> Float[Tensor, "batch"]:
    """Head ``head``'s contribution to the final `` else`` logit from the positions holding ``source_token``.

    The head × source terms of ``else_logit_decomposition`` (attention weight of the final query ×
    the value vector with ``b_V`` @ ``W_O[head]``, centred, divided by the final LayerNorm's frozen
    scale at the final position, dotted with ``ln_final.w * W_U[:, ' else']``), summed over the
    source positions whose token is ``source_token`` (0 where there is none).
    """
    else_token = model.to_single_token(" else")
    _, cache = model.run_with_cache(tokens)
    out = cache["v", 0][:, :, head] @ model.W_O[0, head]  # [batch, src, d_model]
    centred = out - out.mean(-1, keepdim=True)
    terms = cache["pattern", 0][:, head, -1] * (centred @ (model.ln_final.w * model.W_U[:, else_token]))
    terms = terms / cache["ln_final.hook_scale"][:, -1]  # [batch, src] / [batch, 1]
    return (terms * (tokens == source_token)).sum(-1)


def mahalanobis_scores(
    train: Float[Tensor, "n_train d"], test: Float[Tensor, "n_test d"], ridge: float = 1e-3
) -> Float[Tensor, "n_test"]:
    """Squared Mahalanobis distance of each test row from the training rows.

    Fit on ``train`` only: mean ``mu`` and covariance ``C`` (``torch.cov`` convention,
    dividing by n − 1) plus ``ridge`` on the diagonal; score ``(x − mu)ᵀ (C + ridge·I)⁻¹ (x − mu)``.
    """
    mu = train.mean(0)
    cov = torch.cov(train.T) + ridge * torch.eye(train.shape[1], dtype=train.dtype)
    centred = test - mu
    return (centred * torch.linalg.solve(cov, centred.T).T).sum(-1)


def auroc(normal: Float[Tensor, "n"], anomalous: Float[Tensor, "m"]) -> float:
    """Area under the ROC curve for "higher score = more anomalous".

    The probability that a random anomalous example scores above a random normal one,
    counting ties as one half (0.5 = chance, 1.0 = perfect separation).
    """
    above = (anomalous[:, None] > normal[None, :]).double().mean()
    ties = (anomalous[:, None] == normal[None, :]).double().mean()
    return float(above + 0.5 * ties)


answer_qk_is_exact = True
answer_biggest_omission = "final LN scale"
answer_top_if_head = 7
