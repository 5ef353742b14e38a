"""Reference solutions for chapter 04, activation patching.

Each function is self-contained: it uses only what the notebook's set-up cell imports
(``torch``, ``Tensor``, ``Float``/``Int``, ``tqdm``, ``TransformerBridge``, ``ActivationCache``).
Shapes: ``batch`` prompts, ``pos`` token positions, ``d_vocab`` vocabulary entries.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge


# --- metrics ----------------------------------------------------------------------------------
def logit_diff(
    logits: Float[Tensor, "batch pos d_vocab"], answer_tokens: Int[Tensor, "batch 2"]
) -> Float[Tensor, " batch"]:
    """Logit of the correct name minus logit of the wrong name, at the final position, per prompt.

    ``answer_tokens[:, 0]`` is the indirect object (correct), ``answer_tokens[:, 1]`` the subject.
    """
    final = logits[:, -1, :]
    correct = final.gather(-1, answer_tokens[:, 0:1]).squeeze(-1)
    wrong = final.gather(-1, answer_tokens[:, 1:2]).squeeze(-1)
    return correct - wrong


def normalised_patching_metric(
    logits: Float[Tensor, "batch pos d_vocab"],
    answer_tokens: Int[Tensor, "batch 2"],
    clean_logit_diff: float,
    corrupted_logit_diff: float,
) -> Float[Tensor, ""]:
    """Mean logit difference rescaled so that the corrupted run scores 0 and the clean run 1."""
    final = logits[:, -1, :]
    diffs = final.gather(-1, answer_tokens[:, 0:1]) - final.gather(-1, answer_tokens[:, 1:2])
    return (diffs.mean() - corrupted_logit_diff) / (clean_logit_diff - corrupted_logit_diff)


# --- exact patching sweeps --------------------------------------------------------------------
def patch_residual_stream(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
) -> Float[Tensor, "layer pos"]:
    """Denoise ``blocks.{layer}.hook_resid_pre`` at one position at a time; return the metric per patch."""
    n_layers, n_pos = model.cfg.n_layers, corrupted_tokens.shape[1]
    results = torch.zeros(n_layers, n_pos, device=corrupted_tokens.device)

    def patch_position(resid, hook, pos, clean):
        resid[:, pos, :] = clean[:, pos, :]
        return resid

    with torch.no_grad():
        for layer in tqdm(range(n_layers), desc="patching resid_pre", leave=False):
            name = f"blocks.{layer}.hook_resid_pre"
            clean = clean_cache[name]
            for pos in range(n_pos):
                hook = lambda resid, hook, pos=pos: patch_position(resid, hook, pos, clean)  # noqa: E731
                logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)])
                results[layer, pos] = metric(logits)
    return results


def patch_head_outputs(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
) -> Float[Tensor, "layer head"]:
    """Denoise one head's output ``hook_z[:, :, head]`` at every position; return the metric per head."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    results = torch.zeros(n_layers, n_heads, device=corrupted_tokens.device)

    def patch_head(z, hook, head, clean):
        z[:, :, head, :] = clean[:, :, head, :]
        return z

    with torch.no_grad():
        for layer in tqdm(range(n_layers), desc="patching heads", leave=False):
            name = f"blocks.{layer}.attn.hook_z"
            clean = clean_cache[name]
            for head in range(n_heads):
                hook = lambda z, hook, head=head: patch_head(z, hook, head, clean)  # noqa: E731
                logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)])
                results[layer, head] = metric(logits)
    return results


def patch_head_outputs_by_pos(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
    heads: list[tuple[int, int]],
) -> Float[Tensor, "head pos"]:
    """Denoise each listed head ``(layer, head)`` at one position at a time; row ``i`` is ``heads[i]``."""
    n_pos = corrupted_tokens.shape[1]
    results = torch.zeros(len(heads), n_pos, device=corrupted_tokens.device)

    def patch_head_at(z, hook, head, pos, clean):
        z[:, pos, head, :] = clean[:, pos, head, :]
        return z

    with torch.no_grad():
        for i, (layer, head) in enumerate(tqdm(heads, desc="patching heads by position", leave=False)):
            name = f"blocks.{layer}.attn.hook_z"
            clean = clean_cache[name]
            for pos in range(n_pos):
                hook = lambda z, hook, head=head, pos=pos: patch_head_at(z, hook, head, pos, clean)  # noqa: E731
                logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)])
                results[i, pos] = metric(logits)
    return results


# --- beyond: attribution patching and a fast exact sweep ---------------------------------------
def attribution_patch_residual(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
) -> Float[Tensor, "layer pos"]:
    """Linear estimate of ``metric(patched) - metric(corrupted)`` for every resid_pre patch.

    One forward and one backward pass on the corrupted tokens: the estimate for (layer, pos) is
    ``(clean - corrupted) · d metric / d resid_pre``, summed over the batch and ``d_model``.
    """
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    saved: dict[str, Tensor] = {}

    def save(resid, hook, name):
        if not resid.requires_grad:  # frozen weights: let the graph start at the first hook
            resid = resid.detach().requires_grad_(True)
        saved[name] = resid
        return resid

    hooks = [(name, lambda resid, hook, name=name: save(resid, hook, name)) for name in names]
    with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
        value = metric(model(corrupted_tokens))
        grads = torch.autograd.grad(value, [saved[name] for name in names])
    rows = []
    for name, grad in zip(names, grads):
        delta = clean_cache[name] - saved[name].detach()
        rows.append((delta * grad).sum(dim=(0, 2)))
    return torch.stack(rows)


def block_on_suffix(
    model: TransformerBridge,
    layer: int,
    resid: Float[Tensor, "copies batch suffix d_model"],
    corrupted_cache: ActivationCache,
) -> Float[Tensor, "copies batch suffix d_model"]:
    """Block ``layer`` applied to the last ``suffix`` positions of ``copies`` copies of the batch.

    ``resid`` is the residual stream before the block at positions ``n_pos - suffix … n_pos - 1``;
    the positions before them hold the corrupted run's values, so their keys and values are read
    from ``corrupted_cache`` (``blocks.{layer}.attn.hook_k`` / ``hook_v``, [batch, n_pos, head, d_head]).
    Returns the residual stream after the block at the same positions.
    """
    cfg, block = model.cfg, model.blocks[layer]
    if cfg.attention_dir != "causal" or cfg.positional_embedding_type != "standard":
        raise ValueError("block_on_suffix needs causal attention and learned position embeddings")
    attn = block.attn
    cached_k = corrupted_cache[f"blocks.{layer}.attn.hook_k"]
    cached_v = corrupted_cache[f"blocks.{layer}.attn.hook_v"]
    n_pos, suffix = cached_k.shape[1], resid.shape[2]
    first = n_pos - suffix

    x = block.ln1(resid)
    q = torch.einsum("cbpm,hmd->cbphd", x, attn.W_Q) + attn.b_Q
    k = torch.einsum("cbpm,hmd->cbphd", x, attn.W_K) + attn.b_K
    v = torch.einsum("cbpm,hmd->cbphd", x, attn.W_V) + attn.b_V
    copies = resid.shape[0]
    keys = torch.cat([cached_k[None, :, :first].expand(copies, -1, -1, -1, -1), k], dim=2)
    values = torch.cat([cached_v[None, :, :first].expand(copies, -1, -1, -1, -1), v], dim=2)
    scale = cfg.attn_scale if cfg.attn_scale > 0 else cfg.d_head**0.5
    scores = torch.einsum("cbqhd,cbkhd->cbhqk", q, keys) / scale
    future = torch.arange(n_pos, device=resid.device) > torch.arange(first, n_pos, device=resid.device)[:, None]
    pattern = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    z = torch.einsum("cbhqk,cbkhd->cbqhd", pattern, values)
    resid = resid + torch.einsum("cbqhd,hdm->cbqm", z, attn.W_O) + attn.b_O
    if not cfg.attn_only:
        resid = resid + block.mlp(block.ln2(resid))
    return resid


def patch_residual_stream_fast(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
    metric_pos: int | None = None,
) -> Float[Tensor, "layer pos"]:
    """The same numbers as ``patch_residual_stream``, computing only what a patch can change.

    - A patch at (layer, pos) leaves every block before ``layer`` as in the corrupted run: start
      from the corrupted run's cached ``resid_pre``.
    - With causal attention it leaves every position before ``pos`` as in the corrupted run, in
      every layer: recompute positions ``pos …`` only (``block_on_suffix``), with the keys and
      values of the earlier positions from the corrupted cache, and reuse their logits.
    - Where the clean and corrupted activations are equal, the patch changes nothing: skip it.
    - ``metric_pos``: when the metric reads the logits of this one position only (``-1``: the
      final token), unembed that position alone, and score every patch after it as the corrupted
      run (it cannot reach the position the metric reads). ``None``: the metric may read any position.
    All patches at one position share those earlier positions, so they run as one batch of copies
    that grows by one copy at each layer that is patched there.
    """
    n_layers, n_pos = model.cfg.n_layers, corrupted_tokens.shape[1]
    if metric_pos is not None and not -n_pos <= metric_pos < n_pos:
        raise IndexError(f"metric_pos={metric_pos}, but the prompts have {n_pos} positions")
    read = n_pos - 1 if metric_pos is None else metric_pos % n_pos  # as an index >= 0
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    keep = lambda name: name in names or name.endswith(("attn.hook_k", "attn.hook_v"))  # noqa: E731
    with torch.no_grad():
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=keep)
        results = torch.full((n_layers, n_pos), metric(corrupted_logits).item(), device=corrupted_tokens.device)
        logits = corrupted_logits.clone()
        for pos in tqdm(reversed(range(read + 1)), total=read + 1, desc="fast patching resid_pre", leave=False):
            # Descending positions: a patch at pos rewrites logits[:, pos:], so logits[:, :pos] stay corrupted.
            layers = [
                layer
                for layer, name in enumerate(names)
                if not torch.equal(clean_cache[name][:, pos], corrupted_cache[name][:, pos])
            ]
            if not layers:
                continue  # no patch at this position changes anything
            resid = None  # [copies, batch, n_pos - pos, d_model]: copy i is patched at layers[i]
            for layer in range(layers[0], n_layers):
                if layer in layers:
                    copy = corrupted_cache[names[layer]][:, pos:].clone()
                    copy[:, 0] = clean_cache[names[layer]][:, pos]
                    resid = copy[None] if resid is None else torch.cat([resid, copy[None]])
                resid = block_on_suffix(model, layer, resid, corrupted_cache)
            first = pos if metric_pos is None else read  # logits of positions first…read may be read
            suffix_logits = model.unembed(model.ln_final(resid[:, :, first - pos : read + 1 - pos]))
            for i, layer in enumerate(layers):
                logits[:, first : read + 1] = suffix_logits[i]
                results[layer, pos] = metric(logits)
    return results


def patch_head_outputs_by_pos_fast(
    model: TransformerBridge,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Callable[[Tensor], Tensor],
    heads: list[tuple[int, int]],
    metric_pos: int | None = None,
) -> Float[Tensor, "head pos"]:
    """The same numbers as ``patch_head_outputs_by_pos``, with the savings of ``patch_residual_stream_fast``
    (``metric_pos`` included).

    Patching ``hook_z[:, pos, head]`` of block ``layer`` changes that block's output at ``pos`` only
    (the output projection and the MLP act position by position): it is a patch of the residual
    stream entering block ``layer + 1`` at ``pos``, whose new value is computed here from the
    corrupted ``resid_pre`` and ``hook_z``. A head of the last block patches the final residual stream.
    """
    n_layers, n_pos = model.cfg.n_layers, corrupted_tokens.shape[1]
    if metric_pos is not None and not -n_pos <= metric_pos < n_pos:
        raise IndexError(f"metric_pos={metric_pos}, but the prompts have {n_pos} positions")
    read = n_pos - 1 if metric_pos is None else metric_pos % n_pos  # as an index >= 0
    last = f"blocks.{n_layers - 1}.hook_resid_post"
    wanted = ("hook_resid_pre", "attn.hook_z", "attn.hook_k", "attn.hook_v")
    keep = lambda name: name == last or name.endswith(wanted)  # noqa: E731
    with torch.no_grad():
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=keep)
        stream = [corrupted_cache[f"blocks.{layer}.hook_resid_pre"] for layer in range(n_layers)] + [
            corrupted_cache[last]
        ]
        results = torch.full((len(heads), n_pos), metric(corrupted_logits).item(), device=corrupted_tokens.device)
        logits = corrupted_logits.clone()
        # resid_pre of block layer + 1 at every position, when head i alone is patched there:
        # the output projection and the MLP work position by position, so one pass serves all positions.
        patched_rows = []
        for layer, head in heads:
            block, z = model.blocks[layer], corrupted_cache[f"blocks.{layer}.attn.hook_z"].clone()
            z[:, :, head] = clean_cache[f"blocks.{layer}.attn.hook_z"][:, :, head]
            rows = stream[layer] + torch.einsum("bphd,hdm->bpm", z, block.attn.W_O) + block.attn.b_O
            patched_rows.append(rows if model.cfg.attn_only else rows + block.mlp(block.ln2(rows)))
        for pos in tqdm(reversed(range(read + 1)), total=read + 1, desc="fast patching heads by position", leave=False):
            joins: dict[int, list[tuple[Tensor, int]]] = {}  # block the copy starts at -> (its row at pos, head index)
            for i, (layer, head) in enumerate(heads):
                name = f"blocks.{layer}.attn.hook_z"
                if not torch.equal(clean_cache[name][:, pos, head], corrupted_cache[name][:, pos, head]):
                    joins.setdefault(layer + 1, []).append((patched_rows[i][:, pos], i))
            if not joins:
                continue
            resid, order = None, []
            for layer in range(min(joins), n_layers + 1):
                for row, i in joins.get(layer, []):
                    copy = stream[layer][:, pos:].clone()
                    copy[:, 0] = row
                    resid = copy[None] if resid is None else torch.cat([resid, copy[None]])
                    order.append(i)
                if layer < n_layers:
                    resid = block_on_suffix(model, layer, resid, corrupted_cache)
            first = pos if metric_pos is None else read
            suffix_logits = model.unembed(model.ln_final(resid[:, :, first - pos : read + 1 - pos]))
            for copy, i in enumerate(order):
                logits[:, first : read + 1] = suffix_logits[copy]
                results[i, pos] = metric(logits)
    return results


# --- check your understanding -----------------------------------------------------------------
answer_layer0_position = 10
answer_forward_passes = "b"
answer_noising_vs_denoising = "c"
answer_attribution_passes = (1, 1)


# --- the circuit ------------------------------------------------------------------------------
def attention_to(
    cache: ActivationCache,
    n_layers: int,
    query_pos: Int[Tensor, " batch"],
    key_pos: Int[Tensor, " batch"],
) -> Float[Tensor, "layer head"]:
    """Every head's attention from prompt i's ``query_pos[i]`` to its ``key_pos[i]``, averaged over the batch."""
    rows = torch.arange(len(query_pos), device=query_pos.device)
    return torch.stack(
        [cache[f"blocks.{layer}.attn.hook_pattern"][rows, :, query_pos, key_pos].mean(0) for layer in range(n_layers)]
    )


def duplicate_token_score(
    cache: ActivationCache,
    n_layers: int,
    tokens: Int[Tensor, "batch pos"],
    query_pos: Int[Tensor, " batch"],
) -> Float[Tensor, "layer head"]:
    """Every head's attention from ``query_pos[i]`` to the EARLIER positions of prompt i that hold the same
    token as ``query_pos[i]`` (summed over those positions), averaged over the batch."""
    rows = torch.arange(len(tokens), device=tokens.device)
    same = tokens == tokens[rows, query_pos][:, None]
    earlier = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < query_pos[:, None]
    mask = (same & earlier).float()
    scores = []
    for layer in range(n_layers):
        from_query = cache[f"blocks.{layer}.attn.hook_pattern"][rows, :, query_pos]  # batch head key
        scores.append((from_query * mask[:, None, :]).sum(-1).mean(0))
    return torch.stack(scores)


def path_patch(
    model: TransformerBridge,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_cache: ActivationCache,
    senders: list[tuple[int, int]],
    receivers: list[tuple[int, int]],
    pos: int,
    receiver_input: str = "v",
) -> Float[Tensor, "batch pos d_vocab"]:
    """Noise the path from the senders' output at ``pos`` to the receivers' ``receiver_input`` at ``pos``.

    Run 1: the clean tokens, with each sender's ``hook_z[:, pos, head]`` set to its corrupted value;
    record the receivers' ``blocks.{layer}.attn.hook_{receiver_input}``. Run 2: the clean tokens, with
    only the receivers' ``hook_{receiver_input}[:, pos, head]`` replaced by the recorded values.
    Returns the logits of run 2.
    """

    def patch_senders(z, hook, layer):
        for l, h in senders:
            if l == layer:
                z[:, pos, h] = corrupted_cache[f"blocks.{layer}.attn.hook_z"][:, pos, h]
        return z

    sender_hooks = [
        (f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: patch_senders(z, hook, layer))
        for layer in sorted({l for l, _ in senders})
    ]
    names = {f"blocks.{layer}.attn.hook_{receiver_input}" for layer, _ in receivers}
    with torch.no_grad(), model.hooks(fwd_hooks=sender_hooks):
        _, run1 = model.run_with_cache(clean_tokens, names_filter=lambda name: name in names)

    def patch_receivers(act, hook, layer):
        for l, h in receivers:
            if l == layer:
                act[:, pos, h] = run1[f"blocks.{layer}.attn.hook_{receiver_input}"][:, pos, h]
        return act

    receiver_hooks = [
        (f"blocks.{layer}.attn.hook_{receiver_input}", lambda act, hook, layer=layer: patch_receivers(act, hook, layer))
        for layer in sorted({l for l, _ in receivers})
    ]
    with torch.no_grad():
        return model.run_with_hooks(clean_tokens, fwd_hooks=receiver_hooks)


def mean_ablate_heads(
    model: TransformerBridge,
    tokens: Int[Tensor, "batch pos"],
    reference_tokens: Int[Tensor, "batch pos"],
    template_ids: Int[Tensor, " batch"],
    heads: list[tuple[int, int]],
) -> Float[Tensor, "batch pos d_vocab"]:
    """Run ``tokens`` with each listed head's ``hook_z`` replaced, at every position, by its mean over the
    reference prompts that share prompt i's template (``reference_tokens[i]`` is prompt i's reference)."""
    names = {f"blocks.{layer}.attn.hook_z" for layer, _ in heads}
    with torch.no_grad():
        _, reference = model.run_with_cache(reference_tokens, names_filter=lambda name: name in names)
    means = {}
    for name in names:
        z = reference[name]
        mean = torch.empty_like(z)
        for t in template_ids.unique():
            rows = template_ids == t
            mean[rows] = z[rows].mean(0)
        means[name] = mean

    def ablate(z, hook, layer):
        for l, h in heads:
            if l == layer:
                z[:, :, h] = means[f"blocks.{layer}.attn.hook_z"][:, :, h]
        return z

    hooks = [
        (f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: ablate(z, hook, layer))
        for layer in sorted({l for l, _ in heads})
    ]
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=hooks)


answer_path_patch_values = "b"
