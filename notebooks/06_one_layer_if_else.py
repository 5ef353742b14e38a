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
# # Chapter 06 — `if … else` in a one-layer attention-only model
#
# After `y = x if x is not None`, a model of Python code has every reason to predict
# ` else`. In this chapter you take apart the smallest model in the course,
# `attn-only-1l` (one attention layer, no MLP), and find out exactly how it makes that
# prediction: first from its weights alone (which source tokens push ` else`, which query
# tokens look at them), then from its activations, with a decomposition of the ` else` logit
# into parts that add up to the model's logit to within 1e-4. Exactness matters: a published
# notebook's attempt at this decomposition came out "very far off", and you will find out
# which omissions cause such a gap. Finally you use the decomposition for something practical:
# telling apart, from the inside, inputs where the model uses its usual mechanism from
# inputs where something else does the work — a small instance of *mechanistic anomaly
# detection*.
#
# **Learning goals**
#
# - Write the logits of a one-layer attention-only model as a direct path plus one term per
#   head, and say exactly where LayerNorm breaks (and, frozen, restores) linearity.
# - Read the OV and QK circuits from the weights as `FactoredMatrix` objects and rank tokens with them.
# - Decompose a logit *exactly*, and diagnose why an approximate decomposition misses.
# - Turn a skip-trigram reading of the weights into predictions and test them on real code.
# - Separate the mechanism from the surface form with control prompts (` if` vs `if`, ` elif`,
#   a condition ending in `)`).
# - Build a detector on decomposition features, evaluate it with an AUROC and a ROC curve, and
#   say honestly what it catches and what it does not.
#
# **Prerequisites**: chapter 3 (decomposing the residual stream, freezing the LayerNorm scale)
# and chapter 5 (QK and OV circuits, `FactoredMatrix`).
#
# **Estimated time**: 2½–3 hours. Each exercise is marked with its difficulty 🔴 and its
# importance 🔵, out of five; hints hide in collapsed blocks.
#
# **Background.** The task follows the if/else task of the "tiny natural mechanisms" work,
# which studied small behaviours that small public models learn naturally, this one among
# them, as test beds for mechanistic anomaly detection. The course ships its own one-layer
# model instead, trained offline on Python code; there is no hub copy of it, so every number
# below comes from the course model.

# %% [markdown]
# ## Set-up

# %%
# Without the course installed (Colab, JupyterHub)? Run first: %pip install "git+<repository URL>"
import einops
import plotly.express as px
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix

from course_utils import bar, heatmap, line, load_model, position_labels, seed_everything
from course_utils.checks import one_layer_if_else as checks
from course_utils.tasks.ternary import load_ternary_eval

torch.set_grad_enabled(False)  # we only read the model in this chapter
_ = seed_everything(0)

# %% tags=["parameters"]
# The hub's own one-layer model has other weights and another tokenizer, so every number changes.
HUB_MODEL_NAME = "hub:attn-only-1l"
MODEL_NAME = "attn-only-1l"  # offline course model; online (or after `make download`): MODEL_NAME = HUB_MODEL_NAME

# %%
model = load_model(MODEL_NAME)
cfg = model.cfg
ELSE, IF = model.to_single_token(" else"), model.to_single_token(" if")
print(
    f"{MODEL_NAME}: {cfg.n_layers} layer, {cfg.n_heads} heads, d_model={cfg.d_model}, d_head={cfg.d_head}, "
    f"vocabulary {cfg.d_vocab}, context {cfg.n_ctx}, attention only: {cfg.attn_only}, normalisation: {cfg.normalization_type}"
)

# %% [markdown]
# ## 1. The task
#
# The course's task data (`course_utils.tasks.ternary`) holds prefixes of real Python code that
# end just before the ` else` of a one-line ternary `X if COND else Y`. They come from files the
# model never saw in training, and fall in two sets:
#
# - **trusted**: `COND` ends in a name, a literal or a comparison (`a if flag`, `x if n > 0`,
#   `y if y is not None`);
# - **anomalous**: `COND` ends in `)`, usually a call (`x if isinstance(x, T)`, `a if f(b)`).
#
# In a trusted prefix the last token is part of a name, a literal or an operand; in an
# anomalous one it is a token containing `)`. The last token is the *query* of the attention
# layer at the position that predicts ` else`, so a different query does the work in the two
# sets — and we will see whether the model's mechanism differs too.
#
# Two helpers: `prefix_tokens` turns a prefix into tokens (BOS first, at most `n_ctx` tokens),
# and `by_length` groups token rows of equal length into batches, so we can run hundreds of
# prefixes without padding.


# %%
def prefix_tokens(model, text: str) -> Int[Tensor, "1 pos"]:
    """BOS followed by the last ``n_ctx - 1`` tokens of ``text``."""
    ids = model.tokenizer.encode(text, add_special_tokens=False)[-(model.cfg.n_ctx - 1) :]
    return torch.tensor([[model.tokenizer.bos_token_id, *ids]])


def by_length(rows: list[Tensor]) -> list[tuple[list[int], Tensor]]:
    """Group ``[1, pos]`` token rows of equal length: a list of (row indices, tokens ``[batch, pos]``)."""
    groups: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.shape[1], []).append(i)
    return [(idx, torch.cat([rows[i] for i in idx])) for idx in groups.values()]


trusted, anomalous = load_ternary_eval("trusted"), load_ternary_eval("anomalous")
examples = trusted + anomalous
is_anomalous = torch.tensor([p.kind == "anomalous" for p in examples])
rows = [prefix_tokens(model, p.prefix) for p in examples]
print(
    f"{len(trusted)} trusted and {len(anomalous)} anomalous held-out prefixes, "
    f"{min(r.shape[1] for r in rows)}–{max(r.shape[1] for r in rows)} tokens each"
)
for p in (trusted[0], anomalous[0]):
    print(f"\n{p.kind}: …{p.prefix[-90:]!r}")
    print("   last tokens:", model.to_str_tokens(prefix_tokens(model, p.prefix)[0])[-6:])

# %% [markdown]
# How well does the model predict ` else` at the end of these prefixes? The next cell runs
# every prefix once (batched by length) and keeps what later sections need from the final
# position: its logits, its attention pattern, and the final LayerNorm's scale there.

# %%
final_logits = torch.zeros(len(rows), cfg.d_vocab)
final_pattern: list[Tensor] = [None] * len(rows)  # per prefix: [n_heads, pos], where the final position attends
final_scale = torch.zeros(len(rows))  # per prefix: the final LayerNorm's scale at the final position
keep = ("blocks.0.attn.hook_pattern", "ln_final.hook_scale")
for idx, tokens in by_length(rows):
    logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in keep)
    final_logits[idx] = logits[:, -1]
    final_scale[idx] = cache["ln_final.hook_scale"][:, -1, 0]
    for j, i in enumerate(idx):
        final_pattern[i] = cache["pattern", 0][j, :, -1].clone()  # a copy, so the cache can be freed

p_else = final_logits.softmax(-1)[:, ELSE]
else_rank = (final_logits > final_logits[:, ELSE : ELSE + 1]).sum(-1)
for kind, mask in (("trusted", ~is_anomalous), ("anomalous", is_anomalous)):
    print(
        f"{kind:9}: mean P(' else') = {p_else[mask].mean():.3f}; ' else' is the top prediction on "
        f"{(else_rank[mask] == 0).float().mean():.0%} of prefixes, in the top 5 on {(else_rank[mask] < 5).float().mean():.0%}"
    )

fig = px.histogram(
    x=p_else.numpy(),
    color=["anomalous" if a else "trusted" for a in is_anomalous.tolist()],
    nbins=40,
    barmode="overlay",
    opacity=0.6,
    title=f"P(' else') at the end of held-out ternary prefixes ({MODEL_NAME})",
    labels={"x": "probability of ' else' at the final position", "color": "set"},
)
fig.update_layout(yaxis_title="number of prefixes")
fig.show()

# %% [markdown]
# The histogram (course model `attn-only-1l`) shows how confident the model is on each set.
# Keep in mind that ` else` is the right prediction in *both* sets: an anomalous prefix is
# not one the model gets wrong, it is one where (we suspect) the model gets it right for a
# different reason. Section 8 checks whether the behaviour alone could reveal that.

# %% [markdown]
# ## 2. The model, written out
#
# Write $t_p$ for the token at position $p$ and $n$ for the final position. The model computes
#
# $$
# \begin{aligned}
# r_p &= W_E[t_p] + W_{pos}[p] && \text{(residual stream before the layer)}\\
# x_p &= \mathrm{LN}_1(r_p) && \text{(each position normalised by its own scale)}\\
# v^h_p &= x_p W_V^h + b_V^h,\qquad a^h_{n,p} = \mathrm{softmax}_p\!\Big(\tfrac{(x_n W_Q^h + b_Q^h)\cdot(x_p W_K^h + b_K^h)}{\sqrt{d_{head}}}\Big) \\
# \text{resid}_n &= r_n + \sum_h \sum_{p \le n} a^h_{n,p}\, v^h_p W_O^h + b_O \\
# \text{logits}_n &= \mathrm{LN}_f(\text{resid}_n)\, W_U + b_U
# \end{aligned}
# $$
#
# with $\mathrm{LN}(y) = \gamma \odot \frac{y - \bar y}{\sigma(y)} + \beta$, where $\bar y$ is the mean of $y$'s
# entries and $\sigma(y) = \sqrt{\mathrm{mean}((y-\bar y)^2) + \varepsilon}$ its *scale*.
#
# Everything after the attention pattern is linear except the division by $\sigma$. Freeze
# $\sigma_f$, the final LayerNorm's scale at position $n$, at its value in the actual run, and
# the ` else` logit becomes an exact sum, one term per piece of $\text{resid}_n$:
#
# $$
# \text{logit}_n[\texttt{else}] = \underbrace{\frac{c(W_E[t_n]) \cdot u}{\sigma_f} + \frac{c(W_{pos}[n]) \cdot u}{\sigma_f}}_{\text{direct path}}
# + \sum_h \sum_{p \le n} \underbrace{a^h_{n,p}\, \frac{c(v^h_p W_O^h) \cdot u}{\sigma_f}}_{\text{head } h \text{ reading position } p}
# + \underbrace{\frac{c(b_O)\cdot u}{\sigma_f} + \beta_f \cdot W_U[:, \texttt{else}] + b_U[\texttt{else}]}_{\text{biases}}
# $$
#
# where $c(y) = y - \bar y$ centres a vector and $u = \gamma_f \odot W_U[:, \texttt{else}]$.
# (The attention weights $a^h_{n,p}$ sum to 1 over $p$, so $b_V$ may go in the head terms, as
# here, or in the biases.)
#
# Two TransformerLens 4.3 details matter in this chapter:
#
# - `cache["blocks.0.ln1.hook_normalized"]` is $\frac{y-\bar y}{\sigma}$ *before* $\gamma$ and $\beta$;
#   `model.blocks[0].ln1.w` / `.b` and `model.ln_final.w` / `.b` are $\gamma$ and $\beta$, and
#   `cache["ln_final.hook_scale"]` is $\sigma_f$ for every position.
# - Do **not** call the bridge's LayerNorm modules on weight matrices: in this version,
#   `model.blocks[0].ln1(model.W_E)` registers `W_E` on the attention module and every later
#   forward pass fails. Write the LayerNorm by hand (three lines) when you apply it to weights.
#   (Also, `cache["attn_scores", 0]` holds the *softmaxed* pattern in this version: compute
#   pre-softmax scores yourself, as in section 4.)
#
# Before any algebra, look at where the final position attends. The next cell picks the shortest
# trusted and the shortest anomalous prefix that contain a single ` if`.


# %%
def short_example(items) -> Int[Tensor, "1 pos"]:
    """The shortest prefix (in tokens) that contains exactly one ' if'."""
    candidates = [prefix_tokens(model, p.prefix) for p in items]
    return min((t for t in candidates if (t == IF).sum() == 1), key=lambda t: t.shape[1])


trusted_example, anomalous_example = short_example(trusted), short_example(anomalous)
for name, tokens in (("trusted", trusted_example), ("anomalous", anomalous_example)):
    _, cache = model.run_with_cache(tokens)
    labels = position_labels(model.to_str_tokens(tokens[0]))
    heatmap(
        cache["pattern", 0][0, :, -1],
        diverging=False,
        title=f"Attention from the final position, {name} example ({MODEL_NAME})",
        x_title="source position",
        y_title="head",
        x_labels=labels,
        color_title="attention weight",
    ).show()

# %% [markdown]
# In each heatmap (course model `attn-only-1l`), one row is one head and shows how the final
# position's attention is spread over the source tokens. Notice which heads put most of
# their weight on ` if`, and whether the same heads do so when the query is `)`.

# %% [markdown]
# ## 3. The OV circuit: what a head writes when it attends to a token
#
# If head $h$ attended fully to a source token $s$ and nothing else reached the unembedding,
# it would add the row
#
# $$C^h_{OV}[s, :] = \mathrm{LN}_f\big(\mathrm{LN}_1(W_E[s])\, W_V^h W_O^h\big)\, W_U$$
#
# to the logits. Stacked over all source tokens this is the $d_{vocab} \times d_{vocab}$ matrix
# `ln_final(ln1(W_E) W_OV) W_U` — rows are source tokens, columns output tokens. It has rank
# at most $d_{model}$, so keep it as a `FactoredMatrix(A, B)` with $A$ = `ln_final(ln1(W_E) W_V W_O)`
# (`[d_vocab, d_model]`) and $B = W_U$; materialising it for every head at once would take
# $n_{heads} \cdot d_{vocab}^2$ floats for nothing.
#
# Be clear about what this matrix **approximates**:
#
# 1. LayerNorm is treated *per token*: $\mathrm{LN}_1$ sees $W_E[s]$ without the positional
#    embedding, and $\mathrm{LN}_f$ normalises the head's output *alone*, whereas the real
#    final LayerNorm divides the whole residual (embeddings + every head + biases) by one scale.
# 2. $b_V$ is left out, and $\beta_f$ adds the same row $\beta_f W_U$ to every source token.
# 3. A real head splits its attention over many sources, and other heads and the direct path
#    add their own terms.
#
# It is still the right tool to *read the weights*, as long as we check its claims against
# activations, which section 5 does exactly.

# %% [markdown]
# ### Exercise 3.1 — the OV circuit as a `FactoredMatrix`
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# <details><summary>Hint 1</summary>
#
# Read the formula from the inside out: every embedding row goes through `ln1`, then the head's
# value and output maps, then `ln_final`; only `W_U` stays outside, as the second factor.
# </details>
#
# <details><summary>Hint 2</summary>
#
# In TransformerLens's row-vector convention a residual vector `x` goes through `x @ W_V[h] @ W_O[h]`
# (Elhage et al. write $W_O W_V$, acting on column vectors). Section 2 warns you not to call the
# bridge's LayerNorm modules on weights: write each LayerNorm by hand — centre each row, divide it
# by its scale, then apply the module's weight and bias.
# </details>
#
# <details><summary>Hint 3</summary>
#
# A LayerNorm by hand, for rows of `x`: `x = x - x.mean(-1, keepdim=True)`, then
# `x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt() * ln.w + ln.b`, with `ln` being
# `model.blocks[0].ln1` or `model.ln_final`; `FactoredMatrix(A, model.W_U)` keeps the product factored.
# </details>


# %% tags=["exercise"]
def ov_circuit(model, head: int) -> FactoredMatrix:
    """The full OV circuit of one head, ``ln_final(ln1(W_E) W_V W_O) W_U``, as a FactoredMatrix.

    Rows are source tokens (the token attended to), columns are output tokens: entry
    ``[s, o]`` is the logit for ``o`` that the head writes when it attends fully to ``s``.
    Each LayerNorm is the model's own (centre, divide by the row's scale, weight, bias),
    applied to every row on its own. Shape ``[d_vocab, d_vocab]``, never materialised.
    """
    raise NotImplementedError("the OV circuit of one head, kept factored")


# %%
checks.test_ov_circuit(ov_circuit)

# %% [markdown]
# ### Exercise 3.2 — ranks in the OV circuit
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# Two questions about each head: among all source tokens, how high does ` if` rank for
# promoting ` else` (a column of $C_{OV}$)? And among everything ` if` promotes, how high does
# ` else` rank (a row)? Read one column as `ov.A @ ov.B[:, out]` and one row as `ov.A[src] @ ov.B`.


# %% tags=["exercise"]
def ov_ranks(ov: FactoredMatrix, src: int, out: int) -> tuple[int, int]:
    """Two ranks read off an OV circuit (rank 0 = the largest entry).

    Returns ``(rank of src among all sources in column out, rank of out among all outputs in row src)``.
    Ties are broken in ``src``'s / ``out``'s favour (count only strictly larger entries).
    """
    raise NotImplementedError("count the entries strictly larger than the one you rank")


# %%
checks.test_ov_ranks(ov_ranks)

# %% [markdown]
# Now for every head: the two ranks, and the ` if` → ` else` entry itself. Remember what
# you are looking at: a reading of the weights for a head that attends fully to ` if`, with
# LayerNorm treated per token.

# %%
ovs = [ov_circuit(model, h) for h in range(cfg.n_heads)]
if_else_entry = torch.stack([ov.A[IF] @ ov.B[:, ELSE] for ov in ovs])
print("head | rank of ' if' among sources of ' else' | rank of ' else' among outputs of ' if' | C_OV[' if', ' else']")
for h, ov in enumerate(ovs):
    src_rank, out_rank = ov_ranks(ov, IF, ELSE)
    print(f"{h:4} | {src_rank:38} | {out_rank:38} | {if_else_entry[h]:8.2f}")

if_heads = [h for h, ov in enumerate(ovs) if ov_ranks(ov, IF, ELSE)[0] < 10]
print(f"\nheads whose OV circuit ranks ' if' among the 10 best sources of ' else': {if_heads}")
if not if_heads:  # a model without the course model's mechanism (a hub model, say)
    if_heads = sorted(range(cfg.n_heads), key=lambda h: ov_ranks(ovs[h], IF, ELSE)[0])[:2]
    print(
        f"No head of {MODEL_NAME} ranks ' if' among the 10 best sources of ' else': this model does not "
        f"copy ' if' into ' else' the way the course model does. The cells below follow the two heads that "
        f"rank ' if' best instead, {if_heads}, so that they still run; read their numbers with that in mind."
    )
for h in if_heads:
    column = ovs[h].A @ ovs[h].B[:, ELSE]
    print(f"head {h}: the 8 source tokens that most promote ' else':", model.to_str_tokens(column.topk(8).indices))
    row = ovs[h].A[IF] @ ovs[h].B
    print(f"head {h}: the 8 outputs that ' if' most promotes:", model.to_str_tokens(row.topk(8).indices))

# %%
bar(
    if_else_entry,
    labels=[f"head {h}" for h in range(cfg.n_heads)],
    title=f"OV circuit entry C_OV[' if', ' else'] per head ({MODEL_NAME})",
    x_title="head",
    y_title="logit of ' else' (OV reading)",
).show()

# %% [markdown]
# The table and the bar chart (course model `attn-only-1l`) tell you which heads, *if* they
# attend to ` if`, push ` else`: a rank near 0 in the first column means ` if` is among the
# very best sources for ` else` in that head, and the second column says whether ` else` is
# what ` if` is mostly *for* in that head, or one output among many. The rest of the chapter
# keeps an eye on the heads printed as `if_heads`. Notice also the junk among the top
# sources of ` else` (rare tokens with large entries): the OV circuit covers the whole
# vocabulary, including tokens that never occur before an ` else` — one reason section 6
# restricts itself to tokens that occur in the data.

# %% [markdown]
# ## 4. The QK circuit: who looks at ` if`?
#
# An OV circuit only matters when the head attends to the token. In a one-layer model the
# pre-softmax score between the query at position $q$ and the key at position $k$ is
#
# $$\text{score}^h(q, k) = \frac{\big(\mathrm{LN}_1(W_E[t_q] + W_{pos}[q])\, W_Q^h + b_Q^h\big) \cdot \big(\mathrm{LN}_1(W_E[t_k] + W_{pos}[k])\, W_K^h + b_K^h\big)}{\sqrt{d_{head}}}$$
#
# Each side depends on one token and one position only, so this is an *exact* function of
# $(t_q, q, t_k, k)$; the rest of the context enters only through the softmax, which compares
# the scores of all keys.

# %% [markdown]
# ### Exercise 4.1 — every query token's score on one key
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵🔵⚪
#
# <details><summary>Hint 1</summary>
#
# Every possible query token at once: a `[d_vocab, d_model]` matrix of query residuals, against
# one key residual. Both go through `ln1` (by hand), then `W_Q`/`W_K` with their biases.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Build the `[d_vocab, d_model]` matrix `ln1(W_E + W_pos[query_pos])` (each row normalised on
# its own, by hand) and the single key residual `ln1(W_E[key_token] + W_pos[key_pos])`.
# `einops.einsum(queries, model.W_Q[0], "vocab d_model, head d_model d_head -> head vocab d_head")`
# gives every query for every head; add `model.b_Q[0][:, None, :]`.
# </details>


# %% tags=["exercise"]
def qk_scores(model, key_token: int, query_pos: int, key_pos: int) -> Float[Tensor, "n_heads d_vocab"]:
    """Pre-softmax attention score of every possible query token on one key, for every head.

    The query token sits at ``query_pos``, the key token ``key_token`` at ``key_pos``. Each
    residual is token embedding + positional embedding, normalised by ``ln1`` on its own;
    queries and keys include their biases; the dot product is divided by ``sqrt(d_head)``.
    """
    raise NotImplementedError(
        "queries from ln1(W_E + W_pos[query_pos]), one key from ln1(W_E[key_token] + W_pos[key_pos])"
    )


# %%
checks.test_qk_scores(qk_scores)

# %% [markdown]
# Because the score is exact, a softmax over the scores of the real keys must reproduce the
# model's attention pattern. The next cell checks this on the trusted example.

# %%
tokens = trusted_example[0]
n = len(tokens)
_, cache = model.run_with_cache(trusted_example)
rebuilt = torch.stack([qk_scores(model, int(tokens[k]), n - 1, k)[:, tokens[-1]] for k in range(n)], dim=-1)
print(
    "max |softmax(scores) − pattern| at the final position:",
    f"{(rebuilt.softmax(-1) - cache['pattern', 0][0, :, -1]).abs().max():.2e}",
)

# %% [markdown]
# Now the question of this section: which query tokens score high on an ` if` key a few
# positions back? The next cell puts ` if` at position 30 and the query 4 positions later
# (a short condition such as ` x is not None`), and compares a few query tokens that end
# conditions: `)`, names, literals — and, for contrast, `:` and ` else` itself.

# %%
KEY_POS, QUERY_POS = 30, 34
scores = qk_scores(model, IF, QUERY_POS, KEY_POS)


def is_one_token(text: str) -> bool:
    """True if ``text`` is a single token of the loaded model's tokenizer."""
    return model.to_tokens(text, prepend_bos=False).shape[1] == 1


probe = [
    t for t in (")", "()", " None", " x", " self", " 0", " 1", " True", "]", ":", " else", " if") if is_one_token(t)
]
probe_ids = [model.to_single_token(t) for t in probe]
heatmap(
    scores[:, probe_ids],
    title=f"Score of query tokens on an ' if' key 4 positions back ({MODEL_NAME})",
    x_title="query token (at position 34)",
    y_title="head",
    x_labels=[repr(t) for t in probe],
    color_title="pre-softmax score",
).show()
for h in if_heads:
    print(f"head {h}: top query tokens on an ' if' key:", model.to_str_tokens(scores[h].topk(8).indices))
for t, i in zip(probe[:8], probe_ids[:8]):
    favourite = max(if_heads, key=lambda h: scores[h, i])
    print(
        f"query {t!r:8}: of the heads {if_heads}, head {favourite} scores highest on ' if' ({scores[favourite, i]:.2f})"
    )

# %% [markdown]
# The heatmap (course model `attn-only-1l`) shows, per head, which of these query tokens
# would look at an ` if` key, and the printout names, for each query, which of the `if_heads`
# wants ` if` most. Compare the `)` column with the name and literal columns: if different
# heads answer for `)` and for ` None`, that is the QK side of the trusted/anomalous
# distinction — the same output (` else`, read from ` if`) reached through different heads.
#
# Scores also depend on positions. The next cell fixes the query at position 60 and moves the
# ` if` key back, for the query tokens `)` and ` None`, in each of the `if_heads`.

# %%
distances = list(range(1, 41))
query_ids = [model.to_single_token(t) for t in (")", " None")]
by_distance = torch.stack([qk_scores(model, IF, 60, 60 - d)[if_heads][:, query_ids] for d in distances], dim=-1)
line(
    by_distance.reshape(-1, len(distances)),
    x=distances,
    series=[f"head {h}, query {t!r}" for h in if_heads for t in (")", " None")],
    title=f"Score on an ' if' key vs how far back it is, query at position 60 ({MODEL_NAME})",
    x_title="distance from query to the ' if' key (positions)",
    y_title="pre-softmax score",
).show()

# %% [markdown]
# What to notice (course model `attn-only-1l`): whether a head's score decays with distance,
# and whether the order of the two query tokens stays the same at every distance. A
# positional decay is how a one-layer model can prefer the *most recent* ` if` without any
# induction machinery.

# %% [markdown]
# ## 5. The exact decomposition
#
# Time to go from readings of the weights to the model's real ` else` logit. Section 2's
# formula splits it into a direct path (the final token's embedding and the final position's
# positional embedding), one term per head and source position, and the biases. Freezing
# $\sigma_f$ at its value in the run is what makes the parts add up exactly.

# %% [markdown]
# ### Exercise 5.1 — `else_logit_decomposition`
# Difficulty 🔴🔴🔴⚪⚪ · Importance 🔵🔵🔵🔵🔵
#
# <details><summary>Hint 1</summary>
#
# Everything you need is in one `run_with_cache`: `cache["pattern", 0]` (`[batch, head, query, key]`;
# the final query is `[:, :, -1, :]`), `cache["v", 0]` (`[batch, pos, head, d_head]`, with $b_V$
# included) and `cache["ln_final.hook_scale"]` (`[batch, pos, 1]`; take position `-1`).
# </details>
#
# <details><summary>Hint 2</summary>
#
# Every part goes through the same three steps: centre it, divide by the frozen scale, dot with
# $u = \gamma_f \odot W_U[:, \texttt{else}]$. Only $\beta_f \cdot W_U[:, \texttt{else}]$ and $b_U$ are
# added as they are. Check yourself before the check does: `embed + pos_embed + heads.sum((1, 2)) + biases`
# must equal `model(tokens)[:, -1, ELSE]` to within 1e-4.
# </details>
#
# <details><summary>Hint 3</summary>
#
# With `ELSE = model.to_single_token(" else")`, write one small function
# `read(x) = (x - x.mean(-1, keepdim=True)) @ (model.ln_final.w * model.W_U[:, ELSE])`
# and divide every part by the frozen scale. The biases part is
# `read(b_O) / scale + model.ln_final.b @ model.W_U[:, ELSE] + model.b_U[ELSE]` (those last two are not divided).
# </details>


# %% tags=["exercise"]
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
    raise NotImplementedError("one run_with_cache; freeze cache['ln_final.hook_scale'][:, -1]; one term per part")


# %%
checks.test_else_logit_decomposition(else_logit_decomposition)

# %% [markdown]
# Check the sum yourself, then look at one trusted and one anomalous example part by part.

# %%
for name, tokens in (("trusted", trusted_example), ("anomalous", anomalous_example)):
    parts = else_logit_decomposition(model, tokens)
    total = parts["embed"] + parts["pos_embed"] + parts["heads"].sum((1, 2)) + parts["biases"]
    logit = model(tokens)[0, -1, ELSE]
    print(
        f"{name:9}: model logit {logit:.4f}, sum of parts {total.item():.4f}, |difference| = {(total - logit).abs().item():.1e}"
    )
    values = torch.cat(
        [torch.stack([parts["embed"][0], parts["pos_embed"][0], parts["biases"][0]]), parts["heads"][0].sum(-1)]
    )
    bar(
        values,
        labels=["embed", "pos_embed", "biases"] + [f"head {h}" for h in range(cfg.n_heads)],
        title=f"Parts of the ' else' logit, {name} example ({MODEL_NAME})",
        x_title="part",
        y_title="contribution to the ' else' logit",
    ).show()
    heatmap(
        parts["heads"][0],
        title=f"Head × source contributions to the ' else' logit, {name} example ({MODEL_NAME})",
        x_title="source position",
        y_title="head",
        x_labels=position_labels(model.to_str_tokens(tokens[0])),
        color_title="logit contribution",
    ).show()

# %% [markdown]
# The bar charts say how much of the logit comes through each route; the heatmaps say which
# source tokens each head reads it from (course model `attn-only-1l`). Look for the ` if`
# column in the trusted example, and for what replaces it, if anything, when the query is `)`.
#
# ### Why the published attempt was "very far off"
#
# A quick way to "decompose" the logit is to add, over heads and sources, the attention weight
# times the OV-circuit entry $C^h_{OV}[t_p, \texttt{else}]$ — the reading of section 3.
# Compared with the exact decomposition, that makes four omissions: it drops the **direct
# path**, the **positional embeddings** (in the values and the direct path), the **biases**
# ($b_V$, $b_O$, $\beta_f$, $b_U$; the OV circuit does bring $\beta_f$ back, once per head), and
# it normalises each part by its **own LayerNorm scale** instead of the residual's frozen one.
# `approximate_else_logit` below rebuilds the logit leaving out any subset of those four; with
# none left out it is exact, with all four it is (up to that $\beta_f$ detail) the quick estimate.

# %%
OMISSIONS = ("direct path", "positional embeddings", "biases", "final LN scale")


def approximate_else_logit(
    model,
    tokens: Int[Tensor, "batch pos"],
    pattern: Float[Tensor, "batch n_heads pos"],
    scale: Float[Tensor, "batch"],
    omit: set[str],
) -> Float[Tensor, "batch"]:
    """The final ' else' logit rebuilt from its parts, leaving out those named in ``omit``.

    ``pattern`` is the final position's attention and ``scale`` the final LayerNorm's scale
    there, both from the actual run.
    """
    n = tokens.shape[1]
    direction = model.ln_final.w * model.W_U[:, ELSE]
    centred_direction = direction - direction.mean()  # (x - mean(x)) · u = x · (u - mean(u))
    use_pos, use_bias = "positional embeddings" not in omit, "biases" not in omit

    def read(x):  # x: [batch, ..., d_model] -> its share of the ' else' logit
        if "final LN scale" in omit:  # each part normalised by its own scale
            centred = x - x.mean(-1, keepdim=True)
            own = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
            return (centred / own) @ direction
        return (x @ centred_direction) / scale.view(-1, *[1] * (x.dim() - 2))

    total = torch.zeros(tokens.shape[0])
    if "direct path" not in omit:
        total += read(model.W_E[tokens[:, -1]])
        if use_pos:
            total += read(model.W_pos[n - 1].expand(tokens.shape[0], -1))
    residual = model.W_E[tokens] + (model.W_pos[:n] if use_pos else 0)
    centred = residual - residual.mean(-1, keepdim=True)
    ln1_out = (
        centred / (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt() * model.blocks[0].ln1.w
        + model.blocks[0].ln1.b
    )
    values = einops.einsum(ln1_out, model.W_V[0], "batch src d_model, head d_model d_head -> batch src head d_head")
    if use_bias:
        values = values + model.b_V[0]
    if "final LN scale" in omit:  # every head x source vector is normalised on its own: build them all
        per_source = einops.einsum(
            values, model.W_O[0], "batch src head d_head, head d_head d_model -> batch head src d_model"
        )
        head_terms = read(per_source)
    else:  # a frozen scale lets us take the dot product with the direction first (much cheaper)
        w_o_direction = model.W_O[0] @ centred_direction  # [head, d_head]
        head_terms = einops.einsum(values, w_o_direction, "batch src head d_head, head d_head -> batch head src")
        head_terms = head_terms / scale[:, None, None]
    total += (pattern * head_terms).sum((1, 2))
    if use_bias:
        total += read(model.b_O[0].expand(tokens.shape[0], -1))
        total += model.ln_final.b @ model.W_U[:, ELSE] + model.b_U[ELSE]
    return total


# %% [markdown]
# The next cell goes through every held-out prefix once more, and stores what the rest of the
# chapter needs: each prefix's decomposition (your `else_logit_decomposition`), and the gap
# between the model's logit and each approximation — all four omissions together (the
# "published" estimate), and each one alone.

# %%
variants = {"nothing (exact)": set(), "all four": set(OMISSIONS), **{f"only the {o}": {o} for o in OMISSIONS}}
gaps = {name: torch.zeros(len(rows)) for name in variants}
head_parts: list[Tensor] = [None] * len(rows)  # per prefix: [n_heads, pos]
direct_part, bias_part, sum_of_parts = torch.zeros(len(rows)), torch.zeros(len(rows)), torch.zeros(len(rows))
for idx, tokens in by_length(rows):
    logit = final_logits[idx, ELSE]
    pattern = torch.stack([final_pattern[i] for i in idx])
    for name, omit in variants.items():
        gaps[name][idx] = approximate_else_logit(model, tokens, pattern, final_scale[idx], omit) - logit
    parts = else_logit_decomposition(model, tokens)
    direct_part[idx], bias_part[idx] = parts["embed"] + parts["pos_embed"], parts["biases"]
    sum_of_parts[idx] = direct_part[idx] + parts["heads"].sum((1, 2)) + bias_part[idx]
    for j, i in enumerate(idx):
        head_parts[i] = parts["heads"][j]

print("omitted                        | mean |approximation − logit| on trusted | on anomalous")
for name, gap in gaps.items():
    print(f"{name:30} | {gap[~is_anomalous].abs().mean():37.3f} | {gap[is_anomalous].abs().mean():12.3f}")
print(
    f"(for scale: the mean |' else' logit| on trusted prefixes is {final_logits[~is_anomalous, ELSE].abs().mean():.3f})"
)
print(
    f"your decomposition, summed, differs from the model's logit by at most {(sum_of_parts - final_logits[:, ELSE]).abs().max():.1e}"
)

# %%
single = [f"only the {o}" for o in OMISSIONS]
bar(
    torch.stack([gaps[name][~is_anomalous].abs().mean() for name in ["all four", *single]]),
    labels=["all four", *OMISSIONS],
    title=f"How far off each approximation is, trusted prefixes ({MODEL_NAME})",
    x_title="what the approximation leaves out",
    y_title="mean |approximate − actual ' else' logit|",
).show()

# %% [markdown]
# Read the bar chart (course model `attn-only-1l`) as a diagnosis: the first bar is the quick
# OV-circuit estimate with all four omissions, each other bar the error when the exact
# decomposition leaves out just one thing. The errors need not add up: the omissions
# interact, and can partly cancel (once every part is normalised by its own scale, dropping
# other parts changes the total in a different way than in the exact sum — compare the
# "all four" bar with the "final LN scale" bar). The largest single bar tells you which
# omission hurts most; answer the question in the "check your understanding" section from it.

# %% [markdown]
# ## 6. A skip-trigram table from the weights, tested on real code
#
# A one-layer attention-only model is often summarised as a set of *skip-trigrams*
# "`A` … `B` → `C`": when the current token is `B` (the query, or *destination*) and an earlier
# token is `A` (the *source*), predict `C`. The weights suggest such triples — the OV circuit
# says which sources promote `C`, the QK circuit which destinations attend to them — but the
# softmax makes heads compete for attention, so a triple is a hypothesis until checked.
#
# The next cell builds the table for `C` = ` else`. Scanning the whole vocabulary would
# bring up rare tokens that never occur before an ` else` (section 3's junk), so it only
# considers sources that occur in at least 20 held-out prefixes and destinations that end at
# least 5 of them. For each head it takes the three sources with the largest OV entry for
# ` else`, and for each source the three destinations that score highest on it (query 4
# positions after the key, as in section 4). It ranks the triples by the product of the two
# numbers — a heuristic, which is why the last columns test them.

# %%
final_tokens = torch.tensor([int(r[0, -1]) for r in rows])
prefixes_with = torch.zeros(cfg.d_vocab)
for r in rows:
    prefixes_with[r[0].unique()] += 1
common_src = (prefixes_with >= 20).nonzero()[:, 0]
common_dst = (torch.bincount(final_tokens, minlength=cfg.d_vocab) >= 5).nonzero()[:, 0]
print(f"{len(common_src)} candidate sources, {len(common_dst)} candidate destinations")

triples = []  # (strength, head, source, destination, OV entry, QK score)
for h, ov in enumerate(ovs):
    ov_column = (ov.A @ ov.B[:, ELSE])[common_src]
    for j in ov_column.topk(3).indices.tolist():
        src = int(common_src[j])
        query_scores = qk_scores(model, src, QUERY_POS, KEY_POS)[h, common_dst]
        for k in query_scores.topk(3).indices.tolist():
            ov_value, qk_value = ov_column[j].item(), query_scores[k].item()
            triples.append((ov_value * max(qk_value, 0.0), h, src, int(common_dst[k]), ov_value, qk_value))
triples.sort(reverse=True)

print(
    "head | source A   | destination B | OV[A, ' else'] | QK score | prefixes ending in B that contain A | mean measured contribution of the head from A"
)
for _, h, src, dst, ov_value, qk_value in triples[:15]:
    matches = [i for i in range(len(rows)) if final_tokens[i] == dst and (rows[i][0] == src).any()]
    measured = [head_parts[i][h][rows[i][0] == src].sum().item() for i in matches]
    mean = f"{sum(measured) / len(measured):9.3f}" if measured else "        –"
    print(
        f"{h:4} | {model.tokenizer.decode([src])!r:10} | {model.tokenizer.decode([dst])!r:13} | {ov_value:14.2f} | "
        f"{qk_value:8.2f} | {len(matches):35} | {mean}"
    )

# %% [markdown]
# The last two columns are the test (course model `attn-only-1l`, held-out prefixes): how
# often the triple actually occurs, and the head's *measured* contribution to the ` else`
# logit from the source token, read off the exact decomposition. A triple with a large
# positive measured contribution on many prefixes is confirmed. One that never occurs, or
# whose measured contribution is far below what the OV entry promises, is a reading of the
# weights that the data does not bear out — often because other keys win the softmax, or
# because the LayerNorm of the real residual is not the per-token LayerNorm the OV circuit
# assumed. Compare the ` if` rows with the others.

# %% [markdown]
# ## 7. Controls: the mechanism, or the surface form?
#
# So far the story is "heads read ` if` and write ` else`". A story about *a token* has to
# survive **controls**: change the surface form a little, keep everything else (same prefixes,
# same positions, one token swapped), and see whether the mechanism follows the change the way
# the story predicts.
#
# - ` if` → `if` (no leading space, the statement `if` at the start of a line): a different
#   token that spells the same word. If the heads merely read "the letters if", they would still
#   fire; if they read the ternary ` if` token, they would not.
# - ` if` → ` elif`: a keyword that is followed by `:`, never by ` else` — but shares its letters.
# - the condition's last token → `)`: the query changes from a name or literal to the token
#   that defines the anomalous set, while the ` if` stays.
#
# To measure, you need one number per prefix: how much one head adds to the ` else` logit from
# the positions holding a given token — a slice of your exact decomposition.

# %% [markdown]
# ### Exercise 7.1 — one head's contribution from one token
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# <details><summary>Hint 1</summary>
#
# This is one head's row of the `"heads"` part of exercise 5.1, summed over the positions that
# hold the token. You can compute it from scratch with one `run_with_cache`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The head's output at every source is `cache["v", 0][:, :, head] @ model.W_O[0, head]`; weight it
# by the final query's attention `cache["pattern", 0][:, head, -1]`, read it as in exercise 5.1
# (centre, dot with `ln_final.w * W_U[:, ELSE]`, divide by the frozen final scale), and keep the
# positions where `tokens == source_token`.
# </details>


# %% tags=["exercise"]
def source_contribution(
    model, tokens: Int[Tensor, "batch pos"], head: int, source_token: int
) -> Float[Tensor, "batch"]:
    """Head ``head``'s contribution to the final `` else`` logit from the positions holding ``source_token``.

    The head × source terms of ``else_logit_decomposition`` (attention weight of the final query ×
    the value vector with ``b_V`` @ ``W_O[head]``, centred, divided by the final LayerNorm's frozen
    scale at the final position, dotted with ``ln_final.w * W_U[:, ' else']``), summed over the
    source positions whose token is ``source_token`` (0 where there is none).
    """
    raise NotImplementedError("one head's terms of the exact decomposition, at the positions of one token")


# %%
checks.test_source_contribution(source_contribution)

# %% [markdown]
# The controls run on one batch: 48 held-out trusted prefixes cut to their last 32 tokens (BOS
# first) whose cut holds exactly one ` if` — a control only swaps tokens, so every row keeps its
# length. For each variant: the mean ` else` logit and probability, and how much each of the
# `if_heads` of section 3 adds from the swapped-in token (or from ` if`, for the query control).

# %%
IF_NO_SPACE, PAREN = model.to_single_token("if"), model.to_single_token(")")
ELIF = model.to_single_token(" elif") if is_one_token(" elif") else None  # one token in the course tokenizer
CUT = 32
cut_rows = [
    torch.cat([r[:, :1], r[:, -CUT:]], dim=1) for i, r in enumerate(rows) if not is_anomalous[i] and r.shape[1] > CUT
]
control_batch = torch.cat([r for r in cut_rows if (r == IF).sum() == 1][:48])


def swapped(tokens: Tensor, old: int | None, new: int) -> Tensor:
    """A copy of ``tokens`` with every ``old`` replaced by ``new`` (``old=None``: the final token)."""
    tokens = tokens.clone()
    if old is None:
        tokens[:, -1] = new
    else:
        tokens[tokens == old] = new
    return tokens


controls = {  # name: (how to change a prefix, the source token whose contribution we read)
    "' if' (unchanged)": (lambda t: t, IF),
    "'if' (no space)": (lambda t: swapped(t, IF, IF_NO_SPACE), IF_NO_SPACE),
    "' elif'": (lambda t: swapped(t, IF, ELIF), ELIF),
    "condition ends in ')'": (lambda t: swapped(t, None, PAREN), IF),
}
control_results = {}  # name: (mean ' else' logit, mean P(' else'), mean contribution of each of if_heads from the source)
for name, (change, source) in controls.items():
    if source is None:
        print(f"{name:24}: not one token in {MODEL_NAME}'s tokenizer, so it cannot replace ' if' in place (NaN below)")
        control_results[name] = (float("nan"), float("nan"), torch.full((len(if_heads),), float("nan")))
        continue
    changed = change(control_batch)
    final = model(changed)[:, -1]
    contribution = torch.stack([source_contribution(model, changed, h, source).mean() for h in if_heads])
    control_results[name] = (final[:, ELSE].mean().item(), final.softmax(-1)[:, ELSE].mean().item(), contribution)
    print(
        f"{name:24}: ' else' logit {control_results[name][0]:5.2f}, P(' else') {control_results[name][1]:.3f}, "
        f"contribution of heads {if_heads} from the source: {control_results[name][2].sum():5.2f}"
    )
heatmap(
    torch.stack([r[2] for r in control_results.values()]),
    x_title="head",
    y_title="control",
    x_labels=[f"head {h}" for h in if_heads],
    y_labels=list(controls),
    title=f"Mean contribution to the ' else' logit from the (swapped) source token, {len(control_batch)} cut trusted prefixes ({MODEL_NAME})",
    color_title="logit contribution",
).show()

# %% [markdown]
# **What to notice** (course model `attn-only-1l`). Compare each row with the unchanged one.
# A control whose source contribution collapses shows that the heads react to that exact token,
# not to its spelling; one that keeps part of it shows how far the heads generalise. The last
# row keeps ` if` and changes only the query: if the ` if` heads still add to ` else` there, the
# anomalous prefixes of the next section get ` else` from ` if` too — through a mix of heads
# that the detector can learn to recognise.

# %% [markdown]
# ## 8. Telling the mechanisms apart: an anomaly detector
#
# Mechanistic anomaly detection asks: on a new input, does the model produce its output *for
# the usual reason*? We fit a description of "the usual reason" on trusted inputs only, and
# flag inputs whose internal computation does not fit it.
#
# Our description: for each head, its contribution to the ` else` logit *from ` if` tokens*
# (the sum of the head × source terms over positions holding ` if`). That is an
# `n_heads`-dimensional feature vector per prefix. We fit its mean and covariance on half of
# the trusted prefixes and score all the other prefixes by their Mahalanobis distance,
#
# $$d^2(x) = (x - \mu)^\top (C + \lambda I)^{-1} (x - \mu),$$
#
# which measures how unusual $x$ is *given the correlations between features* in the trusted
# data (the small ridge $\lambda$ keeps the inverse stable).


# %%
def if_features(i: int) -> Tensor:
    """Per-head contribution to the ' else' logit from the ' if' tokens of prefix ``i``: ``[n_heads]``."""
    return (head_parts[i] * (rows[i][0] == IF)).sum(-1)


features = torch.stack([if_features(i) for i in range(len(rows))])
trusted_idx = (~is_anomalous).nonzero()[:, 0]
fit_idx, held_idx = trusted_idx[::2], trusted_idx[1::2]  # fit on half the trusted prefixes
anomalous_idx = is_anomalous.nonzero()[:, 0]
print(
    f"{len(fit_idx)} trusted prefixes to fit on; {len(held_idx)} held-out trusted and {len(anomalous_idx)} anomalous prefixes to score"
)
mean_features = torch.stack([features[trusted_idx].mean(0), features[anomalous_idx].mean(0)])
heatmap(
    mean_features,
    title=f"Mean contribution to the ' else' logit from ' if' tokens, per head ({MODEL_NAME})",
    x_title="head",
    y_title="set",
    x_labels=[f"head {h}" for h in range(cfg.n_heads)],
    y_labels=["trusted", "anomalous"],
    color_title="logit contribution",
).show()
shift = mean_features[1] - mean_features[0]
print(
    f"largest change from trusted to anomalous: head {shift.abs().argmax().item()} "
    f"({mean_features[0, shift.abs().argmax()]:.2f} → {mean_features[1, shift.abs().argmax()]:.2f})"
)

# %% [markdown]
# The heatmap (course model `attn-only-1l`, all held-out prefixes) shows how much each head
# draws from ` if` on average in each set. Compare the head printed below it with the head
# that section 4 found the query `)` prefers: when they coincide, the weights (QK) and the
# activations (the exact decomposition) tell the same story — on anomalous prefixes, ` else`
# comes from ` if` through a different mix of heads.

# %% [markdown]
# ### Exercise 8.1 — Mahalanobis scores
# Difficulty 🔴🔴⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# <details><summary>Hint 1</summary>
#
# Fit a mean and a covariance on `train`; for each test row, centre it and solve a linear system
# against the covariance instead of inverting it.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `torch.cov` wants variables in rows: `torch.cov(train.T)`. Rather than inverting, solve:
# `torch.linalg.solve(cov, centred.T).T` is `centred @ inv(cov)` (the covariance is symmetric).
# </details>


# %% tags=["exercise"]
def mahalanobis_scores(
    train: Float[Tensor, "n_train d"], test: Float[Tensor, "n_test d"], ridge: float = 1e-3
) -> Float[Tensor, "n_test"]:
    """Squared Mahalanobis distance of each test row from the training rows.

    Fit on ``train`` only: mean ``mu`` and covariance ``C`` (``torch.cov`` convention,
    dividing by n − 1) plus ``ridge`` on the diagonal; score ``(x − mu)ᵀ (C + ridge·I)⁻¹ (x − mu)``.
    """
    raise NotImplementedError("mean and covariance of train; solve against (C + ridge·I)")


# %%
checks.test_mahalanobis_scores(mahalanobis_scores)

# %% [markdown]
# ### Exercise 8.2 — AUROC
# Difficulty 🔴⚪⚪⚪⚪ · Importance 🔵🔵🔵⚪⚪
#
# The area under the ROC curve is the probability that a randomly chosen anomalous example
# scores higher than a randomly chosen normal one (ties count one half). 0.5 is chance, 1.0
# perfect. With a few hundred examples per side you can compare every pair directly.


# %% tags=["exercise"]
def auroc(normal: Float[Tensor, "n"], anomalous: Float[Tensor, "m"]) -> float:
    """Area under the ROC curve for "higher score = more anomalous".

    The probability that a random anomalous example scores above a random normal one,
    counting ties as one half (0.5 = chance, 1.0 = perfect separation).
    """
    raise NotImplementedError("the probability that an anomalous score beats a normal one")


# %%
checks.test_auroc(auroc)

# %% [markdown]
# Now the detector. Besides the ` if` features, the next cell scores two other feature sets
# with the same Mahalanobis recipe, so you can tell what the mechanism adds:
#
# - **all of each head's contribution** (summed over every source position), and
# - a **behaviour-only baseline**: the ` else` logit alone (1 feature) — what you could do
#   without opening the model.

# %%
feature_sets = {
    "per-head ' if' contributions": features,
    "per-head total contributions": torch.stack([p.sum(-1) for p in head_parts]),
    "' else' logit only (behaviour)": final_logits[:, ELSE : ELSE + 1],
}
detector_scores = {}
for name, x in feature_sets.items():
    s = mahalanobis_scores(x[fit_idx], x)
    detector_scores[name] = s
    print(f"{name:32}: AUROC held-out trusted vs anomalous = {auroc(s[held_idx], s[anomalous_idx]):.3f}")


# %%
def roc_curve(normal: Tensor, anomalous: Tensor) -> tuple[Tensor, Tensor]:
    """False- and true-positive rates as the threshold sweeps down through every score."""
    thresholds = torch.cat([torch.tensor([float("inf")]), torch.cat([normal, anomalous]).unique().flip(0)])
    fpr = torch.stack([(normal >= t).float().mean() for t in thresholds])
    tpr = torch.stack([(anomalous >= t).float().mean() for t in thresholds])
    return fpr, tpr


roc = {"false-positive rate": [], "true-positive rate": [], "features": []}
for name, s in detector_scores.items():
    fpr, tpr = roc_curve(s[held_idx], s[anomalous_idx])
    roc["false-positive rate"] += fpr.tolist()
    roc["true-positive rate"] += tpr.tolist()
    roc["features"] += [f"{name} (AUROC {auroc(s[held_idx], s[anomalous_idx]):.2f})"] * len(fpr)
fig = px.line(
    roc,
    x="false-positive rate",
    y="true-positive rate",
    color="features",
    title=f"ROC: held-out trusted vs anomalous ternaries, Mahalanobis detectors ({MODEL_NAME})",
)
fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"), name="chance")
fig.update_layout(
    xaxis_title="false-positive rate (trusted prefixes flagged)",
    yaxis_title="true-positive rate (anomalous prefixes flagged)",
)
fig.show()

# %% [markdown]
# ### What the detector does and does not catch
#
# Before reading the AUROCs as a success or a failure, two reference points. The anomaly is
# *defined* by the last token, so a rule that reads the last token is a ceiling no mechanism
# is needed for; and the behaviour-only baseline deserves a look at the raw numbers.

# %%
paren_last = torch.tensor([")" in model.tokenizer.decode([int(t)]) for t in final_tokens]).float()
print(f"rule 'the last token contains )': AUROC = {auroc(paren_last[held_idx], paren_last[anomalous_idx]):.3f}")
for kind, idx in (("fit trusted", fit_idx), ("held-out trusted", held_idx), ("anomalous", anomalous_idx)):
    logit = final_logits[idx, ELSE]
    print(f"' else' logit, {kind:16}: mean {logit.mean():6.2f}, standard deviation {logit.std():5.2f}")

# %% [markdown]
# Read the printed AUROCs, the ROC curves and these reference points (course model
# `attn-only-1l`, the held-out trusted half against every anomalous prefix) with three points
# in mind.
#
# 1. **The detector was never told about `)`.** The last-token rule shows how easy the split
#    is for someone who knows the definition. The mechanistic detector only knows how much
#    each head draws from ` if` on trusted data; whatever it achieves, it achieves by
#    noticing that *a different head mix* produced ` else` — the mechanism you found in
#    sections 3–5.
# 2. **Behaviour alone is not enough here.** A Mahalanobis score on the ` else` logit flags
#    logits far from the trusted mean *in either direction*. Compare the means and spreads
#    printed above: if the anomalous logits sit inside the trusted range, the behavioural
#    score cannot separate the sets, and an AUROC below 0.5 means it finds the trusted
#    prefixes *more* unusual. The same answer, reached by another route, is exactly what
#    mechanistic anomaly detection is meant to catch.
# 3. **Misses are informative.** The next cell prints the anomalous prefixes that look most
#    normal to the detector and the held-out trusted ones that look most anomalous. For each,
#    look at the last token and ask what the QK circuit of section 4 says about it: does a
#    missed anomaly end in something like `()` that behaves like a name, and does a flagged
#    trusted prefix end in a closing quote or bracket that the `)` head also likes, or hold
#    several ` if`s?
#
# And what it does **not** do: it does not say whether the prediction is *right*, it only
# compares mechanisms with trusted data; it is fitted to one model and one task; and with
# only `n_heads` features it cannot tell apart two mechanisms that draw the same amounts
# from ` if` through the same heads. Compare, too, the ` if` features with each head's total
# contribution: if the totals do about as well, the signal lies in *which heads* carry the
# logit rather than specifically in how they read ` if`.

# %%
s = detector_scores["per-head ' if' contributions"]
for title, idx, pick in (
    ("anomalous prefixes that look most normal", anomalous_idx, False),
    ("held-out trusted prefixes that look most anomalous", held_idx, True),
):
    print(f"— {title}:")
    for i in idx[s[idx].argsort(descending=pick)[:4]].tolist():
        print(
            f"   score {s[i]:8.2f}, ' if' features {[round(v, 2) for v in features[i].tolist()]}: …{examples[i].prefix[-70:]!r}"
        )

# %% [markdown]
# ## Check your understanding
#
# 1. In this one-layer model, does the pre-softmax score between a query and a key depend
#    only on the two tokens and their two positions? (`True` or `False`)
# 2. Which single omission moves the rebuilt ` else` logit furthest from the model's? Answer
#    with one of `"direct path"`, `"positional embeddings"`, `"biases"`, `"final LN scale"`
#    (see the table in section 5).
# 3. Which head's OV circuit ranks ` if` highest among all source tokens for promoting
#    ` else`? (An `int`; the table in section 3.)

# %% tags=["exercise"]
answer_qk_is_exact = ...
answer_biggest_omission = ...
answer_top_if_head = ...

# %%
checks.test_answer_qk_is_exact(answer_qk_is_exact)
checks.test_answer_biggest_omission(answer_biggest_omission)
checks.test_answer_top_if_head(answer_top_if_head)

# %% [markdown]
# ## What we found
#
# Every sentence below is printed from numbers this notebook computed on the model you loaded
# (`attn-only-1l` by default); `tests/test_findings.py` recomputes them on the course model and
# fails if a retrained model stops bearing one out. On another model, a claim that does not
# hold is printed as such.

# %%
from course_utils.findings import if_else_findings, report

from_if = torch.stack([if_features(i) for i in trusted_idx.tolist()]).sum(-1)  # all heads, from ' if', per prefix
report(
    if_else_findings(
        decomposition_error=(sum_of_parts - final_logits[:, ELSE]).abs().max().item(),
        n_prefixes=len(rows),
        if_contribution=mean_features[0],
        logit_parts={
            "the direct path": direct_part[trusted_idx].mean().item(),
            "the heads reading ' if'": from_if.mean().item(),
            "the heads reading other tokens": torch.stack([head_parts[i].sum() for i in trusted_idx.tolist()])
            .mean()
            .item()
            - from_if.mean().item(),
            "the biases": bias_part[trusted_idx].mean().item(),
        },
        mean_logit=final_logits[trusted_idx, ELSE].mean().item(),
        gaps={name: gap[~is_anomalous].abs().mean().item() for name, gap in gaps.items()},
        aurocs={name: auroc(s[held_idx], s[anomalous_idx]) for name, s in detector_scores.items()},
        controls=control_results,
        control_heads=if_heads,
    )
)

# %% [markdown]
# ## Summary
#
# - A one-layer attention-only model's logits are a direct path plus one term per head; with
#   the final LayerNorm scale frozen from the run, the ` else` logit is an exact sum over
#   the direct path, every head × source position, and the biases — and the parts add up
#   to the model's logit to within 1e-4.
# - The OV circuit `ln_final(ln1(W_E) W_OV) W_U` and the QK scores read the same mechanism off
#   the weights. The QK score is exact for a (token, position) pair; the OV circuit treats
#   LayerNorm per token, so its numbers are readings to be checked, not measurements.
# - Approximate decompositions fail for identifiable reasons: a missing direct path,
#   positional embeddings, biases, or a LayerNorm scale recomputed per part.
# - Skip-trigrams read from the weights are hypotheses: the softmax makes heads compete, and a
#   triple counts only when the data contains it and the measured contribution agrees.
# - Controls that swap one token keep everything else fixed: they show which token a head
#   really reads, and whether the mechanism survives a change of the query.
# - Features taken from an exact decomposition make an anomaly detector that is fitted on
#   trusted data only; its AUROC, its ROC curve and its misses say how far "the usual
#   mechanism" is a useful notion for this model.
#
# ## Going further
#
# - Elhage et al., *A Mathematical Framework for Transformer Circuits* (2021): one-layer
#   attention-only models as bigrams plus skip-trigrams, OV and QK circuits.
# - Shlegeris, *One-layer transformers aren't equivalent to a set of skip-trigrams* (2023): why
#   the softmax makes the skip-trigram table a hypothesis, as section 6 found.
# - Christiano, *Mechanistic anomaly detection and ELK* (2022): the problem that section 8
#   is a toy instance of; the "tiny natural mechanisms" work turned such small natural
#   behaviours, this if/else task among them, into test cases.
# - Online: set `MODEL_NAME = "hub:attn-only-1l"` to repeat the chapter on the hub's
#   one-layer attention-only model (other data, other tokenizer; expect other heads and numbers).
# - Try other features for the detector (attention weights on ` if`, the contribution of the
#   query token's own embedding, all head × source terms summed by token type) and other
#   scores (a Gaussian per feature, nearest neighbours), always fitted on trusted data only.
