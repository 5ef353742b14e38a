"""Learner checks for chapter 04, activation patching.

Every check runs the learner's function and the reference on the course model ``gelu-4l`` and a
small batch of IOI clean/corrupted pairs (held-out name pairs, templates whose names sit at the
same token positions), whatever model the notebook itself uses. :data:`KNOWN_MISTAKES` holds
the classic mistakes of each exercise; a check names the mistake when the learner's output
matches it, and ``tests/test_chapter_checks.py`` proves each one is rejected.

Sweeps are expensive (one forward pass per patch), so the reference results and the mistakes'
results are computed once per input and cached.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from transformer_lens import ActivationCache
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerBase

from course_utils.chapters import solutions_for
from course_utils.harness import Case, CheckResult, cached_by_inputs, check, check_answer
from course_utils.models import load_model
from course_utils.tasks import ioi

SOLUTION = solutions_for(__name__)
CHECK_MODEL = "gelu-4l"
N_METRIC_PROMPTS = 8
N_SWEEP_PROMPTS = 2
SWEEP_CORRUPTION = "swap"
SEED = 1
KNOWN_MISTAKES: dict[str, dict[str, Callable]] = {}
"""Exercise → diagnosis → a function with the learner's signature that makes that mistake; each
section below adds its exercises, and each check passes ``known_mistakes=KNOWN_MISTAKES[name]``."""


# --- data: IOI pairs whose names sit at the same positions ---------------------------------------
def aligned_templates(tokenizer: PreTrainedTokenizerBase, template_id: int = 0) -> list[int]:
    """Ids of the IOI templates whose token layout matches ``template_id``'s.

    Two templates match when they have the same number of tokens and their three names (A, B
    and the repeated S) sit at the same positions, so prompts from either can share a batch
    and be patched position by position.
    """

    def layout(t: int) -> tuple[int, tuple[int, ...]]:
        text = ioi.render(t, "Mary", "John", "ABBA").text
        ids = tokenizer.encode(text, add_special_tokens=False)
        names = {ioi.name_token_id(tokenizer, "Mary"), ioi.name_token_id(tokenizer, "John")}
        return len(ids), tuple(i for i, tok in enumerate(ids) if tok in names)

    groups: dict[tuple, list[int]] = defaultdict(list)
    for t in range(len(ioi.TEMPLATES)):
        groups[layout(t)].append(t)
    return groups[layout(template_id)]


def swap_roles(prompt: ioi.IOIPrompt) -> ioi.IOIPrompt:
    """Corrupted partner in which IO and S trade places everywhere (A, B and S2 all change).

    "When Mary and John …, John gave … to" becomes "When John and Mary …, Mary gave … to", whose
    answer is the clean prompt's S. Like ``ioi.corrupt``, the result keeps the clean prompt's
    ``io`` and ``s``, so the logit difference IO − S flips sign when the model does the task.
    """
    swapped = ioi.render(prompt.template_id, prompt.s, prompt.io, prompt.order)
    return replace(swapped, io=prompt.io, s=prompt.s)


def aligned_ioi_pairs(
    tokenizer: PreTrainedTokenizerBase,
    n: int,
    split: ioi.Split = "heldout_pairs",
    kind: str = "abc",
    seed: int = 0,
) -> list[tuple[ioi.IOIPrompt, ioi.IOIPrompt]]:
    """``n`` (clean, corrupted) pairs, all from templates aligned with template 0.

    ``kind``: "abc" or "flip" (``ioi.corrupt``: S2 becomes a third name, or the IO name; the
    prompts differ in one token) or "swap" (``swap_roles``: A, B and S2 all differ).
    """
    keep = set(aligned_templates(tokenizer))
    if kind == "swap":
        base = [(clean, swap_roles(clean)) for clean in ioi.ioi_prompts(40 * n, split, seed=seed)]
    elif kind in ("abc", "flip"):
        base = ioi.clean_corrupted_pairs(40 * n, split, kind, seed)
    else:
        raise ValueError(f"unknown corruption {kind!r}; use 'abc', 'flip' or 'swap'")
    pairs = [pair for pair in base if pair[0].template_id in keep]
    if len(pairs) < n:
        raise ValueError(f"only {len(pairs)} aligned IOI pairs found; ask for fewer than {n}")
    return pairs[:n]


@functools.cache
def check_model() -> TransformerBridge:
    """The course model the checks run on."""
    return load_model(CHECK_MODEL, device="cpu")


@functools.cache
def patching_data(n: int, kind: str = "flip") -> dict:
    """Tokens, answers, logits, caches and logit-difference baselines for ``n`` aligned pairs."""
    model = check_model()
    pairs = aligned_ioi_pairs(model.tokenizer, n, kind=kind, seed=SEED)
    clean = ioi.tokenize([c for c, _ in pairs], model.tokenizer)
    corrupted = ioi.tokenize([k for _, k in pairs], model.tokenizer)
    answers = torch.stack([clean.io_ids, clean.s_ids], dim=1)
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean.tokens)
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted.tokens)
    clean_ld = SOLUTION.logit_diff(clean_logits, answers).mean().item()
    corrupted_ld = SOLUTION.logit_diff(corrupted_logits, answers).mean().item()
    metric = functools.partial(
        SOLUTION.normalised_patching_metric,
        answer_tokens=answers,
        clean_logit_diff=clean_ld,
        corrupted_logit_diff=corrupted_ld,
    )
    return dict(
        model=model,
        clean_tokens=clean.tokens,
        corrupted_tokens=corrupted.tokens,
        answers=answers,
        clean_logits=clean_logits,
        corrupted_logits=corrupted_logits,
        clean_cache=clean_cache,
        corrupted_cache=corrupted_cache,
        clean_ld=clean_ld,
        corrupted_ld=corrupted_ld,
        metric=metric,
    )


def sweep_inputs() -> tuple[TransformerBridge, torch.Tensor, ActivationCache, Callable]:
    """``(model, corrupted_tokens, clean_cache, metric)``: the arguments of every sweep check.

    The sweeps are checked on pairs whose corrupted prompt swaps IO and S everywhere, so they
    differ at three positions (A, B, S2) rather than one: more cells of a sweep are non-zero, and
    more mistakes show (with one differing position, patching the wrong position often changes nothing).
    """
    d = patching_data(N_SWEEP_PROMPTS, SWEEP_CORRUPTION)
    return d["model"], d["corrupted_tokens"], d["clean_cache"], d["metric"]


def check_heads() -> list[tuple[int, int]]:
    """Heads for the per-position check: one in the last layer and one in layer 1 (two heads keep it fast)."""
    cfg = check_model().cfg
    return [(cfg.n_layers - 1, 0), (min(1, cfg.n_layers - 1), cfg.n_heads - 1)]


# --- the classic mistakes: one generic sweep with switches ----------------------------------------
def _sweep(
    model: TransformerBridge,
    tokens: torch.Tensor,
    cache: ActivationCache,
    metric: Callable,
    cells: Sequence[tuple[int, tuple]],
    hook_name: Callable[[int], str],
    *,
    accumulate: bool = False,
    discard: bool = False,
    blank_before: bool = False,
) -> torch.Tensor:
    """Run one patched forward per cell ``(layer, index)``: ``act[index] = clean[index]``.

    ``accumulate``: hooks of earlier cells stay attached (the "forgot to remove hooks" mistake).
    ``discard``: the hook patches a copy and returns nothing (the patch has no effect).
    ``blank_before``: the logits of positions before the patched one ``index[1]`` are zeros.
    """
    values = []
    with torch.no_grad():
        for layer, index in cells:
            name = hook_name(layer)
            clean = cache[name]

            def hook(act, hook, index=index, clean=clean):
                if discard:
                    act = act.clone()
                act[index] = clean[index]
                return None if discard else act

            if accumulate:
                model.add_hook(name, hook)
                logits = model(tokens)
            else:
                logits = model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])
            if blank_before:
                logits[:, : index[1]] = 0.0
            values.append(metric(logits).item())
    if accumulate:
        model.reset_hooks()
    return torch.tensor(values)


_ALL = slice(None)


def _resid_sweep(index: Callable[[int], tuple], hook: str = "hook_resid_pre", **kw) -> Callable:
    """A resid_pre sweep that patches ``act[index(pos)]`` instead of ``act[:, pos]``."""

    def sweep(model, corrupted_tokens, clean_cache, metric, *extra):
        n_layers, n_pos = model.cfg.n_layers, corrupted_tokens.shape[1]
        cells = [(layer, index(pos)) for layer in range(n_layers) for pos in range(n_pos)]
        out = _sweep(model, corrupted_tokens, clean_cache, metric, cells, lambda l: f"blocks.{l}.{hook}", **kw)
        return out.reshape(n_layers, n_pos)

    return cached_by_inputs(sweep)


def _clean_run_everywhere(shape: Callable) -> Callable:
    """Every cell equal to the clean run's metric: what patching clean into clean gives."""

    def wrong(model, corrupted_tokens, clean_cache, metric, *extra):
        # Replacing the token embedding at every position turns the corrupted run into the clean one.
        logits = model.run_with_hooks(
            corrupted_tokens, fwd_hooks=[("hook_embed", lambda act, hook: clean_cache["hook_embed"])]
        )
        return torch.full(shape(model, corrupted_tokens, *extra), metric(logits).item())

    return cached_by_inputs(wrong)


def _head_sweep(index: Callable[[int], tuple], **kw) -> Callable:
    """A head sweep that patches ``z[index(head)]`` instead of ``z[:, :, head]``."""

    def sweep(model, corrupted_tokens, clean_cache, metric):
        n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
        cells = [(layer, index(head)) for layer in range(n_layers) for head in range(n_heads)]
        out = _sweep(model, corrupted_tokens, clean_cache, metric, cells, lambda l: f"blocks.{l}.attn.hook_z", **kw)
        return out.reshape(n_layers, n_heads)

    return cached_by_inputs(sweep)


def _head_pos_sweep(index: Callable[[int, int], tuple], **kw) -> Callable:
    """A per-position head sweep that patches ``z[index(head, pos)]``."""

    def sweep(model, corrupted_tokens, clean_cache, metric, heads):
        n_pos = corrupted_tokens.shape[1]
        cells = [(layer, index(head, pos)) for layer, head in heads for pos in range(n_pos)]
        out = _sweep(model, corrupted_tokens, clean_cache, metric, cells, lambda l: f"blocks.{l}.attn.hook_z", **kw)
        return out.reshape(len(heads), n_pos)

    return cached_by_inputs(sweep)


_NO_EFFECT = (
    "every patch scores like the unpatched corrupted run (0) — does your hook return the patched "
    "activation? A hook that edits a copy and returns None changes nothing"
)
_HOOKS_LEFT = (
    "hooks from earlier patches are still attached when you run the next one, so patches pile up — "
    "use `model.run_with_hooks(...)` (or `with model.hooks(...)`) for each patch"
)

KNOWN_MISTAKES["patch_residual_stream"] = {
    "every patch gives the clean run's score (1) — are you running the clean tokens (patching clean into "
    "clean), or patching every position at once? Run `corrupted_tokens` and overwrite only `[:, pos]`": _clean_run_everywhere(
        lambda model, tokens: (model.cfg.n_layers, tokens.shape[1])
    ),
    "you patch positions 0…pos, not position pos alone — index `resid[:, pos]`, not `resid[:, :pos + 1]`": _resid_sweep(
        lambda pos: (_ALL, slice(0, pos + 1))
    ),
    "you patch position pos - 1 — are your positions shifted by one?": _resid_sweep(lambda pos: (_ALL, pos - 1)),
    "you patched `hook_resid_post` (the layer's output); this sweep patches `blocks.{layer}.hook_resid_pre`": _resid_sweep(
        lambda pos: (_ALL, pos), hook="hook_resid_post"
    ),
    _HOOKS_LEFT: _resid_sweep(lambda pos: (_ALL, pos), accumulate=True),
    _NO_EFFECT: _resid_sweep(lambda pos: (_ALL, pos), discard=True),
}

KNOWN_MISTAKES["patch_head_outputs"] = {
    "`z[:, head]` patches POSITION `head` of every head: hook_z is [batch, pos, head, d_head], so the head is "
    "the third index, `z[:, :, head]`": _head_sweep(lambda head: (_ALL, head)),
    "every head of a layer gives the same score — did you patch the whole layer (`z[:, :, :]`) instead of one "
    "head?": _head_sweep(lambda head: (_ALL, _ALL, _ALL)),
    "you patched the head at the final position only; patch it at every position (`z[:, :, head]`)": _head_sweep(
        lambda head: (_ALL, -1, head)
    ),
    "every patch gives the clean run's score (1) — are you running the clean tokens (patching clean into "
    "clean)? Run `corrupted_tokens`": _clean_run_everywhere(
        lambda model, tokens: (model.cfg.n_layers, model.cfg.n_heads)
    ),
    _HOOKS_LEFT: _head_sweep(lambda head: (_ALL, _ALL, head), accumulate=True),
    _NO_EFFECT: _head_sweep(lambda head: (_ALL, _ALL, head), discard=True),
}

KNOWN_MISTAKES["patch_head_outputs_by_pos"] = {
    "each row is constant — you patch the head at every position; patch `z[:, pos, head]` only": _head_pos_sweep(
        lambda head, pos: (_ALL, _ALL, head)
    ),
    "you patch every head at that position (`z[:, pos]`); patch one head, `z[:, pos, head]`": _head_pos_sweep(
        lambda head, pos: (_ALL, pos)
    ),
    "you patch positions 0…pos, not position pos alone — index `z[:, pos, head]`": _head_pos_sweep(
        lambda head, pos: (_ALL, slice(0, pos + 1), head)
    ),
    "every patch gives the clean run's score (1) — are you running the clean tokens (patching clean into "
    "clean)? Run `corrupted_tokens`": _clean_run_everywhere(lambda model, tokens, heads: (len(heads), tokens.shape[1])),
    _HOOKS_LEFT: _head_pos_sweep(lambda head, pos: (_ALL, pos, head), accumulate=True),
    _NO_EFFECT: _head_pos_sweep(lambda head, pos: (_ALL, pos, head), discard=True),
}


# --- metric mistakes --------------------------------------------------------------------------------
def _final_diffs(logits, answer_tokens, pos=-1):
    final = logits[:, pos]
    rows = torch.arange(len(final))
    return final[rows, answer_tokens[:, 0]] - final[rows, answer_tokens[:, 1]]


KNOWN_MISTAKES["logit_diff"] = {
    "is the sign flipped? Compute correct (IO, `answer_tokens[:, 0]`) minus wrong (S, `answer_tokens[:, 1]`)": lambda logits, a: (
        -_final_diffs(logits, a)
    ),
    "you read position 0 — the answer is predicted at the final position, `logits[:, -1]`": lambda logits, a: (
        _final_diffs(logits, a, 0)
    ),
    "you read the second-to-last position — the answer is predicted at the final position, `logits[:, -1]`": lambda logits, a: (
        _final_diffs(logits, a, -2)
    ),
    "you averaged over the batch — return one logit difference per prompt": lambda logits, a: _final_diffs(
        logits, a
    ).mean(),
    "you compared probabilities — compare the logits themselves (before softmax)": lambda logits, a: _final_diffs(
        logits.softmax(-1), a
    ),
    "`final[:, answer_tokens[:, 0]]` picks every prompt's answer for every prompt ([batch, batch]) — pair row i "
    "with its own answer: `final.gather(-1, answer_tokens)` or `final[torch.arange(batch), answer_tokens[:, 0]]`": lambda logits, a: (
        logits[:, -1][:, a[:, 0]] - logits[:, -1][:, a[:, 1]]
    ),
}


def _mean_ld(logits, a):
    return _final_diffs(logits, a).mean()


KNOWN_MISTAKES["normalised_patching_metric"] = {
    "this is the raw mean logit difference — normalise it: (mean − corrupted) / (clean − corrupted)": lambda logits, a, c, k: (
        _mean_ld(logits, a)
    ),
    "0 and 1 are swapped (the clean run scores 0) — subtract the CORRUPTED logit difference and divide by "
    "(clean − corrupted)": lambda logits, a, c, k: (c - _mean_ld(logits, a)) / (c - k),
    "is the sign flipped? The clean run should score +1, not −1": lambda logits, a, c, k: (
        (k - _mean_ld(logits, a)) / (c - k)
    ),
    "dividing by the clean logit difference alone is not the normalisation — use (mean − corrupted) / (clean − "
    "corrupted)": lambda logits, a, c, k: _mean_ld(logits, a) / c,
    "you read position 0 — the answer is predicted at the final position, `logits[:, -1]`": lambda logits, a, c, k: (
        (_final_diffs(logits, a, 0).mean() - k) / (c - k)
    ),
}


# --- attribution mistakes -----------------------------------------------------------------------------
def _attribution(
    model, corrupted_tokens, clean_cache, metric, *, sign=1.0, grad_on_clean=False, delta=True, mean=False
):
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    saved: dict[str, torch.Tensor] = {}

    def save(act, hook, name):
        if not act.requires_grad:
            act = act.detach().requires_grad_(True)
        saved[name] = act
        return act

    hooks = [(n, lambda act, hook, n=n: save(act, hook, n)) for n in names]
    if grad_on_clean:
        # The clean tokens are those whose embedding the clean cache holds; rebuild that run.
        hooks.append(("hook_embed", lambda act, hook: clean_cache["hook_embed"].clone()))
    with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
        value = metric(model(corrupted_tokens))
        grads = torch.autograd.grad(value, [saved[n] for n in names])
    corrupted = sweep_corrupted_resid(model, corrupted_tokens, names)
    rows = []
    for n, g in zip(names, grads):
        d = sign * (clean_cache[n] - corrupted[n]) if delta else clean_cache[n]
        rows.append((d * g).mean(0).sum(-1) if mean else (d * g).sum(dim=(0, 2)))
    return torch.stack(rows)


def sweep_corrupted_resid(model, corrupted_tokens, names) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        _, cache = model.run_with_cache(corrupted_tokens, names_filter=names)
    return {n: cache[n] for n in names}


KNOWN_MISTAKES["attribution_patch_residual"] = {
    "is the sign flipped? Multiply the gradient by (clean − corrupted), the change that patching makes": cached_by_inputs(
        functools.partial(_attribution, sign=-1.0)
    ),
    "you multiplied the gradient by the clean activation — multiply it by the DIFFERENCE clean − corrupted": cached_by_inputs(
        functools.partial(_attribution, delta=False)
    ),
    "you took the gradient on the clean run — take it on the corrupted run, where the patch is made": cached_by_inputs(
        functools.partial(_attribution, grad_on_clean=True)
    ),
    "you averaged over the batch — sum instead (the metric's mean already puts 1/batch into the gradient)": cached_by_inputs(
        functools.partial(_attribution, mean=True)
    ),
}


# --- the checks ----------------------------------------------------------------------------------------
def test_logit_diff(logit_diff) -> CheckResult:
    d = patching_data(N_METRIC_PROMPTS)
    cases = [
        Case(f"the clean logits of {N_METRIC_PROMPTS} IOI prompts", (d["clean_logits"], d["answers"])),
        Case(f"the corrupted logits of {N_METRIC_PROMPTS} IOI prompts", (d["corrupted_logits"], d["answers"])),
    ]
    return check(
        "logit_diff",
        logit_diff,
        SOLUTION.logit_diff,
        cases,
        index_names=("prompt",),
        known_mistakes=KNOWN_MISTAKES["logit_diff"],
    )


def test_normalised_patching_metric(normalised_patching_metric) -> CheckResult:
    d = patching_data(N_METRIC_PROMPTS)
    base = (d["answers"], d["clean_ld"], d["corrupted_ld"])
    mixed = 0.3 * d["clean_logits"] + 0.7 * d["corrupted_logits"]
    cases = [
        Case("the clean run (should score 1)", (d["clean_logits"], *base)),
        Case("the corrupted run (should score 0)", (d["corrupted_logits"], *base)),
        Case("logits 30 % of the way from corrupted to clean", (mixed, *base)),
        Case(
            "baselines given as tensors",
            (d["clean_logits"], d["answers"], torch.tensor(d["clean_ld"]), torch.tensor(d["corrupted_ld"])),
        ),
    ]
    return check(
        "normalised_patching_metric",
        normalised_patching_metric,
        SOLUTION.normalised_patching_metric,
        cases,
        known_mistakes=KNOWN_MISTAKES["normalised_patching_metric"],
    )


_reference_resid = cached_by_inputs(SOLUTION.patch_residual_stream)
_reference_heads = cached_by_inputs(SOLUTION.patch_head_outputs)
_reference_heads_by_pos = cached_by_inputs(SOLUTION.patch_head_outputs_by_pos)
_reference_attribution = cached_by_inputs(SOLUTION.attribution_patch_residual)


def test_patch_residual_stream(patch_residual_stream) -> CheckResult:
    with torch.no_grad():
        return check(
            "patch_residual_stream",
            patch_residual_stream,
            _reference_resid,
            [Case(f"{N_SWEEP_PROMPTS} IOI pairs (IO and S swapped) on {CHECK_MODEL}", sweep_inputs())],
            index_names=("layer", "pos"),
            known_mistakes=KNOWN_MISTAKES["patch_residual_stream"],
        )


def test_patch_head_outputs(patch_head_outputs) -> CheckResult:
    with torch.no_grad():
        return check(
            "patch_head_outputs",
            patch_head_outputs,
            _reference_heads,
            [Case(f"{N_SWEEP_PROMPTS} IOI pairs (IO and S swapped) on {CHECK_MODEL}", sweep_inputs())],
            index_names=("layer", "head"),
            known_mistakes=KNOWN_MISTAKES["patch_head_outputs"],
        )


def test_patch_head_outputs_by_pos(patch_head_outputs_by_pos) -> CheckResult:
    heads = _heads_arg()
    with torch.no_grad():
        return check(
            "patch_head_outputs_by_pos",
            patch_head_outputs_by_pos,
            _reference_heads_by_pos,
            [Case(f"heads {heads} on {N_SWEEP_PROMPTS} IOI pairs (IO and S swapped)", (*sweep_inputs(), heads))],
            index_names=("head", "pos"),
            known_mistakes=KNOWN_MISTAKES["patch_head_outputs_by_pos"],
        )


@functools.cache
def _heads_arg() -> list[tuple[int, int]]:
    return check_heads()


def test_attribution_patch_residual(attribution_patch_residual) -> CheckResult:
    return check(
        "attribution_patch_residual",
        attribution_patch_residual,
        _reference_attribution,
        [Case(f"{N_SWEEP_PROMPTS} IOI pairs (IO and S swapped) on {CHECK_MODEL}", sweep_inputs())],
        index_names=("layer", "pos"),
        known_mistakes=KNOWN_MISTAKES["attribution_patch_residual"],
    )


# --- the fast exact sweep -------------------------------------------------------------------------------
def _block_on_suffix(model, layer, resid, corrupted_cache, *, prefix=True, mask="shifted", scale=True, mlp=True):
    """``block_on_suffix`` with switches for its classic mistakes (see ``KNOWN_MISTAKES["block_on_suffix"]``)."""
    block, attn = model.blocks[layer], model.blocks[layer].attn
    cached_k = corrupted_cache[f"blocks.{layer}.attn.hook_k"]
    cached_v = corrupted_cache[f"blocks.{layer}.attn.hook_v"]
    n_pos, suffix, copies = cached_k.shape[1], resid.shape[2], resid.shape[0]
    first = n_pos - suffix if prefix else 0
    x = block.ln1(resid)
    q, k, v = (
        torch.einsum("cbpm,hmd->cbphd", x, w) + b
        for w, b in ((attn.W_Q, attn.b_Q), (attn.W_K, attn.b_K), (attn.W_V, attn.b_V))
    )
    keys = torch.cat(
        [cached_k[None, :, n_pos - suffix - first : n_pos - suffix].expand(copies, -1, -1, -1, -1), k], dim=2
    )
    values = torch.cat(
        [cached_v[None, :, n_pos - suffix - first : n_pos - suffix].expand(copies, -1, -1, -1, -1), v], dim=2
    )
    scores = torch.einsum("cbqhd,cbkhd->cbhqk", q, keys) / (model.cfg.d_head**0.5 if scale else 1.0)
    query_at = torch.arange(first, first + suffix) if mask == "shifted" else torch.arange(suffix)
    if mask != "none":
        scores = scores.masked_fill(torch.arange(first + suffix) > query_at[:, None], float("-inf"))
    z = torch.einsum("cbhqk,cbkhd->cbqhd", scores.softmax(-1), values)
    resid = resid + torch.einsum("cbqhd,hdm->cbqm", z, attn.W_O) + attn.b_O
    if mlp and not model.cfg.attn_only:
        resid = resid + block.mlp(block.ln2(resid))
    return resid


KNOWN_MISTAKES["block_on_suffix"] = {
    "the positions before `pos` are missing from attention — put the corrupted cache's keys and values of "
    "positions 0…pos−1 before yours (`blocks.{layer}.attn.hook_k` / `hook_v`)": functools.partial(
        _block_on_suffix, prefix=False
    ),
    "your causal mask forgets the offset: row i of the suffix is position pos + i, so it sees keys 0…pos + i "
    "(mask key > pos + i, not key > i)": functools.partial(_block_on_suffix, mask="unshifted"),
    "there is no causal mask — a position must not attend to positions after it": functools.partial(
        _block_on_suffix, mask="none"
    ),
    "divide the attention scores by sqrt(d_head) before the softmax": functools.partial(_block_on_suffix, scale=False),
    "the MLP is missing — after the attention, add `block.mlp(block.ln2(resid))`": functools.partial(
        _block_on_suffix, mlp=False
    ),
}


@functools.cache
def _suffix_cases() -> list[Case]:
    """Residual streams of the swapped-names pairs after ``pos``: unpatched, patched, several copies."""
    d = patching_data(N_SWEEP_PROMPTS, SWEEP_CORRUPTION)
    model, clean, corrupted = d["model"], d["clean_cache"], d["corrupted_cache"]

    def stream(cache, layer, pos):
        return cache[f"blocks.{layer}.hook_resid_pre"][:, pos:]

    patched = stream(corrupted, 2, 4).clone()
    patched[:, 0] = stream(clean, 2, 4)[:, 0]
    last = model.cfg.n_layers - 1
    return [
        Case("block 0, positions 10… of the corrupted run", (model, 0, stream(corrupted, 0, 10)[None], corrupted)),
        Case(
            "block 2, positions 4… patched at 4, and the clean stream (2 copies)",
            (model, 2, torch.stack([patched, stream(clean, 2, 4)]), corrupted),
        ),
        Case(f"block {last}, the final position alone", (model, last, stream(clean, last, -1)[None], corrupted)),
    ]


def test_block_on_suffix(block_on_suffix) -> CheckResult:
    with torch.no_grad():
        return check(
            "block_on_suffix",
            block_on_suffix,
            cached_by_inputs(SOLUTION.block_on_suffix),
            _suffix_cases(),
            index_names=("copy", "prompt", "position in the suffix", "d_model"),
            known_mistakes=KNOWN_MISTAKES["block_on_suffix"],
        )


@functools.cache
def _all_positions_metric() -> Callable:
    """Mean log-probability of the corrupted prompts' own next tokens: a metric that reads every position."""
    tokens = sweep_inputs()[1]
    return lambda logits: logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None]).mean()


def _skipped_as_zero(model, corrupted_tokens, clean_cache, metric):
    """The fast sweep's mistake of scoring a skipped patch 0 instead of the corrupted run's metric."""
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    corrupted = sweep_corrupted_resid(model, corrupted_tokens, names)
    equal = torch.stack([(clean_cache[n] == corrupted[n]).all(-1).all(0) for n in names])
    return _reference_resid(model, corrupted_tokens, clean_cache, metric).masked_fill(equal, 0.0)


def _ignoring_metric_pos(sweep: Callable) -> Callable:
    """A sweep that computes every position whatever ``metric_pos`` promises (same numbers: the reference)."""
    return lambda *args, metric_pos=None: sweep(*args)


@functools.cache
def _one_position_metric() -> tuple[Callable, int]:
    """A metric that reads one position in the middle of the prompts (the log-probability of the next
    token there), and that position: patches after it cannot change the metric."""
    tokens = sweep_inputs()[1]
    read = tokens.shape[1] // 2
    return (lambda logits: logits[:, read].log_softmax(-1).gather(-1, tokens[:, read + 1, None]).mean()), read


def _patch_at_read_skipped(model, corrupted_tokens, clean_cache, metric, metric_pos=None):
    """The off-by-one of ``metric_pos``: the patch AT the read position is scored as the corrupted run."""
    results = _reference_resid(model, corrupted_tokens, clean_cache, metric).clone()
    if metric_pos is not None:
        results[:, metric_pos] = metric(model(corrupted_tokens)).item()
    return results


KNOWN_MISTAKES["patch_residual_stream_fast"] = {
    **{diagnosis: _ignoring_metric_pos(sweep) for diagnosis, sweep in KNOWN_MISTAKES["patch_residual_stream"].items()},
    "the positions before the patched one keep the corrupted run's logits, and a metric may read them — copy "
    "them from the corrupted logits instead of leaving zeros": _ignoring_metric_pos(
        _resid_sweep(lambda pos: (_ALL, pos), blank_before=True)
    ),
    "a skipped patch changes nothing, so it scores what the corrupted run scores, `metric(corrupted_logits)`, "
    "not 0": _ignoring_metric_pos(cached_by_inputs(_skipped_as_zero)),
    "a patch AT `metric_pos` changes the logits there; only the patches after it cannot reach them": cached_by_inputs(
        _patch_at_read_skipped
    ),
}


def test_patch_residual_stream_fast(patch_residual_stream_fast) -> CheckResult:
    model, tokens, clean_cache, metric = sweep_inputs()
    one_position_metric, read = _one_position_metric()
    with torch.no_grad():
        return check(
            "patch_residual_stream_fast",
            patch_residual_stream_fast,
            _ignoring_metric_pos(_reference_resid),
            [
                Case(
                    f"{N_SWEEP_PROMPTS} IOI pairs (IO and S swapped) on {CHECK_MODEL}",
                    (model, tokens, clean_cache, metric),
                ),
                Case(
                    "a metric that reads every position (log-probability of the next tokens)",
                    (model, tokens, clean_cache, _all_positions_metric()),
                ),
                Case(
                    "the IOI pairs with metric_pos=-1 (the metric reads the final position only)",
                    (model, tokens, clean_cache, metric),
                    {"metric_pos": -1},
                ),
                Case(
                    f"a metric that reads position {read} only, with metric_pos={read}",
                    (model, tokens, clean_cache, one_position_metric),
                    {"metric_pos": read},
                ),
            ],
            index_names=("layer", "pos"),
            known_mistakes=KNOWN_MISTAKES["patch_residual_stream_fast"],
        )


# --- check your understanding ---------------------------------------------------------------------------
def test_answer_layer0_position(answer) -> CheckResult:
    d = patching_data(N_SWEEP_PROMPTS)
    differs = (d["clean_tokens"] != d["corrupted_tokens"]).any(0).nonzero().flatten().tolist()
    return check_answer(
        "answer_layer0_position",
        answer,
        lambda a: isinstance(a, int) and not isinstance(a, bool) and [a] == differs,
        "at layer 0 the residual stream holds only each token's embedding plus its position: "
        "which is the one token where the clean and corrupted prompts differ? Give its index.",
    )


def test_answer_forward_passes(answer) -> CheckResult:
    return check_answer(
        "answer_forward_passes",
        answer,
        lambda a: isinstance(a, str) and a.strip().lower() == "b",
        "count the loops: one forward pass per (layer, position) cell, with the whole batch inside each pass.",
    )


def test_answer_noising_vs_denoising(answer) -> CheckResult:
    return check_answer(
        "answer_noising_vs_denoising",
        answer,
        lambda a: isinstance(a, str) and a.strip().lower() == "c",
        "denoising asks 'is this activation enough to restore the behaviour?', noising asks "
        "'is it needed to keep it?'. Which one did the head pass, and which did it fail?",
    )


def test_answer_attribution_passes(answer) -> CheckResult:
    return check_answer(
        "answer_attribution_passes",
        answer,
        lambda a: isinstance(a, (tuple, list)) and list(a) == [1, 1],
        "with the clean cache already in hand, how many forward passes on the corrupted tokens, and how "
        "many backward passes, does one gradient of the metric need?",
    )


# --- the circuit: attention scores, path patching, mean ablation ------------------------------------------
N_CIRCUIT_PROMPTS = 8
CIRCUIT_SENDERS = [(0, 1), (0, 2)]
CIRCUIT_RECEIVERS = [(1, 1), (2, 0), (2, 2)]


@functools.cache
def circuit_data() -> dict:
    """Check inputs for the circuit exercises: flip pairs with their caches, each prompt's IO, S1, S2 and END
    positions, its ABC reference prompt and its template id, plus a batch of repeated random tokens."""
    model = check_model()
    pairs = aligned_ioi_pairs(model.tokenizer, N_CIRCUIT_PROMPTS, kind="flip", seed=SEED)
    clean = ioi.tokenize([c for c, _ in pairs], model.tokenizer)
    corrupted = ioi.tokenize([k for _, k in pairs], model.tokenizer)
    reference = ioi.tokenize([replace(c, text=ioi.abc_reference(c)) for c, _ in pairs], model.tokenizer).tokens
    tokens = clean.tokens
    first = lambda row, t: (row == t).nonzero()[0, 0]  # noqa: E731
    generator = torch.Generator().manual_seed(SEED)
    half = torch.randint(1000, model.cfg.d_vocab, (4, 12), generator=generator)
    repeated = torch.cat([torch.full((4, 1), model.tokenizer.bos_token_id), half, half], dim=1)
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(tokens)
        _, corrupted_cache = model.run_with_cache(corrupted.tokens)
        _, repeated_cache = model.run_with_cache(repeated)
    return dict(
        model=model,
        clean_tokens=tokens,
        corrupted_cache=corrupted_cache,
        clean_cache=clean_cache,
        io_pos=torch.stack([first(row, io) for row, io in zip(tokens, clean.io_ids)]),
        s1_pos=torch.stack([first(row, s) for row, s in zip(tokens, clean.s_ids)]),
        s2_pos=torch.stack([(row == s).nonzero()[-1, 0] for row, s in zip(tokens, clean.s_ids)]),
        end_pos=clean.answer_pos,
        reference_tokens=reference,
        template_ids=torch.tensor([c.template_id for c, _ in pairs]),
        orders={c.order for c, _ in pairs},
        repeated_tokens=repeated,
        repeated_cache=repeated_cache,
    )


def _patterns(cache, n_layers):
    return [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(n_layers)]


def _attention_mistake(select: Callable) -> Callable:
    def wrong(cache, n_layers, query_pos, key_pos):
        return torch.stack([select(p, query_pos, key_pos) for p in _patterns(cache, n_layers)])

    return wrong


def _rows(q):
    return torch.arange(len(q))


KNOWN_MISTAKES["attention_to"] = {
    "every score is 0 or nearly — query and key are swapped: hook_pattern is [batch, head, query, key], so index "
    "`pattern[rows, :, query_pos, key_pos]`": _attention_mistake(lambda p, q, k: p[_rows(q), :, k, q].mean(0)),
    "`pattern[:, :, query_pos, key_pos]` pairs every prompt with every other prompt's positions — pair row i "
    "with its own positions: `pattern[torch.arange(batch), :, query_pos, key_pos]`": _attention_mistake(
        lambda p, q, k: p[:, :, q, k].mean(dim=(0, 2))
    ),
    "you summed over the batch — average over the prompts instead": _attention_mistake(
        lambda p, q, k: p[_rows(q), :, q, k].sum(0)
    ),
}


def _duplicate_mistake(
    compare: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], same_token: bool = True, reduce: str = "mean"
) -> Callable:
    def wrong(cache, n_layers, tokens, query_pos):
        rows = _rows(query_pos)
        keys = torch.arange(tokens.shape[1])[None, :]
        mask = compare(keys, query_pos[:, None])
        if same_token:
            mask = mask & (tokens == tokens[rows, query_pos][:, None])
        scores = [(p[rows, :, query_pos] * mask[:, None].float()).sum(-1) for p in _patterns(cache, n_layers)]
        return torch.stack([s.sum(0) if reduce == "sum" else s.mean(0) for s in scores])

    return wrong


KNOWN_MISTAKES["duplicate_token_score"] = {
    "you counted the query's attention to itself (it holds the same token) — only EARLIER positions count: "
    "key < query": _duplicate_mistake(lambda k, q: k <= q),
    "you summed the attention to every earlier position (that is 1 minus the attention to itself) — keep only the "
    "positions whose token equals the query's token": _duplicate_mistake(lambda k, q: k < q, same_token=False),
    "you summed over the batch — average over the prompts instead": _duplicate_mistake(
        lambda k, q: k < q, reduce="sum"
    ),
}


def _path_mistake(
    *,
    run1_tokens: str = "clean",
    sender_source: str = "corrupted",
    receiver_positions: str = "pos",
    receiver_heads: str = "listed",
    return_run1: bool = False,
) -> Callable:
    """A path patch with one step wrong (see the diagnoses in ``KNOWN_MISTAKES["path_patch"]``)."""

    def wrong(model, clean_tokens, corrupted_cache, senders, receivers, pos, receiver_input="v"):
        def patch_senders(z, hook, layer):
            source = corrupted_cache if sender_source == "corrupted" else None
            for l, h in senders:
                if l == layer and source is not None:
                    z[:, pos, h] = source[f"blocks.{layer}.attn.hook_z"][:, pos, h]
            return z

        sender_hooks = [
            (f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: patch_senders(z, hook, layer))
            for layer in sorted({l for l, _ in senders})
        ]
        with torch.no_grad(), model.hooks(fwd_hooks=sender_hooks):
            if run1_tokens == "corrupted":
                logits1 = None
                run1 = corrupted_cache
            else:
                logits1, run1 = model.run_with_cache(clean_tokens)
        if return_run1:
            return logits1

        def patch_receivers(act, hook, layer):
            name = f"blocks.{layer}.attn.hook_{receiver_input}"
            where = pos if receiver_positions == "pos" else slice(None)
            for l, h in receivers:
                if l == layer:
                    index = (slice(None), where, h) if receiver_heads == "listed" else (slice(None), where)
                    act[index] = run1[name][index]
            return act

        hooks = [
            (
                f"blocks.{layer}.attn.hook_{receiver_input}",
                lambda act, hook, layer=layer: patch_receivers(act, hook, layer),
            )
            for layer in sorted({l for l, _ in receivers})
        ]
        with torch.no_grad():
            return model.run_with_hooks(clean_tokens, fwd_hooks=hooks)

    return cached_by_inputs(wrong)


KNOWN_MISTAKES["path_patch"] = {
    "these are the logits of run 1 (the senders patched, their whole effect on everything downstream) — return "
    "the logits of run 2, where ONLY the receivers' inputs are patched": _path_mistake(return_run1=True),
    "nothing changed: the logits are the clean run's — in run 1, set the senders' `hook_z` to their values in "
    "`corrupted_cache`": _path_mistake(sender_source="clean"),
    "you gave the receivers their inputs from the corrupted run itself — take them from run 1 (clean tokens, only "
    "the senders corrupted), so that only the path from the senders is changed": _path_mistake(run1_tokens="corrupted"),
    "you patched the receivers' input at every position — patch it at `pos` only": _path_mistake(
        receiver_positions="all"
    ),
    "you patched every head of the receivers' layers (`act[:, pos]`) — patch the listed heads only, "
    "`act[:, pos, head]`": _path_mistake(receiver_heads="layer"),
}


def _ablation_mistake(mean_of: str = "template", source: str = "reference", zero: bool = False) -> Callable:
    def wrong(model, tokens, reference_tokens, template_ids, heads):
        names = {f"blocks.{layer}.attn.hook_z" for layer, _ in heads}
        with torch.no_grad():
            _, cache = model.run_with_cache(reference_tokens if source == "reference" else tokens)
        values = {}
        for name in names:
            z = cache[name]
            if zero:
                values[name] = torch.zeros_like(z)
            elif mean_of == "batch":
                values[name] = z.mean(0, keepdim=True).expand_as(z)
            elif mean_of == "positions":
                values[name] = z.mean(dim=(0, 1), keepdim=True).expand_as(z)
            else:
                mean = torch.empty_like(z)
                for t in template_ids.unique():
                    mean[template_ids == t] = z[template_ids == t].mean(0)
                values[name] = mean

        def ablate(z, hook, layer):
            for l, h in heads:
                if l == layer:
                    z[:, :, h] = values[f"blocks.{layer}.attn.hook_z"][:, :, h]
            return z

        hooks = [
            (f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: ablate(z, hook, layer))
            for layer in sorted({l for l, _ in heads})
        ]
        with torch.no_grad():
            return model.run_with_hooks(tokens, fwd_hooks=hooks)

    return cached_by_inputs(wrong)


KNOWN_MISTAKES["mean_ablate_heads"] = {
    "you averaged over the whole batch — average over the reference prompts of the SAME template as each prompt "
    "(the templates put different words at the same position)": _ablation_mistake(mean_of="batch"),
    "you averaged over positions too — keep one mean per position (and per template)": _ablation_mistake(
        mean_of="positions"
    ),
    "you set the heads' output to zero — replace it by its mean over the reference prompts": _ablation_mistake(
        zero=True
    ),
    "you took the means from `tokens` themselves — take them from `reference_tokens`, the ABC prompts in which no "
    "name repeats": _ablation_mistake(source="tokens"),
}


def _circuit_label() -> str:
    return f"{N_CIRCUIT_PROMPTS} IOI prompts on {CHECK_MODEL}"


def test_attention_to(attention_to) -> CheckResult:
    d = circuit_data()
    n_layers = d["model"].cfg.n_layers
    cases = [
        Case(f"END → IO, {_circuit_label()}", (d["clean_cache"], n_layers, d["end_pos"], d["io_pos"])),
        Case(f"END → S2, {_circuit_label()}", (d["clean_cache"], n_layers, d["end_pos"], d["s2_pos"])),
        Case(f"S2 → IO, {_circuit_label()}", (d["clean_cache"], n_layers, d["s2_pos"], d["io_pos"])),
    ]
    with torch.no_grad():
        return check(
            "attention_to",
            attention_to,
            SOLUTION.attention_to,
            cases,
            index_names=("layer", "head"),
            known_mistakes=KNOWN_MISTAKES["attention_to"],
        )


def test_duplicate_token_score(duplicate_token_score) -> CheckResult:
    d = circuit_data()
    n_layers = d["model"].cfg.n_layers
    repeated = d["repeated_tokens"]
    second_half = torch.arange(len(repeated)) + repeated.shape[1] // 2 + 2  # a position in each second copy
    cases = [
        Case(f"S2, {_circuit_label()}", (d["clean_cache"], n_layers, d["clean_tokens"], d["s2_pos"])),
        Case("the second copy of a repeated random sequence", (d["repeated_cache"], n_layers, repeated, second_half)),
    ]
    with torch.no_grad():
        return check(
            "duplicate_token_score",
            duplicate_token_score,
            SOLUTION.duplicate_token_score,
            cases,
            index_names=("layer", "head"),
            known_mistakes=KNOWN_MISTAKES["duplicate_token_score"],
        )


_reference_path_patch = cached_by_inputs(SOLUTION.path_patch)
_reference_mean_ablation = cached_by_inputs(SOLUTION.mean_ablate_heads)


def test_path_patch(path_patch) -> CheckResult:
    d = circuit_data()
    args = (
        d["model"],
        d["clean_tokens"],
        d["corrupted_cache"],
        CIRCUIT_SENDERS,
        CIRCUIT_RECEIVERS,
        int(d["s2_pos"][0]),
    )
    cases = [
        Case(f"senders {CIRCUIT_SENDERS}, receivers' values {CIRCUIT_RECEIVERS} at S2, {_circuit_label()}", args),
        Case("the receivers' keys", args, {"receiver_input": "k"}),
    ]
    with torch.no_grad():
        return check(
            "path_patch",
            path_patch,
            _reference_path_patch,
            cases,
            index_names=("prompt", "pos", "token"),
            known_mistakes=KNOWN_MISTAKES["path_patch"],
        )


def test_mean_ablate_heads(mean_ablate_heads) -> CheckResult:
    d = circuit_data()
    args = (d["model"], d["clean_tokens"], d["reference_tokens"], d["template_ids"])
    cases = [
        Case(f"heads {CIRCUIT_SENDERS} mean-ablated, {_circuit_label()}", (*args, CIRCUIT_SENDERS)),
        Case(f"heads {CIRCUIT_RECEIVERS}", (*args, CIRCUIT_RECEIVERS)),
    ]
    with torch.no_grad():
        return check(
            "mean_ablate_heads",
            mean_ablate_heads,
            _reference_mean_ablation,
            cases,
            index_names=("prompt", "pos", "token"),
            known_mistakes=KNOWN_MISTAKES["mean_ablate_heads"],
        )


def test_answer_path_patch_values(answer) -> CheckResult:
    return check_answer(
        "answer_path_patch_values",
        answer,
        lambda a: isinstance(a, str) and a.strip().lower() == "b",
        "a head's keys decide where it attends, its values decide what it copies from there. Which of the two "
        "did the corrupted senders change enough to matter?",
    )
