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
# # Chapter 03 — The residual stream: a sum you can take apart
#
# Inside a transformer, every position carries one vector, the **residual stream**, and every
# component *adds* its output to it: first the token and position embeddings, then each
# attention layer, then each MLP. No module is called "the residual stream"; it is just the
# running sum. Because it is a sum, you can take it apart and ask how much each piece
# contributed to the final answer. That question, asked of the logit of one answer token, is
# **direct logit attribution** (DLA). There is one catch: the final LayerNorm divides the
# whole sum by a number computed from the whole sum, so the logit is *not* a sum of
# per-component logits, unless you freeze that number. Freeze it, and the attribution adds up
# exactly, to a thousandth of a logit. Forget it, and every contribution is off by the same
# large factor.
#
# **You will learn to**
# - rebuild the residual stream at any layer from what each component wrote into it;
# - read what TransformerLens's cache helpers return (`decompose_resid`, `accumulated_resid`,
#   `stack_head_results`, `get_full_resid_decomposition`, `apply_ln_to_stack`, `logit_attrs`),
#   with their labels and shapes;
# - attribute a logit to every component and to every attention head so that the parts sum to
#   the model's own logit, with the final LayerNorm's scale frozen;
# - attribute a logit **difference** (the right name minus the wrong name) and read it as a bar
#   chart and a layer × head heatmap;
# - explain why an answer's rank at each layer depends on whether you apply the LayerNorm;
# - read a `[component, prompt, position]` attribution correctly: locate its largest entry from a
#   flat `argmax`, and rank components summed over positions, knowing what that sum means.
#
# **Prerequisites:** chapter 01 (`run_with_cache`, hook names) and chapter 02 (the logit lens,
# the final LayerNorm, ranks with rank 0 = top).
#
# **Estimated time:** about 1.5 hours.
#
# Every exercise is a short function with a check in the cell below it. Difficulty is marked
# 🔴 (out of five) and importance 🔵 (out of five). Hints are folded; open them only when stuck.

# %% [markdown]
# ## Set-up

# %%
# Without the course installed (Colab, JupyterHub)? Run first: %pip install "git+<repository URL>"
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge

from course_utils import bar, heatmap, line, load_model, position_labels
from course_utils.checks import residual_stream as checks
from course_utils.tasks import ioi

# %% tags=["parameters"]
HUB_MODEL_NAME = "gpt2-small"  # the original IOI model on the Hugging Face hub
MODEL_NAME = "gelu-4l"  # offline course model; online (or after `make download`): MODEL_NAME = HUB_MODEL_NAME
# MODEL_NAME = "tiny-stories-1M"  # online: the model of section 5's original rank table (use a story sentence there)
N_IOI_PROMPTS = 16  # IOI prompts averaged in section 4 (the last answer's check assumes 16)

# %%
model = load_model(MODEL_NAME)
model.requires_grad_(False)  # nothing in this chapter trains the model: no gradients needed
n_layers, n_heads, d_model = model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_model
print(
    f"{MODEL_NAME}: {n_layers} layers of {n_heads} attention heads and one MLP, d_model = {d_model}, "
    f"normalization {model.cfg.normalization_type}"
)

# %% [markdown]
# `gelu-4l` is the course's own model: four blocks (attention, then an MLP with a GELU),
# trained on Shakespeare, Python code and generated English that includes sentences of the
# **indirect object identification** (IOI) kind:
#
# > When Mary and John went to the store, John gave a drink to ___
#
# Two people are named; one of them (the **subject**, S) is named again; the right
# continuation is the *other* one, the **indirect object** (IO). Our main prompt is the first
# of the course's held-out IOI prompts (a name pair and a template never seen in training).
# The names are single tokens; a hub model's tokenizer splits a few of them (GPT-2: Ella, Irene,
# Sofia), so `tokenizer=model.tokenizer` samples only the names that are one token there.

# %%
ioi_prompts = ioi.ioi_prompts(N_IOI_PROMPTS, split="heldout", seed=0, tokenizer=model.tokenizer)
prompt = ioi_prompts[0]
io_token = model.to_single_token(" " + prompt.io)
s_token = model.to_single_token(" " + prompt.s)

tokens = model.to_tokens(prompt.text)
logits, cache = model.run_with_cache(tokens)
str_tokens = model.to_str_tokens(tokens[0])
print(repr(prompt.text), "→", repr(prompt.answer))
print(f"{len(str_tokens)} tokens (BOS first):", str_tokens)
top = logits[0, -1].topk(5)
print("top 5 next tokens:", [(model.to_string(i), round(v.item(), 2)) for v, i in zip(top.values, top.indices)])
print(
    f"logit of IO {prompt.io!r}: {logits[0, -1, io_token]:.3f}   logit of S {prompt.s!r}: {logits[0, -1, s_token]:.3f}   "
    f"difference: {logits[0, -1, io_token] - logits[0, -1, s_token]:.3f}"
)

# %% [markdown]
# `gelu-4l` gets over 90 % of held-out IOI prompts right (its model card gives the figures);
# the cell above prints, for this prompt, whether it ranks the indirect object above the
# subject and by how much. Attribution explains whatever the model does, right or wrong: a
# wrong answer is as interesting to take apart as a right one.
#
# ## 1. The residual stream is a sum
#
# Write $x^{(p)}$ for the residual stream at position $p$ (we drop $p$ from now on). The model
# builds it like this, layer $\ell = 0, 1, \dots$:
#
# $$x_\text{pre}^{0} = \text{embed} + \text{pos\_embed},\qquad
# x_\text{mid}^{\ell} = x_\text{pre}^{\ell} + \text{attn\_out}^{\ell},\qquad
# x_\text{post}^{\ell} = x_\text{mid}^{\ell} + \text{mlp\_out}^{\ell},\qquad
# x_\text{pre}^{\ell+1} = x_\text{post}^{\ell}.$$
#
# The cache holds each running total (`blocks.ℓ.hook_resid_pre`, `hook_resid_mid`,
# `hook_resid_post`) *and* each term that is added (`hook_embed`, `hook_pos_embed`,
# `blocks.ℓ.hook_attn_out`, `blocks.ℓ.hook_mlp_out`). Unrolling the recursion:
#
# $$x_\text{post}^{L} = \text{embed} + \text{pos\_embed} + \sum_{\ell=0}^{L}\left(\text{attn\_out}^{\ell} + \text{mlp\_out}^{\ell}\right).$$
#
# Each component reads the stream (through its own LayerNorm) and writes into it by addition;
# nothing is ever overwritten. That is what makes the stream a shared "bus" that later
# components, and the unembedding, read from.

# %%
for name in [
    "hook_embed",
    "hook_pos_embed",
    "blocks.0.hook_resid_pre",
    "blocks.0.hook_attn_out",
    "blocks.0.hook_resid_mid",
    "blocks.0.hook_mlp_out",
    "blocks.0.hook_resid_post",
]:
    print(f"{name:26} {tuple(cache[name].shape)}   [batch, position, d_model]")
gap = (cache["resid_pre", 1] - cache["resid_post", 0]).abs().max()
print(f"\nmax |resid_pre of layer 1 - resid_post of layer 0| = {gap:.1e}  (the same vector, two names)")

# %% [markdown]
# ### Exercise 1.1 — take the stream apart by hand
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# Return every vector written into the stream at position `pos`, from the embeddings up to
# the end of block `layer`, stacked in the order they were written, with a label for each.
# Use the labels TransformerLens uses: `"embed"`, `"pos_embed"`, `"0_attn_out"`,
# `"0_mlp_out"`, `"1_attn_out"`, … The cache holds one prompt: take batch index 0.


# %% tags=["exercise"]
def decompose_by_hand(
    cache: ActivationCache, layer: int, pos: int
) -> tuple[Float[Tensor, "component d_model"], list[str]]:
    """Every vector written into the residual stream at position `pos`, up to the end of `layer`.

    cache: from model.run_with_cache on ONE prompt (batch size 1).
    layer: the last block to include (its attention AND its MLP output are included).
    pos: the position (negative values count from the end, as in Python).
    Returns (stack, labels): stack is [2 + 2 * (layer + 1), d_model], rows in the order
    embed, pos_embed, 0_attn_out, 0_mlp_out, ..., {layer}_attn_out, {layer}_mlp_out;
    labels are those names. The rows sum to cache["resid_post", layer][0, pos].
    """
    raise NotImplementedError(
        "decompose_by_hand: stack hook_embed, hook_pos_embed, then attn_out and mlp_out per layer"
    )


# %%
checks.test_decompose_by_hand(decompose_by_hand)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# The stream at the input of `layer + 1` is the embeddings plus what every attention layer and
# every MLP up to `layer` wrote: collect those vectors in order, one label each.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `cache["hook_embed"][0, pos]` is one `[d_model]` vector; `cache["attn_out", l]` is shorthand
# for `cache["blocks.l.hook_attn_out"]`. Collect the vectors in a list while you build the
# labels, then `torch.stack` the list.
# </details>
#
# Now check the claim: the rows rebuild `resid_post` of each layer, and all rows but the last
# two (the block's own attention and MLP) rebuild its `resid_pre`.

# %%
for layer in range(n_layers):
    stack, labels = decompose_by_hand(cache, layer, -1)
    err_post = (stack.sum(0) - cache["resid_post", layer][0, -1]).abs().max().item()
    err_pre = (stack[:-2].sum(0) - cache["resid_pre", layer][0, -1]).abs().max().item()
    print(f"layer {layer}: {len(labels):2} rows; max error vs resid_pre {err_pre:.1e}, vs resid_post {err_post:.1e}")
    assert err_pre <= 1e-4 and err_post <= 1e-4

stack, labels = decompose_by_hand(cache, n_layers - 1, -1)
fig = bar(
    stack.norm(dim=-1),
    labels=labels,
    x_title="component",
    y_title="norm of its output (L2)",
    title=f"{MODEL_NAME}: size of what each component writes at the last position ({str_tokens[-1]!r})",
)
fig.show()

# %% [markdown]
# The figure (model `gelu-4l`, the IOI prompt above, last position) shows how much each
# component writes into the stream, measured by the length of its output vector. Compare the
# embeddings' bars with the rest: the stream is built almost entirely by the blocks. Size is
# not importance, though: a large output can point in a direction the unembedding ignores. The
# rest of the chapter measures what each output does to the logits.
#
# ## 2. TransformerLens's decomposition helpers
#
# The cache (an `ActivationCache`) has methods that build such stacks for you. All of them
# put the component axis **first** and keep the batch axis; `pos_slice=-1` keeps only the last
# position (and drops that axis). Run the cell and compare each shape and label list with the
# description.
#
# | method | returns (rows) | labels |
# |---|---|---|
# | `decompose_resid(layer=None)` | what each component wrote, up to the input of `layer` (all of them by default) | `embed`, `pos_embed`, `0_attn_out`, `0_mlp_out`, … |
# | `accumulated_resid(layer=None)` | the running totals: `resid_pre` of each layer, then the final residual | `0_pre`, `1_pre`, …, `final_post` |
# | `stack_head_results(layer=-1)` | each attention head's own output, `z[h] @ W_O[h]` (computed from `hook_z` and `W_O`: the cache does not hold per-head outputs by default) | `L0H0`, `L0H1`, … |
# | `get_full_resid_decomposition(expand_neurons=False)` | heads, then MLP outputs, embeddings, and one row `bias` for the attention output biases $b_O$ of all layers (with `expand_neurons=True`, one row per MLP neuron, and `bias` also holds the MLP output biases) | `L0H0`, …, `0_mlp_out`, …, `embed`, `pos_embed`, `bias` |
# | `apply_ln_to_stack(stack, layer=None)` | the same stack, each row centred and divided by the **cached** LayerNorm scale of the real stream (no LN weight, no LN bias) | — |
# | `logit_attrs(stack, tokens, incorrect_tokens=None)` | `apply_ln_to_stack(stack) @ W_U[:, token]` per row (minus the same for `incorrect_tokens`) | — |

# %%
helpers = {
    "decompose_resid": cache.decompose_resid(pos_slice=-1, return_labels=True),
    "accumulated_resid": cache.accumulated_resid(pos_slice=-1, return_labels=True),
    "stack_head_results": cache.stack_head_results(pos_slice=-1, return_labels=True),
    "get_full_resid_decomposition": cache.get_full_resid_decomposition(
        expand_neurons=False, pos_slice=-1, return_labels=True
    ),
}
for name, (stack_, labels_) in helpers.items():
    shown = labels_ if len(labels_) <= 10 else labels_[:5] + ["…"] + labels_[-4:]
    print(f"{name:29} shape {tuple(stack_.shape)}  [component, batch, d_model]\n{'':29} labels {shown}")

# %% [markdown]
# Three facts worth checking with numbers rather than trusting:
#
# 1. `decompose_resid` returns exactly your rows (for all layers).
# 2. The heads of a layer do **not** add up to that layer's `attn_out`: each attention layer
#    also adds a bias $b_O$ that belongs to no head. Heads + $b_O$ do.
# 3. The full decomposition (heads, MLPs, embeddings, `bias`) sums to the final residual.

# %%
mine, my_labels = decompose_by_hand(cache, n_layers - 1, -1)
tl_stack, tl_labels = helpers["decompose_resid"]
print("1. same labels:", my_labels == tl_labels, f"  max |difference| = {(mine - tl_stack[:, 0]).abs().max():.1e}")

heads = helpers["stack_head_results"][0][:, 0].reshape(n_layers, n_heads, d_model)
attn_out = torch.stack([cache["attn_out", l][0, -1] for l in range(n_layers)])
print(f"2. max |sum of heads - attn_out|       = {(heads.sum(1) - attn_out).abs().max():.3f}")
print(f"   max |sum of heads + b_O - attn_out| = {(heads.sum(1) + model.b_O - attn_out).abs().max():.1e}")

full, full_labels = helpers["get_full_resid_decomposition"]
final_resid = cache["resid_post", n_layers - 1][0, -1]
print(f"3. max |sum of the full decomposition - final residual| = {(full[:, 0].sum(0) - final_resid).abs().max():.1e}")

# %% [markdown]
# ## 3. Direct logit attribution that adds up
#
# After the last block, the model turns the final residual $x$ into logits:
#
# $$\text{logit}_t = \Big(\frac{x - \operatorname{mean}(x)}{s} \odot w + b\Big)\cdot W_U[:, t] + b_U[t],
# \qquad s = \sqrt{\operatorname{var}(x) + \varepsilon},$$
#
# where $w$ and $b$ are the final LayerNorm's weight and bias (`model.ln_final.w`,
# `model.ln_final.b`). Substitute $x = \sum_c x_c$, the sum over components $c$:
#
# - the mean is linear: $x - \operatorname{mean}(x) = \sum_c \big(x_c - \operatorname{mean}(x_c)\big)$;
# - the scale $s$ is **not**: it is computed from the whole sum. But it is one number per
#   position. If we **freeze** it at the value it had in this run (the cache stores it as
#   `ln_final.hook_scale`), everything else is linear, and
#
# $$\text{logit}_t = \sum_c \underbrace{\Big(\frac{x_c - \operatorname{mean}(x_c)}{s} \odot w\Big)\cdot W_U[:, t]}_{\text{direct contribution of } c}
# \;+\; \underbrace{b \cdot W_U[:, t]}_{\texttt{ln\_final.b}} \;+\; \underbrace{b_U[t]}_{\texttt{b\_U}}.$$
#
# This is exact for this run, not an approximation. It is **direct**: a component's row counts
# only its path straight to the unembedding, not what it does through later layers that read
# its output.
#
# First, make sure the cached scale is what we think it is:

# %%
scale = cache["ln_final.hook_scale"][0, -1]  # shape [1]: one number for the whole stream at this position
centred = final_resid - final_resid.mean()
recomputed = (centred.pow(2).mean() + model.cfg.eps).sqrt()
print(
    f"cached scale s = {scale.item():.4f}; recomputed sqrt(var + eps) = {recomputed.item():.4f} (eps = {model.cfg.eps})"
)
by_hand = (centred / scale * model.ln_final.w + model.ln_final.b) @ model.W_U + model.b_U
print(f"max |logits by hand - the model's logits| = {(by_hand - logits[0, -1]).abs().max():.1e}")

# %% [markdown]
# ### Exercise 3.1 — direct logit attribution per component
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵🔵
#
# Return one value per component of the whole stream (embed, pos_embed, and the attention and
# MLP output of every layer, as in exercise 1.1 with `layer = n_layers - 1`), then two
# constant rows labelled `"ln_final.b"` and `"b_U"`. The values must sum to
# `logits[0, pos, answer_token]`.


# %% tags=["exercise"]
def direct_logit_attribution(
    model: TransformerBridge, cache: ActivationCache, answer_token: int, pos: int = -1
) -> tuple[Float[Tensor, " component"], list[str]]:
    """Split the logit of `answer_token` at position `pos` into one exact term per component.

    cache: from model.run_with_cache on ONE prompt (batch size 1).
    answer_token: a token id. pos: the position whose logits we explain (negative = from the end).
    Component c (a vector x_c written into the stream at `pos`) contributes
        ((x_c - x_c.mean()) / s * model.ln_final.w) @ model.W_U[:, answer_token],
    with s = cache["ln_final.hook_scale"][0, pos], the FROZEN scale of the whole stream.
    Returns (values [2 + 2 * n_layers + 2], labels): labels embed, pos_embed, 0_attn_out,
    0_mlp_out, ..., then "ln_final.b" (model.ln_final.b @ W_U[:, answer_token]) and
    "b_U" (model.b_U[answer_token]). The values sum to logits[0, pos, answer_token].
    """
    raise NotImplementedError(
        "direct_logit_attribution: stack the components, centre, divide by the frozen scale, project"
    )


# %%
checks.test_direct_logit_attribution(direct_logit_attribution)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Build the `[component, d_model]` stack as in exercise 1.1. Centre each row (subtract its
# own mean over `d_model`), divide by `s`, multiply elementwise by `model.ln_final.w`, then
# take the dot product with the column `model.W_U[:, answer_token]`: one matrix-vector
# product `@` does all rows at once.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `cache["ln_final.hook_scale"][0, pos]` has shape `[1]`, so dividing a `[component, d_model]`
# tensor by it broadcasts. Use the **same** `s` for every row: that is the frozen scale.
# The two constants are numbers (0-dimensional tensors); `torch.stack` them and
# `torch.cat` them after the contributions.
# </details>
#
# The whole point: the attribution adds up to the model's logit.

# %%
values, labels = direct_logit_attribution(model, cache, io_token)
true_logit = logits[0, -1, io_token].item()
print(f"sum of the attribution = {values.sum().item():.4f}; the model's logit for {prompt.io!r} = {true_logit:.4f}")
assert abs(values.sum().item() - true_logit) <= 1e-3
for label, value in zip(labels, values.tolist()):
    print(f"  {label:11} {value:+.3f}")

fig = bar(
    values,
    labels=labels,
    x_title="component",
    y_title=f"direct contribution to the logit of {prompt.io!r}",
    title=f"{MODEL_NAME}: direct logit attribution for {prompt.io!r} (IOI prompt, last position)",
)
fig.show()

# %% [markdown]
# The bars (model `gelu-4l`, the IOI prompt, logit of the indirect object) add up to the
# logit printed above: that is the whole point of freezing the scale. Notice the `b_U` row:
# `gelu-4l` has no unembedding bias to speak of (the next cell prints its largest entry), so
# that row is zero here; on a hub model it is not. A logit on its own is hard to read: much of
# it says "a name comes next", which raises every name at once. Section 4 removes that common
# part by subtracting the wrong name's logit.
#
# **What if you forget the scale?** Many write-ups compute $(x_c - \operatorname{mean}(x_c))
# \odot w \cdot W_U[:, t]$ without the division. Here is how far off that is:

# %%
stack, _ = decompose_by_hand(cache, n_layers - 1, -1)
centred_rows = stack - stack.mean(-1, keepdim=True)
unscaled = (centred_rows * model.ln_final.w) @ model.W_U[:, io_token]
constants = values[-2:].sum().item()  # the two constant rows
print(
    f"without the scale: sum = {unscaled.sum().item() + constants:.3f} vs the true logit {true_logit:.3f} "
    f"(error {unscaled.sum().item() + constants - true_logit:+.3f})"
)
unscaled_ratio = unscaled.sum().item() / values[:-2].sum().item()
print(f"ratio of the component sums, unscaled / scaled = {unscaled_ratio:.4f}")
print(f"largest |b_U| in {MODEL_NAME}: {model.b_U.abs().max().item():.3g}")

# %% [markdown]
# The sum misses the logit by a lot. Look at the ratio line: every unscaled row is off from its
# scaled row by the same factor. Which number printed earlier in this section is it, and why
# must it be the same for every row? (Question 1 below asks.)

# %% [markdown]
# And what does `cache.logit_attrs` compute? It centres each row and divides by the cached
# scale (via `apply_ln_to_stack`), then dots with `W_U[:, t]`, **without** the LayerNorm
# weight $w$ and without the constants. That is the right formula only for a model whose
# LayerNorm weight has been *folded* into $W_U$ (hub models loaded with
# `enable_compatibility_mode()` are; the course models are not). Multiply by $w$ yourself and
# you get your own rows back:

# %%
resid_stack = cache.decompose_resid(pos_slice=-1)  # [component, batch, d_model]
tl_attrs = cache.logit_attrs(resid_stack, tokens=io_token, pos_slice=-1)[:, 0]
normalised = cache.apply_ln_to_stack(resid_stack, pos_slice=-1)[:, 0]
print(
    f"max |logit_attrs - apply_ln_to_stack @ W_U[:, t]|         = {(tl_attrs - normalised @ model.W_U[:, io_token]).abs().max():.1e}"
)
print(f"max |logit_attrs - your rows|                              = {(tl_attrs - values[:-2]).abs().max():.3f}")
with_w = normalised @ (model.ln_final.w * model.W_U[:, io_token])
print(f"max |apply_ln_to_stack @ (w * W_U[:, t]) - your rows|      = {(with_w - values[:-2]).abs().max():.1e}")

# %% [markdown]
# ### Exercise 3.2 — down to single heads
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# An attention layer's output is the sum of its heads' outputs plus the bias $b_O$. Head $h$
# of layer $\ell$ writes $z^{\ell}[pos, h] \cdot W_O[\ell, h]$, where $z$ is
# `cache["z", ℓ]` (shape `[batch, pos, head, d_head]`) and `model.W_O` has shape
# `[layer, head, d_head, d_model]`. Attribute the logit to every head, and keep the sum exact:
# the biases $b_O$ of all layers, summed, get one row of their own, `"b_O"`. Use the row order
# of `cache.get_full_resid_decomposition(expand_neurons=False)`: heads, MLPs, embeddings,
# biases, then the two constants.


# %% tags=["exercise"]
def head_logit_attribution(
    model: TransformerBridge, cache: ActivationCache, answer_token: int, pos: int = -1
) -> tuple[Float[Tensor, " component"], list[str]]:
    """Direct logit attribution with every attention layer split into its heads.

    Same conventions as direct_logit_attribution (frozen scale s, ln_final.w, one prompt).
    Rows, in order: "L{l}H{h}" for every layer l and head h (head output z[0, pos, h] @ W_O[l, h]),
    "{l}_mlp_out" for every layer, "embed", "pos_embed", "b_O" (model.b_O summed over layers,
    a [d_model] vector attributed like a component), then the constants "ln_final.b" and "b_U".
    Returns (values [n_layers * n_heads + n_layers + 5], labels). The values sum to
    logits[0, pos, answer_token].
    """
    raise NotImplementedError("head_logit_attribution: per-head outputs from z and W_O, then attribute as before")


# %%
checks.test_head_logit_attribution(head_logit_attribution)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Only the rows change from exercise 3.1: each attention layer becomes one row per head, and
# the attention biases, which belong to no head, need a row of their own.
# </details>
#
# <details><summary>Hint 2</summary>
#
# For one layer, `torch.einsum("hd,hdm->hm", cache["z", l][0, pos], model.W_O[l])` gives the
# `[n_heads, d_model]` head outputs. `torch.cat` the layers, the `[n_layers, d_model]` MLP
# outputs and the three remaining vectors into one `[component, d_model]` stack; the rest is
# exercise 3.1. (You may also start from `cache.stack_head_results(pos_slice=pos)`.)
# </details>

# %%
head_values, head_labels = head_logit_attribution(model, cache, io_token)
print(f"sum = {head_values.sum().item():.4f}; the model's logit = {true_logit:.4f}")
assert abs(head_values.sum().item() - true_logit) <= 1e-3
print(
    f"the b_O row: {head_values[head_labels.index('b_O')].item():+.3f}   "
    f"(leave it out and the sum is off by exactly that much)"
)

# %% [markdown]
# ## 4. Logit difference: which components pick the right name?
#
# The IOI question is not "how big is the logit of IO" but "why IO rather than S". Since the
# attribution is linear in the unembedding column, the attribution of the **logit
# difference** $\text{logit}_{IO} - \text{logit}_{S}$ is the difference of the two
# attributions, row by row: the direction $W_U[:, IO] - W_U[:, S]$ replaces $W_U[:, t]$. What
# raises both names equally (for instance "a name comes next") cancels.

# %%
io_values, labels = direct_logit_attribution(model, cache, io_token)
s_values, _ = direct_logit_attribution(model, cache, s_token)
diff_values = io_values - s_values
true_diff = (logits[0, -1, io_token] - logits[0, -1, s_token]).item()
print(
    f"sum of the difference attribution = {diff_values.sum().item():.4f}; the model's logit difference = {true_diff:.4f}"
)
fig = bar(
    diff_values,
    labels=labels,
    x_title="component",
    y_title=f"direct contribution to logit({prompt.io!r}) − logit({prompt.s!r})",
    title=f"{MODEL_NAME}: logit-difference attribution, IO {prompt.io!r} vs S {prompt.s!r} (one IOI prompt)",
)
fig.show()
order = diff_values[:-2].argsort(descending=True)
print("largest positive components:", [(labels[i], round(diff_values[i].item(), 2)) for i in order[:3].tolist()])
print("largest negative components:", [(labels[i], round(diff_values[i].item(), 2)) for i in order[-2:].tolist()])

# %% [markdown]
# One prompt can mislead. Below, every one of the `N_IOI_PROMPTS` held-out prompts runs in
# one padded batch; `cache.apply_slice_to_batch_dim` cuts out one prompt's cache (still with a
# batch axis of 1), and each prompt is read at its own last real position (padding sits
# *after* it, and attention is causal, so padding cannot change it). We average the per-head
# difference and draw it as a layer × head heatmap.

# %%
batch = ioi.tokenize(ioi_prompts, model.tokenizer)
_, batch_cache = model.run_with_cache(batch.tokens)
n_head_rows = n_layers * n_heads
per_prompt = []
for i, pos in enumerate(batch.answer_pos.tolist()):
    one = batch_cache.apply_slice_to_batch_dim(slice(i, i + 1))
    io_heads, head_labels = head_logit_attribution(model, one, int(batch.io_ids[i]), pos)
    s_heads, _ = head_logit_attribution(model, one, int(batch.s_ids[i]), pos)
    per_prompt.append(io_heads - s_heads)
per_prompt = torch.stack(per_prompt)  # [prompt, component]
mean_diff = per_prompt.mean(0)
true_diffs = per_prompt.sum(1)  # each prompt's attribution sums to its logit difference
print(
    f"logit(IO) - logit(S) over the {len(ioi_prompts)} prompts: mean {true_diffs.mean():.3f}, "
    f"positive (IO preferred) on {(true_diffs > 0).sum().item()} of {len(ioi_prompts)}"
)
head_map = mean_diff[:n_head_rows].reshape(n_layers, n_heads)

fig = heatmap(
    head_map,
    x_title="head",
    y_title="layer",
    color_title="logit diff",
    x_labels=[f"H{h}" for h in range(n_heads)],
    y_labels=[f"L{l}" for l in range(n_layers)],
    title=f"{MODEL_NAME}: mean direct effect of each head on logit(IO) − logit(S), {len(ioi_prompts)} held-out IOI prompts",
)
fig.show()
ranked = head_map.flatten().argsort(descending=True)
print("heads, most positive first:", [(head_labels[i], round(mean_diff[i].item(), 2)) for i in ranked[:4].tolist()])
print("most negative:", [(head_labels[i], round(mean_diff[i].item(), 2)) for i in ranked[-2:].tolist()])
print(
    "mean of the other rows:",
    [(head_labels[i], round(mean_diff[i].item(), 2)) for i in range(n_head_rows, len(head_labels))],
)

# %% [markdown]
# Read the heatmap (model `gelu-4l`, the held-out IOI prompts): a red cell is a head whose
# output, read straight through the unembedding, pushes the indirect object above the
# subject; a blue cell pushes the other way. The first printed line says how often the model
# actually prefers the indirect object. In the shipped `gelu-4l` the direct effect is shared
# by several heads of layers 1 and 2 (the printed list), with weak blue cells in layer 0:
# no single "name mover" does the job, and a small model trained on one task has no reason
# to concentrate it in one head. The last line shows the non-head rows, MLPs
# included, averaged the same way: a head map alone can miss where most of the difference is
# written. And all of this is only the **direct** effect: a head that helps by informing a
# later head (rather than writing a name itself) shows up here as near zero. Chapter 04
# measures total effects with activation patching.
#
# ## 5. The answer's rank layer by layer, with and without LayerNorm
#
# Chapter 02 decoded the running totals of the stream (the logit lens). Here we ask one
# narrow question about it: how much does the final LayerNorm matter when we decode an
# *intermediate* total? We take the chapter's IOI prompt again and follow its answer, the
# indirect object, comparing its ranks (rank 0 = top) when each running total is decoded
#
# - **without LayerNorm**: $x\,W_U + b_U$;
# - **with LayerNorm**, each running total normalised with its **own** statistics, as the
#   logit lens does (`accumulated_resid(apply_ln=True)`). Note the difference with section 3:
#   there we froze the *final* stream's scale to split one vector into parts; here each
#   running total is a different vector to decode.
#
# To see *which* part of the LayerNorm moves the rank, we also add its steps one at a time.

# %%
print(repr(prompt.text), "→", repr(prompt.answer))  # `cache` still holds this prompt's run (set-up)
acc, acc_labels = cache.accumulated_resid(pos_slice=-1, return_labels=True)  # [n_layers + 1, 1, d_model]
x = acc[:, 0]
centred_x = x - x.mean(-1, keepdim=True)
own_scale = (centred_x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
w, b = model.ln_final.w, model.ln_final.b
steps = {
    "no LN": x @ model.W_U + model.b_U,
    "centre": centred_x @ model.W_U + model.b_U,
    "÷ own scale": (centred_x / own_scale) @ model.W_U + model.b_U,
    "× w": (centred_x / own_scale * w) @ model.W_U + model.b_U,
    "+ b (full LN)": (centred_x / own_scale * w + b) @ model.W_U + model.b_U,
}
tl_ln = cache.accumulated_resid(pos_slice=-1, apply_ln=True)[:, 0] @ model.W_U + model.b_U
print(f"max |full LN by steps - accumulated_resid(apply_ln=True)| = {(steps['+ b (full LN)'] - tl_ln).abs().max():.1e}")


def rank_of(layer_logits: Float[Tensor, "layer d_vocab"], token: int) -> Tensor:
    """Rank of `token` in each row: how many tokens score strictly higher (0 = top)."""
    return (layer_logits > layer_logits[:, token, None]).sum(-1)


ranks = {name: rank_of(step_logits, io_token) for name, step_logits in steps.items()}
print(f"\nrank of {prompt.answer!r} (0 = top) after each layer; the columns add one LayerNorm step at a time:")
print(f"{'':12}" + "".join(f"{name:>15}" for name in ranks))
for row, label in enumerate(acc_labels):
    print(f"{label:12}" + "".join(f"{r[row].item():>15}" for r in ranks.values()))
names = list(ranks)
moves = {names[i]: (ranks[names[i]] - ranks[names[i - 1]]).abs().float().mean().item() for i in range(1, len(names))}
print(
    "mean |change in rank| caused by each step:",
    {k: round(v, 1) for k, v in moves.items()},
    "→ largest:",
    max(moves, key=moves.get),
)

fig = line(
    torch.stack([ranks["no LN"], ranks["+ b (full LN)"]]).float() + 1,
    x=acc_labels,
    series=["without LayerNorm", "with LayerNorm (own statistics)"],
    x_title="running total of the residual stream",
    y_title="rank of the answer + 1 (log scale; 1 = top)",
    title=f"{MODEL_NAME}: rank of {prompt.answer!r} after each layer, decoded with and without the final LayerNorm",
)
fig.update_yaxes(type="log")
fig.show()

# %% [markdown]
# Read the table (model `gelu-4l`, the chapter's IOI prompt; the last row of the last column
# is the model's real output). The figure draws its first and last columns: the answer climbs
# with depth in both, but not through the same ranks. The line under the table
# says which LayerNorm step moves the rank most. Step by step:
#
# - **centre** removes each row's mean, the component along the all-ones direction; it
#   changes a rank only if $W_U$'s columns differ in their sums.
# - **÷ own scale** divides a whole row by one positive number. Compare this column with the
#   previous one, remembering that `gelu-4l`'s $b_U$ is zero (section 3 printed its largest
#   entry); question 3 below asks what that tells you.
# - **× w** re-weights every dimension by the LayerNorm's learned gain: a genuinely different
#   direction, so ranks move.
# - **+ b** adds the LayerNorm's bias, whose logit $b \cdot W_U[:, t]$ is the same at every layer;
#   next to a normalised row it is not negligible, so ranks move again.
#
# So the two decodings differ because of the gain $w$ and the bias $b$ (and, in a model with
# an unembedding bias, because the raw rows have the wrong size next to $b_U$). The final row
# can differ too: the raw final residual is *not* what the unembedding reads; only the LN
# column's last row is the model's actual ranking. For intermediate rows, the LN column is
# the one to trust: $W_U$ was only ever trained on normalised vectors.

# %% [markdown]
# ## 6. Reading an attribution tensor without fooling yourself
#
# Attribute every position at once and you get a tensor `attrs[component, prompt, position]`:
# the direct contribution of each component to the logit of the token that really came next
# there. Below, the `N_IOI_PROMPTS` prompts are cut to a common length (so no padding enters),
# and the rows of `decompose_resid` are normalised with each position's cached final scale
# (`apply_ln_to_stack`), multiplied by `ln_final.w`, and dotted with the next token's unembedding.

# %%
rows = [model.to_tokens(p.text)[0] for p in ioi_prompts]
cut = torch.stack([r[: min(len(r) for r in rows)] for r in rows])  # [prompt, pos]
_, cut_cache = model.run_with_cache(cut)
comp_stack, comp_labels = cut_cache.decompose_resid(return_labels=True)  # [component, prompt, pos, d_model]
normed = cut_cache.apply_ln_to_stack(comp_stack) * model.ln_final.w
attrs = torch.einsum("cbpd,dbp->cbp", normed[:, :, :-1], model.W_U[:, cut[:, 1:]])  # position p predicts token p + 1
print("attrs:", tuple(attrs.shape), "[component, prompt, position]; components:", comp_labels)

# %% [markdown]
# Where is the single largest attribution? A first attempt, much like one found in published
# notes on a small model, reads the flat index of the maximum like this:

# %%
flat = int(attrs.argmax())
rest, component = divmod(flat, attrs.shape[0])
print(
    "first attempt:",
    comp_labels[component],
    "at prompt",
    rest // attrs.shape[2],
    "position",
    rest % attrs.shape[2],
    f"— value there: {attrs[component, rest // attrs.shape[2], rest % attrs.shape[2]]:.2f}; the maximum: {attrs.max():.2f}",
)

# %% [markdown]
# The value printed at the place it names is not the maximum. `argmax` of a tensor indexes it
# as if it were flattened in row-major order; which index of `[component, prompt, position]`
# moves fastest through that flat order, and which one did the first attempt treat as fastest?
#
# ### Exercise 6.1 — find the largest attribution
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def top_attribution(attrs: Float[Tensor, "component batch pos"], labels: list[str]) -> tuple[str, int, int]:
    """Where the largest (most positive) entry of ``attrs`` sits: ``(its component's label, batch index, position)``.

    ``labels[c]`` names row ``c`` of ``attrs``; returns plain Python values.
    """
    raise NotImplementedError("turn the flat argmax back into three indices")


# %%
checks.test_top_attribution(top_attribution)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# In a `[C, B, P]` tensor, the flat index of entry `[c, b, p]` is `(c * B + b) * P + p`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `torch.unravel_index(flat_index, attrs.shape)` undoes it for you (or use `divmod` twice, by `P`
# first).
# </details>
#
# ### Exercise 6.2 — which components matter over the whole text?
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵⚪⚪⚪
#
# To rank components over many predictions, add each component's attributions over every
# prompt and every position. Keep in mind what that sum means: each position predicts a
# *different* token, so the total says which components help the model's predictions on this
# text overall, not which one decides any single prediction — that is what the per-entry view of
# exercise 6.1 is for.


# %% tags=["exercise"]
def rank_components(attrs: Float[Tensor, "component batch pos"], labels: list[str]) -> list[str]:
    """The component labels sorted by their total attribution (summed over prompts and positions), largest first."""
    raise NotImplementedError("one total per component, then sort")


# %%
checks.test_rank_components(rank_components)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Sum over the two axes that are not the component; `argsort(descending=True)` gives the order.
# </details>

# %%
top_label, top_prompt, top_pos = top_attribution(attrs, comp_labels)
cut_str = model.to_str_tokens(cut[top_prompt])
print(
    f"largest single attribution: {top_label} at prompt {top_prompt}, position {top_pos} ({cut_str[top_pos]!r} -> "
    f"{cut_str[top_pos + 1]!r}): {attrs.max():.2f}"
)
component_ranking = rank_components(attrs, comp_labels)
print("components by total attribution over every prompt and position:", component_ranking)

# %% [markdown]
# Compare the two answers (model `gelu-4l`). The component with the largest single entry need
# not lead the total, and a component that leads the total may never be the largest anywhere:
# the two views answer different questions, and a report should say which one it gives.
#
# ## Check your understanding
#
# 1. In section 3 you summed the component rows computed **without** dividing by the frozen
#    scale. Their sum equals the sum of the correct component rows times what? Answer with
#    one of the strings `"scale"`, `"1/scale"`, `"d_model"`, `"1"`.
# 2. Which rows of `direct_logit_attribution` take the same value on *every* prompt, for a
#    fixed answer token? Give a set of labels.
# 3. Suppose the model had no `ln_final.b` and no `b_U`. Could dividing a row of the
#    accumulated residual by its own (positive) scale change the answer's rank in that row?
#    (`True` or `False`.)
# 4. In the section 4 heatmap, which head has the most positive mean direct effect on
#    logit(IO) − logit(S)? Write it as `"L<layer>H<head>"` (for example `"L0H0"`). The check
#    computes it on `gelu-4l` with the 16 held-out prompts of section 4 (and accepts any head
#    within 10 % of the top one, since near ties cannot be read off a colour scale).

# %% tags=["exercise"]
answer_unscaled_sum_is_times = ...
answer_prompt_independent_rows = ...
answer_scaling_changes_rank = ...
answer_top_ioi_head = ...

# %%
checks.test_answer_unscaled_sum_is_times(answer_unscaled_sum_is_times)
checks.test_answer_prompt_independent_rows(answer_prompt_independent_rows)
checks.test_answer_scaling_changes_rank(answer_scaling_changes_rank)
checks.test_answer_top_ioi_head(answer_top_ioi_head)

# %% [markdown]
# ## What we found
#
# Every sentence below is printed from numbers this notebook computed on the model you loaded
# (`gelu-4l` by default); `tests/test_findings.py` recomputes them on the course model and fails
# if a retrained model stops bearing one out. On another model, a claim that does not hold is
# printed as such.

# %%
from course_utils.findings import report, residual_findings

report(
    residual_findings(
        attribution_error=abs(values.sum().item() - true_logit),
        unscaled_error=unscaled.sum().item() + constants - true_logit,
        final_scale=scale.item(),
        true_diffs=true_diffs,
        head_map=head_map,
        io_ranks=ranks["+ b (full LN)"].tolist(),
        raw_ranks=ranks["no LN"].tolist(),
        rank_labels=acc_labels,
        component_ranking=component_ranking,
    )
)

# %% [markdown]
# ## Summary
#
# - The residual stream is a running sum: `resid_post` of layer $L$ = embed + pos_embed +
#   every `attn_out` and `mlp_out` up to $L$. The cache holds both the totals and the terms.
# - TransformerLens stacks the terms for you (`decompose_resid`, `stack_head_results`,
#   `get_full_resid_decomposition`) or the totals (`accumulated_resid`). Per-head outputs are
#   computed from `z` and `W_O`, and miss the attention bias $b_O$: account for it in its own row.
# - Direct logit attribution is exact once the final LayerNorm's scale is frozen: centre each
#   component, divide by the cached `ln_final.hook_scale`, multiply by `ln_final.w`, dot with
#   `W_U[:, t]`, and add the constants `ln_final.b · W_U[:, t]` and `b_U[t]`.
#   `cache.logit_attrs` leaves out `w` and the constants (it assumes they were folded into $W_U$).
# - A logit difference attribution is the difference of two attributions; it cancels what
#   the two answers share.
# - Decoding an intermediate running total needs the LayerNorm with that total's own
#   statistics; without it, the re-weighting by $w$, the centring and the balance with the
#   biases are all wrong, and ranks move.
# - An attribution over `[component, prompt, position]` is read with care: unravel a flat
#   `argmax` with the tensor's shape, and say whether a ranking is per entry or summed.
#
# ## Going further
#
# - Elhage et al. (2021), *A Mathematical Framework for Transformer Circuits*: the residual
#   stream as a communication channel, and why attention heads' outputs add up.
# - Wang et al. (2022), *Interpretability in the Wild: a Circuit for Indirect Object
#   Identification in GPT-2 small*: IOI, logit differences, and name-mover heads found by
#   their direct effect. Online, set `MODEL_NAME = "gpt2-small"` to draw this chapter's
#   figures for GPT-2 small (12 layers × 12 heads); the names in `ioi.NAMES` must then be
#   single GPT-2 tokens, which `ioi.tokenize` checks.
# - nostalgebraist (2020), *interpreting GPT: the logit lens*, for the decoding of running totals.
# - The original version of section 5's rank table used the hub model `tiny-stories-1M`
#   (online), and the TransformerLens documentation of `ActivationCache.accumulated_resid`
#   shows one of the same kind on it. Set `MODEL_NAME = "tiny-stories-1M"` and give section 5
#   a story sentence to draw it yourself; the numbers will then be the hub model's, not the
#   course's.
# - Next: chapter 04 measures **total** effects (direct and through later layers) with
#   activation patching.
