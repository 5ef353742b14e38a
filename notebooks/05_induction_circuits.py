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
# # 05 · Induction circuits: find, explain and grow the heads that copy
#
# Give a language model a sequence it has never seen, repeat it, and it predicts the second
# copy almost perfectly. Nothing in its weights knows the sequence: it **learns in context**,
# from the tokens in front of it. The simplest mechanism that does this is the **induction
# head**: an attention head that, at a token `A`, looks back for an earlier `A`, attends to the
# token that followed it (`B`), and copies `B` as its prediction — `… A B … A → B`. Induction
# heads appear in every transformer studied so far, they form suddenly during training (a
# *phase change*), and that moment is when models get much better at using their context
# (Olsson et al., 2022). They are also the smallest real **circuit** you can take apart
# completely: two heads in two layers, one reading the other's output. In this chapter you look
# for them in the course model `attn-only-2l`, measure what they do, read the mechanism straight
# from the weights, and finally watch a tiny model grow one while it trains.
#
# **Learning goals.** By the end of this chapter you can
# - measure in-context learning as the loss drop on a repeated random sequence;
# - detect head types (current-token, previous-token, first-token, induction) from attention
#   patterns with a score per head, and explain why any threshold on that score is a choice;
# - say which heads matter, by direct logit attribution, by zero- and mean-ablation, and by
#   ablating the previous-token head and watching the induction pattern break;
# - read the circuit from the weights with `FactoredMatrix`: the copying OV circuit of one head
#   and of all induction heads together, the positional QK circuit of the previous-token head,
#   Q-, K- and V-composition between the two layers, and which piece of the residual stream the
#   induction head's query and key read;
# - train a tiny attention-only model and see the induction phase change in its loss and scores.
#
# **Prerequisites.** Chapter 1 (`01_hooks_basics`: caches, hooks, attention patterns, ablation)
# and chapter 3 (`03_residual_stream`: direct logit attribution through the final LayerNorm).
#
# **Estimated time.** 3 to 4 hours.
#
# **How to work.** Each exercise is one function with a docstring that fixes its inputs and
# outputs. Replace `raise NotImplementedError(...)` with your code and run the check cell below
# it: it compares your function with a reference on real inputs and says, in one line, what is
# wrong. Difficulty is marked 🔴 and importance 🔵, out of five. Hints hide in collapsed blocks.

# %% [markdown]
# ## Set-up

# %%
# Without the course installed (Colab, JupyterHub)? Run first: %pip install "git+<repository URL>"
import math

import circuitsvis as cv
import einops
import torch
from IPython.display import display
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, FactoredMatrix
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from course_utils import heatmap, line, load_model, position_labels
from course_utils.checks import induction_circuits as checks
from course_utils.tasks import repeated
from course_utils.zoo.train import train

torch.set_grad_enabled(False)  # analysis only runs the model forward; the training cell turns gradients back on
torch.set_num_threads(
    1
)  # tiny models: extra CPU threads gain little, and cost a lot when other programs share the cores

# %% [markdown]
# The parameters cell picks the model and the size of the experiments. The default is the
# **course model** `attn-only-2l`: two layers of attention heads (no MLPs), trained by the
# repository's own scripts on Python code and on random-token sequences that repeat themselves
# (a random block repeated with a period that changes from row to row, or segments copied to
# random later positions), with its unembedding tied to its embedding during training
# (`models/attn-only-2l/MODEL_CARD.md`). It ships with the
# repository and loads offline. When you are online, `"hub:attn-only-2l"` loads the
# TransformerLens hub model of the same name, the one the original analyses used; the code runs
# unchanged, but the heads and numbers differ (the checks always use the course model).

# %% tags=["parameters"]
HUB_MODEL_NAME = "hub:attn-only-2l"  # the original experiment's model on the Hugging Face hub
MODEL_NAME = "attn-only-2l"  # offline course model; online (or after `make download`): MODEL_NAME = HUB_MODEL_NAME
SEQ_LEN = 50  # tokens in each copy of the random block
BATCH = 10  # repeated sequences per batch
TRAIN_STEPS = 400  # section 6: optimizer steps of the tiny model (raise it to train longer)

# %%
model = load_model(MODEL_NAME)
cfg = model.cfg
print(
    f"{MODEL_NAME}: {cfg.n_layers} layers × {cfg.n_heads} heads, d_model={cfg.d_model}, d_head={cfg.d_head}, "
    f"d_vocab={cfg.d_vocab}, n_ctx={cfg.n_ctx}, attn_only={cfg.attn_only}, normalization={cfg.normalization_type}"
)

# %% [markdown]
# ## 1 · In-context learning on repeated random tokens
#
# Random tokens are unpredictable: a model that has learnt anything about its training text
# still cannot guess the next one, and its loss there is about the loss of a uniform guess,
# $\ln(d_\text{vocab})$. Repeat the same random block once, and every token of the second copy
# *is* predictable — but only from the context. So the loss on the second copy against the
# first is a clean measurement of in-context learning, free of any knowledge stored in the weights.
#
# Our sequences are `BOS, x_1 … x_n, x_1 … x_n`: the BOS token (id 0 in the course tokenizer,
# `model.tokenizer.bos_token_id`), then `n = seq_len` random tokens, then the same tokens again,
# `1 + 2n` positions in all. Keep the positions in mind: the first copy sits at `1 … n`, the second
# at `n+1 … 2n`, and `x_i` appears at positions `i` and `n + i`.

# %% [markdown]
# ### Exercise 1 · Repeated random tokens
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def generate_repeated_tokens(
    model: TransformerBridge, seq_len: int, batch: int = 1, seed: int = 0
) -> Int[Tensor, "batch 1+2*seq_len"]:
    """BOS, then ``seq_len`` random tokens, then the same ``seq_len`` tokens again.

    Random tokens are uniform over ``[1, d_vocab)`` (never BOS, id 0), drawn from a
    ``torch.Generator`` seeded with ``seed`` so the same seed gives the same tokens; every row
    of the batch is a different sequence. Return a ``torch.long`` tensor on the model's device
    (``model.cfg.device``).
    """
    raise NotImplementedError("BOS + random block + the same block")


# %%
checks.test_generate_repeated_tokens(generate_repeated_tokens)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Build three pieces, a BOS column and the same random block twice, and join them along the
# position dimension.
# </details>
#
# <details><summary>Hint 2</summary>
#
# A `torch.Generator` seeded with `seed`, passed to `torch.randint` (low 1, high `d_vocab`), draws the
# block; `torch.full` makes the BOS column; `torch.cat(..., dim=1)` joins them.
# </details>
#
# <details><summary>Hint 3</summary>
#
# `g = torch.Generator().manual_seed(seed)`, `block = torch.randint(1, model.cfg.d_vocab, (batch, seq_len), generator=g)`,
# `bos = torch.full((batch, 1), model.tokenizer.bos_token_id)`, then `torch.cat([bos, block, block], dim=1)`.
# (`course_utils.tasks.repeated.repeated_tokens` does the same; the training code of section 6 uses it.)
# </details>

# %% [markdown]
# Run the model on a batch of repeated sequences, keeping every activation in a cache:

# %%
rep_tokens = generate_repeated_tokens(model, SEQ_LEN, BATCH, seed=0)
rep_logits, rep_cache = model.run_with_cache(rep_tokens)
print("rep_tokens:", tuple(rep_tokens.shape), "— first row begins", model.to_str_tokens(rep_tokens[0, :6]))
print("position", SEQ_LEN + 1, "repeats position 1:", model.to_str_tokens(rep_tokens[0, SEQ_LEN + 1 : SEQ_LEN + 4]))

# %% [markdown]
# ### Exercise 2 · Loss per token
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# The logits at position `p` are the model's prediction of the token at `p + 1`. The loss of that
# prediction is the negative log-probability the model gave to the token that really came next.


# %% tags=["exercise"]
def per_token_loss(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1"]:
    """Cross-entropy of each next-token prediction.

    ``out[b, p] = -log softmax(logits[b, p])[tokens[b, p + 1]]`` for ``p = 0 … pos-2``: the loss of
    the prediction made at position ``p`` (the last position predicts nothing in the sequence).
    """
    raise NotImplementedError("log_softmax, then pick the next token's log-probability")


# %%
checks.test_per_token_loss(per_token_loss)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Which positions have a next token, and which token is "next" for each of them? Line the logits
# up with the tokens shifted by one.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Take log-probabilities (not probabilities) over the vocabulary, drop the last position, and
# pick at each position the entry of the following token (`Tensor.gather` picks one entry per row).
# </details>
#
# <details><summary>Hint 3</summary>
#
# `log_probs = logits.log_softmax(dim=-1)[:, :-1]`, then
# `-log_probs.gather(dim=-1, index=tokens[:, 1:, None])[..., 0]`.
# </details>

# %% [markdown]
# Now the mean loss at every position, over the batch. The x axis is the position of the token
# being **predicted** (`1 … 2n`); the dashed line marks the end of the first copy, the dotted one
# the loss of a uniform guess.

# %%
rep_losses = per_token_loss(rep_logits, rep_tokens)  # [batch, 2 * SEQ_LEN]
fig = line(
    rep_losses.mean(0),
    x=list(range(1, 2 * SEQ_LEN + 1)),
    title=f"{MODEL_NAME}: loss on BOS + {SEQ_LEN} random tokens repeated (mean of {BATCH} sequences)",
    x_title="position of the predicted token",
    y_title="loss (nats)",
)
fig.add_vline(x=SEQ_LEN + 0.5, line_dash="dash", annotation_text="second copy starts")
fig.add_hline(y=math.log(cfg.d_vocab), line_dash="dot", annotation_text="ln(d_vocab)")
fig.show()
first_copy_loss = rep_losses[:, 1:SEQ_LEN].mean().item()  # predictions of x_2 … x_n
second_copy_loss = (
    rep_losses[:, SEQ_LEN + 1 :].mean().item()
)  # predictions of x_2 … x_n, second time (the chapter's one definition)
print(f"mean loss predicting the first copy (tokens 2…{SEQ_LEN}):  {first_copy_loss:.2f} nats")
print(f"mean loss predicting the second copy (tokens {SEQ_LEN + 2}…{2 * SEQ_LEN}): {second_copy_loss:.2f} nats")
print(f"uniform guess over d_vocab = {cfg.d_vocab} tokens: ln(d_vocab) = {math.log(cfg.d_vocab):.2f} nats")
ratio = second_copy_loss / first_copy_loss
print(
    f"second-copy loss / first-copy loss = {ratio:.2f}: "
    + (
        "the model predicts the repeat from its context."
        if ratio < 0.5
        else "no clear in-context copying on this model."
    )
)

# %% [markdown]
# **What to notice.** On the first copy no model can do better than guess, so the loss sits
# near (or above) the dotted line. A model that learns in context drops far below it from the
# second token of the second copy on; the last printed line compares the two means for the
# model you loaded. The first token of the second copy (position `n + 1`) stays unpredictable
# whatever the model: it follows `x_n`, which has no earlier occurrence to learn from. So the
# chapter's **second-copy loss** is always the mean loss of the predictions of `x_2 … x_n` in the
# second copy (made at positions `n+1 … 2n-1`), here and in every exercise below.

# %% [markdown]
# ## 2 · Looking at attention patterns
#
# An attention head's **pattern** `pattern[b, h, q, k]` is the weight that query position `q`
# gives to key position `k` (each row sums to 1; keys after the query get 0). circuitsvis draws
# the patterns of many heads at once: hover over a token to see where it looks. Below, all
# heads of both layers of `attn-only-2l`, first on a short piece of Python, then on a repeated
# random sequence (one row of 20 tokens repeated, so that it fits on screen).

# %%
CODE_TEXT = '''def mean(values):
    """Return the arithmetic mean of a list of numbers."""
    total = 0
    for value in values:
        total += value
    return total / len(values)
'''
code_tokens = model.to_tokens(CODE_TEXT)
code_logits, code_cache = model.run_with_cache(code_tokens)
head_names = [f"L{layer}H{head}" for layer in range(cfg.n_layers) for head in range(cfg.n_heads)]


def all_heads(cache: ActivationCache) -> Float[Tensor, "layer_head q k"]:
    """Every head's pattern for the first sequence of the batch, layer 0's heads first."""
    return torch.cat([cache["pattern", layer][0] for layer in range(cfg.n_layers)])


display(
    cv.attention.attention_heads(
        attention=all_heads(code_cache), tokens=model.to_str_tokens(code_tokens[0]), attention_head_names=head_names
    )
)

# %%
short_tokens = generate_repeated_tokens(model, 20, 1, seed=1)
_, short_cache = model.run_with_cache(short_tokens)
display(
    cv.attention.attention_heads(
        attention=all_heads(short_cache), tokens=model.to_str_tokens(short_tokens[0]), attention_head_names=head_names
    )
)

# %% [markdown]
# **What to look for** (in the course model's figures above; sections 3 to 5 measure every
# claim). A **previous-token head** draws a stripe just below the diagonal: every token looks at
# the token before it. A **first-token head** puts most of its weight on BOS, the column at the
# far left; heads often use BOS as a resting place when they have nothing to do. On the repeated
# sequence, an **induction head** draws a second stripe in the lower half, `n - 1` positions
# left of the diagonal: each token of the second copy looks at the token *after* its earlier
# copy. On the code paragraph the same head has far fewer repeats to latch on to.
#
# (Offline, circuitsvis embeds its JavaScript in each figure; if a figure stays blank, trust the
# heatmaps below, which show the same patterns.)

# %% [markdown]
# ## 3 · Detecting head types from their patterns
#
# Looking is a good start, but a model has many heads and we want numbers. Each head type is a
# **diagonal** of the pattern matrix `pattern[q, k]`, read with
# `pattern.diagonal(offset, dim1=-2, dim2=-1)`, which returns the entries `pattern[q, q + offset]`:
#
# | head type | attends from `q` to | diagonal | query positions averaged |
# |---|---|---|---|
# | current-token | `q` | `offset=0` | `1 … T-1` |
# | previous-token | `q - 1` | `offset=-1` | `1 … T-1` |
# | first-token | `0` | column 0: `pattern[..., 0]` | `1 … T-1` |
# | induction (on `BOS + x + x`) | `q - n + 1` | `offset=-(n-1)` | `n+1 … 2n` only |
#
# Query position 0 is left out of every score: BOS can only attend to itself, in every head, so
# it would add the same 1 everywhere. A head's **score** is the mean of its diagonal over those
# query positions and over the batch: a number between 0 and 1.
#
# To turn a score into a yes/no label we need a **threshold**, and any threshold is arbitrary:
# heads are not born in types, they sit on a continuum (a head can give 0.35 of its attention to
# the previous token and the rest elsewhere), and the scores move with the text you measure
# them on. The detectors below take the threshold as a parameter and return every head at or
# above it, with its score, so you can see how close the call was.

# %% [markdown]
# ### Exercise 3 · Three detectors
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# `cache["pattern", layer]` is `[batch, head, q, k]`; `cache.model.cfg.n_layers` gives the
# number of layers. Name each head `"layer.head"` (`"0.3"`), and return plain Python floats.


# %% tags=["exercise"]
def current_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> dict[str, float]:
    """Heads that attend to the current token.

    Score of a head: mean of ``pattern[b, head, q, q]`` over the batch and over the query
    positions ``q = 1 … T-1``. Return ``{"layer.head": score}`` for every head whose score is
    at least ``threshold`` (any order; ``threshold=0`` lists every head).
    """
    raise NotImplementedError("the main diagonal, without query 0")


# %%
checks.test_current_attn_detector(current_attn_detector)


# %% tags=["exercise"]
def prev_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> dict[str, float]:
    """Heads that attend to the previous token.

    Score of a head: mean of ``pattern[b, head, q, q - 1]`` over the batch and over the query
    positions ``q = 1 … T-1``. Return ``{"layer.head": score}`` for every head whose score is
    at least ``threshold``.
    """
    raise NotImplementedError("the diagonal just below the main one")


# %%
checks.test_prev_attn_detector(prev_attn_detector)


# %% tags=["exercise"]
def first_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> dict[str, float]:
    """Heads that attend to the first token (BOS).

    Score of a head: mean of ``pattern[b, head, q, 0]`` over the batch and over the query
    positions ``q = 1 … T-1``. Return ``{"layer.head": score}`` for every head whose score is
    at least ``threshold``.
    """
    raise NotImplementedError("column 0, without query 0")


# %%
checks.test_first_attn_detector(first_attn_detector)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# For each layer, read one diagonal (or column) of the pattern for every head at once, average it
# to one number per head, and keep the heads at or above the threshold.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `pattern.diagonal(offset, dim1=-2, dim2=-1)` returns `[batch, head, n]`. The `offset=-1` diagonal
# already starts at query 1; the main diagonal starts at query 0, which you must drop. Column 0
# from query 1 on is a plain slice of the pattern.
# </details>
#
# <details><summary>Hint 3</summary>
#
# `pattern.diagonal(offset=-1, dim1=-2, dim2=-1)`, `pattern.diagonal(offset=0, dim1=-2, dim2=-1)[..., 1:]`
# and `pattern[:, :, 1:, 0]`; then `.mean(dim=(0, 2)).tolist()` gives one float per head.
# </details>

# %% [markdown]
# The three detectors on the code paragraph, at the default threshold 0.4, and then how the
# list of previous-token heads changes with the threshold:


# %%
def show(scores: dict[str, float]) -> str:
    return ", ".join(f"{name} ({score:.2f})" for name, score in sorted(scores.items(), key=lambda kv: -kv[1])) or "none"


for kind, detector in [
    ("current", current_attn_detector),
    ("previous", prev_attn_detector),
    ("first", first_attn_detector),
]:
    print(f"{kind:>8}-token heads, code paragraph, score >= 0.4: {show(detector(code_cache))}")
print()
for threshold in (0.2, 0.3, 0.4, 0.5, 0.6):
    print(f"previous-token heads at threshold {threshold}: {show(prev_attn_detector(code_cache, threshold))}")

# %% [markdown]
# All the scores at once, threshold 0, as one heatmap (rows: score type and layer; columns: head).
# Scores come from the code paragraph (`attn-only-2l`).


# %%
def as_grid(scores: dict[str, float]) -> Float[Tensor, "layer head"]:
    grid = torch.zeros(cfg.n_layers, cfg.n_heads)
    for name, score in scores.items():
        layer, head = map(int, name.split("."))
        grid[layer, head] = score
    return grid


detector_grid = torch.cat(
    [
        as_grid(detector(code_cache, 0.0))
        for detector in (current_attn_detector, prev_attn_detector, first_attn_detector)
    ]
)
heatmap(
    detector_grid,
    title=f"{MODEL_NAME}: head scores on the code paragraph",
    x_title="head",
    y_title="score type, layer",
    x_labels=[str(h) for h in range(cfg.n_heads)],
    y_labels=[f"{kind} L{layer}" for kind in ("current", "previous", "first") for layer in range(cfg.n_layers)],
    color_title="mean attention",
    diverging=False,
).show()

# %% [markdown]
# **What to notice.** Read off which layer holds the strongest previous-token head(s), and
# which heads put most of their weight on BOS. Where the printed lists change between two
# thresholds, a head sits between them: calling it "a previous-token head" or not is your choice,
# not a fact about the model.

# %% [markdown]
# ### Exercise 4 · Induction score, in one pass without a cache
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵🔵
#
# On `BOS + x + x`, take query position `q = n + i` of the second copy: it holds `x_i`, whose
# earlier copy is at position `i`; the token after that copy, `x_{i+1}`, is at `i + 1 = q - n + 1`.
# That is where an induction head looks (not at `q - n`, the earlier copy itself: attending there
# is what a *duplicate-token* head does). The induction score of a head is the mean of
# `pattern[b, head, q, q - n + 1]` over the batch and over `q = n+1 … 2n` only: in the first
# copy there is nothing to induct from.
#
# A full cache keeps every activation of the run. For a score you need one number per head, so
# compute it *inside* a hook: `run_with_hooks` with a **name filter** — a function of the hook
# name that returns True for the hooks you want, here every `hook_pattern` — calls your hook
# on both layers' patterns in the same forward pass. In the hook, `hook.layer()` says which
# layer it is; write the scores into a tensor you created before the run.


# %% tags=["exercise"]
def induction_score(model: TransformerBridge, tokens: Int[Tensor, "batch 1+2*seq_len"]) -> Float[Tensor, "layer head"]:
    """Induction score of every head on ``tokens = BOS + x + x`` (``seq_len = (tokens.shape[1] - 1) // 2``).

    Mean of ``pattern[b, head, q, q - seq_len + 1]`` over the batch and over the second-copy
    query positions ``q = seq_len+1 … 2*seq_len``. Use ONE ``model.run_with_hooks`` call whose
    hook (selected by a name filter on ``hook_pattern``) stores only the scores, not the patterns.
    """
    raise NotImplementedError("hook on every hook_pattern; read the stripe at offset -(seq_len - 1)")


# %%
checks.test_induction_score(induction_score)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# The stripe is one diagonal of the pattern. Which offset, and which of its entries belong to
# second-copy queries?
# </details>
#
# <details><summary>Hint 2</summary>
#
# The diagonal at `offset=-(seq_len - 1)` holds the queries `seq_len-1 … 2*seq_len`: the second
# copy is its last `seq_len` entries. Create the `[layer, head]` tensor before the run; the hook
# writes one row of it, chosen by `hook.layer()`. The name filter is a function of the hook name.
# </details>
#
# <details><summary>Hint 3</summary>
#
# In the hook: `stripe = pattern.diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)` and
# `scores[hook.layer()] = stripe[..., -seq_len:].mean(dim=(0, 2))`. Run with
# `model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(lambda name: name.endswith("hook_pattern"), hook_fn)])`.
# </details>

# %%
ind_scores = induction_score(model, rep_tokens)
heatmap(
    ind_scores,
    title=f"{MODEL_NAME}: induction score per head ({BATCH} × (BOS + {SEQ_LEN} random tokens repeated))",
    x_title="head",
    y_title="layer",
    x_labels=[str(h) for h in range(cfg.n_heads)],
    y_labels=[str(layer) for layer in range(cfg.n_layers)],
    color_title="induction score",
    diverging=False,
).show()
prev_scores = as_grid(prev_attn_detector(rep_cache, 0.0))
IND_LAYER, IND_HEAD = 1, int(ind_scores[1].argmax())
PREV_LAYER, PREV_HEAD = 0, int(prev_scores[0].argmax())
print(
    f"strongest induction head: {IND_LAYER}.{IND_HEAD} (score {ind_scores[IND_LAYER, IND_HEAD]:.2f}); "
    f"best layer-0 score {ind_scores[0].max():.2f}"
)
print(
    f"strongest layer-0 previous-token head on the repeated tokens: {PREV_LAYER}.{PREV_HEAD} "
    f"(score {prev_scores[PREV_LAYER, PREV_HEAD]:.2f})"
)
IND_HEADS = [h for h in range(cfg.n_heads) if ind_scores[1, h] >= 0.4]  # layer-1 heads called induction heads below
print("layer-1 heads with induction score >= 0.4:", [f"1.{h}" for h in IND_HEADS])
if ind_scores[1].max() < 0.4:
    print(
        f"NOTE: no head of {MODEL_NAME} reaches 0.4 here, so the 'induction head' below is only the best of weak "
        "candidates, and the notes on what to expect describe a model that has one (section 6 grows one)."
    )

# %% [markdown]
# The two heads side by side, as heatmaps of their patterns on the short repeated sequence of
# section 2 (`attn-only-2l`; rows are queries, columns keys). Notice the previous-token head's
# stripe just below the diagonal, and the induction head's stripe in the second half,
# `n - 1 = 19` positions left of the diagonal.

# %%
short_labels = position_labels(model.to_str_tokens(short_tokens[0]))
for layer, head, kind in [(PREV_LAYER, PREV_HEAD, "previous-token"), (IND_LAYER, IND_HEAD, "induction")]:
    heatmap(
        short_cache["pattern", layer][0, head],
        title=f"{MODEL_NAME}: pattern of the {kind} head {layer}.{head} on BOS + 20 random tokens repeated",
        x_title="key position (attended to)",
        y_title="query position (attending)",
        x_labels=short_labels,
        y_labels=short_labels,
        color_title="attention",
        diverging=False,
    ).show()

# %% [markdown]
# ## 4 · Which heads matter for the prediction?
#
# A pattern says where a head *looks*, not what it *does* to the prediction. Two measurements
# answer the second question.
#
# **Direct logit attribution (DLA)** (chapter 3): in an attention-only model the final residual
# stream is a sum of pieces — embeddings, each head's output, biases — and the final LayerNorm
# acts on that sum as a linear map once we freeze its scale (the cached
# `ln_final.hook_scale`). So each head's output has an exact share of the logit of the correct
# next token: centre it, divide by the scale, multiply by `ln_final.w`, dot with the
# unembedding column `W_U[:, correct token]`. It only measures the **direct** path: a layer-0
# head whose output is *read by* a layer-1 head gets no credit for it.
#
# **Ablation** measures the total effect, direct and indirect: replace a head's output by
# something uninformative and see how much the loss rises. *Zero-ablation* sets its `z` to 0;
# *mean-ablation* sets it to its mean over the data, which keeps the head's average
# contribution (often a large constant offset) and removes only the information it carries.
# Zero-ablation can exaggerate a head's importance: the rest of the model never saw the
# residual stream without that constant.

# %% [markdown]
# ### Exercise 5 · Direct logit attribution per head
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪


# %% tags=["exercise"]
def head_logit_attribution(
    model: TransformerBridge, cache: ActivationCache, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1 layer head"]:
    """Direct contribution of every head to the logit of the correct next token.

    ``out[b, p, l, h]``: take head ``l.h``'s output at position ``p`` (``cache["z", l][b, p, h] @ W_O[l, h]``,
    without the bias ``b_O``), subtract its mean over ``d_model``, divide by
    ``cache["ln_final.hook_scale"][b, p]``, multiply by ``model.ln_final.w``, and take the dot
    product with ``model.W_U[:, tokens[b, p + 1]]``. Positions ``p = 0 … pos-2``.
    """
    raise NotImplementedError("head outputs -> final LayerNorm as a linear map -> correct unembedding column")


# %%
checks.test_head_logit_attribution(head_logit_attribution)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Each head's output is `z @ W_O` for that head. The final LayerNorm is linear once its scale is
# frozen: centre, divide by the cached scale, multiply by its weight. Then read the logit of the
# next token with one unembedding column per position.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Stack `cache["z", l]` over layers into `[batch, pos, layer, head, d_head]`, and multiply by
# `model.W_O` (`[layer, head, d_head, d_model]`) with
# `einops.einsum(z, model.W_O, "b p l h d, l h d m -> b p l h m")`. Keep positions `:-1`.
# The scale `cache["ln_final.hook_scale"]` is `[batch, pos, 1]`: index it `[:, :-1, None, None]`
# to broadcast over layer and head. The correct unembedding columns for every position are
# `(model.ln_final.w[:, None] * model.W_U)[:, tokens[:, 1:]]`, shape `[d_model, batch, pos-1]`:
# one last `einops.einsum` over `d_model` gives the answer.
# </details>

# %% [markdown]
# Mean attribution per head on the second copy (where induction can help) and on the first copy
# (where it cannot), over the batch of repeated sequences:

# %%
rep_dla = head_logit_attribution(model, rep_cache, rep_tokens)  # [batch, 2 * SEQ_LEN, layer, head]
dla_second = rep_dla[:, SEQ_LEN + 1 :].mean(dim=(0, 1))  # predictions of x_2 … x_n, second time
dla_first = rep_dla[:, 1:SEQ_LEN].mean(dim=(0, 1))
heatmap(
    torch.cat([dla_first, dla_second]),
    title=f"{MODEL_NAME}: direct logit attribution to the correct next token (mean over positions and {BATCH} sequences)",
    x_title="head",
    y_title="copy, layer",
    x_labels=[str(h) for h in range(cfg.n_heads)],
    y_labels=[f"first copy L{layer}" for layer in range(cfg.n_layers)]
    + [f"second copy L{layer}" for layer in range(cfg.n_layers)],
    color_title="logit",
).show()
top = divmod(int(dla_second.argmax()), cfg.n_heads)
print(
    f"largest direct effect on the second copy: head {top[0]}.{top[1]}, {dla_second.max():.2f} logits "
    f"(first copy: {dla_first[top].item():.2f}); the strongest induction head {IND_LAYER}.{IND_HEAD}: "
    f"{dla_second[IND_LAYER, IND_HEAD]:.2f}"
)

# %% [markdown]
# **What to notice.** In a model with an induction circuit, the heads that write the correct
# token directly on the second copy are the layer-1 induction heads (compare the heatmap with the
# induction scores above; the printed line names the top head of each), while on the first
# copy no head helps much. Layer-0 heads get little direct credit even when they matter: their
# work is read by layer 1, which DLA does not count. The ablations below do count it.

# %% [markdown]
# ### Exercise 6 · Zero- and mean-ablation of every head
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# Ablate through `blocks.{layer}.attn.hook_z` (`[batch, pos, head, d_head]`): a hook that returns
# a copy of `z` with head `h`'s slice replaced. The loss is the second-copy loss of section 1:
# the predictions of `x_2 … x_n` in the second copy, made at positions `seq_len+1 … 2*seq_len-1`.


# %% tags=["exercise"]
def head_ablation_loss_increase(
    model: TransformerBridge, tokens: Int[Tensor, "batch 1+2*seq_len"], ablation: str = "zero"
) -> Float[Tensor, "layer head"]:
    """Increase of the second-copy loss when one head at a time is ablated.

    Loss: mean per-token loss of the predictions made at positions ``seq_len+1 … 2*seq_len-1``,
    ``seq_len = (tokens.shape[1] - 1) // 2`` (the second-copy loss of section 1). Ablating head ``l.h`` replaces ``z[:, :, h]`` of layer
    ``l`` at every position by zeros (``ablation="zero"``), or by that head's mean ``z`` over every
    batch element and position of ``tokens`` (``ablation="mean"``). Returns ablated minus clean loss.
    """
    raise NotImplementedError("one clean run, then one ablated run per head")


# %%
checks.test_head_ablation_loss_increase(head_ablation_loss_increase)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# One clean run gives the clean loss and the means; then one ablated run per head, each with a
# hook on that layer's `hook_z` that returns a changed copy.
# </details>
#
# <details><summary>Hint 2</summary>
#
# One `model.run_with_cache(tokens, names_filter=...)` gives the clean logits and every layer's
# `z` (for the means: `z.mean(dim=(0, 1))` is `[head, d_head]`). Then, for each layer and head,
# `model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])` with a hook
# that clones `z`, overwrites `z[:, :, head]` and returns it. A hook defined in a loop should
# take the head as a default argument (`def hook(z, hook, head=head)`), or every hook will see
# the loop's last value.
# </details>

# %%
ablation_rows = {kind: head_ablation_loss_increase(model, rep_tokens, kind) for kind in ("zero", "mean")}
heatmap(
    torch.cat([ablation_rows["zero"], ablation_rows["mean"]]),
    title=f"{MODEL_NAME}: second-copy loss increase when one head is ablated ({BATCH} repeated sequences)",
    x_title="head",
    y_title="ablation, layer",
    x_labels=[str(h) for h in range(cfg.n_heads)],
    y_labels=[f"{kind} L{layer}" for kind in ("zero", "mean") for layer in range(cfg.n_layers)],
    color_title="Δ loss (nats)",
).show()
for kind, increase in ablation_rows.items():
    worst = divmod(int(increase.argmax()), cfg.n_heads)
    print(
        f"{kind}-ablation: largest increase {increase.max():.2f} nats (head {worst[0]}.{worst[1]}); "
        f"previous-token head {PREV_LAYER}.{PREV_HEAD}: {increase[PREV_LAYER, PREV_HEAD]:.2f}; "
        f"induction head {IND_LAYER}.{IND_HEAD}: {increase[IND_LAYER, IND_HEAD]:.2f}"
    )
gap = (ablation_rows["zero"] - ablation_rows["mean"]).abs()
far = divmod(int(gap.argmax()), cfg.n_heads)
print(
    f"zero and mean ablation disagree most on head {far[0]}.{far[1]}: "
    f"{ablation_rows['zero'][far]:.2f} vs {ablation_rows['mean'][far]:.2f} nats"
)

# %% [markdown]
# **What to notice.** Unlike DLA, ablation can credit the previous-token head: in an induction
# circuit, removing it leaves the induction head unable to find the right key, so the loss
# rises (compare the printed increases of the two heads). Compare the zero and mean rows of each
# layer: where they disagree, part of the "damage" of zero-ablation comes from removing the
# head's average output, not the information it carries.

# %% [markdown]
# ### Exercise 7 · Ablate a layer-0 head, watch the induction stripe
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# The loss says *that* the previous-token head matters, not *how*. If the induction heads find
# their key through it, removing it should break their **pattern**, not only the prediction.
# Zero-ablate one layer-0 head and recompute the induction score of every layer-1 head, in one
# forward pass: one hook changes layer 0's `z`, another reads layer 1's pattern.


# %% tags=["exercise"]
def ablated_induction_scores(
    model: TransformerBridge, tokens: Int[Tensor, "batch 1+2*seq_len"], head: int
) -> Float[Tensor, "head_1"]:
    """Induction score of every layer-1 head while layer-0 head ``head`` is zero-ablated.

    One forward pass with two hooks: one sets ``z[:, :, head]`` of ``blocks.0.attn.hook_z`` to 0, the
    other reads ``blocks.1.attn.hook_pattern`` and averages ``pattern[b, h, q, q - seq_len + 1]`` over
    the batch and the second-copy queries ``q = seq_len+1 … 2*seq_len``.
    """
    raise NotImplementedError("two hooks in one run: ablate layer 0's head, then score layer 1's pattern")


# %%
checks.test_ablated_induction_scores(ablated_induction_scores)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# `run_with_hooks` takes a list of `(hook name, function)` pairs, and runs them all in the same
# forward pass, in the order of the model.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The ablation hook returns a copy of `z` with the head's slice set to 0. The reading hook writes the
# score of exercise 4 into a tensor created before the run (and returns nothing).
# </details>
#
# <details><summary>Hint 3</summary>
#
# `fwd_hooks=[("blocks.0.attn.hook_z", ablate), ("blocks.1.attn.hook_pattern", store_score)]`, with
# `store_score` as in exercise 4 writing `scores[:] = stripe[..., -seq_len:].mean(dim=(0, 2))`.
# </details>

# %%
ablated = torch.stack([ablated_induction_scores(model, rep_tokens, head) for head in range(cfg.n_heads)])
heatmap(
    torch.cat([ind_scores[1:2], ablated]),
    title=f"{MODEL_NAME}: induction score of each layer-1 head, clean and with one layer-0 head zero-ablated",
    x_title="layer-1 head",
    y_title="layer-0 head ablated",
    x_labels=[f"1.{h}" for h in range(cfg.n_heads)],
    y_labels=["none (clean)"] + [f"0.{h}" for h in range(cfg.n_heads)],
    color_title="induction score",
    diverging=False,
).show()

# %% [markdown]
# **What to notice.** Compare each row with the clean one at the top. A row that goes dark
# means that without this layer-0 head the induction heads no longer find the token after the
# earlier copy: their keys depended on what it wrote. Is that row the previous-token head's?

# %% [markdown]
# ## 5 · Reading the circuit from the weights
#
# Patterns and ablations are measured on data. In an attention-only model we can also read the
# mechanism off the weights, because each head is two separate low-rank maps:
#
# - the **OV circuit** `W_OV = W_V W_O` (`d_model × d_model`, rank ≤ `d_head`): *what* a head
#   writes, given what it attends to. Through the embedding and unembedding, the **full OV
#   circuit** `W_E W_OV W_U` (`d_vocab × d_vocab`) says, for each token the head attends to,
#   which logits it raises. A copying head raises the logit of the same token: row `t` is
#   largest in column `t`.
# - the **QK circuit** `W_QK = W_Q W_K^T`: *where* a head attends. `x_q W_QK x_k^T / √d_head` is
#   the score from query residual `x_q` to key residual `x_k`.
#
# Row vectors multiply from the left, as everywhere in TransformerLens. A `FactoredMatrix` keeps
# such a product as its two factors `A @ B` and does the algebra on them: `model.OV[layer, head]`
# and `model.QK[layer, head]` are `FactoredMatrix`es, `W_E @ fm @ W_U` stays factored (its inner
# width is still `d_head`), `fm[i:j]` takes rows without forming the product, and `fm.AB`
# forms it. The full OV circuit here has `d_vocab² ≈ 16.8` million entries; for GPT-2 it would
# be 2.5 billion, so we never form more than a slice of it.
#
# Weights read better once the LayerNorms are out of the way. `enable_compatibility_mode()`
# folds each LayerNorm's weight and bias into the linear maps that follow it and centres the
# weights that write to the residual stream — the processing the original analyses used — without
# changing the model's outputs (the next cell checks). We analyse that processed copy, `folded`.

# %%
folded = load_model(MODEL_NAME)
folded.enable_compatibility_mode(disable_warnings=True)
same = (folded(code_tokens).log_softmax(-1) - code_logits.log_softmax(-1)).abs().max().item()
print(f"largest log-probability difference between folded and original model: {same:.1e}")
full_ov = folded.W_E @ folded.OV[IND_LAYER, IND_HEAD] @ folded.W_U
print(full_ov)

# %% [markdown]
# ### Exercise 8 · Top-1 copying accuracy, a chunk at a time
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def top_1_acc(full_OV_circuit: FactoredMatrix, chunk_size: int = 512) -> float:
    """Fraction of tokens ``t`` whose row ``t`` of the square circuit is largest in column ``t``.

    Rows are input tokens, columns output tokens. Form at most ``chunk_size`` rows at a time
    (``full_OV_circuit[start:stop].AB``), never the whole matrix. Return a Python float in [0, 1].
    """
    raise NotImplementedError("argmax of each chunk of rows, compared with the rows' own token ids")


# %%
checks.test_top_1_acc(top_1_acc)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Walk down the rows a chunk at a time; in each chunk, find each row's largest column and count
# the rows where it is the row's own token.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `full_OV_circuit[start : start + chunk_size].AB` forms one chunk, `[rows, n]` (the last may be
# shorter). Row `r` of the chunk is token `start + r`, not token `r`.
# </details>
#
# <details><summary>Hint 3</summary>
#
# `for start in range(0, n, chunk_size)`: compare `rows.argmax(dim=-1)` with
# `torch.arange(start, start + rows.shape[0])`, add up the matches, divide by `n` at the end.
# </details>

# %%
ind_top1 = top_1_acc(full_ov)
print(
    f"full OV circuit of the induction head {IND_LAYER}.{IND_HEAD}: top-1 copying accuracy {ind_top1:.1%} "
    f"over all {cfg.d_vocab} tokens (chance: {1 / cfg.d_vocab:.3%})"
)
N_TOKENS = min(cfg.d_vocab, 4096)  # all of the course model's vocabulary; a hub model's first 4096 tokens
top1 = torch.tensor(
    [
        [
            top_1_acc(folded.W_E[:N_TOKENS] @ folded.OV[layer, head] @ folded.W_U[:, :N_TOKENS])
            for head in range(cfg.n_heads)
        ]
        for layer in range(cfg.n_layers)
    ]
)
print(f"every head's top-1 accuracy in % on the first {N_TOKENS} tokens (rows: layers):")
print((top1 * 100).round(decimals=1))

# %% [markdown]
# **What to notice.** The printed accuracy of the induction head's full OV circuit, against
# chance: if it is high, the head copies — whatever token it attends to, it raises that token's
# logit. Compare it with the other heads. (The circuit ignores the LayerNorm scale, which
# rescales a whole row and so never changes its argmax.)

# %% [markdown]
# ### Exercise 9 · The effective OV circuit of all induction heads
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# When several induction heads attend to the same token, their outputs **add up** in the
# residual stream. So what the model copies through them is the full OV circuit of their sum,
# `W_E (Σ_h W_V^h W_O^h) W_U`. One head alone may copy only some tokens well; together they may
# cover the vocabulary. Keep the sum factored: its inner width is `len(heads) · d_head`.


# %% tags=["exercise"]
def effective_ov_circuit(model: TransformerBridge, layer: int, heads: list[int]) -> FactoredMatrix:
    """Full OV circuit of several heads together, ``W_E (Σ_h W_V[layer, h] W_O[layer, h]) W_U``.

    ``[d_vocab, d_vocab]`` as a FactoredMatrix whose inner width is ``len(heads) * d_head``: rows are
    the token attended to, columns the output logits.
    """
    raise NotImplementedError("one factored matrix for the sum of the heads' OV circuits")


# %%
checks.test_effective_ov_circuit(effective_ov_circuit)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# A sum of products `Σ_h V_h O_h` is one product of two block matrices: the `V_h` side by side
# times the `O_h` stacked on top of each other.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Concatenate the heads' `W_V[layer, h]` along their `d_head` columns and their `W_O[layer, h]`
# along their `d_head` rows; put `W_E` in front of the first and `W_U` after the second.
# </details>
#
# <details><summary>Hint 3</summary>
#
# `FactoredMatrix(model.W_E @ torch.cat([model.W_V[layer, h] for h in heads], dim=1),
# torch.cat([model.W_O[layer, h] for h in heads], dim=0) @ model.W_U)`.
# </details>

# %%
top1_alone = [top1[1, h].item() for h in IND_HEADS]
top1_together = top_1_acc(effective_ov_circuit(folded, 1, IND_HEADS)) if IND_HEADS else 0.0
print(
    f"top-1 copying accuracy of each induction head alone ({', '.join(f'1.{h}' for h in IND_HEADS)}): "
    + ", ".join(f"{acc:.1%}" for acc in top1_alone)
)
print(f"top-1 copying accuracy of their summed OV circuit: {top1_together:.1%}")

# %% [markdown]
# **What to notice.** Compare the summed circuit with the best single head. If the sum copies
# far more tokens than any head alone, the heads share the work: each copies its own part of
# the vocabulary well, and attending to the same token together they raise that token's logit
# above all others.

# %% [markdown]
# ### Exercise 10 · The previous-token head's positional QK pattern
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# A previous-token head must attend by **position**, whatever the tokens are. Put only the
# positional embeddings through its QK circuit and you get the pattern it would make on a
# sequence with no token content at all.


# %% tags=["exercise"]
def pos_attention_pattern(model: TransformerBridge, layer: int, head: int, n_pos: int) -> Float[Tensor, "q_pos k_pos"]:
    """Attention pattern of head ``layer.head`` when the residual stream holds only positional embeddings.

    Scores ``W_pos[:n_pos] @ W_QK @ W_pos[:n_pos].T / sqrt(d_head)`` (``W_QK = model.QK[layer, head]``;
    LayerNorm and biases ignored); rows are query positions, columns key positions. Mask keys
    after the query with ``-inf``, then softmax over keys.
    """
    raise NotImplementedError("W_pos @ QK @ W_pos.T, scale, causal mask, softmax")


# %%
checks.test_pos_attention_pattern(pos_attention_pattern)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Scores from a bilinear form, then the same causal mask and softmax as in a real attention
# layer (chapter 1).
# </details>
#
# <details><summary>Hint 2</summary>
#
# `W_pos @ model.QK[layer, head] @ W_pos.T` is a `FactoredMatrix`; `.AB` gives the
# `[n_pos, n_pos]` scores. `torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool), diagonal=1)`
# is True where the key comes after the query: `scores.masked_fill(mask, float("-inf")).softmax(dim=-1)`.
# </details>

# %%
N_POS = 30
pos_pattern = pos_attention_pattern(folded, PREV_LAYER, PREV_HEAD, N_POS)
heatmap(
    pos_pattern,
    title=f"{MODEL_NAME}: positional attention pattern of head {PREV_LAYER}.{PREV_HEAD} (first {N_POS} positions, folded weights)",
    x_title="key position",
    y_title="query position",
    color_title="attention",
    diverging=False,
).show()
below = pos_pattern.diagonal(offset=-1)
print(f"mean positional attention to the previous position (queries 1…{N_POS - 1}): {below.mean():.2f}")

# %% [markdown]
# **What to notice.** If the head attends to the previous position from positions alone, the
# heatmap shows a bright stripe just below the diagonal and the printed mean is high — the
# previous-token behaviour lives in `W_pos` and `W_QK`, not in the tokens. If the mean is low
# while the head's real pattern (section 3) shows a clear previous-token stripe, positions alone
# do not explain the head: the token part of the residual stream, which this pure-position
# pattern leaves out, takes part in its attention too. Which case does the printed figure show?

# %% [markdown]
# ### Composition: how the two heads are wired together
#
# The induction head needs, at each key position `j`, to know the token *before* `j`: it must
# find the key whose previous token equals the current token. Nothing at position `j` knows
# that unless an earlier head wrote it there — the previous-token head. A layer-1 head can read
# what a layer-0 head wrote in three places:
#
# - **Q-composition**: its queries read it (`W_A = W_OV^{0.i}`, `W_B = W_QK^{1.j}`);
# - **K-composition**: its keys read it (`W_A = W_OV^{0.i}`, `W_B = (W_QK^{1.j})^T`);
# - **V-composition**: its values read it (`W_A = W_OV^{0.i}`, `W_B = W_OV^{1.j}`).
#
# The **composition score** of a writer `W_A` and a reader `W_B` is
#
# $$\frac{\lVert W_A W_B \rVert_F}{\lVert W_A \rVert_F\,\lVert W_B \rVert_F},$$
#
# the norm of the product divided by the norms of its factors (Frobenius norm: the square root
# of the sum of squared entries). Without the division, the score would only tell you which
# matrices are large. With it, the score is between 0 and 1 and measures how well the output
# space of `W_A` lines up with what `W_B` reads. Even random matrices score above 0, so we will
# compare against random matrices of the same shapes.

# %% [markdown]
# ### Exercise 11 · The composition score
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def get_comp_score(W_A: Float[Tensor, "in_A out_A"], W_B: Float[Tensor, "out_A out_B"]) -> float:
    """Composition score ``‖W_A W_B‖_F / (‖W_A‖_F · ‖W_B‖_F)`` of two matrices, as a Python float."""
    raise NotImplementedError("Frobenius norm of the product over the product of the norms")


# %%
checks.test_get_comp_score(get_comp_score)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Three Frobenius norms: of the product, and of each factor.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `tensor.norm()` of a matrix is its Frobenius norm; the result must be a Python float.
# </details>

# %% [markdown]
# ### Exercise 12 · Q-, K- and V-composition of every pair of heads, batched
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# Calling `get_comp_score` in a double loop works; here you compute all `n_heads × n_heads`
# scores of one kind with batched tensor operations, and then check them against the loop. The
# writer is always a layer-0 head's `W_OV`; the reader depends on the kind of composition.


# %% tags=["exercise"]
def composition_scores(model: TransformerBridge, kind: str) -> Float[Tensor, "head_0 head_1"]:
    """Q-, K- or V-composition score of every (layer-0 head i, layer-1 head j) pair, computed batched.

    ``out[i, j] = get_comp_score(model.OV[0, i].AB, W_B)`` with ``W_B = model.QK[1, j].AB`` for
    ``kind="Q"`` (its queries read), ``model.QK[1, j].AB.T`` for ``"K"`` (its keys read) and
    ``model.OV[1, j].AB`` for ``"V"`` (its values read). No Python loop over heads.
    """
    raise NotImplementedError("stack the writers and the readers, broadcast the products, normalise")


# %%
checks.test_composition_scores(composition_scores)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Which matrix reads the residual stream for a query, for a key, for a value? Write `x_q W_QK x_k^T`
# and see which side each position's vector multiplies.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `model.OV[0].AB` is `[head, d_model, d_model]` for all layer-0 heads at once; so are
# `model.QK[1].AB`, its transpose on the last two dimensions, and `model.OV[1].AB`. Broadcasting
# `W_A[:, None] @ W_B[None, :]` gives every pair's product at once.
# </details>
#
# <details><summary>Hint 3</summary>
#
# `(W_A[:, None] @ W_B[None, :]).norm(dim=(-2, -1))` divided by
# `W_A.norm(dim=(-2, -1))[:, None] * W_B.norm(dim=(-2, -1))[None, :]`.
# </details>

# %% [markdown]
# The batched K-composition scores against the double loop of your `get_comp_score`, on the
# folded model; then every kind against the random baseline: the mean score of 200 pairs of
# random matrices with the same shapes and ranks (`W_A = A_1 A_2` with `A_1` of shape
# `d_model × d_head` and `A_2` of shape `d_head × d_model`, and the same for `W_B`), seeded.

# %%
composition = {kind: composition_scores(folded, kind) for kind in ("Q", "K", "V")}
k_comp_loop = torch.tensor(
    [[get_comp_score(folded.OV[0, i].AB, folded.QK[1, j].AB.T) for j in range(cfg.n_heads)] for i in range(cfg.n_heads)]
)
print(f"batched vs loop (K): largest difference {(composition['K'] - k_comp_loop).abs().max():.1e}")


def random_comp_baseline(d_model: int, d_head: int, n_samples: int = 200, seed: int = 0) -> float:
    """Mean composition score of random low-rank matrices shaped like W_OV and W_QK."""
    g = torch.Generator().manual_seed(seed)

    def low_rank() -> Tensor:
        return torch.randn(d_model, d_head, generator=g) @ torch.randn(d_head, d_model, generator=g)

    return sum(get_comp_score(low_rank(), low_rank()) for _ in range(n_samples)) / n_samples


baseline = random_comp_baseline(cfg.d_model, cfg.d_head)
heatmap(
    torch.cat([composition[kind] - baseline for kind in ("Q", "K", "V")], dim=1),
    title=f"{MODEL_NAME}: composition score minus the random baseline ({baseline:.3f})",
    x_title="kind, layer-1 head (reads)",
    y_title="layer-0 head (writes)",
    x_labels=[f"{kind} 1.{h}" for kind in ("Q", "K", "V") for h in range(cfg.n_heads)],
    y_labels=[f"0.{h}" for h in range(cfg.n_heads)],
    color_title="score − baseline",
).show()
print(f"random baseline: {baseline:.3f}")
for kind, scores in composition.items():
    top = divmod(int(scores.argmax()), cfg.n_heads)
    print(
        f"{kind}-composition: highest 0.{top[0]} -> 1.{top[1]} ({scores.max():.3f}); previous-token head "
        f"0.{PREV_HEAD} -> induction head 1.{IND_HEAD}: {scores[PREV_HEAD, IND_HEAD]:.3f} "
        f"({scores[PREV_HEAD, IND_HEAD] / baseline:.1f} × baseline)"
    )

# %% [markdown]
# **What to notice.** Find the previous-token head's row in each block of columns and compare
# it with the baseline. A K-composition score well above the baseline, beside Q- and
# V-composition scores near or below it, says the induction heads' *keys* read the subspace the
# previous-token head writes to: the weights themselves wire the two heads into a circuit, in
# the one place the mechanism needs. Composition scores are a coarse screen (they ignore which
# directions carry information on real data); the next exercise measures the same thing on data.

# %% [markdown]
# ### Exercise 13 · Which piece of the residual stream drives the key?
# Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵⚪
#
# The residual stream entering layer 1 is a sum of pieces: the token embedding, the positional
# embedding, and each layer-0 head's output (plus biases). On the folded model, layer 1's
# LayerNorm only centres (the pieces are already centred) and divides by one scale per
# position, so with that scale frozen each query and each key is a sum of one term per piece,
# and the attention score `q · k / √d_head` is a sum over (query piece, key piece) pairs. Split
# the induction head's score on its stripe that way: the largest cell says what the query asks
# for and what the key answers with.


# %% tags=["exercise"]
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
    raise NotImplementedError("stack the pieces, project them with W_Q and W_K, pair queries with their keys")


# %%
checks.test_induction_qk_decomposition(induction_qk_decomposition)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Three steps: a tensor of pieces `[batch, pos, piece, d_model]`; queries and keys of every piece
# `[batch, pos, piece, d_head]`; the products of each query piece with each key piece, averaged.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `einops.einsum(cache["z", 0], model.W_O[0], "batch pos head d_head, head d_head d_model -> batch pos head d_model")`
# gives the heads' outputs; `cache["hook_pos_embed"]` has a batch dimension of 1 (expand it).
# The queries are positions `n+1 … 2n` and their keys positions `2 … n+1`: slice both so that
# entry `q` of one lines up with its key in the other.
# </details>
#
# <details><summary>Hint 3</summary>
#
# `queries = pieces[:, n + 1 :] @ model.W_Q[1, head]`, `keys = pieces[:, 2 : n + 2] @ model.W_K[1, head]`, then
# `einops.einsum(queries, keys, "batch q i d, batch q j d -> i j") / (batch * n) / model.cfg.d_head**0.5`.
# </details>

# %%
piece_names = ["token embedding", "positional embedding"] + [f"0.{h}" for h in range(cfg.n_heads)]
_, folded_rep_cache = folded.run_with_cache(rep_tokens)
qk_parts = induction_qk_decomposition(folded, folded_rep_cache, IND_HEAD)
heatmap(
    qk_parts,
    title=f"{MODEL_NAME}: attention score of head 1.{IND_HEAD} on its induction stripe, by query piece × key piece",
    x_title="what the key reads",
    y_title="what the query reads",
    x_labels=piece_names,
    y_labels=piece_names,
    color_title="score",
).show()
top_q, top_k = divmod(int(qk_parts.argmax()), len(piece_names))
print(
    f"sum of all cells: {qk_parts.sum():.2f}; largest cell: query {piece_names[top_q]} × key {piece_names[top_k]} "
    f"({qk_parts.max():.2f})"
)

# %% [markdown]
# **What to notice.** One cell should dwarf the others. Its row says what the query asks for;
# its column says which piece of the key's residual stream answers. If the column is a layer-0
# head, that head is what makes the key say "the token before me was …": K-composition, now
# measured on data rather than read from the weights.

# %% [markdown]
# ## 6 · Beyond: watch an induction head form
#
# Induction heads appear suddenly in training: the loss sits on a plateau, then drops fast as
# the previous-token head and the induction head form together (neither helps without the
# other). We train a tiny 2-layer attention-only model from scratch with the course's own
# training loop, `course_utils.zoo.train.train` (AdamW, warmup, cosine decay), and record its
# loss and its best induction score as it learns.
#
# To fit in a few CPU seconds the task is made small and dense. The model sees sequences of
# 32 tokens from a vocabulary of 128, each one BOS followed by a random block of random length
# (4 to 15 tokens) repeated until the sequence is full. Since the block length changes from
# row to row, no fixed positional offset predicts the repeats: the model must copy by content.
# The induction score is measured with your `induction_score` on BOS + 15 random tokens
# repeated (15 is the largest block length the model was trained on). `TRAIN_STEPS` in the
# parameters cell sets the budget; the text below describes the default run, 400 steps, and
# every claim about it is printed by the cells.

# %%
TINY_VOCAB, TINY_CTX = 128, 32


def periodic_batches(batch: int, seed: int = 0):
    """Endless batches of BOS + a random block of random length (4 … 15) repeated to TINY_CTX tokens."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield repeated.periodic_sequences(
            batch, TINY_CTX, TINY_VOCAB, bos_id=0, generator=g, min_period=4, max_period=15
        )


tiny_cfg = TransformerBridgeConfig(
    n_layers=2,
    n_heads=4,
    d_model=64,
    d_head=16,
    n_ctx=TINY_CTX,
    d_vocab=TINY_VOCAB,
    attn_only=True,
    normalization_type="LN",
    act_fn="gelu",
    seed=0,
)
torch.manual_seed(0)
tiny = TransformerBridge.boot_native(tiny_cfg, tokenizer=None)
tiny_eval = repeated.repeated_tokens(16, 15, TINY_VOCAB, bos_id=0, seed=1)
history: list[tuple[int, float, float, float]] = []  # step, training loss, best induction score, second-copy loss


def record(step: int, model: TransformerBridge, loss: float) -> None:
    losses = per_token_loss(model(tiny_eval), tiny_eval)
    history.append((step, loss, induction_score(model, tiny_eval)[1].max().item(), losses[:, 16:].mean().item()))


with torch.enable_grad():  # the set-up cell turned gradients off
    log = train(
        tiny,
        periodic_batches(32),
        steps=TRAIN_STEPS,
        lr=3e-3,
        warmup=20,
        final_lr_fraction=1.0,
        callback=record,
        callback_every=20,
        desc="tiny model",
    )
print(f"trained {log.steps} steps in {log.seconds:.1f} s")
for step, loss, score, copy_loss in history[4::5]:
    print(
        f"step {step:4d}: training loss {loss:.2f}, best layer-1 induction score {score:.2f}, second-copy loss {copy_loss:.2f}"
    )

# %%
steps = [h[0] for h in history]
line(
    torch.tensor([[h[2] for h in history], [h[3] / math.log(TINY_VOCAB) for h in history]]),
    x=steps,
    series=["best layer-1 induction score", f"second-copy loss / ln({TINY_VOCAB})"],
    title=f"Tiny 2-layer attention-only model ({TRAIN_STEPS} steps): induction score and loss during training",
    x_title="training step",
    y_title="score, or loss as a fraction of a uniform guess",
).show()
jump = max(range(1, len(history)), key=lambda i: history[i][2] - history[i - 1][2])
print(
    f"largest rise of the induction score between two measurements: step {history[jump - 1][0]} -> {history[jump][0]} "
    f"({history[jump - 1][2]:.2f} -> {history[jump][2]:.2f})"
)
crossed = [step for step, _, score, _ in history if score >= 0.2]
print(
    f"first measurement with an induction score >= 0.2: step {crossed[0]}"
    if crossed
    else f"the induction score never reached 0.2 in {TRAIN_STEPS} steps: raise TRAIN_STEPS"
)
print(
    f"final: induction score {history[-1][2]:.2f}, second-copy loss {history[-1][3]:.2f} (uniform guess: {math.log(TINY_VOCAB):.2f})"
)

# %% [markdown]
# **What to notice.** Read the printed table and the curves. At first the induction score stays
# near its starting value while the second-copy loss creeps down: the model learns a cheaper
# trick first, guessing *some* token it has already seen in the context (with a block of at most
# 15 distinct tokens, that trick alone cannot bring the loss below about ln 15 ≈ 2.7). Then the
# score leaves its plateau (the printed lines say where it first passes 0.2 and where it rose
# most) and the second-copy loss falls well below that floor: the induction circuit has formed,
# the phase change. The step at which this happens moves with the seed, the learning rate and
# the task; if your run shows no rise, raise `TRAIN_STEPS`. With `TRAIN_STEPS = 1000`, check
# whether the score keeps rising afterwards, and run `prev_attn_detector` on
# `tiny.run_with_cache(tiny_eval)[1]` to find the previous-token head that formed with it.

# %% [markdown]
# ## Check your understanding
#
# **Q1.** A sequence is BOS + 50 random tokens + the same 50 tokens (101 positions). From query
# position 70, which key position does a perfect induction head attend to?

# %% tags=["exercise"]
answer_induction_key = ...

# %%
checks.test_answer_induction_key(answer_induction_key)

# %% [markdown]
# **Q2.** The previous-token head's output is read by the induction head through which kind of
# composition? Answer `"Q"`, `"K"` or `"V"`.

# %% tags=["exercise"]
answer_composition = ...

# %%
checks.test_answer_composition(answer_composition)

# %% [markdown]
# **Q3.** Why can a one-layer attention-only model not contain an induction head? Answer `"a"`,
# `"b"` or `"c"`.
#
# - a. One layer has too few heads to copy tokens.
# - b. Its keys at position `j` are built from token `j` and position `j` only, so no key can
#   say "the token before me was `A`": that information must first be moved there by an
#   earlier head.
# - c. The causal mask stops a head from attending to earlier copies of a token.

# %% tags=["exercise"]
answer_one_layer = ...

# %%
checks.test_answer_one_layer(answer_one_layer)

# %% [markdown]
# **Q4.** The course model's vocabulary has 4096 tokens and the random tokens are drawn from
# ids `1 … 4095`. What loss (in nats, to two decimals) does a model get on them if it spreads its
# probability evenly over every possible random token? Compare it with the first-copy loss you
# measured in section 1.

# %% tags=["exercise"]
answer_uniform_loss = ...

# %%
checks.test_answer_uniform_loss(answer_uniform_loss)

# %% [markdown]
# ## What we found
#
# Every sentence below is printed from numbers this notebook computed on the model you loaded
# (`attn-only-2l` by default); `tests/test_findings.py` recomputes them on the course model and
# fails if a retrained model stops bearing one out. On another model, a claim that does not
# hold is printed as such.

# %%
from course_utils.findings import induction_findings, report

report(
    induction_findings(
        ind_scores=ind_scores,
        prev_scores=prev_scores,
        first_copy_loss=first_copy_loss,
        second_copy_loss=second_copy_loss,
        ablated=ablated,
        composition=composition,
        baseline=baseline,
        qk_parts=qk_parts,
        piece_names=piece_names,
        top1_alone=top1_alone,
        top1_together=top1_together,
        d_vocab=cfg.d_vocab,
    )
)

# %% [markdown]
# In one sentence: a previous-token head in layer 0 writes "the token before me" into every
# position; the induction heads of layer 1 read it with their keys (K-composition), attend from
# each repeated token to the token after its earlier copy, and copy that token through OV
# circuits that, summed, copy almost every token of the vocabulary.
#
# ## Summary
#
# - Repeated random tokens isolate in-context learning: the loss on the second copy falls far
#   below the first only because the model reads its context.
# - Head types are diagonals of the attention pattern: offset 0 (current), −1 (previous),
#   column 0 (first/BOS), and on `BOS + x + x` offset `−(n−1)` in the second copy only
#   (induction: the token *after* the earlier copy). A threshold turns a score into a label, and
#   it is a choice. A hook with a name filter computes scores in one pass without a cache.
# - DLA credits the heads that write the answer directly (in an induction circuit, the layer-1
#   induction heads); ablation also credits the heads they depend on (the layer-0
#   previous-token head), and ablating that head shows *how* it matters: the induction pattern
#   itself breaks. Mean-ablation removes information; zero-ablation also removes a head's
#   average output.
# - With `FactoredMatrix` you can test each part of the story on the weights: does the
#   induction heads' full OV circuit copy tokens (top-1 accuracy against chance, alone and
#   summed), does the previous-token head's QK circuit attend by position, and are the two wired
#   by K- rather than Q- or V-composition above a random baseline? Splitting the attention score
#   by residual-stream piece shows the same wiring on data.
# - In training, the circuit forms abruptly: a plateau, then the induction score and the loss
#   change together.
#
# ## Going further
#
# - Elhage et al., *A Mathematical Framework for Transformer Circuits* (2021): OV/QK circuits,
#   composition scores and induction heads in attention-only models, with the hub model
#   `attn-only-2l`.
# - Olsson et al., *In-context Learning and Induction Heads* (2022): induction heads in large
#   models, and the phase change that coincides with in-context learning.
# - Online: set `MODEL_NAME = "hub:attn-only-2l"` and run the notebook again; compare its
#   induction heads, copying accuracy and K-composition map with the course model's. Try
#   `"gpt2-small"` too: induction heads sit in its middle layers (the K-composition cell assumes
#   layers 0 and 1 only).
# - Mean-ablate the previous-token head instead of zero-ablating it (exercise 7) and compare the
#   fall of the induction scores.
# - Split the *query* side further: which positional-embedding terms of the key make the
#   previous-token head attend one position back (exercise 10 did it from the weights alone)?
# - Next: chapter 6 (`06_one_layer_if_else`) reverse-engineers a one-layer model exactly.
