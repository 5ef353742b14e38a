# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Hooks basics: reading and editing a transformer's activations
#
# A trained transformer is a pile of matrices, and the only way to find out *how* it computes
# its next-token predictions is to look at what flows between those matrices while it runs.
# TransformerLens makes this easy: it gives every intermediate tensor (an **activation**) a
# stable name, lets you keep all of them from one forward pass (a **cache**), and lets you
# attach your own functions (**hooks**) that read or replace an activation in the middle of the
# forward pass. Every later chapter of this course is built on these three moves. In this one you
# learn them on a tiny model of Python code, and you check your understanding the hard way:
# by recomputing the model's attention yourself and matching its numbers to 4 decimals.
#
# **Learning goals.** By the end of this chapter you can
# - load a model, read its configuration, and find its hook points by name;
# - go from text to tokens and back, score the model's next-token predictions (and follow one
#   expected answer's rank through a prompt), and say what the BOS token is for;
# - read activation shapes from a cache instead of assuming them (an MLP's neurons are `d_mlp`
#   wide, not `d_model`);
# - run the model with a cache and recompute an attention layer by hand (scores, pattern,
#   `z`, output) from the cached activations;
# - write hooks that record and hooks that edit, run them without leaving them behind, and
#   measure what an attention head is worth by ablating it;
# - draw attention patterns with circuitsvis.
#
# **Prerequisites.** Python and PyTorch tensors (indexing, broadcasting; `einsum` helps), and
# the idea of self-attention (queries, keys, values, softmax). This is the first chapter.
#
# **Estimated time.** 2 to 3 hours.
#
# **How to work.** Each exercise is one function with a docstring that fixes its inputs and
# outputs. Replace `raise NotImplementedError(...)` with your code and run the check cell below
# it: it compares your function with a reference on real inputs and says, in one line, what is
# wrong. Difficulty is marked 🔴 and importance 🔵, out of five. Hints hide in collapsed blocks.

# %% [markdown]
# ## Set-up

# %%
# Without the course installed (Colab, JupyterHub)? Run first: %pip install "git+<repository URL>"
import functools
import time
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notice when ipywidgets is absent

import circuitsvis as cv
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import utilities
from transformer_lens.model_bridge import TransformerBridge

from course_utils import bar, heatmap, load_model, position_labels
from course_utils.checks import hooks_basics as checks

torch.set_grad_enabled(False)  # this chapter only runs the model forward: no gradients needed
print("torch", torch.__version__)

# %% [markdown]
# The parameters cell picks the model. The default is a **course model**: it ships with the
# repository (`models/`), loads offline in a moment, and the text below was written for it. When you are online you can swap in a hub model; the code runs unchanged,
# but the numbers and figures will differ (the checks always use the course model).

# %% tags=["parameters"]
HUB_MODEL_NAME = "hub:attn-only-2l"  # the original experiment's model on the Hugging Face hub ("gpt2-small" runs too)
MODEL_NAME = "attn-only-2l"  # offline course model; online (or after `make download`): MODEL_NAME = HUB_MODEL_NAME

# %% [markdown]
# ## 1 · The model and its hook points
#
# `load_model` returns a `TransformerBridge`: the model's own PyTorch modules, wrapped so that
# every activation has a TransformerLens name, in eval mode (dropout off). Its configuration
# lives in `model.cfg`.

# %%
start = time.perf_counter()
model = load_model(MODEL_NAME)
print(f"loaded {MODEL_NAME} in {time.perf_counter() - start:.2f} s")
cfg = model.cfg
pd.Series(
    {
        "n_layers": cfg.n_layers,
        "n_heads (per layer)": cfg.n_heads,
        "d_model (residual stream width)": cfg.d_model,
        "d_head (query/key/value width of one head)": cfg.d_head,
        "d_vocab (tokens in the vocabulary)": cfg.d_vocab,
        "n_ctx (longest input)": cfg.n_ctx,
        "attn_only (no MLP layers)": cfg.attn_only,
        "normalization_type": cfg.normalization_type,
    },
    name=MODEL_NAME,
)

# %% [markdown]
# The course model `attn-only-2l` has two layers, each made of attention heads only (no MLPs),
# with a LayerNorm before each attention layer and before the unembedding. The repository's own
# scripts trained it on a CPU, on Python source code and on random-token sequences that repeat
# themselves; `models/attn-only-2l/MODEL_CARD.md` says exactly how, and what it learned
# (previous-token heads in layer 0 and induction heads in layer 1, which chapter 5 takes apart).
# It is a small model and a weak predictor of code, which suits this chapter: we are here to learn
# the tools, and every number is checked against the model's own. Note that
# `d_model = n_heads × d_head` here, as in most transformers.
#
# Printing the model shows its **module tree**: the embedding, the positional embedding, the
# blocks (`ln1` then `attn`, whose `q`, `k`, `v`, `o` are the four linear maps), the final
# LayerNorm and the unembedding.

# %%
print(model)


# %% [markdown]
# A **hook point** is an identity module placed at one spot of the forward pass, with a name such
# as `blocks.0.attn.hook_pattern`. It does nothing to the tensor that passes through it, but
# you can attach a function to it, and that function then sees the tensor (to record it) and may
# return a replacement (to edit it). `model.hook_dict` maps every name to its hook point. Some
# names are **aliases**: the familiar TransformerLens name and the name of the bridge module it
# sits on lead to the same hook point (`hook_z` *is* the input of the output projection `o`).

# %%
names = list(model.hook_dict)
print(f"{len(names)} hook-point names, {len({id(hp) for hp in model.hook_dict.values()})} distinct hook points")
print("hook_z is o.hook_in:", model.hook_dict["blocks.0.attn.hook_z"] is model.hook_dict["blocks.0.attn.o.hook_in"])
print("\nnames in block 0:")
for name in names:
    if name.startswith("blocks.0."):
        print("  ", name)

# %% [markdown]
# A model with MLP layers has more modules and more hook points. The course's `gelu-4l` (used from
# chapter 2 on) has an `ln2` and an `mlp` in every block; here are its block-0 MLP hook points
# (`hook_pre` is before the GELU, `hook_post` after it, `hook_mlp_out` the MLP's output):

# %%
mlp_model = load_model("gelu-4l")  # a course model, always offline; section 4 uses it again
print([name for name in mlp_model.hook_dict if name.startswith("blocks.0.") and "mlp" in name])

# %% [markdown]
# ## 2 · Tokens
#
# The model reads **tokens**, integer ids of text pieces, not characters. Five methods convert:
#
# | method | from → to |
# |---|---|
# | `model.to_tokens(text)` | text → `Int[Tensor, "batch pos"]`, BOS first |
# | `model.to_str_tokens(text)` | text → list of token strings, BOS first |
# | `model.to_single_token(" return")` | a string that is exactly one token → its id |
# | `model.to_string(tokens)` | ids → text |
#
# Our text for the whole chapter is a paragraph of Python, the kind of text this model knows.

# %%
CODE_TEXT = '''def count_words(lines):
    """Return a dict that maps each word to the number of times it appears."""
    counts = {}
    for line in lines:
        for word in line.split():
            counts[word] = counts.get(word, 0) + 1
    return counts


def most_common(counts, n=3):
    """Return the n words with the highest counts."""
    return sorted(counts, key=counts.get, reverse=True)[:n]
'''

tokens = model.to_tokens(CODE_TEXT)
str_tokens = model.to_str_tokens(CODE_TEXT)
print("tokens:", tuple(tokens.shape), tokens[0, :8].tolist(), "...")
print("as strings:", str_tokens[:12], "...")
print("' return' is token", model.to_single_token(" return"))
print("to_string(tokens without BOS) gives back the text:", model.to_string(tokens[0, 1:]) == CODE_TEXT)

# %% [markdown]
# **The BOS token.** `to_tokens` puts a *beginning of sequence* token first (here
# `<|endoftext|>`). Every training sequence of the course models started with it, so the model
# expects it. It does two jobs:
#
# 1. The logits at position *i* are the model's guess for token *i + 1*. With BOS at position 0,
#    the model makes a guess for the text's first token too; without it, the first token is never
#    predicted, and every position is one step off from what the model saw in training.
# 2. Attention heads must spread a total weight of 1 over the earlier positions. BOS gives a head
#    with nothing useful to read a place to put that weight (we measure this in section 6).
#
# BOS is never a *target*: nothing predicts it. So a text of *n* tokens gives *n* predictions.

# %%
without_bos = model.to_tokens(CODE_TEXT, prepend_bos=False)
print("with BOS:", tokens.shape[1], "tokens; without:", without_bos.shape[1])
print("first tokens with BOS:   ", model.to_str_tokens(tokens[0, :4]))
print("first tokens without BOS:", model.to_str_tokens(without_bos[0, :4]))
try:
    model.to_single_token("return counts")
except Exception as err:  # more than one token
    print(f"to_single_token('return counts') fails: {type(err).__name__}")

# %% [markdown]
# ### Exercise 1 · How often is the model's top guess right?
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# Run the model on a text and count how many of the text's tokens its **argmax** (the highest
# logit) predicts correctly. `model(tokens)` returns logits of shape `[batch, pos, d_vocab]`.


# %% tags=["exercise"]
def count_correct_predictions(model: TransformerBridge, text: str) -> tuple[int, int]:
    """How many next tokens of ``text`` the model's top prediction (argmax) gets right.

    Tokenise ``text`` with BOS (the default), run the model, and compare the argmax of the
    logits at each position with the token that really comes next.

    Returns ``(n_correct, n_total)`` as two ints: ``n_total`` is the number of predictions that
    have a target, i.e. the number of tokens of the text (BOS excluded).
    """
    raise NotImplementedError("count the correct next-token predictions")


# %%
checks.test_count_correct_predictions(count_correct_predictions)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Which token does the prediction made at each position try to guess? Pair every prediction
# with its target before you compare.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The logits at position `i` predict the token at `i + 1`: line up `logits[0, :-1]` with
# `tokens[0, 1:]`. Then `(predictions == targets).sum()` counts the matches; `int(...)` or
# `.item()` turns a one-element tensor into a Python number.
# </details>

# %% [markdown]
# Which tokens does the model get right? The table lists the correct predictions: the token the
# model has just read, its top guess for the next one, and the true next token (spaces are shown
# as `␣` and newlines as `↵`; the index is the position of the token just read).


# %%
def visible(token: str) -> str:
    """A token with its spaces and newlines made visible."""
    return token.replace(" ", "␣").replace("\n", "↵")


logits = model(tokens)
predicted = logits[0, :-1].argmax(dim=-1)
targets = tokens[0, 1:]
predictions = pd.DataFrame(
    {
        "after": [visible(t) for t in str_tokens[:-1]],
        "top guess": [visible(t) for t in model.to_str_tokens(predicted)],
        "true next": [visible(t) for t in str_tokens[1:]],
        "correct": (predicted == targets).tolist(),
    }
)
print(f"{MODEL_NAME}: {int(predictions.correct.sum())} of {len(predictions)} top guesses are correct")
predictions[predictions.correct]

# %% [markdown]
# Read the correct guesses above. Could the model make each of them from the token just before
# (a common pair of tokens), or does it need an earlier token, such as a name defined before? Only
# the second kind needs attention, and attention is what we open up next. (On the course model,
# expect few correct guesses: it is small and briefly trained. A hub model gets many more.)
#
# ## 3 · Logits and the loss
#
# `model(tokens)` returns **logits** of shape `[batch, pos, d_vocab]`: `logits[b, i]` scores every
# vocabulary token as the continuation of `tokens[b, : i + 1]`. Softmax turns them into
# probabilities. The **loss** is the mean, over every position except the last, of
# $-\log p(\text{true next token})$: the cross-entropy the model was trained to minimise.
#
# `return_type` chooses what the forward returns: `"logits"` (the default), `"loss"`, `"both"`
# (a tuple) or `None` (nothing, useful when only hooks matter).

# %%
loss = model(tokens, return_type="loss")
log_probs = logits.log_softmax(dim=-1)
by_hand = -log_probs[0, :-1].gather(dim=-1, index=tokens[0, 1:, None]).mean()
per_token = utilities.lm_cross_entropy_loss(logits, tokens, per_token=True)
print(f"loss from the model: {loss.item():.4f}; by hand: {by_hand.item():.4f}")
print("per-token loss shape:", tuple(per_token.shape), "(one value per prediction)")
logits_again, loss_again = model(tokens, return_type="both")
print("return_type='both' gives", tuple(logits_again.shape), "and", round(loss_again.item(), 4))

# %%
bar(
    per_token[0],
    labels=position_labels(str_tokens)[1:],
    title=f"{MODEL_NAME}: loss on each token of the code paragraph",
    x_title="target token (position: token)",
    y_title="cross-entropy (nats)",
)

# %% [markdown]
# In the bar chart, low bars are tokens the model found easy. Look for repeated names (such as
# the second and third `counts`): the figure shows whether this model predicts those better than
# their first occurrence.
#
# ### Exercise 2 · Where does the answer become predictable?
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# TransformerLens's `test_prompt(prompt, answer)` prints the rank and probability of an expected
# answer after a prompt. A more telling view follows the answer through the prompt: at every
# position, how does the model rank it as the *next* token? Where the rank drops, something in
# the context has just made the answer predictable.


# %% tags=["exercise"]
def answer_rank_and_prob(
    model: TransformerBridge, prompt: str, answer: str
) -> tuple[Int[Tensor, "pos"], Float[Tensor, "pos"]]:
    """Rank and probability of ``answer`` (exactly one token) in the prediction made at every position of ``prompt``.

    ``prompt`` is tokenised with BOS. ``ranks[p]`` counts the tokens whose logit at position ``p`` is
    strictly larger than the answer's (0 = the model's top guess); ``probs[p]`` is the answer's
    softmax probability there. The last entry is the prediction that follows the whole prompt.
    """
    raise NotImplementedError("the answer's rank and probability at every position")


# %%
checks.test_answer_rank_and_prob(answer_rank_and_prob)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# One forward pass gives the logits at every position; the answer is one column of them.
# </details>
#
# <details><summary>Hint 2</summary>
#
# A rank is a count: how many tokens beat the answer at that position? Compare every logit with
# the answer's logit at the same position (keep a dimension so that it broadcasts).
# </details>
#
# <details><summary>Hint 3</summary>
#
# `a = model.to_single_token(answer)`, `logits = model(model.to_tokens(prompt))[0]`, then
# `(logits > logits[:, a : a + 1]).sum(dim=-1)` and `logits.softmax(dim=-1)[:, a]`.
# </details>

# %% [markdown]
# The prompt below repeats `for item in`: the second time, the answer ` items` is in the context.

# %%
PROMPT, ANSWER = "for item in items:\n    print(item)\nfor item in", " items"
answer_ranks, answer_probs = answer_rank_and_prob(model, PROMPT, ANSWER)
prompt_labels = position_labels(model.to_str_tokens(PROMPT))
print(
    pd.DataFrame(
        {
            "after": prompt_labels,
            f"rank of {ANSWER!r}": answer_ranks.tolist(),
            f"P({ANSWER!r})": [f"{p:.4f}" for p in answer_probs.tolist()],
        }
    ).to_string(index=False)
)
bar(
    answer_probs,
    labels=prompt_labels,
    title=f"{MODEL_NAME}: probability that the next token is {ANSWER!r}, after each token of the prompt",
    x_title="position: token just read",
    y_title=f"P({ANSWER!r})",
)

# %% [markdown]
# Read the table from the top. Where does the rank of ` items` first fall, and what has the model
# just read there? A rank that stays in the thousands means the model sees no reason for the
# answer yet; a rank near 0 at the very end, after the second `in`, means the model copies from
# the first line (chapter 5 finds the heads that do it).
#
# ## 4 · Running with a cache
#
# `logits, cache = model.run_with_cache(tokens)` runs the model once and keeps every activation
# in an `ActivationCache`, a dictionary from hook-point name to tensor. Here is every entry with
# its shape (module-level `hook_in`/`hook_out` names left out: they duplicate the familiar names).

# %%
logits, cache = model.run_with_cache(tokens)
cache_table = pd.DataFrame(
    [(name, tuple(act.shape)) for name, act in cache.items() if not name.endswith(("hook_in", "hook_out"))],
    columns=["hook point", "shape"],
)
print(f"{len(cache)} cache entries; without the module-level duplicates: {len(cache_table)}")
pd.set_option("display.max_rows", 100)
cache_table

# %% [markdown]
# Read the shapes. Per-head activations are `[batch, pos, head, d_head]` (`hook_q`, `hook_k`,
# `hook_v`, `hook_z`); attention patterns are `[batch, head, query_pos, key_pos]`; residual-stream
# activations (`hook_resid_pre`, `hook_attn_out`, `hook_resid_post`) are `[batch, pos, d_model]`.
#
# You don't have to type full names: `cache["pattern", 0]` is short for
# `cache["blocks.0.attn.hook_pattern"]`, and `utilities.get_act_name` builds a full name from a
# short one (you will use it to name hooks).

# %%
print(utilities.get_act_name("pattern", 0), utilities.get_act_name("z", 1), utilities.get_act_name("resid_pre", 1))
print("cache['pattern', 0] is the full name's entry:", cache["pattern", 0] is cache["blocks.0.attn.hook_pattern"])
print("cache['resid_pre', 1]:", tuple(cache["resid_pre", 1].shape))

# %% [markdown]
# ### Exercise 3 · Which neurons fire?
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵⚪⚪⚪
#
# `attn-only-2l` has no MLPs, so this exercise uses `mlp_model` (`gelu-4l`) from section 1. An
# MLP layer maps each position's residual vector to `d_mlp` **neurons**, applies its
# nonlinearity, and maps the neurons back to `d_model`. Before you write the function, find out
# from a cache of `mlp_model` which of its MLP hook points holds one number per neuron, and how
# wide it is — look at the shapes, don't assume them.


# %% tags=["exercise"]
def top_neurons(
    model: TransformerBridge, tokens: Int[Tensor, "batch pos"], layer: int, pos: int, k: int = 5
) -> tuple[Int[Tensor, "k"], Float[Tensor, "k"]]:
    """The ``k`` neurons of MLP ``layer`` that fire most at position ``pos`` of the first sequence, largest first.

    A neuron's activation is its entry of ``blocks.{layer}.mlp.hook_post`` (after the nonlinearity),
    whose shape is ``[batch, pos, d_mlp]``. Returns ``(neuron indices, their activations)``.
    """
    raise NotImplementedError("the largest entries of one position of hook_post")


# %%
checks.test_top_neurons(top_neurons)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Run the model with a cache (a name filter keeps only the hook point you need), pick the first
# sequence and the position, and take the `k` largest entries.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `tensor.topk(k)` returns both `.indices` and `.values`, largest first.
# </details>

# %% [markdown]
# The three MLP hook points of block 0 of `mlp_model` on the code paragraph, with their shapes,
# and the neurons that fire most on one token:

# %%
mlp_tokens = mlp_model.to_tokens(CODE_TEXT)
_, mlp_cache = mlp_model.run_with_cache(
    mlp_tokens, names_filter=lambda name: name.startswith("blocks.0.") and "mlp" in name
)
mlp_shapes = {name: tuple(act.shape) for name, act in mlp_cache.items() if not name.endswith(("hook_in", "hook_out"))}
for name, shape in mlp_shapes.items():
    print(f"{name:28} {shape}")
print(f"d_model = {mlp_model.cfg.d_model}, d_mlp = {mlp_model.cfg.d_mlp}")
neuron_pos = 5
neurons, activations = top_neurons(mlp_model, mlp_tokens, 0, neuron_pos)
print(
    f"after {mlp_model.to_str_tokens(mlp_tokens[0])[neuron_pos]!r}, the most active neurons of MLP 0:",
    ", ".join(f"{int(n)} ({a:.2f})" for n, a in zip(neurons, activations)),
)

# %% [markdown]
# Notice which shapes end in `d_mlp` and which in `d_model`: `hook_pre` and `hook_post` are the
# neurons, one number each, before and after the nonlinearity; only `hook_mlp_out` is back in
# the residual stream. Notes that give `hook_post` a width of `d_model` are wrong — and code
# that reads neuron 300 of `hook_mlp_out` reads a direction of the residual stream, not a neuron.

# %% [markdown]
# One caveat of TransformerLens 4.3 on the course models: the cache also has
# `blocks.L.attn.hook_attn_scores`, but the bridge fills it *after* the softmax, so it holds the
# pattern, not the pre-softmax scores that older tutorials describe. The next cell tests this on
# the loaded model; either way, you are about to compute the real scores yourself.

# %%
print("attn_scores equal to pattern in layer 0:", torch.allclose(cache["attn_scores", 0], cache["pattern", 0]))

# %% [markdown]
# ## 5 · Attention by hand
#
# One attention layer, for head $h$ and positions $i$ (query) and $j$ (key), with $x$ the
# LayerNorm-ed residual stream:
#
# $$q_{i,h} = x_i W_Q^h + b_Q^h,\quad k_{j,h} = x_j W_K^h + b_K^h,\quad v_{j,h} = x_j W_V^h + b_V^h$$
#
# $$\text{score}_{h,i,j} = \frac{q_{i,h}\cdot k_{j,h}}{\sqrt{d_\text{head}}}\ \ (j \le i),\qquad
# \text{score}_{h,i,j} = -\infty\ \ (j > i)$$
#
# $$\text{pattern}_{h,i,:} = \operatorname{softmax}_j(\text{score}_{h,i,:}),\qquad
# z_{i,h} = \sum_j \text{pattern}_{h,i,j}\, v_{j,h},\qquad
# \text{attn\_out}_i = \sum_h z_{i,h} W_O^h + b_O$$
#
# The $-\infty$ is the **causal mask**: a position may read itself and earlier positions, never
# later ones, so after the softmax every future key gets weight exactly 0. The division by
# $\sqrt{d_\text{head}}$ keeps scores from growing with the head width. The cache holds `q`, `k`,
# `v`, `pattern`, `z` and `attn_out`, so you can check every step. The checks feed your functions
# the course model's cached activations for two code snippets.

# %% [markdown]
# ### Exercise 4 · Attention scores
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪


# %% tags=["exercise"]
def attention_scores(
    q: Float[Tensor, "batch pos head d_head"], k: Float[Tensor, "batch pos head d_head"]
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """Scaled, causally masked attention scores.

    ``scores[b, h, i, j] = q[b, i, h] · k[b, j, h] / sqrt(d_head)`` for keys j <= i, and
    ``-inf`` for keys j > i (a query may not look at later positions). Do not modify
    ``q`` or ``k`` (they come from the cache): build new tensors.
    """
    raise NotImplementedError("compute the scaled, masked scores")


# %%
checks.test_attention_scores(attention_scores)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Every query position against every key position, for each head: a batched dot product over
# `d_head`, then the scale, then the causal mask.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `torch.einsum("bqhd,bkhd->bhqk", q, k)` computes every dot product at once, already in the
# `[batch, head, q_pos, k_pos]` order. For the mask, `torch.triu(torch.ones(n, n, dtype=torch.bool),
# diagonal=1)` is True exactly above the diagonal (key after query); `scores.masked_fill(mask,
# float("-inf"))` returns a masked copy. Create the mask on `q.device` if you use a GPU.
# </details>

# %% [markdown]
# ### Exercise 5 · The attention pattern
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵🔵


# %% tags=["exercise"]
def attention_pattern(
    q: Float[Tensor, "batch pos head d_head"], k: Float[Tensor, "batch pos head d_head"]
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """The attention pattern: for each query, a softmax over keys of the scaled, masked scores.

    Each row ``pattern[b, h, i, :]`` sums to 1 and is 0 for keys after ``i``. You may call
    your ``attention_scores``.
    """
    raise NotImplementedError("scale, mask, softmax")


# %%
checks.test_attention_pattern(attention_pattern)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Mask **before** the softmax, with `-inf`: `exp(-inf) = 0`, so masked keys get weight 0 and each
# row still sums to 1. The softmax runs over the keys, the last dimension: `.softmax(dim=-1)`.
# </details>
#
# Your pattern against the model's own, on the chapter's paragraph:

# %%
for layer in range(cfg.n_layers):
    mine = attention_pattern(cache["q", layer], cache["k", layer])
    print(
        f"layer {layer}: largest difference from cache['pattern', {layer}] = {(mine - cache['pattern', layer]).abs().max().item():.2e}"
    )

# %% [markdown]
# ### Exercise 6 · `z` of one head at one position
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# `z` is what a head reads: at query position `pos`, the values of all positions, weighted by
# that query's row of the pattern.


# %% tags=["exercise"]
def head_z(
    pattern: Float[Tensor, "batch head q_pos k_pos"],
    v: Float[Tensor, "batch pos head d_head"],
    head: int,
    pos: int,
) -> Float[Tensor, "batch d_head"]:
    """``z`` of head ``head`` at query position ``pos``.

    ``z[b] = sum over keys j of pattern[b, head, pos, j] * v[b, j, head]``. ``pos`` may be
    negative (``-1`` = last position), as in Python indexing.
    """
    raise NotImplementedError("weight the values by one row of the pattern")


# %%
checks.test_head_z(head_z)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# `z` at one position is a weighted average of the value vectors of every key position, with
# the pattern's row as the weights.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `pattern[:, head, pos, :]` is `[batch, k_pos]` and `v[:, :, head, :]` is `[batch, k_pos, d_head]`;
# multiply with broadcasting and sum over keys, or use `einsum("bk,bkd->bd", ...)`.
# </details>

# %%
last = tokens.shape[1] - 1
print(
    "head_z at layer 0, head 0, last position equals the cached z:",
    torch.allclose(head_z(cache["pattern", 0], cache["v", 0], 0, last), cache["z", 0][:, last, 0], atol=1e-5),
)

# %% [markdown]
# ### Exercise 7 · From `z` to the layer's output
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# Each head maps its `z` back to the residual stream with its own slice of the output matrix,
# `W_O[head]` of shape `[d_head, d_model]`; the heads' results are summed and one bias `b_O` is
# added. `model.W_O` is `[layer, head, d_head, d_model]` and `model.b_O` is `[layer, d_model]`.

# %%
print("W_O:", tuple(model.W_O.shape), " b_O:", tuple(model.b_O.shape), " z:", tuple(cache["z", 0].shape))


# %% tags=["exercise"]
def attn_out_from_z(
    z: Float[Tensor, "batch pos head d_head"],
    W_O: Float[Tensor, "head d_head d_model"],
    b_O: Float[Tensor, " d_model"],
) -> Float[Tensor, "batch pos d_model"]:
    """The attention layer's output (``hook_attn_out``) from its heads' ``z``.

    ``attn_out[b, p] = sum over heads h of z[b, p, h] @ W_O[h]``, plus ``b_O`` once.
    ``W_O`` and ``b_O`` are one layer's: ``model.W_O[layer]``, ``model.b_O[layer]``.
    """
    raise NotImplementedError("project every head's z and sum")


# %%
checks.test_attn_out_from_z(attn_out_from_z)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Each head maps its `z` to `d_model` with its own slice of `W_O`; the layer's output is the sum
# over heads, plus one bias.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `torch.einsum("bphd,hdm->bpm", z, W_O)` multiplies and sums over both `head` and `d_head` in
# one go. Equivalently: flatten `z` to `[batch, pos, head*d_head]` and `W_O` to
# `[head*d_head, d_model]` and use `@`.
# </details>

# %%
for layer in range(cfg.n_layers):
    mine = attn_out_from_z(cache["z", layer], model.W_O[layer], model.b_O[layer])
    print(
        f"layer {layer}: largest difference from cache['attn_out', {layer}] = {(mine - cache['attn_out', layer]).abs().max().item():.2e}"
    )

# %% [markdown]
# ## 6 · Hooks
#
# A **hook function** takes the activation and the hook point, `fn(activation, hook)`. It may
# read the activation (and store what it learns somewhere), and it may return a tensor of the
# same shape to replace it; returning `None` keeps the activation as it is now. `hook.name`
# is the hook point's name (for an aliased point, the bridge's module name: a hook on
# `blocks.0.attn.hook_z` sees `blocks.0.attn.o.hook_in`) and `hook.layer()` its layer. You attach hooks for one forward pass
# with `model.run_with_hooks(tokens, fwd_hooks=[(name, fn), ...])`; instead of a name you may
# give a **filter**, a function of the name such as `lambda name: name.endswith("pattern")`, and
# the hook is attached to every matching hook point.
#
# **A hook that records.** How much attention does each head pay to BOS? The hook below stores
# one number per head in a dictionary that we pass in with `functools.partial`, so the hook
# reads no global variable and the result lives outside the forward pass.


# %%
def record_bos_attention(pattern: Float[Tensor, "batch head q_pos k_pos"], hook, store: dict) -> None:
    """Store the mean attention to BOS (key 0) per head, over queries 1.. (query 0 can only see BOS)."""
    store[hook.layer()] = pattern[:, :, 1:, 0].mean(dim=(0, 2)).cpu()


bos_attention: dict[int, Tensor] = {}
model.run_with_hooks(
    tokens,
    return_type=None,
    fwd_hooks=[(lambda name: name.endswith("pattern"), functools.partial(record_bos_attention, store=bos_attention))],
)
bos_table = torch.stack([bos_attention[layer] for layer in range(cfg.n_layers)])
# a head that spread its attention evenly over keys 0..q would give BOS 1 / (q + 1) at query q
uniform = (1.0 / torch.arange(2, tokens.shape[1] + 1)).mean()
print("mean attention to BOS, rows = layers, columns = heads:\n", bos_table.numpy().round(3))
print(f"a head attending uniformly to all earlier positions would score {uniform:.3f}")
heatmap(
    bos_table,
    title=f"{MODEL_NAME}: mean attention to BOS per head (code paragraph)",
    x_title="head",
    y_title="layer",
    color_title="attention to BOS",
    diverging=False,
)

# %% [markdown]
# Compare each head with the uniform baseline printed above. A head well above it parks its
# attention on BOS when it finds nothing it is looking for (in trained language models, many heads
# put most of their weight on BOS); a head well below it actively looks elsewhere; a head near it
# is not singling BOS out. The same baseline applies to the previous-token table below, because
# query q has q + 1 keys to choose from.
#
# ### Exercise 8 · A recording hook: attention to the previous token
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# A **previous-token head** attends from each position to the position just before it. Measure,
# for every head, the mean of `pattern[b, h, q, q - 1]` over the batch and over query positions
# `q = 1 … pos-1`, **with a hook** (not a cache): one forward pass, one hook on every pattern.


# %% tags=["exercise"]
def previous_token_attention(model: TransformerBridge, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "layer head"]:
    """Mean attention from each query position to the position just before it, per layer and head.

    ``out[layer, head]`` is the mean of ``pattern[b, head, q, q - 1]`` over the batch and over
    query positions ``q = 1 … pos-1`` (position 0 has no previous token). Record it with a hook
    on every ``hook_pattern``; the hook must only read the pattern, and no hook may stay attached.
    """
    raise NotImplementedError("record the previous-token attention with a hook")


# %%
checks.test_previous_token_attention(previous_token_attention)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# `pattern.diagonal(offset=-1, dim1=-2, dim2=-1)` is `[batch, head, pos-1]`: the entries
# `pattern[..., q, q - 1]` for `q = 1 … pos-1`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Store results in a dictionary that you create inside your function and that the hook closes
# over (or pass it with `functools.partial`), keyed by `hook.layer()`; after
# `model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(filter, fn)])`, stack the rows.
# </details>

# %%
prev_table = previous_token_attention(model, tokens)
print("previous-token attention, rows = layers, columns = heads:\n", prev_table.cpu().numpy().round(3))
heatmap(
    prev_table,
    title=f"{MODEL_NAME}: mean attention to the previous token (code paragraph)",
    x_title="head",
    y_title="layer",
    color_title="attention to previous token",
    diverging=False,
)

# %% [markdown]
# A head with a value near 1 would be a **previous-token head**: almost all its attention goes
# one position back. Compare the values with the uniform baseline of the BOS table: does this
# model have such a head? (Its model card reports a previous-token score per head, measured on
# other text.)
# Previous-token heads are half of an **induction circuit**, which chapter 5 takes apart.
#
# **A hook that edits.** To **zero-ablate** a head we set its `z` to 0 at every position, so the
# head writes nothing to the residual stream, and we compare the loss with the clean one. The
# hook below edits the activation in place and returns it (returning a new tensor works too).


# %%
def zero_head_z(z: Float[Tensor, "batch pos head d_head"], hook, head: int) -> Float[Tensor, "batch pos head d_head"]:
    """Zero-ablate one head: set its z to 0 at every position."""
    z[:, :, head, :] = 0.0
    return z


clean_loss = model(tokens, return_type="loss").item()
ablated_loss = model.run_with_hooks(
    tokens, return_type="loss", fwd_hooks=[(utilities.get_act_name("z", 0), functools.partial(zero_head_z, head=0))]
).item()
print(f"{MODEL_NAME}: clean loss {clean_loss:.4f}; with head 0.0 zero-ablated {ablated_loss:.4f}")

# %% [markdown]
# **Three ways to attach hooks.**
#
# - `model.run_with_hooks(tokens, fwd_hooks=[...])`: the hooks live for one forward pass.
# - `with model.hooks(fwd_hooks=[...]):` every forward pass inside the block is hooked; the hooks
#   are removed when the block ends, even if an error is raised inside it.
# - `model.add_hook(name, fn)`: the hook stays attached **until you remove it** with
#   `model.reset_hooks()`.
#
# The third is the classic bug of interpretability notebooks: a hook added in one cell silently
# changes every later result, including results you think are "clean".

# %%
with model.hooks(fwd_hooks=[(utilities.get_act_name("z", 0), functools.partial(zero_head_z, head=0))]):
    print(f"inside `with model.hooks(...)`:  loss {model(tokens, return_type='loss').item():.4f}")
print(f"after the block:               loss {model(tokens, return_type='loss').item():.4f}")

model.add_hook(utilities.get_act_name("z", 0), functools.partial(zero_head_z, head=0))
print(f"after add_hook:                loss {model(tokens, return_type='loss').item():.4f}")
print(f"a later, 'clean' run:          loss {model(tokens, return_type='loss').item():.4f}  <- still ablated!")
print("hooks attached:", list(model.list_hooks()))
model.reset_hooks()
print(f"after reset_hooks():           loss {model(tokens, return_type='loss').item():.4f}")
print("hooks attached:", list(model.list_hooks()))

# %% [markdown]
# `model.list_hooks()` shows what is attached (the alias names of one hook point both appear).
# When in doubt, call `model.reset_hooks()`.
#
# ### Exercise 9 · What is a head worth?
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵🔵


# %% tags=["exercise"]
def head_ablation_loss(model: TransformerBridge, tokens: Int[Tensor, "batch pos"], layer: int, head: int) -> float:
    """Mean next-token loss when head ``head`` of layer ``layer`` is zero-ablated.

    Zero-ablate means: set that head's ``z`` (``blocks.{layer}.attn.hook_z``, shape
    ``[batch, pos, head, d_head]``) to 0 at every position. Return the loss of that run as a
    Python float, and leave no hook attached.
    """
    raise NotImplementedError("run with a hook that zeroes one head's z")


# %%
checks.test_head_ablation_loss(head_ablation_loss)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# One forward pass that returns the loss, with a hook on the layer's `hook_z` that zeroes one
# head; attach it so that it is gone afterwards.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Inside your function, define a hook that zeroes `z[:, :, head, :]` (it can read `head` from the
# enclosing function), then `model.run_with_hooks(tokens, return_type="loss",
# fwd_hooks=[(utilities.get_act_name("z", layer), hook)])`, and `.item()`.
# </details>
#
# Now the whole table: the loss increase caused by ablating each head, one at a time.

# %%
clean_loss = model(tokens, return_type="loss").item()
loss_increase = torch.tensor(
    [
        [head_ablation_loss(model, tokens, layer, head) - clean_loss for head in range(cfg.n_heads)]
        for layer in range(cfg.n_layers)
    ]
)
print(f"clean loss {clean_loss:.4f}; loss increase, rows = layers, columns = heads:\n", loss_increase.numpy().round(3))
heatmap(
    loss_increase,
    title=f"{MODEL_NAME}: loss increase when one head is zero-ablated (code paragraph)",
    x_title="head",
    y_title="layer",
    color_title="Δ loss (nats)",
)

# %% [markdown]
# Blue cells (positive values) are heads the model needs on this text; white cells, near 0, are
# heads it can do without here; a red cell (negative value) would mean the model does better on
# this paragraph without that head. One paragraph is a small sample: treat small differences
# with caution.
#
# ## 7 · Seeing attention: circuitsvis
#
# `circuitsvis` draws attention patterns in the notebook. `cv.attention.attention_patterns(tokens=str_tokens,
# attention=pattern[0])` shows one layer's heads (hover a token to see where it attends);
# `cv.attention.attention_heads` adds a name per head. Below: all heads of both layers of the
# model on the code paragraph, named `L{layer}H{head}`. In such a picture a previous-token head
# shows a bright line just below the diagonal and a BOS-heavy head a bright first column; compare
# what you see with the two tables of section 6.
#
# The previous-token heads keep their stripe over the whole paragraph. That took some care in
# training: the model's positional embeddings are a fixed table of sinusoids (as in the original
# transformer), so position 100 stands to position 99 as position 10 to position 9. With learned
# positional embeddings, an earlier version of this model lost the stripe after about position 70
# (its model card has the measurements, per 16 positions, in the table "behaviour by position").
# The next cell takes, at each position, the layer-0 head that attends most to the previous token,
# and averages that attention over the first and over the second half of this paragraph.

# %%
all_patterns = torch.cat([cache["pattern", layer][0] for layer in range(cfg.n_layers)]).cpu()
head_names = [f"L{layer}H{head}" for layer in range(cfg.n_layers) for head in range(cfg.n_heads)]
cv.attention.attention_heads(attention=all_patterns, tokens=str_tokens, attention_head_names=head_names)

# %%
prev_scores = cache["pattern", 0][0].diagonal(offset=-1, dim1=-2, dim2=-1).max(dim=0).values  # best layer-0 head
half = len(prev_scores) // 2
print(
    f"best layer-0 previous-token attention: {prev_scores[:half].mean():.2f} in the first {half} positions, "
    f"{prev_scores[half:].mean():.2f} after them ({len(str_tokens)} tokens)"
)

# %% [markdown]
# <div style="border:1px solid #888; padding: 0.5em 1em">
#
# **From `HookedTransformer` (older tutorials) to `TransformerBridge` (TransformerLens 4.x)**
#
# | older tutorials | this course |
# |---|---|
# | `HookedTransformer.from_pretrained("gpt2-small")` | `load_model("gpt2-small")` (a `TransformerBridge`, in eval mode) |
# | `from transformer_lens import utils`; `utils.get_act_name` | `from transformer_lens import utilities`; `utilities.get_act_name` |
# | `blocks.0.attn.hook_z`, `hook_pattern`, `hook_resid_pre`, … | the same names (aliases of the bridge's module hooks, e.g. `blocks.0.attn.o.hook_in`) |
# | `run_with_cache`, `run_with_hooks`, `hooks()`, `add_hook`, `reset_hooks` | unchanged |
# | `model.W_Q`, `W_O`, `b_O`, `W_U` | unchanged |
# | `hook_attn_scores` = masked pre-softmax scores | on the course models (TL 4.3) it holds the pattern: compute scores yourself |
# | models load in eval mode | bridges boot in training mode; `load_model` calls `.eval()` for you |
# </div>

# %% [markdown]
# ## Check your understanding
#
# **Q1.** A hook function zeroes part of the activation in place (`z[:, :, 3] = 0`) and then
# ends without a `return`. What does the rest of the forward pass use?
# (a) zeros everywhere; (b) the activation as it is after the in-place edit; (c) the original
# activation, as if the hook had not run; (d) nothing: it raises an error. Answer with a letter.

# %% tags=["exercise"]
answer_hook_returns_none = ...

# %%
checks.test_answer_hook_returns_none(answer_hook_returns_none)

# %% [markdown]
# **Q2.** `tokens` has shape `[1, 25]`: BOS and 24 tokens of text. Over how many predictions does
# `model(tokens, return_type="loss")` average?

# %% tags=["exercise"]
answer_n_loss_positions = ...

# %%
checks.test_answer_n_loss_positions(answer_n_loss_positions)

# %% [markdown]
# **Q3.** On the course model and the chapter's code paragraph, which head's ablation raises the
# loss most? Answer `(layer, head)`, read from your loss-increase table.

# %% tags=["exercise"]
answer_most_important_head = ...

# %%
checks.test_answer_most_important_head(answer_most_important_head)

# %% [markdown]
# **Q4.** You run `model.run_with_cache(tokens)` inside `with model.hooks(...)`, with a hook that
# zeroes head 2 of layer 0 in `blocks.0.attn.hook_z`. In that cache, what is
# `cache["pattern", 0][:, 2]`? (a) all zeros; (b) exactly the pattern of a clean run; (c) uniform
# attention; (d) it depends on the text. Answer with a letter.

# %% tags=["exercise"]
answer_pattern_after_z_ablation = ...

# %%
checks.test_answer_pattern_after_z_ablation(answer_pattern_after_z_ablation)

# %% [markdown]
# ## What we found
#
# Every sentence below is printed from numbers this notebook computed on the models you loaded
# (`attn-only-2l` by default, and `gelu-4l` for the MLP shapes); `tests/test_findings.py`
# recomputes them on the course models and fails if a retrained model stops bearing one out. On
# another model, a claim that does not hold is printed as such.

# %%
from course_utils.findings import hooks_findings, report

report(
    hooks_findings(
        n_correct=int(predictions.correct.sum()),
        n_total=len(predictions),
        prev_table=prev_table.cpu(),
        loss_increase=loss_increase,
        clean_loss=clean_loss,
        answer=ANSWER,
        answer_ranks=answer_ranks.tolist(),
        answer_probs=answer_probs.tolist(),
        mlp_shapes=mlp_shapes,
        d_model=mlp_model.cfg.d_model,
        d_mlp=mlp_model.cfg.d_mlp,
    )
)

# %% [markdown]
# ## Summary
#
# - `load_model` gives a `TransformerBridge`; `model.cfg` holds its sizes, `print(model)` its
#   module tree, and `model.hook_dict` its hook points, named like `blocks.L.attn.hook_pattern`.
# - `to_tokens` prepends BOS; the logits at position *i* predict token *i + 1*, so a text of *n*
#   tokens gives *n* predictions, and BOS is never a target.
# - `run_with_cache` keeps every activation; `cache["pattern", 0]` and `utilities.get_act_name`
#   save typing. Per-head activations are `[batch, pos, head, d_head]`, patterns
#   `[batch, head, q_pos, k_pos]`.
# - Attention is: scale q·k by 1/√d_head, mask future keys with -inf, softmax over keys, weight
#   the values (`z`), project with `W_O`, sum heads, add `b_O`. You reproduced the model's own
#   numbers.
# - `hook_pre` and `hook_post` hold an MLP's neurons, `[batch, pos, d_mlp]`; only `hook_mlp_out`
#   is back in the residual stream, `[batch, pos, d_model]`.
# - Hooks read or replace activations. Use `run_with_hooks` or `with model.hooks(...)`; a hook
#   added with `add_hook` stays until `reset_hooks()`. Keep what a hook records in a dict you
#   pass in, never in a global.
#
# ## Going further
#
# - Elhage et al., *A Mathematical Framework for Transformer Circuits* (2021): attention-only
#   models like this one, and why their heads can be read one by one.
# - Olsson et al., *In-context Learning and Induction Heads* (2022): what previous-token heads
#   are for (chapter 5 of this course).
# - Online: set `MODEL_NAME = "hub:attn-only-2l"` (the 2-layer attention-only model from the
#   TransformerLens hub, trained far longer than ours) or `"gpt2-small"` and run the notebook
#   again; compare the prediction count and the BOS, previous-token and ablation tables.
# - Try your own text: paste another piece of code into `CODE_TEXT`, or plain English, and see
#   how the counts, the BOS table and the ablation table change (the checks keep using the
#   original paragraph). Keep it within `cfg.n_ctx` tokens, BOS included: 128 for the course model.
# - Next: chapter 2 (`02_early_decoding`) decodes what every layer "thinks" the next token is.
