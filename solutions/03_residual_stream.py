"""Reference solutions for chapter 03, the residual stream and direct logit attribution.

Every function is self-contained: it uses only what the notebook's set-up cell imports
(``torch``, ``Tensor``, ``Float``, ``ActivationCache``, ``TransformerBridge``).
Conventions shared by all of them: the cache holds ONE prompt (batch index 0); ``pos`` may be
negative (``-1`` = the last position); the final LayerNorm's scale is *frozen*: every
component is centred and divided by the single scale ``cache["ln_final.hook_scale"]`` that the
whole residual stream had at that position, which makes the attribution add up exactly.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge


def decompose_by_hand(
    cache: ActivationCache, layer: int, pos: int
) -> tuple[Float[Tensor, "component d_model"], list[str]]:
    """Every vector written into the residual stream at position ``pos``, up to the end of ``layer``.

    Rows, in the order they are written: ``embed``, ``pos_embed``, then ``"{l}_attn_out"`` and
    ``"{l}_mlp_out"`` for each ``l`` from 0 to ``layer`` included. The rows sum to
    ``resid_post`` of ``layer``; all rows but the last two sum to its ``resid_pre``.
    Returns ``(stack [2 + 2 * (layer + 1), d_model], labels)``.
    """
    rows = [cache["hook_embed"][0, pos], cache["hook_pos_embed"][0, pos]]
    labels = ["embed", "pos_embed"]
    for l in range(layer + 1):
        rows += [cache["attn_out", l][0, pos], cache["mlp_out", l][0, pos]]
        labels += [f"{l}_attn_out", f"{l}_mlp_out"]
    return torch.stack(rows), labels


def direct_logit_attribution(
    model: TransformerBridge, cache: ActivationCache, answer_token: int, pos: int = -1
) -> tuple[Float[Tensor, " component"], list[str]]:
    """Split the logit of ``answer_token`` at ``pos`` into one term per component, exactly.

    With the final LayerNorm's scale ``s`` frozen, each component ``x_c`` contributes
    ``((x_c - mean(x_c)) / s * ln_final.w) @ W_U[:, answer_token]``. Two constant rows follow:
    ``"ln_final.b"`` (``ln_final.b @ W_U[:, answer_token]``) and ``"b_U"`` (``b_U[answer_token]``).
    Labels: ``embed``, ``pos_embed``, ``"{l}_attn_out"``, ``"{l}_mlp_out"`` for every layer,
    then ``ln_final.b``, ``b_U``. The values sum to ``logits[0, pos, answer_token]``.
    """
    rows = [cache["hook_embed"][0, pos], cache["hook_pos_embed"][0, pos]]
    labels = ["embed", "pos_embed"]
    for l in range(model.cfg.n_layers):
        rows += [cache["attn_out", l][0, pos], cache["mlp_out", l][0, pos]]
        labels += [f"{l}_attn_out", f"{l}_mlp_out"]
    stack = torch.stack(rows)  # [component, d_model]
    centred = stack - stack.mean(dim=-1, keepdim=True)
    scale = cache["ln_final.hook_scale"][0, pos]  # [1]: one number for the whole stream
    direction = model.ln_final.w * model.W_U[:, answer_token]  # [d_model]
    contributions = (centred / scale) @ direction
    constants = torch.stack([model.ln_final.b @ model.W_U[:, answer_token], model.b_U[answer_token]])
    return torch.cat([contributions, constants]), labels + ["ln_final.b", "b_U"]


def head_logit_attribution(
    model: TransformerBridge, cache: ActivationCache, answer_token: int, pos: int = -1
) -> tuple[Float[Tensor, " component"], list[str]]:
    """Like :func:`direct_logit_attribution`, with each attention layer split into its heads.

    Rows (the order of ``cache.get_full_resid_decomposition(expand_neurons=False)``):
    ``"L{l}H{h}"`` for every layer and head (head ``h`` writes ``z[pos, h] @ W_O[l, h]``),
    ``"{l}_mlp_out"`` for every layer, ``embed``, ``pos_embed``, ``"b_O"`` (the attention
    output biases of all layers, summed: they belong to no single head), then the constants
    ``"ln_final.b"`` and ``"b_U"``. The values sum to ``logits[0, pos, answer_token]``.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    heads = torch.cat([torch.einsum("hd,hdm->hm", cache["z", l][0, pos], model.W_O[l]) for l in range(n_layers)])
    mlps = torch.stack([cache["mlp_out", l][0, pos] for l in range(n_layers)])
    rest = torch.stack([cache["hook_embed"][0, pos], cache["hook_pos_embed"][0, pos], model.b_O.sum(dim=0)])
    stack = torch.cat([heads, mlps, rest])  # [component, d_model]
    labels = [f"L{l}H{h}" for l in range(n_layers) for h in range(n_heads)]
    labels += [f"{l}_mlp_out" for l in range(n_layers)] + ["embed", "pos_embed", "b_O"]
    centred = stack - stack.mean(dim=-1, keepdim=True)
    scale = cache["ln_final.hook_scale"][0, pos]
    direction = model.ln_final.w * model.W_U[:, answer_token]
    contributions = (centred / scale) @ direction
    constants = torch.stack([model.ln_final.b @ model.W_U[:, answer_token], model.b_U[answer_token]])
    return torch.cat([contributions, constants]), labels + ["ln_final.b", "b_U"]


def top_attribution(attrs: Float[Tensor, "component batch pos"], labels: list[str]) -> tuple[str, int, int]:
    """Where the largest (most positive) entry of ``attrs`` sits: ``(its component's label, batch index, position)``.

    ``labels[c]`` names row ``c`` of ``attrs``; returns plain Python values.
    """
    component, batch, pos = torch.unravel_index(attrs.argmax(), attrs.shape)
    return labels[int(component)], int(batch), int(pos)


def rank_components(attrs: Float[Tensor, "component batch pos"], labels: list[str]) -> list[str]:
    """The component labels sorted by their total attribution (summed over prompts and positions), largest first."""
    totals = attrs.sum(dim=(1, 2))
    return [labels[i] for i in totals.argsort(descending=True).tolist()]


# --- answers to "check your understanding" ------------------------------------------------
answer_unscaled_sum_is_times = "scale"
answer_prompt_independent_rows = {"ln_final.b", "b_U"}
answer_scaling_changes_rank = False
answer_top_ioi_head = "L1H2"  # on gelu-4l; the check recomputes it from the model
