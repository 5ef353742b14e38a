"""Reference solutions for chapter 02, early decoding (the logit lens).

Every function is self-contained: it uses only what the notebook's set-up cell imports
(``torch``, ``F``, ``Tensor``, ``Float``, ``Int``, ``ActivationCache``, ``TransformerBridge``).
Conventions shared by all of them: the cache holds ONE prompt (batch index 0); ranks start
at 0 (rank 0 = the top token); "decoding" a residual means applying the final LayerNorm
once, with that residual's own statistics, then ``W_U`` and ``b_U``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge


def decode_residual(model: TransformerBridge, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Read a residual-stream vector (or a stack of them) as next-token logits.

    Apply the final LayerNorm exactly once, to ``resid`` itself (it normalises each vector
    with that vector's own mean and scale), then the unembedding ``W_U`` and its bias ``b_U``.
    """
    return model.ln_final(resid) @ model.W_U + model.b_U


def logit_lens(
    model: TransformerBridge, cache: ActivationCache, pos: int = -1
) -> Float[Tensor, "layer_plus_one d_vocab"]:
    """Decode the residual stream at position ``pos`` after every layer.

    Row ``l`` (for ``l < n_layers``) decodes ``resid_pre`` of layer ``l`` (row 0 is the
    embeddings alone); the last row, ``n_layers``, decodes the final residual
    (``resid_post`` of the last layer) and equals the model's own logits at ``pos``.
    """
    n_layers = model.cfg.n_layers
    resids = [cache["resid_pre", layer][0, pos] for layer in range(n_layers)]
    resids.append(cache["resid_post", n_layers - 1][0, pos])
    stack = torch.stack(resids)  # [n_layers + 1, d_model]
    return model.ln_final(stack) @ model.W_U + model.b_U


def answer_rank_per_layer(layer_logits: Float[Tensor, "layer d_vocab"], answer_token: int) -> Int[Tensor, " layer"]:
    """Rank of ``answer_token`` in each row: the number of tokens with a strictly larger logit
    (rank 0 = the top prediction)."""
    answer_logit = layer_logits[:, answer_token].unsqueeze(-1)
    return (layer_logits > answer_logit).sum(dim=-1)


def answer_prob_per_layer(layer_logits: Float[Tensor, "layer d_vocab"], answer_token: int) -> Float[Tensor, " layer"]:
    """Probability of ``answer_token`` in each row (softmax over the vocabulary)."""
    return layer_logits.softmax(dim=-1)[:, answer_token]


def reciprocal_rank_per_layer(
    layer_logits: Float[Tensor, "layer d_vocab"], answer_token: int
) -> Float[Tensor, " layer"]:
    """1 / (rank + 1) per row, with rank 0 = top: 1.0 when the answer is the top token."""
    rank = (layer_logits > layer_logits[:, answer_token].unsqueeze(-1)).sum(dim=-1)
    return 1.0 / (rank + 1).float()


def top_k_per_layer(
    model: TransformerBridge, layer_logits: Float[Tensor, "layer d_vocab"], k: int = 5
) -> list[list[str]]:
    """The ``k`` highest-logit tokens of each row, as strings, best first."""
    top = layer_logits.topk(k, dim=-1).indices
    return [model.to_str_tokens(row) for row in top]


def logits_before_mlp(
    model: TransformerBridge, cache: ActivationCache, layer: int, pos: int = -1
) -> Float[Tensor, " d_vocab"]:
    """Logits at ``pos`` read from ``resid_post`` of ``layer`` minus that layer's own MLP output.

    The seed's experiment: what would the lens say right after block ``layer`` if its MLP had
    written nothing? (The same vector as that layer's ``resid_mid``.) Decoded as usual: the final
    LayerNorm on the edited vector itself, then ``W_U`` and ``b_U``.
    """
    edited = cache["resid_post", layer][0, pos] - cache["mlp_out", layer][0, pos]
    return model.ln_final(edited) @ model.W_U + model.b_U


def logits_without_mlp(
    model: TransformerBridge, cache: ActivationCache, layer: int, pos: int = -1
) -> Float[Tensor, " d_vocab"]:
    """Logits at ``pos`` after removing MLP ``layer``'s output from the FINAL residual.

    Only the direct path is removed (later layers are not re-run). The edited residual is
    re-decoded: the final LayerNorm recomputes its statistics from the edited vector.
    """
    final = cache["resid_post", model.cfg.n_layers - 1][0, pos]
    edited = final - cache["mlp_out", layer][0, pos]
    return model.ln_final(edited) @ model.W_U + model.b_U


def mlp_removal_effect(
    model: TransformerBridge, cache: ActivationCache, answer_token: int, pos: int = -1
) -> Float[Tensor, " layer"]:
    """For each MLP layer: the answer's log-probability without that MLP's direct output,
    minus its log-probability in the normal run. Negative = the MLP helped the answer."""
    final = cache["resid_post", model.cfg.n_layers - 1][0, pos]
    mlp_outs = torch.stack([cache["mlp_out", layer][0, pos] for layer in range(model.cfg.n_layers)])
    edited = final - mlp_outs  # [layer, d_model]
    edited_logprobs = (model.ln_final(edited) @ model.W_U + model.b_U).log_softmax(dim=-1)
    clean_logprobs = (model.ln_final(final) @ model.W_U + model.b_U).log_softmax(dim=-1)
    return edited_logprobs[:, answer_token] - clean_logprobs[answer_token]


def causal_trace(
    model: TransformerBridge,
    clean_tokens: Int[Tensor, "1 pos"],
    corrupted_tokens: Int[Tensor, "1 pos"],
    answer_token: int,
    subject_pos: int,
) -> Float[Tensor, " layer_plus_one"]:
    """Share of the answer's probability recovered by restoring one clean residual in a corrupted run.

    Entry ``l < n_layers``: run ``corrupted_tokens`` with ``resid_pre`` of block ``l`` at
    ``subject_pos`` replaced by its value in the clean run; the last entry does the same with
    ``resid_post`` of the last block. Each entry is ``(p - p_corrupted) / (p_clean - p_corrupted)``,
    with ``p`` the answer's probability at the last position: 0 = nothing recovered, 1 = all.
    """
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]
    clean_logits, clean_cache = model.run_with_cache(clean_tokens, names_filter=lambda name: name in names)
    p_clean = clean_logits[0, -1].softmax(dim=-1)[answer_token]
    p_corrupted = model(corrupted_tokens)[0, -1].softmax(dim=-1)[answer_token]
    recovered = []
    for name in names:

        def restore(resid, hook, name=name):
            resid[:, subject_pos] = clean_cache[name][:, subject_pos]
            return resid

        patched = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, restore)])
        p = patched[0, -1].softmax(dim=-1)[answer_token]
        recovered.append((p - p_corrupted) / (p_clean - p_corrupted))
    return torch.stack(recovered)


def kl_to_final(layer_logits: Float[Tensor, "layer *pos d_vocab"]) -> Float[Tensor, "layer *pos"]:
    """KL(P_final || P_layer) for each row, where P_final is the distribution of the LAST row.

    In nats, summed over the vocabulary: sum_v P_final(v) (log P_final(v) - log P_layer(v)).
    The last row's value is 0.
    """
    logp = layer_logits.log_softmax(dim=-1)
    logp_final = logp[-1:]
    return (logp_final.exp() * (logp_final - logp)).sum(dim=-1)


def fit_affine_translator(
    h_from: Float[Tensor, "n d_model"], h_to: Float[Tensor, "n d_model"]
) -> tuple[Float[Tensor, "d_model d_model"], Float[Tensor, " d_model"]]:
    """Least-squares affine map ``h_to ≈ h_from @ W + b``; return ``(W, b)``."""
    ones = torch.ones(h_from.shape[0], 1, dtype=h_from.dtype)
    X = torch.cat([h_from, ones], dim=1).double()
    solution = torch.linalg.lstsq(X, h_to.double()).solution  # [d_model + 1, d_model]
    W, b = solution[:-1], solution[-1]
    return W.to(h_from.dtype), b.to(h_from.dtype)


# --- answers to "check your understanding" ------------------------------------------------
answer_ln_twice_detectable_with_fresh_ln = False
answer_gpt2_medium_lens_rows = 25  # 24 layers: 24 resid_pre rows + the final residual
answer_biggest_block = "mlp 0"  # measured on the shipped facts-4l (see checks.block_gains)
answer_most_important_mlp = 0  # measured on the shipped facts-4l (see checks.most_important_mlp)
