"""Reference solutions for chapter 05, induction circuits.

Every function is self-contained: it uses only what the notebook's set-up cell imports
(``torch``, ``einops``, ``Float``/``Int``, ``Tensor``, ``ActivationCache``, ``FactoredMatrix``,
``TransformerBridge``), because the solution build pastes each function into the notebook.

Conventions shared by every function:

* A repeated sequence is ``BOS, x_1 … x_n, x_1 … x_n``: ``1 + 2n`` tokens, ``n = seq_len``.
  The second copy occupies positions ``n+1 … 2n``; at query position ``q`` of the second copy
  an induction head attends to key position ``q - n + 1`` (the token *after* the earlier copy
  of the current token), never to ``q - n`` (the earlier copy itself).
* Attention patterns are ``[batch, head, query_pos, key_pos]``.
* Per-token losses are indexed by the position that makes the prediction: ``loss[:, p]``
  scores the prediction of ``tokens[:, p + 1]`` made at position ``p``.
"""

from __future__ import annotations

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, FactoredMatrix
from transformer_lens.model_bridge import TransformerBridge

# --------------------------------------------------------------------------- 1 · repeated tokens


def generate_repeated_tokens(
    model: TransformerBridge, seq_len: int, batch: int = 1, seed: int = 0
) -> Int[Tensor, "batch 1+2*seq_len"]:
    """BOS, then ``seq_len`` random tokens, then the same ``seq_len`` tokens again.

    Random tokens are uniform over ``[1, d_vocab)`` (never BOS, id 0), drawn from a
    ``torch.Generator`` seeded with ``seed``; every row of the batch is a different sequence.
    """
    generator = torch.Generator().manual_seed(seed)
    half = torch.randint(1, model.cfg.d_vocab, (batch, seq_len), generator=generator)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id, dtype=torch.long)
    return torch.cat([bos, half, half], dim=1).to(model.cfg.device)


def per_token_loss(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1"]:
    """Cross-entropy of each next-token prediction: ``out[b, p] = -log P(tokens[b, p+1] | logits[b, p])``."""
    log_probs = logits.log_softmax(dim=-1)
    return -log_probs[:, :-1].gather(dim=-1, index=tokens[:, 1:, None])[..., 0]


# --------------------------------------------------------------------------- 2 · detectors


def current_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> dict[str, float]:
    """Heads that attend to the current token.

    A head's score is its mean attention from each query position ``q`` to key ``q`` itself,
    averaged over the batch and over the query positions ``1 … T-1`` (position 0, BOS, can only
    attend to itself, so it tells nothing). Returns ``{"layer.head": score}`` for every head
    whose score is at least ``threshold`` (``threshold=0`` lists every head).
    """
    scores = {}
    for layer in range(cache.model.cfg.n_layers):
        pattern = cache["pattern", layer]  # batch head q k
        diagonal = pattern.diagonal(offset=0, dim1=-2, dim2=-1)[..., 1:]  # batch head q (q >= 1)
        for head, score in enumerate(diagonal.mean(dim=(0, 2)).tolist()):
            if score >= threshold:
                scores[f"{layer}.{head}"] = score
    return scores


def prev_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> dict[str, float]:
    """Heads that attend to the previous token.

    A head's score is its mean attention from each query position ``q`` to key ``q - 1``,
    averaged over the batch and over the query positions ``1 … T-1`` (position 0 has no
    previous token). Returns ``{"layer.head": score}`` for every head whose score is at least
    ``threshold``.
    """
    scores = {}
    for layer in range(cache.model.cfg.n_layers):
        pattern = cache["pattern", layer]
        below = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)  # batch head (T-1): q = 1 … T-1
        for head, score in enumerate(below.mean(dim=(0, 2)).tolist()):
            if score >= threshold:
                scores[f"{layer}.{head}"] = score
    return scores


def first_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> dict[str, float]:
    """Heads that attend to the first token (BOS).

    A head's score is its mean attention from each query position ``q`` to key 0, averaged over
    the batch and over the query positions ``1 … T-1`` (query 0 attends to key 0 in every head
    by construction). Returns ``{"layer.head": score}`` for every head whose score is at least
    ``threshold``.
    """
    scores = {}
    for layer in range(cache.model.cfg.n_layers):
        to_first = cache["pattern", layer][:, :, 1:, 0]  # batch head q (q >= 1)
        for head, score in enumerate(to_first.mean(dim=(0, 2)).tolist()):
            if score >= threshold:
                scores[f"{layer}.{head}"] = score
    return scores


# --------------------------------------------------------------------------- 3 · induction score


def induction_score(model: TransformerBridge, tokens: Int[Tensor, "batch 1+2*seq_len"]) -> Float[Tensor, "layer head"]:
    """Mean attention of each head from every second-copy token to the token after its first copy.

    ``tokens`` is ``BOS + x + x`` with ``seq_len = (tokens.shape[1] - 1) // 2``. The score of a
    head averages ``pattern[b, head, q, q - seq_len + 1]`` over the batch and over the second-copy
    query positions ``q = seq_len+1 … 2*seq_len`` only. Computed in ONE forward pass with a hook
    on every ``hook_pattern`` (chosen by a name filter) that stores only the scores.
    """
    seq_len = (tokens.shape[1] - 1) // 2
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=tokens.device)

    def store_score(pattern: Float[Tensor, "batch head q k"], hook) -> None:
        stripe = pattern.diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)  # q = seq_len-1 … 2*seq_len
        scores[hook.layer()] = stripe[..., -seq_len:].mean(dim=(0, 2))  # keep q = seq_len+1 … 2*seq_len

    model.run_with_hooks(
        tokens, return_type=None, fwd_hooks=[(lambda name: name.endswith("hook_pattern"), store_score)]
    )
    return scores


# --------------------------------------------------------------------------- 4 · attribution and ablation


def head_logit_attribution(
    model: TransformerBridge, cache: ActivationCache, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1 layer head"]:
    """Direct contribution of every head to the logit of the correct next token.

    ``out[b, p, l, h]`` is what head ``l.h`` writes at position ``p`` (``z @ W_O``, without the
    bias ``b_O``), passed through the final LayerNorm as a linear map: centred, divided by the
    cached scale ``cache["ln_final.hook_scale"][b, p]``, multiplied by ``ln_final.w``, then dotted
    with the unembedding column ``W_U[:, tokens[b, p + 1]]``.
    """
    n_layers = model.cfg.n_layers
    z = torch.stack([cache["z", layer] for layer in range(n_layers)], dim=2)  # batch pos layer head d_head
    head_out = einops.einsum(
        z, model.W_O, "batch pos layer head d_head, layer head d_head d_model -> batch pos layer head d_model"
    )
    head_out = head_out[:, :-1]  # the last position predicts nothing in the sequence
    centred = head_out - head_out.mean(dim=-1, keepdim=True)
    scale = cache["ln_final.hook_scale"][:, :-1, None, None]  # batch pos 1 1 1
    directions = (model.ln_final.w[:, None] * model.W_U)[:, tokens[:, 1:]]  # d_model batch pos
    return einops.einsum(
        centred / scale, directions, "batch pos layer head d_model, d_model batch pos -> batch pos layer head"
    )


def head_ablation_loss_increase(
    model: TransformerBridge, tokens: Int[Tensor, "batch 1+2*seq_len"], ablation: str = "zero"
) -> Float[Tensor, "layer head"]:
    """Increase of the loss on the second copy when one head at a time is ablated.

    The loss is the mean per-token loss of the predictions made at positions ``seq_len+1 … 2*seq_len-1``
    (the predictions of ``x_2 … x_n`` in the second copy; ``x_1`` there has nothing to be predicted from). Ablating head ``l.h`` replaces its ``hook_z``
    at every position: by zeros (``ablation="zero"``) or by its mean ``z`` over every batch element
    and position of ``tokens`` (``ablation="mean"``). Returns ablated loss minus clean loss.
    """
    if ablation not in ("zero", "mean"):
        raise ValueError(f"ablation must be 'zero' or 'mean', got {ablation!r}")
    seq_len = (tokens.shape[1] - 1) // 2

    def second_copy_loss(logits: Float[Tensor, "batch pos d_vocab"]) -> float:
        log_probs = logits.log_softmax(dim=-1)[:, :-1]
        losses = -log_probs.gather(dim=-1, index=tokens[:, 1:, None])[..., 0]
        return losses[:, seq_len + 1 :].mean().item()

    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in z_names)
    clean = second_copy_loss(logits)
    increase = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        mean_z = cache[z_names[layer]].mean(dim=(0, 1))  # head d_head
        for head in range(model.cfg.n_heads):

            def ablate(z: Float[Tensor, "batch pos head d_head"], hook, head: int = head, mean_z=mean_z):
                z = z.clone()
                z[:, :, head] = 0.0 if ablation == "zero" else mean_z[head]
                return z

            ablated = model.run_with_hooks(tokens, fwd_hooks=[(z_names[layer], ablate)])
            increase[layer, head] = second_copy_loss(ablated) - clean
    return increase


def ablated_induction_scores(
    model: TransformerBridge, tokens: Int[Tensor, "batch 1+2*seq_len"], head: int
) -> Float[Tensor, "head_1"]:
    """Induction score of every layer-1 head while layer-0 head ``head`` is zero-ablated.

    One forward pass with two hooks: one sets ``z[:, :, head]`` of ``blocks.0.attn.hook_z`` to 0, the
    other reads ``blocks.1.attn.hook_pattern`` and averages ``pattern[b, h, q, q - seq_len + 1]`` over
    the batch and the second-copy queries ``q = seq_len+1 … 2*seq_len``.
    """
    seq_len = (tokens.shape[1] - 1) // 2
    scores = torch.zeros(model.cfg.n_heads, device=tokens.device)

    def ablate(z: Float[Tensor, "batch pos head d_head"], hook) -> Float[Tensor, "batch pos head d_head"]:
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    def store_score(pattern: Float[Tensor, "batch head q k"], hook) -> None:
        stripe = pattern.diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)
        scores[:] = stripe[..., -seq_len:].mean(dim=(0, 2))

    model.run_with_hooks(
        tokens,
        return_type=None,
        fwd_hooks=[("blocks.0.attn.hook_z", ablate), ("blocks.1.attn.hook_pattern", store_score)],
    )
    return scores


# --------------------------------------------------------------------------- 5 · circuits in the weights


def top_1_acc(full_OV_circuit: FactoredMatrix, chunk_size: int = 512) -> float:
    """Fraction of tokens ``t`` whose row ``t`` of the (square) circuit has its largest entry in column ``t``.

    Rows are materialised ``chunk_size`` at a time (``full_OV_circuit[i:j].AB``), never the whole matrix.
    """
    n_tokens = full_OV_circuit.shape[-2]
    correct = 0
    for start in range(0, n_tokens, chunk_size):
        rows = full_OV_circuit[start : start + chunk_size].AB  # chunk d_vocab
        targets = torch.arange(start, start + rows.shape[0], device=rows.device)
        correct += (rows.argmax(dim=-1) == targets).sum().item()
    return correct / n_tokens


def pos_attention_pattern(model: TransformerBridge, layer: int, head: int, n_pos: int) -> Float[Tensor, "q_pos k_pos"]:
    """The attention pattern head ``layer.head`` would make if the residual stream held only positional embeddings.

    Scores ``W_pos[:n_pos] @ W_QK @ W_pos[:n_pos].T / sqrt(d_head)`` (LayerNorm and biases ignored),
    keys after the query masked out, softmax over keys.
    """
    W_pos = model.W_pos[:n_pos]
    scores = (W_pos @ model.QK[layer, head] @ W_pos.T).AB / model.cfg.d_head**0.5
    future = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def get_comp_score(W_A: Float[Tensor, "in_A out_A"], W_B: Float[Tensor, "out_A out_B"]) -> float:
    """Composition score ``‖W_A W_B‖_F / (‖W_A‖_F ‖W_B‖_F)`` (Frobenius norms): 0 … 1."""
    return ((W_A @ W_B).norm() / (W_A.norm() * W_B.norm())).item()


def composition_scores(model: TransformerBridge, kind: str) -> Float[Tensor, "head_0 head_1"]:
    """Q-, K- or V-composition score of every (layer-0 head, layer-1 head) pair, all at once.

    ``out[i, j] = get_comp_score(W_OV[0, i], W_B[1, j])`` with ``W_OV = W_V W_O`` of the writer and,
    for the reader, ``W_B = W_QK`` (``kind="Q"``: its queries read), ``W_QK^T`` (``"K"``: its keys
    read) or ``W_OV`` (``"V"``: its values read); every matrix is ``d_model × d_model``.
    """
    readers = {"Q": model.QK[1].AB, "K": model.QK[1].AB.transpose(-1, -2), "V": model.OV[1].AB}
    if kind not in readers:
        raise ValueError(f"kind must be 'Q', 'K' or 'V', got {kind!r}")
    W_A = model.OV[0].AB  # head_0 d_model d_model
    W_B = readers[kind]  # head_1 d_model d_model
    products = W_A[:, None] @ W_B[None, :]  # head_0 head_1 d_model d_model
    norms_A = W_A.norm(dim=(-2, -1))
    norms_B = W_B.norm(dim=(-2, -1))
    return products.norm(dim=(-2, -1)) / (norms_A[:, None] * norms_B[None, :])


def induction_qk_decomposition(
    model: TransformerBridge, cache: ActivationCache, head: int
) -> Float[Tensor, "q_piece k_piece"]:
    """Split layer-1 head ``head``'s attention score on the induction stripe by what the query and the key read.

    ``model`` is the folded model (its layer-1 LayerNorm only centres and divides by the scale) and
    ``cache`` its run on ``BOS + x + x``. The pieces of the residual stream entering layer 1 are, in
    this order, the token embedding ``cache["hook_embed"]``, the positional embedding
    ``cache["hook_pos_embed"]`` and each layer-0 head's output ``cache["z", 0][:, :, h] @ W_O[0, h]``,
    every piece divided by ``cache["blocks.1.ln1.hook_scale"]``. ``out[i, j]`` is the mean, over
    the batch and the second-copy queries ``q = n+1 … 2n``, of
    ``(piece_i[q] @ W_Q[1, head]) · (piece_j[q - n + 1] @ W_K[1, head]) / sqrt(d_head)``
    (biases left out).
    """
    seq_len = (cache["hook_embed"].shape[1] - 1) // 2
    z = cache["z", 0]  # batch pos head d_head
    head_out = einops.einsum(z, model.W_O[0], "batch pos head d_head, head d_head d_model -> batch pos head d_model")
    embed = cache["hook_embed"][:, :, None]
    pos_embed = cache["hook_pos_embed"][:, :, None].expand_as(embed)
    pieces = torch.cat([embed, pos_embed, head_out], dim=2) / cache["blocks.1.ln1.hook_scale"][..., None]
    queries = pieces[:, seq_len + 1 :] @ model.W_Q[1, head]  # batch q piece d_head
    keys = pieces[:, 2 : seq_len + 2] @ model.W_K[1, head]  # key q - n + 1 for each q
    scores = einops.einsum(queries, keys, "batch q i d_head, batch q j d_head -> batch q i j")
    return scores.mean(dim=(0, 1)) / model.cfg.d_head**0.5


def effective_ov_circuit(model: TransformerBridge, layer: int, heads: list[int]) -> FactoredMatrix:
    """Full OV circuit of several heads together, ``W_E (Σ_h W_V[layer, h] W_O[layer, h]) W_U``.

    ``[d_vocab, d_vocab]`` as a FactoredMatrix whose inner width is ``len(heads) * d_head``: rows are
    the token attended to, columns the output logits.
    """
    W_V = torch.cat([model.W_V[layer, h] for h in heads], dim=1)  # d_model (heads d_head)
    W_O = torch.cat([model.W_O[layer, h] for h in heads], dim=0)  # (heads d_head) d_model
    return FactoredMatrix(model.W_E @ W_V, W_O @ model.W_U)


# --------------------------------------------------------------------------- answers

answer_induction_key = 21
"""In BOS + 50 tokens + the same 50, a perfect induction head attends from position 70 to 70 - 50 + 1."""

answer_composition = "K"
"""The previous-token head's output is read by the induction head's keys."""

answer_one_layer = "b"
"""A one-layer model cannot put "the token before me" into a key: that needs an earlier head."""

answer_uniform_loss = 8.3175
"""ln(4095): a model that spreads its probability evenly over the 4095 possible random tokens."""
