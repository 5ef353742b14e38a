"""Reference solutions for chapter 01, hooks basics.

Each function is self-contained: it uses only what the notebook's set-up cell imports
(``torch``, ``Tensor``, ``Float``, ``Int``, ``TransformerBridge``, ``utilities``), because
the solution notebook is built by pasting these functions' source into the exercise cells.
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import utilities
from transformer_lens.model_bridge import TransformerBridge


def count_correct_predictions(model: TransformerBridge, text: str) -> tuple[int, int]:
    """How many next tokens of ``text`` the model's top prediction (argmax) gets right.

    Returns ``(n_correct, n_total)``; ``n_total`` is the number of tokens of the text
    (BOS excluded): the logits at position i predict token i + 1, and BOS is never a target.
    """
    tokens = model.to_tokens(text)  # [1, 1 + n]: BOS, then the text's n tokens
    logits = model(tokens, return_type="logits")  # [1, 1 + n, d_vocab]
    predictions = logits[0, :-1].argmax(dim=-1)  # the prediction at i is for token i + 1
    targets = tokens[0, 1:]  # every token after BOS
    return int((predictions == targets).sum().item()), targets.shape[0]


def attention_scores(
    q: Float[Tensor, "batch pos head d_head"], k: Float[Tensor, "batch pos head d_head"]
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """Scaled, causally masked attention scores: q·k / √d_head, -inf where the key is after the query."""
    d_head = q.shape[-1]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / d_head**0.5
    n_pos = scores.shape[-1]
    future = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf"))


def attention_pattern(
    q: Float[Tensor, "batch pos head d_head"], k: Float[Tensor, "batch pos head d_head"]
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """The attention pattern: softmax over keys of the scaled, causally masked scores."""
    d_head = q.shape[-1]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / d_head**0.5
    n_pos = scores.shape[-1]
    future = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def head_z(
    pattern: Float[Tensor, "batch head q_pos k_pos"],
    v: Float[Tensor, "batch pos head d_head"],
    head: int,
    pos: int,
) -> Float[Tensor, "batch d_head"]:
    """``z`` of one head at one query position: the attention-weighted sum of the values."""
    weights = pattern[:, head, pos, :]  # [batch, k_pos]: how much query `pos` attends to each key
    values = v[:, :, head, :]  # [batch, k_pos, d_head]
    return torch.einsum("bk,bkd->bd", weights, values)


def attn_out_from_z(
    z: Float[Tensor, "batch pos head d_head"],
    W_O: Float[Tensor, "head d_head d_model"],
    b_O: Float[Tensor, " d_model"],
) -> Float[Tensor, "batch pos d_model"]:
    """The attention layer's output: every head's ``z @ W_O[head]``, summed over heads, plus ``b_O`` once."""
    return torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def previous_token_attention(model: TransformerBridge, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "layer head"]:
    """Mean attention from each query position to the position just before it, per layer and head.

    Averaged over the batch and over query positions 1 … pos-1 (position 0 has no previous token).
    """
    store: dict[int, Tensor] = {}

    def record(pattern: Float[Tensor, "batch head q_pos k_pos"], hook) -> None:
        previous = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)  # [batch, head, pos-1]: pattern[q, q-1]
        store[hook.layer()] = previous.mean(dim=(0, 2)).cpu()

    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(lambda name: name.endswith("hook_pattern"), record)])
    return torch.stack([store[layer] for layer in range(model.cfg.n_layers)])


def head_ablation_loss(model: TransformerBridge, tokens: Int[Tensor, "batch pos"], layer: int, head: int) -> float:
    """Mean next-token loss when head ``head`` of layer ``layer`` has its ``z`` set to zero everywhere."""

    def zero_head(z: Float[Tensor, "batch pos head d_head"], hook) -> Float[Tensor, "batch pos head d_head"]:
        z[:, :, head, :] = 0.0
        return z

    loss = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(utilities.get_act_name("z", layer), zero_head)])
    return loss.item()


def answer_rank_and_prob(
    model: TransformerBridge, prompt: str, answer: str
) -> tuple[Int[Tensor, "pos"], Float[Tensor, "pos"]]:
    """Rank and probability of ``answer`` (exactly one token) in the prediction made at every position of ``prompt``.

    ``prompt`` is tokenised with BOS. ``ranks[p]`` counts the tokens whose logit at position ``p`` is
    strictly larger than the answer's (0 = the model's top guess); ``probs[p]`` is the answer's
    softmax probability there. The last entry is the prediction that follows the whole prompt.
    """
    answer_id = model.to_single_token(answer)
    logits = model(model.to_tokens(prompt))[0]  # pos d_vocab
    ranks = (logits > logits[:, answer_id : answer_id + 1]).sum(dim=-1)
    probs = logits.softmax(dim=-1)[:, answer_id]
    return ranks, probs


def top_neurons(
    model: TransformerBridge, tokens: Int[Tensor, "batch pos"], layer: int, pos: int, k: int = 5
) -> tuple[Int[Tensor, "k"], Float[Tensor, "k"]]:
    """The ``k`` neurons of MLP ``layer`` that fire most at position ``pos`` of the first sequence, largest first.

    A neuron's activation is its entry of ``blocks.{layer}.mlp.hook_post`` (after the nonlinearity),
    whose shape is ``[batch, pos, d_mlp]``. Returns ``(neuron indices, their activations)``.
    """
    name = f"blocks.{layer}.mlp.hook_post"
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == name)
    top = cache[name][0, pos].topk(k)
    return top.indices, top.values


# Check-your-understanding answers.
answer_hook_returns_none = "b"
answer_n_loss_positions = 24
answer_most_important_head = (1, 1)
answer_pattern_after_z_ablation = "b"
