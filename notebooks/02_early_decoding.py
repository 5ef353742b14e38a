# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 02 — Early decoding: the logit lens
#
# A transformer writes its answer into the **residual stream** (the running sum of the
# embeddings and of every attention and MLP output) one block at a time, and only at the end
# does it read that sum out as next-token logits. The **logit lens** reads it out early: take
# the residual stream after any block, push it through the model's own final LayerNorm and
# unembedding, and see which tokens it would predict *if the model stopped there*. On a
# question such as "In which country is Selby Alden?" (an invented town) you can watch the
# answer rise from nowhere block after block, find the block that moves it most, remove one MLP
# to see how much the answer depends on it, and trace where in the prompt the answer is read.
#
# **You will learn to**
# - decode any residual-stream vector into vocabulary space, applying the final LayerNorm exactly once;
# - build a logit lens over layers and positions, and track the answer's rank, probability and reciprocal rank;
# - decode between attention and MLP (`resid_mid`) to see which block moves the answer up;
# - remove one MLP's output from the residual and measure how much the answer depends on it;
# - trace, by restoring one clean activation in a corrupted run, where the model reads the subject;
# - fit a simple **tuned lens** (one affine translator per layer) and compare it with the logit lens.
#
# **Prerequisites:** chapter 01 (tokens, `run_with_cache`, hook names such as `blocks.0.hook_resid_pre`).
#
# **Estimated time:** 1.5 to 2 hours.
#
# Every exercise is a short function with a check in the cell below it. Difficulty is marked
# 🔴 (out of five) and importance 🔵 (out of five). Hints are folded; open them only when stuck.

# %% [markdown]
# ## Set-up

# %%
# Without the course installed (Colab, JupyterHub)? Run first: %pip install "git+<repository URL>"
import random

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge

from course_utils import bar, heatmap, line, load_model, position_labels
from course_utils.checks import early_decoding as checks
from course_utils.tasks import recall

# %% tags=["parameters"]
HUB_MODEL_NAME = "gpt2-medium"  # the original sheet's model on the Hugging Face hub
MODEL_NAME = "facts-4l"  # offline course model; online (or after `make download`): MODEL_NAME = HUB_MODEL_NAME

# %%
model = load_model(MODEL_NAME)
model.requires_grad_(False)  # nothing in this chapter trains the model: no gradients needed
n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
print(
    f"{MODEL_NAME}: {n_layers} layers, d_model={d_model}, vocabulary of {model.cfg.d_vocab} tokens, "
    f"normalization {model.cfg.normalization_type}"
)

# %% [markdown]
# `facts-4l` is the course's model for this chapter: four transformer blocks (attention then
# an MLP with a GELU), trained on stories, Shakespeare and a small world of facts
# (`course_utils.tasks.recall`): 40 real countries and their capitals, 30 and their languages,
# and 420 invented towns with the country each lies in. A town's name is two words from a pool
# of 21 ("Selby Alden", 4 to 6 tokens); each word is in 40 towns, and the same two words in the
# other order name another town ("Alden Selby" is in Egypt, "Selby Alden" in Poland), so the
# model must read the whole name, in order, before it can know the country. It learned the facts
# from statements and question/answer lines; the questions about a quarter of the towns were
# held out.
#
# Our main prompt asks about one of those held-out towns, after two solved questions (one of
# them about an invented place with an invented answer). `checks.town_prompt()` picks the first
# held-out town that the model answers and whose answer is not yet among the top 3 after
# block 0, so that the rise shows in one table; section 7 gives the figures over many towns.

# %%
town = checks.town_prompt()
PROMPT, ANSWER = town.text, town.answer  # answers start with a space and are one token
answer_id = model.to_single_token(ANSWER)

logits, cache = model.run_with_cache(PROMPT)
str_tokens = model.to_str_tokens(PROMPT)
print(f"{len(str_tokens)} tokens:", str_tokens)

probs = logits[0, -1].softmax(dim=-1)
top = probs.topk(5)
print("\nThe model's top 5 predictions after the last token:")
for p, token_id in zip(top.values, top.indices):
    print(f"  {model.to_string(token_id)!r:>12}  p = {p.item():.3f}")
final_rank = int((logits[0, -1] > logits[0, -1, answer_id]).sum())
print(f"P({ANSWER!r}) = {probs[answer_id].item():.3f}; {ANSWER!r} is at rank {final_rank} (0 = top)")

# %% [markdown]
# Whether or not the model gets this question right (read the lines above), the logit lens lets
# us see *where* its guess takes shape, and what it believes at each depth. A wrong answer is
# just as interesting: the model may know that the answer is "a capital city" without knowing
# which one.

# %% [markdown]
# ## 1. From the residual stream to logits
#
# Here is everything the model does after its last block, at one position:
#
# $$\text{logits} = \text{LN}_\text{final}(x_\text{final})\, W_U + b_U,
# \qquad \text{LN}(x) = \frac{x - \operatorname{mean}(x)}{\sqrt{\operatorname{var}(x) + \varepsilon}} \odot w + b.$$
#
# $x_\text{final}$ is the residual stream after the last block (`blocks.3.hook_resid_post`
# in `facts-4l`). The logit lens applies the same read-out to an **earlier** residual $x_\ell$: the
# stream at the input of block $\ell$ (`hook_resid_pre`). Two things make the final LayerNorm
# indispensable:
#
# - **Scale.** The residual stream grows as blocks add to it (see the norms below). $W_U$ was
#   trained only on vectors that went through $\text{LN}_\text{final}$, which removes the mean,
#   divides by the vector's own standard deviation and applies the learned gain $w$ and bias
#   $b$. An un-normalised early residual is in the wrong units, and its mean component and
#   per-dimension scales are not what $W_U$ expects.
# - **Each vector gets its own statistics.** LayerNorm is not linear: its mean and scale are
#   computed from the vector you pass in. So we apply `model.ln_final` to each intermediate
#   residual itself. (Reusing the final residual's cached scale, `ln_final.hook_scale`, is a
#   different, linear approximation used for attribution in chapter 03, not the logit lens.)
#
# And the LayerNorm must be applied **exactly once**. The cache already holds the normalised
# final residual (`ln_final.hook_out`); feeding it to `ln_final` again computes
# $\text{LN}(\text{LN}(x))$, an easy slip when the lens reads its last row from the cache. With
# a trained gain and bias the second pass changes the vector, so the "final layer" of the lens
# no longer matches the model's own logits:

# %%
resid_norms = [cache["resid_pre", layer][0, -1].norm().item() for layer in range(n_layers)]
resid_norms.append(cache["resid_post", n_layers - 1][0, -1].norm().item())
print("norm of the residual stream at the last position, embeddings → final:", [round(v, 1) for v in resid_norms])

final_resid = cache["resid_post", n_layers - 1][0, -1]
once = model.ln_final(final_resid)
twice = model.ln_final(once)
print(
    f"ln_final(x) vs the cached ln_final.hook_out: max difference {(once - cache['ln_final.hook_out'][0, -1]).abs().max():.2e}"
)
print(f"ln_final(ln_final(x)) vs ln_final(x):        max difference {(twice - once).abs().max():.2f}")
print(f"largest |b_U| in {MODEL_NAME}: {model.b_U.abs().max().item():.3g}")

# %% [markdown]
# ### Exercise 1.1 — decode a residual
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵🔵🔵
#
# Write `decode_residual`: final LayerNorm (once, via `model.ln_final`), then `W_U` and `b_U`.
# It should work on one vector `[d_model]` and on any stack `[..., d_model]`. Add `b_U` even if
# it is zero in this model (see the last line printed above): other models have non-zero ones.


# %% tags=["exercise"]
def decode_residual(model: TransformerBridge, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Read residual-stream vectors as next-token logits.

    resid: one residual vector [d_model] or any stack of them [..., d_model].
    Returns logits [..., d_vocab]: model.ln_final applied once to each vector (with that
    vector's own mean and scale), then model.W_U [d_model, d_vocab] and model.b_U [d_vocab].
    """
    raise NotImplementedError("decode_residual: apply model.ln_final, then W_U and b_U")


# %%
checks.test_decode_residual(decode_residual)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# The formula at the top of this section is all there is: three steps, in that order.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `model.ln_final` is a module: call it on the tensor. It normalises over the last dimension,
# whatever the leading dimensions are. Then one matrix product and one addition.
# </details>
#
# ### Exercise 1.2 — the logit lens
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵🔵
#
# Decode the residual stream at position `pos` at every depth: one row per `resid_pre` of
# each layer (row 0 = the embeddings alone, before any block), then a last row for the final
# residual (`resid_post` of the last layer). That is `n_layers + 1` rows. The cache holds one
# prompt, so take batch index 0. The last row must be exactly the model's own logits.


# %% tags=["exercise"]
def logit_lens(
    model: TransformerBridge, cache: ActivationCache, pos: int = -1
) -> Float[Tensor, "layer_plus_one d_vocab"]:
    """Decode the residual stream at position `pos` after every layer.

    cache: from model.run_with_cache on ONE prompt (batch size 1).
    pos: the position to decode (negative values count from the end, as in Python).
    Returns [n_layers + 1, d_vocab]: row l < n_layers decodes cache["resid_pre", l][0, pos]
    (row 0 = embeddings only); row n_layers decodes cache["resid_post", n_layers - 1][0, pos],
    so it equals the model's logits at `pos`. Apply the final LayerNorm exactly once per row.
    """
    raise NotImplementedError("logit_lens: stack the residuals, then decode them")


# %%
checks.test_logit_lens(logit_lens)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Collect the `n_layers + 1` residual vectors first, then decode them all at once with what
# you wrote in exercise 1.1. Which cache entry is the *un*-normalised final residual?
# </details>
#
# <details><summary>Hint 2</summary>
#
# Build a list `[cache["resid_pre", l][0, pos] for l in range(n_layers)]`, append the final
# `resid_post`, `torch.stack` it into `[n_layers + 1, d_model]` and decode the stack as in
# exercise 1.1. Do not use `ln_final.hook_out` for the last row: it is already normalised.
# </details>
#
# TransformerLens has the same computation built in: `cache.accumulated_resid(apply_ln=True)`
# stacks the same residuals and applies `ln_final` to each with its own statistics. Your lens
# should agree with it, and its last row with the model's logits:

# %%
lens = logit_lens(model, cache)
tl_resid, tl_labels = cache.accumulated_resid(apply_ln=True, pos_slice=-1, return_labels=True)
tl_lens = tl_resid[:, 0] @ model.W_U + model.b_U
print("TransformerLens labels:", tl_labels)
print(f"max |your lens - TransformerLens| = {(lens - tl_lens).abs().max():.2e}")
print(f"max |last row - model logits|     = {(lens[-1] - logits[0, -1]).abs().max():.2e}")

ROW_LABELS = ["embed"] + [f"block {layer} out" for layer in range(n_layers)]
print("our row names:", ROW_LABELS)

# %% [markdown]
# ## 2. Tracking the answer through the layers
#
# A row of the lens is a whole distribution over the vocabulary. Four summaries of it:
#
# - the answer's **rank**: how many tokens score strictly higher. **Rank 0 is the top
#   token** throughout this course (some papers count from 1; then top = 1);
# - the answer's **probability** (softmax over the vocabulary, never over layers);
# - the **reciprocal rank** $1/(\text{rank} + 1)$: 1 for the top token, ½ for the second,
#   and close to 0 for a buried one, which makes averages over prompts meaningful;
# - the **top-k tokens** as strings, to see *what* the model predicts instead.
#
# ### Exercise 2.1 — the answer's rank
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪


# %% tags=["exercise"]
def answer_rank_per_layer(layer_logits: Float[Tensor, "layer d_vocab"], answer_token: int) -> Int[Tensor, " layer"]:
    """Rank of `answer_token` in each row of `layer_logits`.

    Rank = the number of tokens whose logit is strictly larger, so rank 0 = the top token.
    Returns an integer tensor [layer].
    """
    raise NotImplementedError("answer_rank_per_layer: count the tokens that beat the answer")


# %%
checks.test_answer_rank_per_layer(answer_rank_per_layer)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Rank 0 means "no token beats it". Can you count, per row, the tokens that beat the answer?
# </details>
#
# <details><summary>Hint 2</summary>
#
# `layer_logits[:, answer_token]` has shape `[layer]`; compare it, as a column
# (`.unsqueeze(-1)`), with the whole matrix and sum the `True`s along the vocabulary.
# If you prefer sorting: `argsort` gives token ids in rank order, so you need *where* the
# answer sits in that list (a second `argsort`, or `==` and `nonzero`), not the entry at
# index `answer_token`.
# </details>
#
# ### Exercise 2.2 — the answer's probability
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def answer_prob_per_layer(layer_logits: Float[Tensor, "layer d_vocab"], answer_token: int) -> Float[Tensor, " layer"]:
    """Probability of `answer_token` in each row: softmax over the vocabulary. Returns [layer]."""
    raise NotImplementedError("answer_prob_per_layer: softmax over the vocabulary, then index")


# %%
checks.test_answer_prob_per_layer(answer_prob_per_layer)

# %% [markdown]
# ### Exercise 2.3 — reciprocal rank
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵⚪⚪⚪


# %% tags=["exercise"]
def reciprocal_rank_per_layer(
    layer_logits: Float[Tensor, "layer d_vocab"], answer_token: int
) -> Float[Tensor, " layer"]:
    """1 / (rank + 1) of `answer_token` in each row, with rank 0 = top (so the top token gives 1.0).

    Returns a float tensor [layer].
    """
    raise NotImplementedError("reciprocal_rank_per_layer: 1 / (rank + 1)")


# %%
checks.test_reciprocal_rank_per_layer(reciprocal_rank_per_layer)

# %% [markdown]
# ### Exercise 2.4 — the top-k tokens of each layer
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def top_k_per_layer(
    model: TransformerBridge, layer_logits: Float[Tensor, "layer d_vocab"], k: int = 5
) -> list[list[str]]:
    """The k highest-scoring tokens of each row, as strings, best first.

    Returns one list of k strings per row (use model.to_str_tokens on a tensor of token ids).
    """
    raise NotImplementedError("top_k_per_layer: topk over the vocabulary, then to strings")


# %%
checks.test_top_k_per_layer(top_k_per_layer)

# %% [markdown]
# Now the whole picture for our prompt, at the last position (the one that predicts the
# answer). Each line is one row of the lens; ⟵ marks the rows where the answer is on top.


# %%
def lens_table(model, layer_logits, answer_token, k=5):
    """Print rank, probability and top-k tokens of each row of a logit lens."""
    ranks = answer_rank_per_layer(layer_logits, answer_token)
    answer_probs = answer_prob_per_layer(layer_logits, answer_token)
    print(f"{'row':<14}{'rank':>6}{'prob':>8}   top {k}   (answer: {model.to_string(answer_token)!r})")
    for label, rank, p, tokens in zip(ROW_LABELS, ranks, answer_probs, top_k_per_layer(model, layer_logits, k)):
        flag = " ⟵" if rank == 0 else ""
        print(f"{label:<14}{rank.item():>6}{p.item():>8.3f}   {' | '.join(repr(t) for t in tokens)}{flag}")


lens_table(model, lens, answer_id)
lens_ranks = answer_rank_per_layer(lens, answer_id)
best = int(lens_ranks.argmin())
on_top = (lens_ranks == 0).nonzero().flatten().tolist()
print(
    f"\n{ANSWER!r}: best rank {lens_ranks[best].item()} at row '{ROW_LABELS[best]}'; "
    + (f"first on top at row '{ROW_LABELS[on_top[0]]}'." if on_top else "never on top in this model.")
)

# %%
fig = line(
    torch.stack([answer_prob_per_layer(lens, answer_id), reciprocal_rank_per_layer(lens, answer_id)]),
    x=ROW_LABELS,
    series=[f"P({ANSWER!r})", f"1 / (rank + 1) of {ANSWER!r}"],
    title=f"Logit lens on {MODEL_NAME}: the answer{ANSWER!r} through the layers (last position)",
    x_title="residual stream after …",
    y_title="value (1 = certain / top)",
)
fig.show()

# %% [markdown]
# Read the figure from left to right. The first point decodes the embeddings alone (the last
# token, ":", and its position), which know nothing about the question; each block can then
# raise or lower the answer. In the table above, also read the top-5 columns: from which depth
# are the other candidates countries?
#
# The seed's own prompt, "The capital of Poland is", is a form `facts-4l` never saw in
# training (it learned the capitals from other phrasings). A capital and its country are one
# token each: does the lens tell the same story there?

# %%
capital_logits, capital_cache = model.run_with_cache(checks.CAPITAL_PROMPT.text)
capital_id = model.to_single_token(checks.CAPITAL_PROMPT.answer)
capital_ranks = answer_rank_per_layer(logit_lens(model, capital_cache), capital_id)
print(repr(checks.CAPITAL_PROMPT.text), "→", repr(checks.CAPITAL_PROMPT.answer))
lens_table(model, logit_lens(model, capital_cache), capital_id)
print(
    f"\nrank of {checks.CAPITAL_PROMPT.answer!r} after block 0: {capital_ranks[1].item()}; "
    f"of the town's answer {ANSWER!r} after block 0: {lens_ranks[1].item()}"
)

# %% [markdown]
# Compare the two tables at the row "block 0 out": after one block, how close to the top is
# each answer, and what is above " Warsaw"? Section 7 measures over many capitals and many towns
# how far from the top each answer is after block 0, and from which depth it stays on top.
#
# ### The lens at every position
#
# At every position the model predicts the *next* token. So at position $i$ we track the
# token that actually comes next in the prompt; at the last position, the answer. The heatmap
# shows $\log_{10}(\text{rank} + 1)$ of that token: 0 (rank 0, darkest blue) means the lens already
# has it on top.


# %%
def next_token_ranks(model, cache, tokens, final_answer):
    """[n_layers + 1, pos] rank of the true next token (and of `final_answer` at the last position)."""
    targets = tokens[0, 1:].tolist() + [final_answer]
    columns = [answer_rank_per_layer(logit_lens(model, cache, pos), target) for pos, target in enumerate(targets)]
    return torch.stack(columns, dim=1)


tokens = model.to_tokens(PROMPT)
ranks_by_position = next_token_ranks(model, cache, tokens, answer_id)
x_labels = [
    f"{label} → {next_token!r}" for label, next_token in zip(position_labels(str_tokens), str_tokens[1:] + [ANSWER])
]
fig = heatmap(
    torch.log10(ranks_by_position.float() + 1),
    title=f"Logit lens on {MODEL_NAME}: log10(rank + 1) of the next token, by layer and position",
    x_title="position: input token → token to predict",
    y_title="residual stream after …",
    x_labels=x_labels,
    y_labels=ROW_LABELS,
    color_title="log10(rank+1)",
    diverging=False,
)
fig.update_coloraxes(colorscale="Blues_r")
fig.show()
final_top1_fraction = (ranks_by_position[-1] == 0).float().mean().item()
print(f"fraction of positions where the final row has the true next token on top: {final_top1_fraction:.2f}")

# %% [markdown]
# Rows go down from the embeddings to the final residual. Look for the columns that turn dark
# early (tokens that the embeddings and the first
# block alone can predict, such as the continuation of a repeated phrase) and compare them
# with the answer's column on the far right.

# %% [markdown]
# ## 3. Between attention and MLP: `resid_mid`
#
# Each block adds two things to the stream: first its attention output (giving
# `hook_resid_mid`), then its MLP output (giving `hook_resid_post`). Decoding `resid_mid`
# as well splits each step of the lens in two, so we can tell whether a block's attention or
# its MLP moved the answer. `accumulated_resid(incl_mid=True)` gives the residuals in order
# (`0_pre, 0_mid, 1_pre, 1_mid, …, final_post`); we decode them with your `decode_residual`.

# %%
fine_resid, fine_labels = cache.accumulated_resid(incl_mid=True, pos_slice=-1, return_labels=True)
fine_lens = decode_residual(model, fine_resid[:, 0])  # [2 * n_layers + 1, d_vocab]
fine_ranks = answer_rank_per_layer(fine_lens, answer_id)
fine_logprobs = fine_lens.log_softmax(dim=-1)[:, answer_id]
for label, rank, logprob in zip(fine_labels, fine_ranks, fine_logprobs):
    print(f"{label:>11}: rank {rank.item():>5}   log P({ANSWER!r}) = {logprob.item():7.2f}")

block_names = [f"{'attn' if i % 2 == 0 else 'mlp'} {i // 2}" for i in range(len(fine_labels) - 1)]
gains = fine_logprobs[1:] - fine_logprobs[:-1]
fig = bar(
    gains,
    labels=block_names,
    title=f"{MODEL_NAME}: change in log P({ANSWER!r}) across each attention and MLP block (logit lens, last position)",
    x_title="block",
    y_title="Δ log-probability of the answer",
)
fig.show()

# %% [markdown]
# Each bar is the change in the answer's logit-lens log-probability from a block's input to its
# output. A tall positive bar is a block that pushes the answer up; a negative one pushes it
# down.
#
# **Question.** Which block raises the answer's log-probability the most? Write it as
# `"attn L"` or `"mlp L"`.

# %% tags=["exercise"]
answer_biggest_block = ...

# %%
checks.test_answer_biggest_block(answer_biggest_block)

# %% [markdown]
# ## 4. Which MLP promotes the answer?
#
# The seed's experiment on gpt2-medium asked whether an MLP is what puts " Warsaw" above
# " Poland" (a country the model could simply copy from the prompt). Its recipe: take the
# residual after block $\ell$, subtract that block's own MLP output, decode, and see whether the
# answer now loses to another token. Subtracting `mlp_out` from `resid_post` of the same layer
# leaves that layer's `resid_mid`, so this is the section 3 lens read the other way round:
# "what would the lens say here if this MLP had written nothing?"
#
# ### Exercise 4.1 — the lens without a layer's own MLP
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def logits_before_mlp(
    model: TransformerBridge, cache: ActivationCache, layer: int, pos: int = -1
) -> Float[Tensor, " d_vocab"]:
    """Logits at `pos` read from resid_post of `layer` minus that layer's own MLP output.

    Subtract cache["mlp_out", layer][0, pos] from cache["resid_post", layer][0, pos] and decode
    the result (model.ln_final on the edited vector, then W_U and b_U). Returns [d_vocab].
    """
    raise NotImplementedError("logits_before_mlp: subtract the layer's MLP output, then decode")


# %%
checks.test_logits_before_mlp(logits_before_mlp)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Two cache entries at the same layer and position, one subtraction, then exercise 1.1.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `cache["resid_post", layer][0, pos] - cache["mlp_out", layer][0, pos]` is the vector; decode
# it with `decode_residual`. (It equals `cache["resid_mid", layer][0, pos]`.)
# </details>
#
# For every layer: the answer's rank and the top token with and without that MLP. Where the
# rank is much worse without the MLP, that MLP is what lifted the answer at that depth, and the
# top token without it is what the answer loses to.


# %%
def before_mlp_table(model, cache, answer_token):
    """Per layer: answer rank and top token after the block, and the same without its MLP."""
    print(f"{'layer':<7}{'rank with':>10}{'top with':>14}{'rank without':>14}{'top without':>14}")
    ranks_by_layer = []
    for layer in range(n_layers):
        with_mlp = decode_residual(model, cache["resid_post", layer][0, -1])
        without = logits_before_mlp(model, cache, layer)
        ranks = answer_rank_per_layer(torch.stack([with_mlp, without]), answer_token).tolist()
        tops = [model.to_string(row.argmax()) for row in (with_mlp, without)]
        ranks_by_layer.append((ranks[1] - ranks[0], layer, tops[1]))
        print(f"{layer:<7}{ranks[0]:>10}{tops[0]!r:>14}{ranks[1]:>14}{tops[1]!r:>14}")
    lost, layer, top = max(ranks_by_layer)
    print(f"-> without MLP {layer} the answer falls {lost} places at that depth, below {top!r}\n")


print("town prompt, last token", repr(str_tokens[-1]))
before_mlp_table(model, cache, answer_id)
print("capital prompt, last token", repr(model.to_str_tokens(checks.CAPITAL_PROMPT.text)[-1]))
before_mlp_table(model, capital_cache, capital_id)

# %% [markdown]
# Which MLP lifts the answer most at its own depth, on both prompts? And what is the token that
# wins without it: another country, the subject, or something else? (Compare it with the last
# token of each prompt. The model's unembedding is its embedding transposed, so a residual that
# still holds little more than the current token's embedding decodes as that token.) The next
# exercises ask the same question of the *final* output instead of one depth.
#
# ### Exercise 4.2 — remove one MLP from the final residual
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪


# %% tags=["exercise"]
def logits_without_mlp(
    model: TransformerBridge, cache: ActivationCache, layer: int, pos: int = -1
) -> Float[Tensor, " d_vocab"]:
    """Logits at `pos` when MLP `layer`'s output is removed from the final residual.

    Take the final residual cache["resid_post", n_layers - 1][0, pos], subtract
    cache["mlp_out", layer][0, pos], and decode it: model.ln_final (recomputing the edited
    vector's statistics), then W_U and b_U. Returns [d_vocab].
    """
    raise NotImplementedError("logits_without_mlp: subtract, then decode")


# %%
checks.test_logits_without_mlp(logits_without_mlp)

# %% [markdown]
# For each MLP: where does the answer end up, by how much does it beat its strongest rival
# (the top other token of the normal run), and what does the model predict instead?

# %%
final_logits = decode_residual(model, cache["resid_post", n_layers - 1][0, -1])
rival_id = int(final_logits.scatter(0, torch.tensor([answer_id]), -torch.inf).argmax())


def removal_table(model, cache, answer_token, rival_token, k=3):
    """Print, for the normal run and with each MLP removed: answer rank, answer - rival logit, top k."""
    rows = [("normal run", decode_residual(model, cache["resid_post", n_layers - 1][0, -1]))]
    rows += [(f"without mlp {layer}", logits_without_mlp(model, cache, layer)) for layer in range(n_layers)]
    answer, rival = model.to_string(answer_token), model.to_string(rival_token)
    print(f"{'':<15}{'rank':>6}  {'logit ' + repr(answer) + ' - ' + repr(rival):>28}   top {k}")
    for label, row in rows:
        rank = answer_rank_per_layer(row[None], answer_token)[0].item()
        diff = (row[answer_token] - row[rival_token]).item()
        tokens = top_k_per_layer(model, row[None], k)[0]
        print(f"{label:<15}{rank:>6}  {diff:>28.2f}   {' | '.join(repr(t) for t in tokens)}")


removal_table(model, cache, answer_id, rival_id)

# %% [markdown]
# Read the second column: the answer's logit minus the rival's. If it drops a lot when one MLP
# is removed, that MLP's direct output is what keeps the answer ahead.

# %% [markdown]
# ### Exercise 4.3 — which MLP matters most?
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# Summarise each removal by one number: the change in the answer's **log-probability**
# (removed minus normal). Log-probabilities, unlike raw logits, account for every other token
# that moved too. A negative value means that the MLP was helping the answer.


# %% tags=["exercise"]
def mlp_removal_effect(
    model: TransformerBridge, cache: ActivationCache, answer_token: int, pos: int = -1
) -> Float[Tensor, " layer"]:
    """Change in log P(answer_token) at `pos` when each MLP's output is removed from the final residual.

    Returns [n_layers]: entry l = log_softmax(logits without MLP l)[answer_token]
    - log_softmax(normal logits)[answer_token]. Decode both as in logits_without_mlp.
    Negative = that MLP's direct output helped the answer.
    """
    raise NotImplementedError("mlp_removal_effect: one log-probability difference per layer")


# %%
checks.test_mlp_removal_effect(mlp_removal_effect)

# %%
effects = mlp_removal_effect(model, cache, answer_id)
capital_effects = mlp_removal_effect(model, capital_cache, capital_id)
fig = bar(
    torch.cat([effects, capital_effects]),
    labels=[f"town: mlp {layer}" for layer in range(n_layers)] + [f"capital: mlp {layer}" for layer in range(n_layers)],
    title=f"{MODEL_NAME}: change in the answer's log-probability when one MLP's output is removed",
    x_title="prompt and removed MLP",
    y_title="Δ log P(answer) (negative = the MLP helped)",
)
fig.show()
print("town prompt:   ", [round(v, 2) for v in effects.tolist()])
print("capital prompt:", [round(v, 2) for v in capital_effects.tolist()])

# The resid_mid lens of section 3 and the removal measure different things: compare them.
for layer in range(n_layers):
    print(
        f"mlp {layer}: Δ log P across the block in the lens {gains[2 * layer + 1].item():+6.2f}   "
        f"direct removal from the final residual {effects[layer].item():+6.2f}"
    )

# %% [markdown]
# The two columns need not agree. The lens gain of an MLP is how much the answer's
# log-probability rises when that MLP's output joins the stream *at that depth*. The removal
# effect is how much the *final* output still depends directly on that output, once everything
# written after it is in the stream too: later blocks may have read the MLP's output and
# repeated or amplified its message (the direct effect is then smaller than the lens gain), or
# written against it. Measuring the **total** effect, including everything later blocks did
# because of the MLP, needs re-running the model with the MLP patched: chapter 04.

# %% [markdown]
# **Question.** On the town prompt, which MLP layer's removal hurts the answer most?
# Give its index (an `int`).

# %% tags=["exercise"]
answer_most_important_mlp = ...

# %%
checks.test_answer_most_important_mlp(answer_most_important_mlp)

# %% [markdown]
# ### Exercise 4.4 — causal tracing: is the answer read from the subject's last token?
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# Meng et al. (2022) found in GPT models that a fact is looked up at the subject's **last
# token** in middle MLPs and then moved to the final position. Test that here. Swap the
# subject for another one of the same token length and a different answer (the *corrupted*
# run: the answer's probability collapses), then restore, at one position, the clean run's
# residual before block $\ell$, and see how much of the answer's probability comes back:
#
# $$\text{recovered}_\ell = \frac{p_\ell - p_\text{corrupted}}{p_\text{clean} - p_\text{corrupted}},$$
#
# 0 = nothing comes back, 1 = all of it. Rows as in the logit lens: `resid_pre` of each block,
# then the last block's `resid_post`. `checks.subject_swap(prompt)` gives the two token
# sequences and the position of the subject's last token.


# %% tags=["exercise"]
def causal_trace(
    model: TransformerBridge,
    clean_tokens: Int[Tensor, "1 pos"],
    corrupted_tokens: Int[Tensor, "1 pos"],
    answer_token: int,
    subject_pos: int,
) -> Float[Tensor, " layer_plus_one"]:
    """Recovered share of P(answer) at the last position when the clean residual is restored at subject_pos.

    Entry l < n_layers restores blocks.{l}.hook_resid_pre; the last entry restores
    blocks.{n_layers - 1}.hook_resid_post. Each entry is (p - p_corrupted) / (p_clean - p_corrupted).
    Use model.run_with_hooks; the hooks must not stay on the model.
    """
    raise NotImplementedError("causal_trace: one patched run per row, then normalise")


# %%
checks.test_causal_trace(causal_trace)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Three kinds of runs: the clean one (cache it), the corrupted one, and one corrupted run per
# row in which a hook overwrites a single position of the residual stream.
# </details>
#
# <details><summary>Hint 2</summary>
#
# A hook is `def restore(resid, hook): resid[:, subject_pos] = clean_cache[name][:, subject_pos]; return resid`,
# passed as `model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, restore)])`. The
# probabilities come from `softmax(dim=-1)` of the logits at position -1.
# </details>

# %%
town_swap = checks.subject_swap(town, model)
town_str = model.to_str_tokens(town_swap.clean)
print(
    f"subject {town.subject!r} swapped for {town_swap.other_subject!r}; "
    f"subject's last token: {town_str[town_swap.subject_pos]!r} at position {town_swap.subject_pos}"
)
town_trace = causal_trace(model, town_swap.clean, town_swap.corrupted, answer_id, town_swap.subject_pos)
capital_swap = checks.subject_swap(checks.CAPITAL_PROMPT, model)
capital_trace = causal_trace(model, capital_swap.clean, capital_swap.corrupted, capital_id, capital_swap.subject_pos)
fig = line(
    torch.stack([town_trace, capital_trace]),
    x=ROW_LABELS,
    series=[f"town ({town.subject} → {town_swap.other_subject})", f"capital (Poland → {capital_swap.other_subject})"],
    title=f"{MODEL_NAME}: share of P(answer) recovered by restoring the subject's last token",
    x_title="clean residual restored after …",
    y_title="recovered share",
)
fig.show()
for label, trace in (("town", town_trace), ("capital", capital_trace)):
    print(f"{label:<8}", "  ".join(f"{row} {v:+.2f}" for row, v in zip(ROW_LABELS, trace.tolist())))

# %% [markdown]
# On the capital prompt the subject is one token: restoring it at the embeddings restores the
# whole subject, so that row recovers everything; from "block 0 out" on, how much comes back?
# On the town prompt, does restoring the *last* token of the town's name, at any depth, bring
# the answer back? If not, where else could the final position be reading the town from?
# (Section 7 puts one answer to the test.)

# %% [markdown]
# ## 5. Beyond the logit lens: a tuned lens
#
# The logit lens assumes that an early residual already speaks the final layer's "language".
# It need not: early layers may store the answer in directions that later blocks rotate or
# rescale before the unembedding reads them. A **tuned lens** (Belrose et al., 2023) learns,
# for each layer $\ell$, an affine **translator** $h \mapsto hW_\ell + b_\ell$ that maps the
# layer-$\ell$ residual to a guess of the final residual, then decodes that guess as usual.
#
# We measure both lenses the same way: the **KL divergence** from the model's final
# distribution to the lens's distribution, averaged over many tokens,
#
# $$\mathrm{KL}(P_\text{final}\,\|\,P_\ell) = \sum_v P_\text{final}(v)\,\big(\log P_\text{final}(v) - \log P_\ell(v)\big),$$
#
# which is 0 when the lens at layer $\ell$ already predicts exactly what the model will output.
#
# ### Exercise 5.1 — KL to the final distribution
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def kl_to_final(layer_logits: Float[Tensor, "layer *pos d_vocab"]) -> Float[Tensor, "layer *pos"]:
    """KL(P_final || P_layer) for each row, where P_final is the distribution of the LAST row.

    layer_logits: [layer, d_vocab] or [layer, pos, d_vocab]; softmax over the last dimension.
    Returns [layer] or [layer, pos], in nats, summed over the vocabulary; the last row gives 0.
    """
    raise NotImplementedError("kl_to_final: log_softmax, then sum P_final * (log P_final - log P_layer)")


# %%
checks.test_kl_to_final(kl_to_final)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# The formula is a sum over the vocabulary of one product per token; P_final is the last row.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Work with `log_softmax(dim=-1)` throughout; `logp[-1:]` keeps the layer dimension so it
# broadcasts against all rows. If you use `F.kl_div(input, target)`, note that `input` must be
# log-probabilities of the layer, `target` the final distribution, and that its default
# `reduction="mean"` averages over the vocabulary too (use `reduction="none"` and sum).
# </details>
#
# ### Exercise 5.2 — fit an affine translator
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵⚪⚪⚪
#
# Belrose et al. train translators by gradient descent on the KL. A fast and close cousin
# (Din et al., 2023) fits them by **least squares**, which has a closed form: find $W, b$
# minimising $\sum_i \lVert h^{(i)}_\text{from} W + b - h^{(i)}_\text{to} \rVert^2$ over many
# tokens $i$. Append a column of ones to $h_\text{from}$ to fold $b$ into $W$, then call
# `torch.linalg.lstsq`.


# %% tags=["exercise"]
def fit_affine_translator(
    h_from: Float[Tensor, "n d_model"], h_to: Float[Tensor, "n d_model"]
) -> tuple[Float[Tensor, "d_model d_model"], Float[Tensor, " d_model"]]:
    """Least-squares affine map from one residual stream to another: h_to ≈ h_from @ W + b.

    h_from, h_to: n tokens' residual vectors (n much larger than d_model).
    Returns (W [d_model, d_model], b [d_model]) in h_from's dtype.
    """
    raise NotImplementedError("fit_affine_translator: least squares with a column of ones")


# %%
checks.test_fit_affine_translator(fit_affine_translator)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# An affine map is a linear map on `h_from` with one extra input that is always 1.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `X = torch.cat([h_from, torch.ones(n, 1)], dim=1)` has shape `[n, d_model + 1]`;
# `torch.linalg.lstsq(X, h_to).solution` has shape `[d_model + 1, d_model]`: its last row is
# `b`, the rest is `W`. Solving in float64 (`.double()`) is more accurate; convert back at the end.
# </details>
#
# Now train and test the lens on the course's own generated English (short stories, IOI
# sentences and fact lines; `facts-4l` was trained on stories and facts): we run the model on it, keep every residual stream
# except the BOS position, fit one translator per layer on one sample and measure the KL on
# another.


# %%
def residual_stack(model, tokens, rows_per_run=8):
    """[n_layers + 1, n_tokens, d_model]: resid_pre of every layer and the final residual, BOS dropped.
    Runs ``rows_per_run`` rows at a time, so that the logits (of a hub model's 50k-token vocabulary) stay small."""
    wanted = {f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)}
    wanted.add(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post")
    parts = []
    for start in range(0, tokens.shape[0], rows_per_run):
        _, text_cache = model.run_with_cache(
            tokens[start : start + rows_per_run], names_filter=lambda name: name in wanted
        )
        stack = text_cache.accumulated_resid()  # [n_layers + 1, batch, pos, d_model]
        parts.append(stack[:, :, 1:].reshape(stack.shape[0], -1, stack.shape[-1]))
    return torch.cat(parts, dim=1)


train_resid = residual_stack(model, checks.text_batch(model, n_rows=48, seq_len=64, seed=0))
test_resid = residual_stack(model, checks.text_batch(model, n_rows=16, seq_len=64, seed=1))
print(f"{train_resid.shape[1]} training tokens, {test_resid.shape[1]} test tokens, d_model = {d_model}")

translators = [fit_affine_translator(train_resid[layer], train_resid[-1]) for layer in range(n_layers)]
tuned_test = torch.stack([test_resid[layer] @ W + b for layer, (W, b) in enumerate(translators)] + [test_resid[-1]])


def mean_kl_per_layer(model, resid, tokens_per_step=256):
    """[layer]: mean over tokens of KL(P_final || P_layer) for a [layer, token, d_model] stack, one layer
    and ``tokens_per_step`` tokens at a time (all at once would be [layer, token, d_vocab]: gigabytes on a hub model)."""
    total = torch.zeros(resid.shape[0])
    for start in range(0, resid.shape[1], tokens_per_step):
        part = resid[:, start : start + tokens_per_step]
        final = decode_residual(model, part[-1:])
        total += torch.stack(
            [
                kl_to_final(torch.cat([decode_residual(model, part[layer : layer + 1]), final]))[0].sum()
                for layer in range(part.shape[0])
            ]
        )
    return total / resid.shape[1]


kl_logit_lens = mean_kl_per_layer(model, test_resid)
kl_tuned_lens = mean_kl_per_layer(model, tuned_test)
for label, a, b in zip(ROW_LABELS, kl_logit_lens, kl_tuned_lens):
    print(f"{label:<14} KL logit lens {a.item():6.3f}   KL tuned lens {b.item():6.3f}")
print(
    "tuned lens below the logit lens at every row but the last:", bool((kl_tuned_lens[:-1] < kl_logit_lens[:-1]).all())
)

# %%
fig = line(
    torch.stack([kl_logit_lens, kl_tuned_lens])[:, :-1],  # the last row is 0 for both: left out of the log scale
    x=ROW_LABELS[:-1],
    series=["logit lens", "tuned lens (least-squares translators)"],
    title=f"{MODEL_NAME}: KL from the final distribution, per layer, on held-out course text",
    x_title="residual stream after …",
    y_title="mean KL(P_final || P_lens) (nats)",
)
fig.update_yaxes(type="log")
fig.show()

# %% [markdown]
# Both lenses give KL 0 at the last row by construction (the final residual is decoded as it
# is), so the plot leaves that row out and uses a logarithmic axis. The gap between the curves
# at a layer measures how much of what that layer "knows" the plain logit lens fails to read.
# (Figure: the model named in `MODEL_NAME`, held-out generated English.)
#
# ## 6. Try it yourself
#
# - Change `PROMPT` to another town (`recall.few_shot_prompt("country", "Alden Selby", 2, random.Random(0))`)
#   or to another relation: `recall.few_shot_prompt("language", "Poland", 2, random.Random(0))` asks
#   which language is spoken there. Does the answer rise as late, and is the same MLP the one
#   that matters?
# - Restore the clean residual at *every* position of the town's name at once, instead of its
#   last token: what does the tracing curve look like then?
# - Corrupt the way Meng et al. did: instead of swapping the town, add Gaussian noise (about three
#   times the standard deviation of `model.W_E`) to the embeddings of the town's tokens with a hook
#   on `hook_embed`, and trace again. Does the last token's curve change?
# - **Online:** set `MODEL_NAME = "gpt2-medium"` in the parameters cell (the model of the
#   original sheet) and run everything again: the lens gets one row per layer, plus one. The
#   hub model does not know our invented towns; try it on the capital prompt and on real
#   facts of your own. The figures above come from the model named in `MODEL_NAME`.

# %%
language = recall.few_shot_prompt("language", "Poland", 2, random.Random(0))
language_logits, language_cache = model.run_with_cache(language.text)
print(repr(language.text), "→", repr(language.answer))
lens_table(model, logit_lens(model, language_cache), model.to_single_token(language.answer))
print(
    "MLP removal effects:",
    [round(v, 2) for v in mlp_removal_effect(model, language_cache, model.to_single_token(language.answer)).tolist()],
)

# %% [markdown]
# ## 7. What we found
#
# The numbers below are computed on the course model `facts-4l` (whatever `MODEL_NAME` is) over
# held-out prompts: towns asked in a Q/A form never trained for them, and capitals in the bare
# form "The capital of X is" and in Q/A form. Top-1 is over all the prompts of a group; the
# other figures are over the prompts the model answers (a fact it does not know has no
# mechanism to find). `checks.findings()` computes them with the
# functions of this chapter plus one measure from chapter 04's toolbox (zeroing an MLP's output
# and **re-running** the model, which counts its total effect, not only its direct one);
# `tests/test_findings_02.py` asserts every sentence of this section, so a retrained model
# that tells another story fails the tests instead of leaving this text wrong.

# %%
found = checks.findings()
for group in (found.towns, found.capitals_bare, found.capitals_qa):
    print(f"{group.name} ({group.n} prompts): top-1 {group.top1:.2f}")
    print("   median rank of the answer:", "  ".join(f"{row} {r:g}" for row, r in zip(ROW_LABELS, group.median_rank)))
    print(
        f"   median row from which the answer stays on top: {ROW_LABELS[int(group.top1_depth)] if group.top1_depth <= n_layers else 'never'}"
    )
    print("   nats lost when one MLP is zeroed (re-run):", [round(v, 2) for v in group.mlp_zero_nats])
    print(
        "   nats lost when one MLP is removed from the final residual only:",
        [round(v, 2) for v in group.mlp_direct_nats],
    )
print(
    f"towns, causal tracing at the subject's last token ({found.n_traced} prompts), mean recovered share:",
    "  ".join(f"{row} {v:+.2f}" for row, v in zip(ROW_LABELS, found.tracing)),
)
print(
    "towns, the same restoring every token of the name:",
    "  ".join(f"{row} {v:+.2f}" for row, v in zip(ROW_LABELS, found.tracing_whole_subject)),
)

# %% [markdown]
# What `facts-4l` does, read from the lines above:
#
# - **Every answer is built over depth.** For towns and for both forms of the capitals
#   (although the bare form was never trained), the answer is far from the top after block 0
#   (median rank 10 or more) and the median row from which it stays top-1 is "block 2 out" or
#   later; the seed's "The capital of Poland is" rises the same way (section 2). For towns the
#   median rank falls block after block, never rising again on the way to the top.
# - **MLP 0 matters most, and MLP 3 promotes the towns' answers.** Zeroing MLP 0 and re-running
#   costs more nats than zeroing any other MLP, for towns and capitals alike; for towns,
#   removing MLP 0's output from the final residual alone costs less than half of that, so later
#   blocks carry its effect to the output. Among the later MLPs, MLP 3 costs the towns' answer
#   the most (more than 1 nat), and nearly all of that directly: it writes the country into the
#   final residual, as the MLP in the seed's gpt2-medium experiment does.
# - **The answer is assembled at the final position, not at the subject.** Restoring the
#   town's last token, at any depth, recovers less than half of the answer's probability: the
#   final position reads the town's tokens itself, rather than a last token enriched with the
#   country (the picture Meng et al. found in GPT models). The "Exploratory runs" table of
#   `models/facts-4l/MODEL_CARD.md` lists the training variants that tried to give this model such
#   a hub (more layers, other phrasings, other positional embeddings); none did.
# - **The name is read over several blocks.** Restoring *every* token of the town's name after
#   block 0 still brings back more than half of the answer, less after block 1 and less again
#   after block 2: the final position keeps reading the name in blocks 1 to 3, not only in block 0.

# %% [markdown]
# ## Check your understanding
#
# 1. If `ln_final` had weight 1 and bias 0 (a freshly initialised LayerNorm), could you detect
#    the "LayerNorm applied twice" bug by comparing the lens's last row with the model's logits?
#    (`True` or `False`.)
# 2. Online, with `MODEL_NAME = "gpt2-medium"` (24 layers), how many rows would
#    `logit_lens(model, cache)` return? (An `int`.)

# %% tags=["exercise"]
answer_ln_twice_detectable_with_fresh_ln = ...
answer_gpt2_medium_lens_rows = ...

# %%
checks.test_answer_ln_twice_detectable_with_fresh_ln(answer_ln_twice_detectable_with_fresh_ln)
checks.test_answer_gpt2_medium_lens_rows(answer_gpt2_medium_lens_rows)

# %% [markdown]
# ## Summary
#
# - Decoding a residual = `ln_final` (once, with that vector's own statistics) → `W_U` → `+ b_U`.
#   The logit lens does it for `resid_pre` of every layer plus the final residual; its last row
#   is the model's output, which is the test that catches a doubled LayerNorm.
# - Rank (0 = top), probability, reciprocal rank and top-k strings are four views of each row.
# - Decoding `resid_mid` splits every layer into its attention and MLP steps.
# - Subtracting a layer's own MLP output from its `resid_post` (the seed's experiment) shows what
#   that MLP lifted to the top at that depth; removing one MLP's output from the final residual
#   and re-decoding measures its direct effect on the answer.
# - Causal tracing restores one clean activation in a corrupted run and asks how much of the
#   answer comes back: it locates *where* (position and depth) the model reads what it needs.
# - On `facts-4l`: answers rise over the blocks for capitals and towns alike, MLP 0 matters most
#   (mostly through later blocks) and MLP 3 writes the towns' countries, and the answer is
#   assembled at the final position, which reads the town's name over blocks 0 to 3, rather than
#   at the subject's last token (section 7).
# - A tuned lens replaces the identity with a per-layer affine translator, fitted here by least
#   squares on the model's own text; compare its KL to the final distribution with the logit
#   lens's, layer by layer, to see how much the plain lens misses.
# - A lens gain and a direct-removal effect answer different questions; total effects need
#   patching (chapter 04).
#
# ## Going further
#
# - nostalgebraist (2020), *interpreting GPT: the logit lens* (LessWrong): the original idea and pictures on GPT-2.
# - Belrose et al. (2023), *Eliciting Latent Predictions from Transformers with the Tuned Lens*: translators trained on KL.
#   Try it: start from your least-squares translators, make `W` and `b` trainable, and take
#   Adam steps on `kl_to_final` of the decoded guesses. Does the held-out KL drop further?
# - Din et al. (2023), *Jump to Conclusions: Short-Cutting Transformers with Linear Transformations*: least-squares maps between layers.
# - Geva et al. (2022), *Transformer Feed-Forward Layers Build Predictions by Promoting Concepts in the Vocabulary Space*.
# - Meng et al. (2022), *Locating and Editing Factual Associations in GPT*: MLPs and factual recall.
# - TransformerLens: `cache.accumulated_resid`, `cache.decompose_resid`, `cache.logit_lens`.
# - Next: chapter 03 decomposes the final residual into every component and attributes the
#   logits to them exactly.
