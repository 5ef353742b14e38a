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
# # Chapter 04 — Activation patching: which activations *cause* the answer?
#
# Looking at activations tells you what is *there*; it does not tell you what the model *uses*.
# **Activation patching** is the experiment that does. Take two prompts that differ in one
# detail: a **clean** prompt, on which the model gives the right answer, and a **corrupted**
# prompt, on which it cannot. Run the model on the corrupted prompt, but overwrite one
# activation (one layer, one position, or one attention head) with its value from the clean
# run, and let the rest of the forward pass continue. If the right answer comes back, that
# activation carried the information that mattered. Sweep this over every layer and position,
# or every head, and you get a map of where the model keeps and moves the information it
# needs. We do it on **indirect object identification** (IOI): in "When Mary and John went to
# the store, John gave a drink to", the model should answer " Mary", the name that was *not*
# repeated.
#
# **You will learn to**
# - build clean/corrupted prompt pairs that differ in one token, and measure behaviour with a
#   logit difference normalised so that 0 = corrupted and 1 = clean;
# - patch the residual stream position by position and layer by layer with hooks, and read the
#   heatmap: where the name information sits, and when it moves to the final position;
# - patch attention heads (all positions, then position by position) to find the heads that
#   carry the answer, and confirm your numbers with `transformer_lens.patching`;
# - tell denoising from noising, and explain why one patch changes everything downstream;
# - (beyond) approximate a whole sweep with one backward pass (attribution patching), and make
#   the exact sweep many times faster without changing a single number.
#
# **Prerequisites:** chapter 01 (hooks, `run_with_hooks`, the cache) and chapter 03 (the logit
# difference and the IOI task).
#
# **Estimated time:** about 2 hours, plus 45 minutes for the two "beyond" sections.
#
# Every exercise is a short function with a check in the cell below it. Difficulty is marked
# 🔴 (out of five) and importance 🔵 (out of five). Hints are folded; open them only when stuck.

# %% [markdown]
# ## Set-up

# %%
# Without the course installed (Colab, JupyterHub)? Run first: %pip install "git+<repository URL>"
import time
from collections.abc import Callable
from functools import partial

import plotly.express as px
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import ActivationCache, patching
from transformer_lens.model_bridge import TransformerBridge

from course_utils import bar, heatmap, load_model, position_labels
from course_utils.checks import activation_patching as checks
from course_utils.tasks import ioi

torch.set_num_threads(1)  # a small model: extra CPU threads gain little, and cost a lot on a busy machine

# %% tags=["parameters"]
HUB_MODEL_NAME = "gpt2-small"  # the original IOI experiment's model on the Hugging Face hub
MODEL_NAME = "gelu-4l"  # offline course model; online (or after `make download`): MODEL_NAME = HUB_MODEL_NAME
N_PROMPTS = 16  # clean/corrupted pairs in the batch that every sweep patches
CORRUPTION = "flip"  # "flip": S2 becomes the IO name; "abc": S2 becomes a third name
SEED = 3  # which sample of prompts (section 1 compares it with a sample of 256)

# %%
model = load_model(MODEL_NAME)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
print(f"{MODEL_NAME}: {n_layers} layers, {n_heads} heads per layer, d_model = {model.cfg.d_model}")

# %% [markdown]
# ## 1. The task, the corruption and the metric
#
# An IOI prompt names two people, then names one of them again (the **subject**, S); the right
# next word is the *other* name, the **indirect object** (IO). We call the first mention of S
# **S1**, the second **S2**, and the last token of the prompt, where the model must answer,
# **END**. The course's task module writes such prompts from 20 templates and 110 names, in two
# orders: ABBA ("When *IO* and *S* …, *S* gave … to") and BABA ("When *S* and *IO* …").
#
# For patching we need a **corrupted** partner for each prompt. We use the "flip" corruption:
# replace S2 by the IO name. "When Mary and John went to the store, John gave a drink to"
# becomes "When Mary and John went to the store, **Mary** gave a drink to": the corrupted
# prompt has the same tokens as the clean one everywhere except at S2, but now the *other*
# name is repeated, so the right answer flips from IO to S. (The "abc" corruption, which puts
# a third name at S2, is the other common choice; set `CORRUPTION = "abc"` to try it.)
#
# One more constraint. We will patch **position by position**, and a batch shares positions:
# position 10 must be S2 in *every* prompt. Templates have different lengths, so we keep only
# the templates whose tokens line up with template 0 (same length, names at the same
# positions). We take name pairs held out from the model's training, and only names that are one
# token in the loaded model's tokenizer (all of them in the course tokenizer; GPT-2 splits three).


# %%
def layout(template_id: int) -> tuple[int, list[int]]:
    """(number of tokens, positions of the three names) of a template, without BOS."""
    prompt = ioi.render(template_id, "Mary", "John", "ABBA")
    ids = model.to_tokens(prompt.text, prepend_bos=False)[0].tolist()
    names = {model.to_single_token(" Mary"), model.to_single_token(" John")}
    return len(ids), [i for i, t in enumerate(ids) if t in names]


ALIGNED = [t for t in range(len(ioi.TEMPLATES)) if layout(t) == layout(0)]
print("token layout of template 0 (length, name positions):", layout(0))
print("templates with the same layout:", ALIGNED)
for t in ALIGNED:
    print(f"  {t:2d}: {ioi.TEMPLATES[t]}")


# %%
def aligned_pairs(n: int, seed: int) -> list[tuple[ioi.IOIPrompt, ioi.IOIPrompt]]:
    """n (clean, corrupted) pairs of held-out name pairs, from the aligned templates only."""
    candidates = ioi.clean_corrupted_pairs(
        40 * n, split="heldout_pairs", kind=CORRUPTION, seed=seed, tokenizer=model.tokenizer
    )
    return [pair for pair in candidates if pair[0].template_id in ALIGNED][:n]


pairs = aligned_pairs(N_PROMPTS, SEED)
clean_batch = ioi.tokenize([clean for clean, _ in pairs], model.tokenizer)
corrupted_batch = ioi.tokenize([corrupted for _, corrupted in pairs], model.tokenizer)
clean_tokens, corrupted_tokens = clean_batch.tokens.to(model.cfg.device), corrupted_batch.tokens.to(model.cfg.device)
answer_tokens = torch.stack([clean_batch.io_ids, clean_batch.s_ids], dim=1).to(model.cfg.device)  # [batch, 2]: (IO, S)

for clean, corrupted in pairs[:4]:
    print(f"{clean.order}  clean:     {clean.text!r} → {clean.answer!r}\n      corrupted: {corrupted.text!r}")
differs = (clean_tokens != corrupted_tokens).any(dim=0).nonzero().flatten().tolist()
print(
    f"\n{len(pairs)} pairs, tokens {tuple(clean_tokens.shape)}; clean and corrupted differ at {len(differs)} position(s)"
)

# %% [markdown]
# Each prompt's positions get a label for the plots: its token, and its role. "A" and "B" are
# the first two names (IO then S in ABBA prompts, S then IO in BABA ones), "S2" the repeated
# name and "END" the last token. The words at other positions vary between the five
# templates; the labels show those of the first prompt.

# %%
A_POS, B_POS, S2_POS = (p + 1 for p in layout(0)[1])  # +1: BOS comes first
END_POS = clean_tokens.shape[1] - 1
assert differs == [S2_POS]
roles = {A_POS: "A", B_POS: "B", S2_POS: "S2", END_POS: "END"}
labels = [
    f"{label} ({roles[i]})" if i in roles else label
    for i, label in enumerate(position_labels(model.to_str_tokens(clean_tokens[0])))
]
print(labels)

# %% [markdown]
# Does the model do the task? Compare the logit of the right name (IO) with the logit of the
# wrong one (S) at END. The course's `ioi.logit_diff` computes this for a tokenised batch. We
# measure it on our batch, and on a larger sample of 256 pairs (one forward pass each, no
# patching) to see how typical our batch is.


# %%
def describe_task(pairs: list[tuple[ioi.IOIPrompt, ioi.IOIPrompt]], what: str, per_run: int = 32) -> None:
    for name, side in [("clean", 0), ("corrupted", 1)]:
        diffs = []
        for start in range(
            0, len(pairs), per_run
        ):  # per_run prompts at a time: logits over a 50k-token vocabulary add up
            chunk = pairs[start : start + per_run]
            clean = ioi.tokenize([pair[0] for pair in chunk], model.tokenizer)
            batch = ioi.tokenize([pair[side] for pair in chunk], model.tokenizer)
            with torch.no_grad():
                logits = model(batch.tokens.to(model.cfg.device)).cpu()
            diffs.append(ioi.logit_diff(logits, clean))  # the corrupted prompts keep the clean IO and S tokens
        diffs = torch.cat(diffs)
        print(
            f"{what:15} {name:9}  mean logit(IO) − logit(S) = {diffs.mean():+.3f}   "
            f"IO above S in {(diffs > 0).sum()}/{len(diffs)} prompts"
        )


describe_task(pairs, "our batch")
describe_task(aligned_pairs(256, seed=SEED + 1000), "256 other pairs")

# %% [markdown]
# What to look for: a model that has learned IOI puts IO clearly above S on the clean prompts
# (a positive mean logit difference, IO ahead in nearly all of them) and below S on the
# flipped ones, whose answer is S. Patching explains the **gap** between the two runs: every
# score below is measured as a fraction of it. The lines above are the figures of the model
# in the parameters cell. Read them before trusting any heatmap: a model that fails the task
# has no gap worth explaining. The course's `gelu-4l` gets over 90 % of held-out IOI prompts
# right, on name pairs and sentence templates it never saw in training (its model card,
# `models/gelu-4l/MODEL_CARD.md`, gives the figures per split), so the maps below show how
# *this* small model does the task. The method is the same for any model; `gpt2-small`
# (online) is the model of the original IOI study, and its circuit is larger and messier.

# %%
with torch.no_grad():
    clean_logits, clean_cache = model.run_with_cache(clean_tokens)
    corrupted_logits, corrupted_cache = model.run_with_cache(corrupted_tokens)

# %% [markdown]
# ### Exercise 1.1 — the logit difference
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# Write the batched logit difference yourself. All prompts in our batches have the same
# length, so every answer is predicted at the last position. `clean_logits` and
# `corrupted_logits` (computed above) are the model's outputs on our batch.


# %% tags=["exercise"]
def logit_diff(
    logits: Float[Tensor, "batch pos d_vocab"], answer_tokens: Int[Tensor, "batch 2"]
) -> Float[Tensor, " batch"]:
    """Logit of the correct name minus logit of the wrong name, at the final position, per prompt.

    logits: the model's output on a batch of equal-length prompts.
    answer_tokens: row i is (correct token, wrong token) for prompt i: (IO, S) in IOI.
    Returns one number per prompt (no mean over the batch).
    """
    raise NotImplementedError("logit_diff: read the final position, then pick each prompt's own two tokens")


# %%
checks.test_logit_diff(logit_diff)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `final = logits[:, -1]` is `[batch, d_vocab]`. `final[:, answer_tokens[:, 0]]` would be
# `[batch, batch]` (every prompt's answer for every prompt); pair each row with its own token
# with `final.gather(-1, answer_tokens)` (→ `[batch, 2]`), or with
# `final[torch.arange(len(final)), answer_tokens[:, 0]]`.
# </details>

# %%
clean_logit_diff = logit_diff(clean_logits, answer_tokens).mean().item()
corrupted_logit_diff = logit_diff(corrupted_logits, answer_tokens).mean().item()
print(f"mean logit difference: clean {clean_logit_diff:+.3f}, corrupted {corrupted_logit_diff:+.3f}")

# %% [markdown]
# ### Exercise 1.2 — a metric with two fixed points
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# A raw logit difference is hard to read in a sweep: is 1.3 a lot? Rescale it so that the
# corrupted run scores **0** and the clean run scores **1**:
#
# $$\text{metric} = \frac{\overline{\text{LD}}_\text{patched} - \overline{\text{LD}}_\text{corrupted}}
# {\overline{\text{LD}}_\text{clean} - \overline{\text{LD}}_\text{corrupted}}$$
#
# where $\overline{\text{LD}}$ is the logit difference averaged over the batch. A patch that
# scores 0.8 restores 80 % of the clean behaviour. Scores below 0 or above 1 are possible
# (a patch can make things worse, or overshoot). Keep the result a tensor: section 6
# differentiates it.


# %% tags=["exercise"]
def normalised_patching_metric(
    logits: Float[Tensor, "batch pos d_vocab"],
    answer_tokens: Int[Tensor, "batch 2"],
    clean_logit_diff: float,
    corrupted_logit_diff: float,
) -> Float[Tensor, ""]:
    """Mean logit difference rescaled so that the corrupted run scores 0 and the clean run 1.

    logits: output of a (possibly patched) run on the batch.
    answer_tokens: (IO, S) per prompt, as for `logit_diff` (you may call your `logit_diff`).
    clean_logit_diff, corrupted_logit_diff: mean logit differences of the unpatched runs.
    Returns a 0-dimensional tensor (not a Python float).
    """
    raise NotImplementedError("normalised_patching_metric: (mean LD − corrupted) / (clean − corrupted)")


# %%
checks.test_normalised_patching_metric(normalised_patching_metric)

# %% [markdown]
# Every sweep below takes a `metric`: a function of the logits alone. `functools.partial`
# fixes the other arguments.

# %%
metric = partial(
    normalised_patching_metric,
    answer_tokens=answer_tokens,
    clean_logit_diff=clean_logit_diff,
    corrupted_logit_diff=corrupted_logit_diff,
)
print(f"metric(clean) = {metric(clean_logits):.3f}, metric(corrupted) = {metric(corrupted_logits):.3f}")

# %% [markdown]
# ## 2. Patching the residual stream
#
# The **residual stream** at the start of block ℓ, `blocks.ℓ.hook_resid_pre`, shape
# `[batch, pos, d_model]`, is everything the model knows at that point, one vector per
# position. Patching it at layer ℓ and position p means: run the corrupted tokens, and when
# the forward pass reaches `blocks.ℓ.hook_resid_pre`, overwrite `[:, p]` with the clean run's
# vector, then let the model carry on. This kind of patching, clean into corrupted, is called
# **denoising**. Every (layer, position) cell needs its own forward pass.
#
# A hook (chapter 01) is a function `hook_fn(activation, hook)` that returns the new
# activation. Two things bite here:
# - each patch must run with **only its own hook** attached: use `model.run_with_hooks(...)`
#   (it removes its hooks afterwards) rather than `model.add_hook`;
# - a hook made in a loop must capture the loop's *current* position: pass it as a default
#   argument (`lambda act, hook, pos=pos: …`) or with `functools.partial`, or every hook
#   will see the last value of `pos`.
#
# Use `tqdm` around the outer loop so you can see the sweep progress, and wrap the loop in
# `with torch.no_grad():` (no gradients are needed, and the sweep runs faster).

# %% [markdown]
# ### Exercise 2.1 — patch the residual stream, one position at a time
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵🔵


# %% tags=["exercise"]
def patch_residual_stream(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
) -> Float[Tensor, "layer pos"]:
    """Denoise `blocks.{layer}.hook_resid_pre` at one position at a time; return the metric per patch.

    For every layer and every position, run `corrupted_tokens` with the residual stream at
    the start of that layer, at that position only (all prompts of the batch), replaced by
    its value in `clean_cache`. `metric(logits)` scores each patched run.
    Returns a [n_layers, n_pos] tensor: entry [layer, pos] is the metric of that patch.
    """
    raise NotImplementedError("patch_residual_stream: one run_with_hooks per (layer, position)")


# %%
checks.test_patch_residual_stream(patch_residual_stream)

# %% [markdown]
# <details><summary>Hint 1: the shape of the loop</summary>
#
# Two nested loops, one over layers and one over positions; each iteration is one patched
# forward pass that fills one entry of a `[n_layers, n_pos]` result. Which hook name does a
# layer use, and which slice of the activation belongs to one position?
# </details>
#
# <details><summary>Hint 2: the hook</summary>
#
# The hook overwrites one position of the corrupted run's `blocks.{layer}.hook_resid_pre` with
# the clean cache's value at that position, for every prompt: only `[:, pos]`, not `[:, :pos]`,
# not `[pos]` (that would be a prompt of the batch). It must return the activation.
# </details>
#
# <details><summary>Hint 3: the code</summary>
#
# ```
# results = torch.zeros(n_layers, n_pos)
# for layer in tqdm(range(n_layers)):
#     name = f"blocks.{layer}.hook_resid_pre"
#     for pos in range(n_pos):
#         def hook(resid, hook, pos=pos):
#             resid[:, pos] = clean_cache[name][:, pos]
#             return resid
#         results[layer, pos] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)]))
# ```
# </details>

# %%
start = time.perf_counter()
resid_results = patch_residual_stream(model, corrupted_tokens, clean_cache, metric)
naive_seconds = time.perf_counter() - start
print(f"{n_layers} × {corrupted_tokens.shape[1]} = {resid_results.numel()} patched runs in {naive_seconds:.1f} s")
heatmap(
    resid_results,
    title=f"Denoising the residual stream (resid_pre), {MODEL_NAME}, {N_PROMPTS} IOI pairs",
    x_title="position (token of prompt 0, role)",
    y_title="layer",
    x_labels=labels,
    y_labels=[str(l) for l in range(n_layers)],
    color_title="metric",
).show()

# %% [markdown]
# What to notice (figure made by the model named in the title, on held-out name pairs):
#
# - **Layer 0**: only the S2 column is non-zero. At the first layer the stream at each
#   position is just that token's embedding (plus its position), and S2 is the only token
#   that differs, so it is the only place where a patch can change anything.
# - **Positions before S2** are exactly 0 at every layer: attention only looks backwards, so
#   nothing before S2 ever sees the corruption, and their clean and corrupted activations are
#   identical.
# - **Going down the layers**, the effect leaves the S2 column for the END column: attention
#   copies what the model computed at S2 to the final position, where the answer is read out.
#   The lines printed below give both scores per layer, and the layer at which END overtakes S2.

# %%
for layer in range(n_layers):
    row = resid_results[layer]
    others = row[[p for p in range(len(row)) if p not in (S2_POS, END_POS)]]
    print(
        f"layer {layer}: S2 {row[S2_POS]:+.3f}   END {row[END_POS]:+.3f}   largest |score| elsewhere {others.abs().max():.3f}"
    )
moved = [layer for layer in range(n_layers) if resid_results[layer, END_POS] > resid_results[layer, S2_POS]]
print(f"END scores higher than S2 from layer {moved[0]} on" if moved else "END never scores higher than S2")

# %% [markdown]
# ## 3. Which attention heads?
#
# Attention heads are what move information between positions, so they are the natural next
# suspects. A head's output is `hook_z` (`blocks.ℓ.attn.hook_z`, shape
# `[batch, pos, head, d_head]`): the weighted average of values, before the output matrix
# `W_O` maps it into the residual stream. Patching `z[:, :, h]` patches exactly what head h
# writes, at every position.

# %% [markdown]
# ### Exercise 3.1 — patch every head's output
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪


# %% tags=["exercise"]
def patch_head_outputs(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
) -> Float[Tensor, "layer head"]:
    """Denoise one head's output `hook_z[:, :, head]` at every position; return the metric per head.

    For every layer and head, run `corrupted_tokens` with `blocks.{layer}.attn.hook_z` of that
    head alone (all positions, all prompts) replaced by its value in `clean_cache`.
    Returns a [n_layers, n_heads] tensor of metric values.
    """
    raise NotImplementedError("patch_head_outputs: one run_with_hooks per (layer, head)")


# %%
checks.test_patch_head_outputs(patch_head_outputs)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `hook_z` is `[batch, pos, head, d_head]`: the head is the **third** index. `z[:, head]`
# would patch position `head` of every head.
# </details>

# %%
head_results = patch_head_outputs(model, corrupted_tokens, clean_cache, metric)
heatmap(
    head_results,
    title=f"Denoising each head's output (all positions), {MODEL_NAME}",
    x_title="head",
    y_title="layer",
    x_labels=[str(h) for h in range(n_heads)],
    y_labels=[str(l) for l in range(n_layers)],
    color_title="metric",
).show()
order = head_results.flatten().argsort(descending=True)
top_heads = [(int(i) // n_heads, int(i) % n_heads) for i in order[:3]]
for layer, head in top_heads:
    print(f"head {layer}.{head}: metric {head_results[layer, head]:+.3f}")

# %% [markdown]
# What to notice: a few heads stand out, and the printed scores above are their values. One
# head restoring a large part of the behaviour on its own means that the clean information
# passes mostly through it. Where do these heads act: at S2, at END, elsewhere?

# %% [markdown]
# ### Exercise 3.2 — the top heads, position by position
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def patch_head_outputs_by_pos(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
    heads: list[tuple[int, int]],
) -> Float[Tensor, "head pos"]:
    """Denoise each listed head at one position at a time; row i is `heads[i]`.

    heads: (layer, head) pairs. For each of them and each position, run `corrupted_tokens`
    with `hook_z[:, pos, head]` of that layer replaced by its clean value.
    Returns a [len(heads), n_pos] tensor of metric values.
    """
    raise NotImplementedError("patch_head_outputs_by_pos: one run_with_hooks per (head, position)")


# %%
checks.test_patch_head_outputs_by_pos(patch_head_outputs_by_pos)

# %%
head_pos_results = patch_head_outputs_by_pos(model, corrupted_tokens, clean_cache, metric, top_heads)
heatmap(
    head_pos_results,
    title=f"Denoising the top heads at one position at a time, {MODEL_NAME}",
    x_title="position (token of prompt 0, role)",
    y_title="head (layer.head)",
    x_labels=labels,
    y_labels=[f"{l}.{h}" for l, h in top_heads],
    color_title="metric",
).show()
for (layer, head), row in zip(top_heads, head_pos_results):
    best = int(row.argmax())
    print(
        f"head {layer}.{head}: largest effect at {labels[best]} ({row[best]:+.3f}), "
        f"sum over positions {row.sum():+.3f} vs all positions at once {head_results[layer, head]:+.3f}"
    )
if moved:
    at_end = [f"{l}.{h}" for (l, h), row in zip(top_heads, head_pos_results) if int(row.argmax()) == END_POS]
    print(
        f"\nIn the residual stream END overtook S2 at the start of layer {moved[0]}, i.e. after layer {moved[0] - 1}. "
        f"Top heads acting mostly at END: {', '.join(at_end) or 'none'}"
    )

# %% [markdown]
# What to notice: read off the printed positions at which each top head matters. A head that
# matters at END *reads* from earlier positions and *writes* where the answer is predicted: it
# is a candidate for the heads that move the information from S2 to END, so compare its
# layer with the layer at which END overtook S2 in section 2 (the last printed line). A head
# that matters at S2 works on the repeated name before the information moves. Compare also
# the two printed sums: they agree when one position carries nearly all of a head's effect,
# but in general per-position effects need not add up to the all-positions effect, because
# patching is not linear.

# %% [markdown]
# ## 4. Same numbers as `transformer_lens.patching`
#
# TransformerLens ships these sweeps: `patching.get_act_patch_resid_pre` and
# `patching.get_act_patch_attn_head_out_all_pos` (and many more: `attn_out`, `mlp_out`,
# queries, keys, values, patterns, by position or not). In TransformerLens 4.3 they work on a
# `TransformerBridge` unchanged. They take the same four arguments as yours, and should give
# the same numbers.

# %%
start = time.perf_counter()
tl_resid = patching.get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, metric)
tl_seconds = time.perf_counter() - start
tl_heads = patching.get_act_patch_attn_head_out_all_pos(model, corrupted_tokens, clean_cache, metric)
print(
    f"resid_pre sweep: max |yours − TransformerLens| = {(resid_results - tl_resid.to(resid_results.device)).abs().max():.1e}"
    f"   ({naive_seconds:.1f} s yours, {tl_seconds:.1f} s TransformerLens)"
)
print(
    f"head sweep:      max |yours − TransformerLens| = {(head_results - tl_heads.to(head_results.device)).abs().max():.1e}"
)

# %% [markdown]
# ## 5. Noising versus denoising, and what one patch really changes
#
# So far we patched **clean into corrupted** (denoising): a high score says "this activation
# is *enough* to bring the behaviour back". The opposite experiment patches **corrupted into
# clean** (noising): run the clean tokens and overwrite one activation with its corrupted
# value. A big drop says "this activation is *needed*". The two questions differ when a model
# has redundancy: if two heads each carry the answer, restoring either one is enough
# (each scores high under denoising), but breaking either one alone hurts little (the other
# still carries it). Your functions do both: just swap the roles of the two runs.
#
# With the same `metric`, the noised clean run scores 1 when the patch does no damage, and
# lower as the patch destroys more.

# %%
noised_heads = patch_head_outputs(model, clean_tokens, corrupted_cache, metric)
fig = px.scatter(
    x=head_results.flatten().cpu(),
    y=(1 - noised_heads).flatten().cpu(),
    text=[f"{l}.{h}" for l in range(n_layers) for h in range(n_heads)],
    labels={
        "x": "denoising score (clean head into corrupted run)",
        "y": "noising damage, 1 − score (corrupted head into clean run)",
    },
    title=f"Is each head enough, and is it needed? ({MODEL_NAME}, heads labelled layer.head)",
)
fig.update_traces(textposition="top center").show()
for layer, head in top_heads:
    print(
        f"head {layer}.{head}: denoising {head_results[layer, head]:+.3f}, noising damage {1 - noised_heads[layer, head]:+.3f}"
    )

# %% [markdown]
# What to notice: heads on the diagonal are both enough and needed; heads far from it are
# where the two experiments disagree. Read the printed numbers of the top heads against
# each other.
#
# **Why one patch changes everything downstream.** A patch replaces one activation, but every
# later component reads the residual stream that the patch changed, so their outputs change
# too. The score of a patch is therefore a **total effect**: the head's own contribution to the
# logits *plus* everything it changed in later layers. Below we patch the top head and compare
# every layer's attention and MLP output (at END) with the corrupted run's.

# %%
layer, head = top_heads[0]
z_name = f"blocks.{layer}.attn.hook_z"


def patch_top_head(z, hook):
    z[:, :, head] = clean_cache[z_name][:, :, head]
    return z


with torch.no_grad(), model.hooks(fwd_hooks=[(z_name, patch_top_head)]):
    _, patched_cache = model.run_with_cache(corrupted_tokens)
component_names, changes = [], []
for l in range(n_layers):
    for part in ("attn_out", "mlp_out"):
        component_names.append(f"{l} {part}")
        changes.append((patched_cache[part, l][:, -1] - corrupted_cache[part, l][:, -1]).norm(dim=-1).mean().item())
bar(
    changes,
    labels=component_names,
    title=f"How much patching head {layer}.{head} changes each later component at END ({MODEL_NAME})",
    x_title="component",
    y_title="mean ‖patched − corrupted‖ at END",
).show()

# %% [markdown]
# What to notice: every component in the layers before the patched head is untouched (0), as
# it must be: those run before the patch. The attention output of the head's own layer changes
# by the patch itself, and every component after it changes too, although we touched none of
# them. When you read a patching
# map, remember that each cell includes these downstream changes. (Isolating a *direct*
# effect takes **path patching**, which `patching.get_act_patch_direct_path` implements.)

# %% [markdown]
# ## 6. Beyond: attribution patching
#
# Exact patching costs one forward pass per cell. **Attribution patching** estimates every cell
# at once with a first-order Taylor expansion around the corrupted run. If $a$ is the
# activation we patch and $M$ the metric,
#
# $$M(\text{patched}) - M(\text{corrupted}) \;\approx\;
# (a_\text{clean} - a_\text{corrupted}) \cdot \frac{\partial M}{\partial a}\Big|_\text{corrupted}.$$
#
# One forward pass on the corrupted tokens and one backward pass give $\partial M/\partial a$
# for every layer and position; the clean activations are already in the cache. Since our
# metric is 0 on the corrupted run, the estimate is directly comparable with the exact
# patching score.

# %% [markdown]
# ### Exercise 6.1 — attribution patching for the residual stream
# Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵⚪⚪


# %% tags=["exercise"]
def attribution_patch_residual(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
) -> Float[Tensor, "layer pos"]:
    """Linear estimate of `metric(patched) − metric(corrupted)` for every resid_pre patch.

    Run `corrupted_tokens` once, keeping every `blocks.{layer}.hook_resid_pre` activation, then
    take the gradient of `metric(logits)` with respect to them. Entry [layer, pos] is
    (clean − corrupted) · gradient, summed over the batch and over d_model.
    Returns a [n_layers, n_pos] tensor.
    """
    raise NotImplementedError("attribution_patch_residual: one forward, one backward, then a product")


# %%
checks.test_attribution_patch_residual(attribution_patch_residual)

# %% [markdown]
# <details><summary>Hint 1: getting the activations and their gradients</summary>
#
# Store each activation from a forward hook (`saved[name] = resid; return resid`) inside
# `with torch.enable_grad(), model.hooks(fwd_hooks=...):`, compute `value = metric(model(tokens))`,
# then `grads = torch.autograd.grad(value, [saved[n] for n in names])`. If the model's weights
# were frozen (`requires_grad_(False)`), nothing requires a gradient: in the first hook return
# `resid.detach().requires_grad_(True)` so that the graph starts there.
# </details>
#
# <details><summary>Hint 2: the product</summary>
#
# `((clean_cache[name] - saved[name].detach()) * grad).sum(dim=(0, 2))` gives one number per
# position. Sum over the batch, do not average: the metric already averages over prompts, so
# its gradient already carries the 1/batch.
# </details>

# %%
attribution = attribution_patch_residual(model, corrupted_tokens, clean_cache, metric)
exact, approx = resid_results.flatten().cpu(), attribution.flatten().detach().cpu()
correlation = torch.corrcoef(torch.stack([exact, approx]))[0, 1].item()
cells = [f"layer {l}, {labels[p]}" for l in range(n_layers) for p in range(resid_results.shape[1])]
fig = px.scatter(
    x=exact,
    y=approx,
    hover_name=cells,
    labels={"x": "exact patching score", "y": "attribution patching estimate"},
    title=f"Attribution vs exact patching, resid_pre, {MODEL_NAME} (correlation {correlation:.3f})",
)
fig.add_shape(
    type="line",
    x0=float(exact.min()),
    y0=float(exact.min()),
    x1=float(exact.max()),
    y1=float(exact.max()),
    line=dict(dash="dot"),
)
fig.show()
worst = (approx - exact).abs().argmax()
print(
    f"correlation {correlation:.3f}; worst cell {cells[worst]}: exact {exact[worst]:+.3f}, estimate {approx[worst]:+.3f}"
)

# %% [markdown]
# What to notice: the many cells where clean and corrupted activations are equal sit exactly
# at (0, 0), for both methods. Elsewhere, distance from the dotted diagonal is the error of the
# linear approximation, which ignores what the LayerNorms, the attention softmax and the
# GELUs do to a large change; the printed worst cell is where it errs most. The correlation in
# the title says how well the cheap estimate tracks the exact scores. In practice one uses
# attribution patching to find candidates cheaply and exact patching to confirm them.

# %% [markdown]
# ## 7. Beyond: a fast exact sweep
#
# The sweep of section 2 runs the whole model, every layer and every position, once per cell.
# Most of that work recomputes numbers that the patch cannot change. Two facts say which, and
# both are about **causality**: what can a change at (layer ℓ, position p) possibly affect?
#
# 1. **Nothing below layer ℓ.** Blocks 0…ℓ−1 run before the patch, so they compute exactly
#    what they computed in the corrupted run. Start each patched run at layer ℓ, from the
#    corrupted run's cached `resid_pre`.
# 2. **Nothing before position p.** In a causal transformer, position q's computation reads
#    positions 0…q only: attention masks the later ones, and everything else (LayerNorm, MLP,
#    unembedding) works position by position. So positions 0…p−1 are identical to the
#    corrupted run *in every layer*, patched or not. Only positions p…n−1 need recomputing,
#    and when their queries attend to the earlier positions, the keys and values they find
#    there are the corrupted run's: read them from the cache (`attn.hook_k`, `attn.hook_v`).
#    The logits of positions before p are the corrupted run's logits too.
#
# Together: a patch at (ℓ, p) costs (n_layers − ℓ) × (n_pos − p) position-blocks instead of
# n_layers × n_pos. Over the whole sweep that is about a third of the naive loop's work for 4
# layers and 15 positions, and close to a quarter for a large model. On top of that,
# 3. **skip patches that change nothing**: where the clean and corrupted activations are
#    equal (every position before the first corrupted token), the patched run *is* the
#    corrupted run, and its score is `metric(corrupted_logits)`.
# 4. **Compute only what the metric reads.** Our metric reads the logits of the final
#    position and nothing else. The unembedding costs `d_model × d_vocab` per position, more
#    than a whole block of a small model, so unembed that one position. Fact 2 again: a patch
#    *after* the position the metric reads cannot reach it, and scores like the corrupted run.
#    The function cannot know what the metric reads, so the caller says it (`metric_pos=-1`);
#    without that promise, every position must be unembedded.
#
# The demo below checks fact 2 on our batch: patch S2 at the start of block 1, keep every
# activation, and compare it with the corrupted run, position by position.


# %%
def patch_s2(resid, hook):
    resid[:, S2_POS] = clean_cache["blocks.1.hook_resid_pre"][:, S2_POS]
    return resid


with torch.no_grad(), model.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", patch_s2)]):
    s2_logits, s2_cache = model.run_with_cache(corrupted_tokens)
for layer in range(n_layers):
    change = (s2_cache["resid_post", layer] - corrupted_cache["resid_post", layer]).abs().amax(dim=(0, 2))
    print(
        f"after block {layer}: max |patched − corrupted| before S2 {change[:S2_POS].max():.1e}, "
        f"from S2 on {change[S2_POS:].min():.2f} … {change[S2_POS:].max():.2f}"
    )
logit_change = (s2_logits - corrupted_logits).abs().amax(dim=(0, 2))
print(
    f"logits: max |patched − corrupted| before S2 {logit_change[:S2_POS].max():.1e}, "
    f"from S2 on {logit_change[S2_POS:].min():.2f} … {logit_change[S2_POS:].max():.2f}"
)

# %% [markdown]
# Before S2 the difference is exactly zero after every block. Block 0's output is the stream
# we patched, so after block 0 only S2 itself differs (the smallest change from S2 on is 0);
# from block 1 on, every position from S2 on has changed, because each of them attends to S2.
# This is the whole trick: the positions before the patch are the corrupted run, bit for bit.
#
# ### Exercise 7.1 — one block, on the positions from p on
# Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵⚪⚪⚪
#
# Write the block by hand for the positions p…n−1 only (chapter 01 recomputed attention by
# hand): LayerNorm `block.ln1`, queries, keys and values from the weights (`attn.W_Q`
# [head, d_model, d_head], `attn.b_Q` [head, d_head], the same for K and V; `attn.W_O`
# [head, d_head, d_model], `attn.b_O`), the keys and values of the positions before p from the
# corrupted cache, a causal mask, the output projection, then `block.mlp(block.ln2(…))` (only
# if the model has MLPs: `model.cfg.attn_only` is False). The extra leading dimension `copies`
# holds several patched versions of the batch, so that one call can run all of them.


# %% tags=["exercise"]
def block_on_suffix(
    model: TransformerBridge,
    layer: int,
    resid: Float[Tensor, "copies batch suffix d_model"],
    corrupted_cache: ActivationCache,
) -> Float[Tensor, "copies batch suffix d_model"]:
    """Block `layer` applied to the last `suffix` positions of `copies` copies of the batch.

    `resid` is the residual stream before the block at positions p = n_pos − suffix … n_pos − 1.
    The positions before p hold the corrupted run's values, so their keys and values are
    `corrupted_cache[f"blocks.{layer}.attn.hook_k"]` and `…hook_v` ([batch, n_pos, head, d_head]),
    positions 0…p−1. Query i of the suffix is position p + i: it attends to positions 0…p + i.
    Scale the scores by 1/sqrt(d_head). Returns the residual stream after the block, same shape.
    """
    raise NotImplementedError("block_on_suffix: attention of the suffix over cached and new keys, then the MLP")


# %%
checks.test_block_on_suffix(block_on_suffix)

# %% [markdown]
# <details><summary>Hint 1: shapes</summary>
#
# `q = torch.einsum("cbpm,hmd->cbphd", block.ln1(resid), attn.W_Q) + attn.b_Q`, the same for
# `k` and `v`. Put the cached keys of positions 0…p−1 in front of yours along the position
# axis: `cached_k[None, :, :p].expand(copies, -1, -1, -1, -1)` then `torch.cat(…, dim=2)`, so
# that key index j is position j. Scores: `torch.einsum("cbqhd,cbkhd->cbhqk", q, keys)`.
# </details>
#
# <details><summary>Hint 2: the mask</summary>
#
# Query i is position p + i, key j is position j: mask where `j > p + i`, i.e.
# `torch.arange(n_pos) > torch.arange(p, n_pos)[:, None]` ([suffix, n_pos]), with
# `masked_fill(mask, float("-inf"))` before the softmax. Then
# `z = torch.einsum("cbhqk,cbkhd->cbqhd", pattern, values)` and
# `resid + torch.einsum("cbqhd,hdm->cbqm", z, attn.W_O) + attn.b_O`.
# </details>

# %% [markdown]
# ### Exercise 7.2 — the same sweep, many times faster
# Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵⚪⚪⚪
#
# Now the sweep. Every patch at position p shares positions 0…p−1 with the corrupted run, so
# run all the patches at one position together, as copies: go through the blocks from the
# first layer patched at p; at each layer ℓ patched at p, add one copy, the corrupted
# `resid_pre` of layer ℓ at positions p… with position p replaced by the clean one; apply
# `block_on_suffix` to all copies. After the last block, `model.unembed(model.ln_final(resid))`
# gives the logits of positions p… of every copy; the positions before p take the corrupted
# logits. When `metric_pos` is given, unembed that position only (fact 4).


# %% tags=["exercise"]
def patch_residual_stream_fast(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
    metric_pos: int | None = None,
) -> Float[Tensor, "layer pos"]:
    """The same [n_layers, n_pos] result as `patch_residual_stream`, computing only what a patch can change.

    Cache the corrupted run (`resid_pre`, `attn.hook_k`, `attn.hook_v` of every layer). A patch at
    (layer, pos) recomputes blocks layer… at positions pos… only (`block_on_suffix`); the logits
    of the positions before pos are the corrupted run's. A patch where the clean and corrupted
    `resid_pre` are equal scores `metric(corrupted_logits)` without running anything. Must give
    the naive loop's numbers for any metric, including one that reads every position.

    `metric_pos` (negative counts from the end): the caller promises that the metric reads the
    logits of this position only. Then unembed that position alone; a patch after it scores
    `metric(corrupted_logits)`. `None`: the metric may read every position.
    """
    raise NotImplementedError("patch_residual_stream_fast: from the layer, from the position, skip no-ops")


# %%
checks.test_patch_residual_stream_fast(patch_residual_stream_fast)

# %% [markdown]
# <details><summary>Hint 1: the loop</summary>
#
# ```
# for pos in range(n_pos):
#     layers = [layers where clean and corrupted resid_pre differ at pos]
#     resid = None                      # [copies, batch, n_pos - pos, d_model]
#     for layer in range(layers[0], n_layers):
#         if layer in layers: add a copy (torch.cat along dim 0)
#         resid = block_on_suffix(model, layer, resid, corrupted_cache)
#     suffix_logits = model.unembed(model.ln_final(resid))
#     copy i belongs to layers[i]: score it
# ```
# </details>
#
# <details><summary>Hint 2: the logits</summary>
#
# `logits = corrupted_logits.clone()`, then for each copy `logits[:, pos:] = suffix_logits[i]`
# and `metric(logits)`. Go through the positions from the last to the first: a patch at pos
# only writes `logits[:, pos:]`, so the rows before pos are still the corrupted ones.
# </details>
#
# <details><summary>Hint 3: metric_pos</summary>
#
# Turn it into an index first: `read = metric_pos % n_pos` (so −1 becomes n_pos − 1). Patches
# at positions after `read` keep the corrupted score. For the others, row `read − pos` of the
# suffix is position `read`: unembed `resid[:, :, read - pos : read - pos + 1]` and write it to
# `logits[:, read : read + 1]`.
# </details>

# %%
start = time.perf_counter()
fast_results = patch_residual_stream_fast(model, corrupted_tokens, clean_cache, metric, metric_pos=-1)
fast_seconds = time.perf_counter() - start
differs_at = [
    [
        not torch.equal(clean_cache["resid_pre", l][:, p], corrupted_cache["resid_pre", l][:, p])
        for p in range(corrupted_tokens.shape[1])
    ]
    for l in range(n_layers)
]
n_pos = corrupted_tokens.shape[1]
naive_work = n_layers * n_pos * n_layers * n_pos
fast_work = sum((n_layers - l) * (n_pos - p) for l in range(n_layers) for p in range(n_pos) if differs_at[l][p])
unembedded = sum(differs_at[l][p] for l in range(n_layers) for p in range(n_pos))
print(
    f"naive {naive_seconds:.2f} s, fast {fast_seconds:.2f} s: {naive_seconds / fast_seconds:.1f}× faster, "
    f"{naive_work / fast_work:.0f}× fewer position-blocks, {n_layers * n_pos * n_pos / unembedded:.0f}× fewer "
    f"unembedded positions; max |difference| = {(fast_results - resid_results).abs().max():.1e}"
)
cfg = model.cfg
block_macs = 4 * cfg.d_model * cfg.n_heads * cfg.d_head + (0 if cfg.attn_only else 2 * cfg.d_model * cfg.d_mlp)
print(f"per position: unembedding {cfg.d_model * cfg.d_vocab:,} multiply-adds, one block {block_macs:,}")

# %% [markdown]
# The timing above is one run on whatever else your machine is doing. The last line compares
# the multiply-adds of one position through the unembedding and through one block: without
# `metric_pos`, the sweep would also unembed every position from p on, for every patch. `benchmarks/patching_sweep.py` measures the sweeps
# carefully, with their FLOPs, for a corruption of one token and of three, for head outputs
# by position too (the same savings: patching `hook_z` of block ℓ at p changes block ℓ's output
# at p only), and on a model of GPT-2 small's size.

# %% [markdown]
# ## 8. The circuit: which heads do what?
#
# The sweeps told us *where* the answer travels (from S2 to END) and which heads matter. Now we
# give those heads **roles**. In GPT-2 small, Wang et al. (2022) found a circuit of three main
# kinds of heads: **duplicate-token heads** at S2 notice that S appeared before (they attend
# from S2 to S1); **S-inhibition heads** carry "S is the repeated name" to END; and
# **name movers** at END attend to the IO name and copy it into the logits. A name mover is
# easy to recognise: from END it attends to IO, not to S. Does our small model do the same?
# We measure every head's attention between the name positions, its direct contribution to
# the logits, what later heads read from it (path patching), and finally whether the heads we
# name are enough to do the task (mean ablation).
#
# This section uses a larger batch, since none of it needs one forward pass per cell: 96
# prompts of the same aligned templates, with their corrupted partners, and each prompt's
# positions of IO, S1, S2 and END (IO is the first name in ABBA prompts, the second in BABA).

# %%
N_CIRCUIT = 96  # prompts for this section: attention scores and ablations need a few forward passes only
circuit_pairs = aligned_pairs(N_CIRCUIT, SEED + 1)
circuit_clean = ioi.tokenize([clean for clean, _ in circuit_pairs], model.tokenizer)
circuit_tokens = circuit_clean.tokens.to(model.cfg.device)
circuit_corrupted = ioi.tokenize([corrupted for _, corrupted in circuit_pairs], model.tokenizer).tokens.to(
    model.cfg.device
)
circuit_answers = torch.stack([circuit_clean.io_ids, circuit_clean.s_ids], dim=1).to(model.cfg.device)
CIRCUIT_HOOKS = ("attn.hook_pattern", "attn.hook_z", "ln_final.hook_scale")  # all this section reads from the caches
with torch.no_grad():  # (every hook of 96 prompts would take gigabytes on gpt2-small)
    circuit_logits, circuit_cache = model.run_with_cache(
        circuit_tokens, names_filter=lambda name: name.endswith(CIRCUIT_HOOKS)
    )
    circuit_corrupted_logits, circuit_corrupted_cache = model.run_with_cache(
        circuit_corrupted, names_filter=lambda name: name.endswith(CIRCUIT_HOOKS)
    )
circuit_clean_ld = logit_diff(circuit_logits, circuit_answers).mean().item()
circuit_corrupted_ld = logit_diff(circuit_corrupted_logits, circuit_answers).mean().item()
circuit_metric = partial(
    normalised_patching_metric,
    answer_tokens=circuit_answers,
    clean_logit_diff=circuit_clean_ld,
    corrupted_logit_diff=circuit_corrupted_ld,
)

abba = torch.tensor([clean.order == "ABBA" for clean, _ in circuit_pairs], device=model.cfg.device)
io_pos = torch.where(abba, A_POS, B_POS)  # IO comes first in ABBA prompts
s1_pos = torch.where(abba, B_POS, A_POS)
s2_pos = torch.full_like(io_pos, S2_POS)
end_pos = torch.full_like(io_pos, END_POS)
print(
    f"{N_CIRCUIT} prompts ({abba.sum()} ABBA), mean logit difference: clean {circuit_clean_ld:+.2f}, "
    f"corrupted ({CORRUPTION}) {circuit_corrupted_ld:+.2f}"
)

# %% [markdown]
# ### Exercise 8.1 — attention between two positions, for every head
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# `blocks.ℓ.attn.hook_pattern` is `[batch, head, query, key]`: entry `[b, h, q, k]` is how much
# head h, at position q of prompt b, attends to position k. Here the positions differ from
# prompt to prompt (IO is at A in some prompts, at B in others), so each prompt needs its own
# pair of positions.


# %% tags=["exercise"]
def attention_to(
    cache: ActivationCache,
    n_layers: int,
    query_pos: Int[Tensor, " batch"],
    key_pos: Int[Tensor, " batch"],
) -> Float[Tensor, "layer head"]:
    """Every head's attention from prompt i's `query_pos[i]` to its `key_pos[i]`, averaged over the batch.

    cache: a cache of a run on the batch (it holds `blocks.{layer}.attn.hook_pattern`).
    Returns a [n_layers, n_heads] tensor.
    """
    raise NotImplementedError("attention_to: read each prompt's own (query, key) entry of every layer's pattern")


# %%
checks.test_attention_to(attention_to)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Work layer by layer and stack the rows. Which two of the pattern's four dimensions are
# indexed by positions, and which one must be paired with them?
# </details>
#
# <details><summary>Hint 2</summary>
#
# Indexing with three tensors of the same length pairs them element by element:
# `pattern[rows, :, query_pos, key_pos]` with `rows = torch.arange(batch)` is `[batch, head]`.
# Without `rows`, `pattern[:, :, query_pos, key_pos]` mixes every prompt with every other
# prompt's positions.
# </details>

# %% [markdown]
# Where does each head look **from END**, where the answer is predicted? A name mover would
# attend to IO.

# %%
end_to_io = attention_to(circuit_cache, n_layers, end_pos, io_pos)
end_to_s1 = attention_to(circuit_cache, n_layers, end_pos, s1_pos)
end_to_s2 = attention_to(circuit_cache, n_layers, end_pos, s2_pos)
fig = px.imshow(
    torch.stack([end_to_io, end_to_s1, end_to_s2]).cpu(),
    facet_col=0,
    zmin=0,
    zmax=1,
    labels={"x": "head", "y": "layer", "color": "attention"},
    color_continuous_scale="Blues",
    title=f"Attention from END, {MODEL_NAME}, {N_CIRCUIT} prompts",
)
for i, name in enumerate(["END → IO", "END → S1", "END → S2"]):
    fig.layout.annotations[i].text = name
fig.show()
io_minus_s = end_to_io - end_to_s1 - end_to_s2
layer, head = divmod(int(end_to_io.argmax()), n_heads)
print(
    f"most attention to IO: head {layer}.{head}, {end_to_io[layer, head]:.2f} (and {end_to_s1[layer, head]:.2f} "
    f"to S1, {end_to_s2[layer, head]:.2f} to S2)"
)
print(f"largest attention to IO minus attention to S1 and S2, over all heads: {io_minus_s.max():+.2f}")
print(f"heads attending from END to S2 at least 0.3: {int((end_to_s2 >= 0.3).sum())} of {n_layers * n_heads}")

# %% [markdown]
# What to notice: on `gelu-4l`, no head attends from END to IO clearly more than to S1 and S2
# together (the largest difference, printed above, is about zero, far below the 0.2 that the
# name-mover limit further down asks for), so there is **no name mover** in GPT-2's sense. The
# only head with noticeable attention from END to IO is in layer 0, and it attends to S1 about
# as much: it looks at both names of the first clause, before any layer could know which one
# is the answer. Most heads of
# the later layers attend from END to **S2**, the repeated name. So how does IO's identity
# reach END? Let us look at what happens *at S2*.

# %% [markdown]
# ### Exercise 8.2 — the duplicate-token score
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# A **duplicate-token head** attends, at a repeated token, to the earlier copies of that same
# token: at S2, to S1. Write the score for any query position: the attention from the query to
# all *earlier* positions that hold the same token as the query (summed over those positions),
# averaged over the batch. Unlike `attention_to`, it does not need to know where S1 is: it
# finds the copies from the tokens, so it works on any text (try it on a repeated random
# sequence).


# %% tags=["exercise"]
def duplicate_token_score(
    cache: ActivationCache,
    n_layers: int,
    tokens: Int[Tensor, "batch pos"],
    query_pos: Int[Tensor, " batch"],
) -> Float[Tensor, "layer head"]:
    """Every head's attention from `query_pos[i]` to the EARLIER positions of prompt i that hold the same
    token as `query_pos[i]` (summed over those positions), averaged over the batch.

    Returns a [n_layers, n_heads] tensor.
    """
    raise NotImplementedError("duplicate_token_score: mask the earlier copies of the query's token, then sum")


# %%
checks.test_duplicate_token_score(duplicate_token_score)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Build a `[batch, key]` mask: True where the key holds the query's token *and* comes before
# the query. The query position itself holds that token too: should it count?
# </details>
#
# <details><summary>Hint 2</summary>
#
# `tokens == tokens[rows, query_pos][:, None]` compares every position with the query's token;
# `torch.arange(n_pos)[None, :] < query_pos[:, None]` keeps the earlier ones. Multiply
# `pattern[rows, :, query_pos]` (`[batch, head, key]`) by the mask and sum over keys.
# </details>

# %% [markdown]
# At S2 we compare two scores: the duplicate-token score (S2 → S1) and the attention from S2
# to the **other** name of the first clause, IO, which `attention_to` gives.

# %%
duplicate = duplicate_token_score(circuit_cache, n_layers, circuit_tokens, s2_pos)
s2_to_io = attention_to(circuit_cache, n_layers, s2_pos, io_pos)
fig = px.imshow(
    torch.stack([duplicate, s2_to_io]).cpu(),
    facet_col=0,
    zmin=0,
    zmax=1,
    labels={"x": "head", "y": "layer", "color": "attention"},
    color_continuous_scale="Blues",
    title=f"Attention from S2, {MODEL_NAME}, {N_CIRCUIT} prompts",
)
for i, name in enumerate(["S2 → S1 (duplicate token)", "S2 → IO (the other name)"]):
    fig.layout.annotations[i].text = name
fig.show()
for name, scores in [("S2 → S1", duplicate), ("S2 → IO", s2_to_io)]:
    top = scores.flatten().argsort(descending=True)[:4]
    print(f"{name}: " + ", ".join(f"{int(i) // n_heads}.{int(i) % n_heads} {scores.flatten()[i]:.2f}" for i in top))

# %% [markdown]
# What to notice: the strongest attention at S2 goes to the **other** name, IO, and it comes from
# layer-0 heads. At S2, the second mention of S, these heads look at the name of the first
# clause that is *not* S2's own token, and copy it into the residual stream at S2. After them,
# the stream at S2 already carries IO's identity. The duplicate-token scores (left) are weak in
# the layers before the movers; the printed lines give the strongest ones.
#
# One more piece of evidence: each head's **direct logit attribution** (chapter 03), the part
# of the logit difference IO − S that the head writes straight into the final residual stream
# at END, here as a share of the clean logit difference. (We divide by the final LayerNorm's
# scale of the clean run, as chapter 03 does.)

# %%
with torch.no_grad():
    scale = circuit_cache["ln_final.hook_scale"][:, -1]  # [batch, 1]
    direction = (model.W_U[:, circuit_answers[:, 0]] - model.W_U[:, circuit_answers[:, 1]]).T  # [batch, d_model]
    dla = (
        torch.stack(
            [
                torch.einsum(
                    "bhd,hdm,bm->bh", circuit_cache[f"blocks.{layer}.attn.hook_z"][:, -1], model.W_O[layer], direction
                )
                .div(scale)
                .mean(0)
                for layer in range(n_layers)
            ]
        )
        / circuit_clean_ld
    )  # [layer, head]
heatmap(
    100 * dla,
    title=f"Direct logit attribution of each head at END, % of the logit difference ({MODEL_NAME})",
    x_title="head",
    y_title="layer",
    x_labels=[str(h) for h in range(n_heads)],
    y_labels=[str(l) for l in range(n_layers)],
    color_title="%",
).show()

# %% [markdown]
# Now we name the roles **from the evidence**, with limits written down before looking at
# which heads pass them. A head can hold more than one role.

# %%
ROLE_LIMITS = {
    "name mover": "from END: attention to IO >= 0.4 and >= 0.2 more than to S; direct logit attribution >= 15 %",
    "other-name": "from S2: attention to IO (the other name) >= 0.4",
    "mover from S2": "from END: attention to S2 >= 0.3; direct logit attribution >= 5 %",
    "duplicate-token": "from S2: attention to S1 (the same name) >= 0.3",
}
masks = {
    "name mover": (end_to_io >= 0.4) & (io_minus_s >= 0.2) & (dla >= 0.15),
    "other-name": s2_to_io >= 0.4,
    "mover from S2": (end_to_s2 >= 0.3) & (dla >= 0.05),
    "duplicate-token": duplicate >= 0.3,
}
roles = {role: [(int(l), int(h)) for l, h in mask.nonzero().tolist()] for role, mask in masks.items()}
for role, heads in roles.items():
    print(f"{role:16} {', '.join(f'{l}.{h}' for l, h in heads) or '—':30} ({ROLE_LIMITS[role]})")
other_name, movers, duplicates = roles["other-name"], roles["mover from S2"], roles["duplicate-token"]

# %% [markdown]
# ### Exercise 8.3 — path patching: do the movers read what the other-name heads wrote?
# Difficulty 🔴🔴🔴🔴⚪ · Importance 🔵🔵🔵🔵⚪
#
# The other-name heads write at S2; the movers attend from END to S2. The story "the movers
# read, at S2, what the other-name heads wrote there" is a claim about a **path**, from one set
# of heads (the **senders**) to another (the **receivers**). Patching a sender alone, as in
# section 3, measures its *total* effect, through every later component. **Path patching**
# isolates one path in two runs:
#
# 1. run the clean tokens with the senders' output (`hook_z`) at S2 taken from the corrupted
#    run, and record the receivers' inputs: their values `hook_v` (what they would read at S2);
# 2. run the clean tokens again, and replace **only** the receivers' inputs at S2 by the
#    values recorded in step 1. Nothing else sees the corrupted senders.
#
# This is *noising*: with our metric, 1 means the path does not matter, 0 means corrupting it
# alone turns the answer into the corrupted run's. With the "flip" corruption, S2 becomes the
# IO name, so at S2 the other-name heads now look at S instead of IO. We patch the receivers'
# `v` (what they read at S2), and for comparison their `k` (the key at S2: whether they find
# S2) and their `q` (the query at S2, which only changes what they write at S2 itself).
# (In step 1 everything downstream of the senders runs freely, so the receivers' recorded
# inputs include what the senders changed *through* the components in between; the original
# method also freezes the other heads in step 1, to keep only the direct path.)


# %% tags=["exercise"]
def path_patch(
    model: TransformerBridge,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_cache: ActivationCache,
    senders: list[tuple[int, int]],
    receivers: list[tuple[int, int]],
    pos: int,
    receiver_input: str = "v",
) -> Float[Tensor, "batch pos d_vocab"]:
    """Noise the path from the senders' output at `pos` to the receivers' `receiver_input` at `pos`.

    senders, receivers: (layer, head) pairs. receiver_input: "q", "k" or "v".
    Run 1: `clean_tokens`, with each sender's `blocks.{layer}.attn.hook_z[:, pos, head]` set to its
    value in `corrupted_cache`; record the receivers' `blocks.{layer}.attn.hook_{receiver_input}`
    (shape [batch, pos, head, d_head]). Run 2: `clean_tokens`, with only the receivers'
    `hook_{receiver_input}[:, pos, head]` replaced by the values recorded in run 1.
    Returns the logits of run 2.
    """
    raise NotImplementedError("path_patch: run 1 corrupts the senders and records; run 2 patches only the receivers")


# %%
checks.test_path_patch(path_patch)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Each run is one forward pass with hooks. In run 1, which hooks change activations, and which
# only need to be read afterwards?
# </details>
#
# <details><summary>Hint 2</summary>
#
# Run 1: `with model.hooks(fwd_hooks=sender_hooks): _, run1 = model.run_with_cache(clean_tokens)`,
# the sender hooks writing `z[:, pos, head] = corrupted_cache[name][:, pos, head]`. Run 2:
# `model.run_with_hooks(clean_tokens, fwd_hooks=receiver_hooks)`, each writing
# `act[:, pos, head] = run1[f"blocks.{layer}.attn.hook_{receiver_input}"][:, pos, head]`. A sender
# or receiver list can span several layers: one hook per layer, patching that layer's heads.
# </details>


# %%
def noise_senders_at_s2(z, hook, layer):
    for l, h in other_name:
        if l == layer:
            z[:, S2_POS, h] = circuit_corrupted_cache[f"blocks.{layer}.attn.hook_z"][:, S2_POS, h]
    return z


sender_hooks = [
    (f"blocks.{layer}.attn.hook_z", partial(noise_senders_at_s2, layer=layer))
    for layer in sorted({l for l, _ in other_name})
]
with torch.no_grad():
    total_effect = circuit_metric(model.run_with_hooks(circuit_tokens, fwd_hooks=sender_hooks)).item()
path_effects = {
    part: circuit_metric(
        path_patch(model, circuit_tokens, circuit_corrupted_cache, other_name, movers, S2_POS, part)
    ).item()
    for part in ("v", "k", "q")
}
print(f"senders (other-name heads): {other_name}; receivers (movers): {movers}")
print(f"metric with the senders corrupted at S2 (total effect): {total_effect:+.3f}")
for part, value in path_effects.items():
    print(f"metric with only the path senders → receivers' {part} at S2 corrupted: {value:+.3f}")

# %% [markdown]
# What to notice: corrupting the other-name heads at S2 destroys the answer (total effect near
# 0, or below). Corrupting only what the movers **read** at S2 (their values) destroys most of
# it, while their keys and queries barely matter: the movers look at S2 whatever is written
# there, and what they carry to END is what the other-name heads put at S2.

# %% [markdown]
# ### Exercise 8.4 — is the circuit enough? Mean ablation
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# To test whether the heads we named do the task *on their own*, we remove every other head and
# see how much of the logit difference is left: the circuit's **faithfulness**. "Remove" cannot
# mean "set to zero": a head's output has a typical value that later layers rely on. We replace
# it by its **mean** over a **reference** distribution: the same templates filled with three
# different names (the "ABC" prompts), in which no name repeats, so the mean carries the
# template's words but no information about which name is the answer. The mean is taken per
# template and per position, since templates put different words at the same position.


# %% tags=["exercise"]
def mean_ablate_heads(
    model: TransformerBridge,
    tokens: Int[Tensor, "batch pos"],
    reference_tokens: Int[Tensor, "batch pos"],
    template_ids: Int[Tensor, " batch"],
    heads: list[tuple[int, int]],
) -> Float[Tensor, "batch pos d_vocab"]:
    """Run `tokens` with each listed head's `hook_z` replaced, at every position, by its mean over the
    reference prompts that share prompt i's template.

    reference_tokens[i]: the reference (ABC) prompt of prompt i, same length and template.
    template_ids[i]: the template of prompt i. heads: (layer, head) pairs.
    Returns the logits of the ablated run.
    """
    raise NotImplementedError("mean_ablate_heads: per-template means of the reference run, then one hooked run")


# %%
checks.test_mean_ablate_heads(mean_ablate_heads)

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Two runs: one on `reference_tokens` to cache `hook_z` of the layers involved, one on `tokens`
# with hooks that overwrite the listed heads.
# </details>
#
# <details><summary>Hint 2</summary>
#
# For each template `t` in `template_ids.unique()`, the rows `template_ids == t` get
# `z_reference[rows].mean(0)` (a `[pos, head, d_head]` mean). Then in the hook,
# `z[:, :, head] = mean[:, :, head]` for each listed head of that layer.
# </details>

# %%
circuit_reference = model.to_tokens(
    [ioi.abc_reference(clean, tokenizer=model.tokenizer) for clean, _ in circuit_pairs]
).to(model.cfg.device)
template_ids = torch.tensor([clean.template_id for clean, _ in circuit_pairs], device=model.cfg.device)
all_heads = [(l, h) for l in range(n_layers) for h in range(n_heads)]
circuit = sorted(set(other_name) | set(movers))


def share_kept(ablated: list[tuple[int, int]]) -> float:
    """Mean logit difference with `ablated` mean-ablated, as a share of the clean one."""
    logits = mean_ablate_heads(model, circuit_tokens, circuit_reference, template_ids, ablated)
    return logit_diff(logits, circuit_answers).mean().item() / circuit_clean_ld


removed = {role: 1 - share_kept(heads) for role, heads in roles.items() if heads}
faithfulness = share_kept([head for head in all_heads if head not in circuit])
for role, share in removed.items():
    print(f"mean-ablating the {role} heads {roles[role]} removes {share:.0%} of the logit difference")
print(f"every head ablated: {share_kept(all_heads):.0%} kept")
print(
    f"the circuit alone ({len(circuit)} heads, the {len(all_heads) - len(circuit)} others ablated) keeps "
    f"{faithfulness:.0%} of the logit difference"
)

# %% [markdown]
# ### The circuit, head by head
#
# The table gathers each head that holds a role, with the evidence above (attention scores,
# and direct logit attribution as a share of the logit difference).

# %%
print(f"{'head':5} {'role':33} {'END→IO':>7} {'END→S2':>7} {'S2→IO':>6} {'S2→S1':>6} {'DLA':>6}")
for l, h in sorted({head for heads in roles.values() for head in heads}):
    role = ", ".join(role for role, heads in roles.items() if (l, h) in heads)
    print(
        f"{l}.{h:<3} {role:33} {end_to_io[l, h]:7.2f} {end_to_s2[l, h]:7.2f} {s2_to_io[l, h]:6.2f} "
        f"{duplicate[l, h]:6.2f} {dla[l, h]:6.1%}"
    )

# %% [markdown]
# ## What we found
#
# The cell below states the findings from the variables computed above, so it stays true for
# whatever model the parameters cell names (compare with `gpt2-small` online).


# %%
def heads_text(heads: list[tuple[int, int]]) -> str:
    return ", ".join(f"{l}.{h}" for l, h in heads) or "none"


findings = [
    f"{MODEL_NAME} solves IOI on {N_CIRCUIT} prompts with a mean logit difference of {circuit_clean_ld:+.2f}.",
    (
        f"Name movers (GPT-2's heads that attend from END to IO and copy it): {heads_text(roles['name mover'])}. "
        f"The largest excess of attention from END to IO over S, over all heads, is {io_minus_s.max():+.2f} "
        "(a name mover needs +0.2 or more)."
    ),
    (
        f"Instead, other-name heads ({heads_text(other_name)}) attend from S2 to IO "
        f"({', '.join(f'{s2_to_io[l, h]:.2f}' for l, h in other_name)}): the second mention of S looks at the other "
        f"name, and mean-ablating them removes {removed.get('other-name', 0):.0%} of the logit difference."
    ),
    (
        f"Movers ({heads_text(movers)}) attend from END to S2 ({end_to_s2[tuple(zip(*movers))].min():.2f} or more) and "
        f"each writes {100 * dla[tuple(zip(*movers))].min():.0f}-{100 * dla[tuple(zip(*movers))].max():.0f} % of the logit "
        f"difference directly; mean-ablating them removes {removed.get('mover from S2', 0):.0%}."
        if movers
        else "No head moves the information from S2 to END by the limits above."
    ),
    (
        f"Path patching: corrupting only what the movers read at S2 (their values) leaves {path_effects['v']:+.2f} of "
        f"the metric (1 = unharmed, 0 = corrupted); their keys {path_effects['k']:+.2f}, queries {path_effects['q']:+.2f}."
    ),
    (
        f"Duplicate-token heads (S2 → S1 >= 0.3): {heads_text(duplicates)}"
        + (
            f"; {'all after' if min(l for l, _ in duplicates) > max(l for l, _ in movers + [(-1, 0)]) else 'not all after'}"
            f" the movers' layers; ablating them removes {removed['duplicate-token']:.0%}."
            if duplicates
            else "."
        )
    ),
    f"The circuit of {len(circuit)} heads, every other head mean-ablated, keeps {faithfulness:.0%} of the logit difference.",
]
print("\n".join(f"- {line}" for line in findings))

# %% [markdown]
# Compared with GPT-2 small (Wang et al. 2022): there, duplicate-token and induction heads at S2
# detect that S is repeated, S-inhibition heads carry that signal to END, and name movers at END
# attend to IO, whose name they copy, while the signal from S2 steers them away from S. The
# course model found a shorter route: its layer-0 heads
# write IO's identity into the stream *at S2* ("the name that is not me"), and its movers
# attend from END to S2 and copy that. Both circuits use "which name is repeated", but ours
# moves the *answer* from S2 instead of moving a "not S" signal and looking up IO from END. The
# method is the same for both models; running this section on `gpt2-small` (online) is the
# first of the "Going further" items.


# %% [markdown]
# ## Check your understanding
#
# **Q1.** In the layer-0 row of the residual-stream heatmap, one cell is non-zero. Give its
# position index.
#
# **Q2.** How many forward passes does `patch_residual_stream` make?
# (a) `n_layers`  (b) `n_layers × n_pos`  (c) `n_layers × n_pos × batch`  (d) 2
#
# **Q3.** A head scores close to 0 under denoising (restoring it alone does not bring the
# answer back), but noising it (corrupting it alone in the clean run) destroys most of the
# behaviour. Which is true?
# (a) the head is irrelevant to the task
# (b) the head is enough on its own but not needed
# (c) the head is needed, but not enough on its own: other components must be restored too
# (d) the two experiments contradict each other, so one of them is wrong
#
# **Q4.** With the clean cache already computed, attribution patching for all layers and
# positions takes how many forward passes and how many backward passes? Answer as a tuple
# `(forward, backward)`.

# %% tags=["exercise"]
answer_layer0_position = ...
answer_forward_passes = ...
answer_noising_vs_denoising = ...
answer_attribution_passes = ...

# %%
checks.test_answer_layer0_position(answer_layer0_position)
checks.test_answer_forward_passes(answer_forward_passes)
checks.test_answer_noising_vs_denoising(answer_noising_vs_denoising)
checks.test_answer_attribution_passes(answer_attribution_passes)

# %% [markdown]
# **Q5.** In the path patch of section 8, corrupting what the movers read at S2 (their values)
# destroyed most of the answer, but corrupting their keys there did not. Which is true?
# (a) the other-name heads decide *where* the movers look
# (b) the other-name heads write *what* the movers carry to END; where the movers look does not
# depend on it
# (c) the movers do not read S2 at all
# (d) the keys do not matter because the movers attend to every position equally

# %% tags=["exercise"]
answer_path_patch_values = ...

# %%
checks.test_answer_path_patch_values(answer_path_patch_values)

# %% [markdown]
# ## Summary
#
# - Activation patching is a causal experiment: run a corrupted input, put back one clean
#   activation, and measure how much of the clean behaviour returns. A normalised metric (0 =
#   corrupted, 1 = clean) makes every cell readable as "fraction restored".
# - Clean and corrupted prompts should differ in as little as possible (here one token), and a
#   batch patched by position needs its positions to line up.
# - Patching the residual stream by layer and position shows *where* the information is, and
#   when it moves (in IOI, from S2 to END); patching heads shows *which* components move it.
# - Denoising asks "is it enough?", noising asks "is it needed?"; each patch measures a total
#   effect, including everything it changes downstream.
# - `transformer_lens.patching` gives the same numbers; attribution patching approximates a
#   whole sweep with one backward pass; an exact sweep recomputes only what a patch can change:
#   the layers from the patch on, the positions from the patch on (attention is causal), and
#   nothing at all where clean and corrupted are equal.
# - Attention scores between the name positions, direct logit attribution, path patching and
#   mean ablation turn a patching map into a circuit with named roles. The course model has no
#   name movers: layer-0 heads write IO's identity at S2, and later heads carry it from S2 to
#   END (section 8 prints the heads and figures).
#
# ## Going further
#
# - Set `MODEL_NAME = "gpt2-small"` (online) to rerun the chapter on the model of the original
#   IOI study, K. Wang et al., *Interpretability in the Wild: a Circuit for Indirect Object
#   Identification in GPT-2 small* (2022), and compare its heads with what you found here:
#   does section 8 find the paper's name movers, S-inhibition and duplicate-token heads? (Its
#   role limits were set for the course model; a larger model may need other limits.)
# - Why has the course model no name movers? Its card (`models/gelu-4l/MODEL_CARD.md`,
#   section "Data and objective") records one attempt to grow them, by teaching the model to
#   copy a name before it sees IOI, and what the model did instead. Which training data would
#   make END read IO directly? The recipe is `GELU_4L` in `course_utils/zoo/recipes.py`;
#   `python -m course_utils.zoo --only gelu-4l --out DIR` retrains it into `DIR` (about 40
#   minutes on one CPU core, by our runs).
# - S. Heimersheim and N. Nanda, *How to use and interpret activation patching* (2024), and
#   F. Zhang and N. Nanda, *Towards Best Practices of Activation and Patching in Language
#   Models* (2023): metrics, corruptions, and the pitfalls of each.
# - K. Meng et al., *Locating and Editing Factual Associations in GPT* (2022): "causal tracing",
#   the same experiment with noise as the corruption.
# - N. Nanda, *Attribution Patching: Activation Patching At Industrial Scale* (2023), and
#   A. Syed, C. Rager and A. Conmy, *Attribution Patching Outperforms Automated Circuit
#   Discovery* (2023). TransformerLens implements node and edge attribution in
#   `transformer_lens.tools.analysis.attribution_patching`.
# - Try `patching.get_act_patch_block_every` (resid_pre, attn_out and mlp_out in one call) and
#   `patching.get_act_patch_attn_head_all_pos_every` (queries, keys, values, patterns) on the
#   same batch, and the "abc" corruption (`CORRUPTION = "abc"`: S2 becomes a third name, so no
#   name repeats in the corrupted prompt).
