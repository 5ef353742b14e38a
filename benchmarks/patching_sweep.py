"""Benchmark for chapter 04: the naive activation-patching sweeps against the fast exact sweeps
and TransformerLens's own sweep, on the same model and inputs.

    .venv/bin/python benchmarks/patching_sweep.py [--model gelu-4l] [--prompts 16] [--repeats 3] [--threads 2]
    .venv/bin/python benchmarks/patching_sweep.py --hub-shape --prompts 2 --repeats 1   # GPT-2-sized random model
    .venv/bin/python benchmarks/patching_sweep.py --threads 1 --clock cpu   # on a busy machine

For each corruption (the notebook's "abc", one differing token, and "swap", three differing
tokens) it times the sweeps of ``blocks.{layer}.hook_resid_pre`` by (layer, position) and of
``hook_z`` by (head, position), and prints for each: seconds (best of ``--repeats`` runs, under
``torch.no_grad()``), speed-up over the naive loop, FLOP ratio (naive FLOPs / the method's), and the
largest difference from the naive loop's numbers (target ≤ 1e-5).

FLOPs are counted, not derived from the algorithm: a separate, untimed run counts the positions
that enter each attention layer (its LayerNorm ``ln1``), each MLP (``ln2``) and the unembedding
(``ln_final``), weighted by their matrix multiplications (Q, K, V and O; MLP in and out; W_U).
Attention scores and element-wise work are left out.

- naive: ``solutions.patch_residual_stream`` / ``patch_head_outputs_by_pos``, one full forward
  pass per patch;
- from the layer, batched: one forward pass per layer holding every position's patched copy of
  the batch, started at the patched layer (``start_at_layer``), no skipping;
- fast: ``solutions.patch_residual_stream_fast`` / ``patch_head_outputs_by_pos_fast``: from the
  patched layer, only the positions from the patched one on (causal attention), skipping patches
  whose clean and corrupted activations are equal;
- fast, END only: the same with ``metric_pos=-1``: the metric reads the final position's logits
  only, so only that position is unembedded;
- TL: ``transformer_lens.patching.get_act_patch_resid_pre``.

``--hub-shape`` replaces the course model by a random-weight model of GPT-2 small's shape (12
layers, d_model 768, 12 heads, d_mlp 3072, n_ctx 1024; the course tokenizer, so d_vocab 4096),
patches one head per layer in the head sweep, and times only the naive loops and the fast sweeps. This is a benchmark, not a test: the figures depend
on the machine and its load, printed at the start and the end. On a machine shared with other
work, ``--clock cpu --threads 1`` times the CPU seconds of this process instead of the wall clock:
a closer estimate of the idle machine's wall time than a wall clock slowed down by others.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would only add noise to the timings

import torch  # noqa: E402
from transformer_lens import patching  # noqa: E402

from course_utils import load_model  # noqa: E402
from course_utils.chapters import solution_module  # noqa: E402
from course_utils.checks.activation_patching import aligned_ioi_pairs  # noqa: E402
from course_utils.models import random_model  # noqa: E402
from course_utils.tasks import ioi  # noqa: E402

S = solution_module("04_activation_patching")


def batched_from_layer(model, corrupted_tokens, clean_cache, metric):
    """Start at the patched layer and run all positions of a layer in one pass; skip nothing."""
    n_layers, (batch, n_pos) = model.cfg.n_layers, corrupted_tokens.shape
    results = torch.zeros(n_layers, n_pos)
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    _, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=names)
    for layer, name in enumerate(names):
        resid = corrupted_cache[name].repeat(n_pos, 1, 1)
        for pos in range(n_pos):
            resid[pos * batch : (pos + 1) * batch, pos] = clean_cache[name][:, pos]
        logits = model(resid, start_at_layer=layer)
        for pos in range(n_pos):
            results[layer, pos] = metric(logits[pos * batch : (pos + 1) * batch])
    return results


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def best_time(fn: Callable[[], torch.Tensor], repeats: int, clock: Callable[[], float]) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        start = clock()
        with torch.no_grad():
            out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(clock() - start)
    return min(times), out.detach().float().cpu()


def counted_flops(model, fn: Callable[[], torch.Tensor]) -> float:
    """Matmul FLOPs of one run of ``fn``: positions through each block and through the unembedding."""
    cfg = model.cfg
    attn, mlp = 2 * 4 * cfg.d_model * cfg.n_heads * cfg.d_head, 2 * 2 * cfg.d_model * (cfg.d_mlp or 0)
    unembed = 2 * cfg.d_model * cfg.d_vocab
    total = [0.0]

    def count(cost):
        return lambda module, args: total.__setitem__(0, total[0] + cost * args[0].numel() / cfg.d_model)

    norms = [(model.ln_final, unembed)] + [(b.ln1, attn) for b in model.blocks]
    norms += [] if cfg.attn_only else [(b.ln2, mlp) for b in model.blocks]
    handles = [norm.register_forward_pre_hook(count(cost)) for norm, cost in norms]
    try:
        with torch.no_grad():
            fn()
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def sweep_table(model, title: str, methods: dict[str, Callable[[], torch.Tensor]], repeats: int, clock: str) -> None:
    """Time every method, print its row; the first method is the naive loop the others are compared with."""
    print(f"  {title}")
    print(f"    {'sweep':34} {clock + ' s':>8} {'speed-up':>9} {'FLOP ratio':>11} {'max |Δ|':>8}")
    naive_s = naive = naive_flops = None
    for label, fn in methods.items():
        seconds, out = best_time(fn, repeats, CLOCKS[clock])
        flops = counted_flops(model, fn)
        if naive is None:
            naive_s, naive, naive_flops = seconds, out, flops
        print(
            f"    {label:34} {seconds:8.3f} {naive_s / seconds:8.1f}× {naive_flops / flops:10.1f}× "
            f"{(out - naive).abs().max().item():8.0e}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gelu-4l")
    parser.add_argument("--hub-shape", action="store_true", help="a random model of GPT-2 small's shape instead")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's choice)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall clock or this process's CPU time")
    parser.add_argument("--corruptions", nargs="+", choices=["abc", "swap"], default=["abc", "swap"])
    parser.add_argument("--sweeps", nargs="+", choices=["resid", "heads"], default=["resid", "heads"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.hub_shape:
        model = random_model(n_layers=12, d_model=768, n_heads=12, n_ctx=1024)
        model = model.to(args.device) if args.device else model
        name = "random GPT-2-shaped (12 layers, d_model 768, 12 heads, d_mlp 3072, d_vocab 4096)"
    else:
        model, name = load_model(args.model, device=args.device), args.model
    device = model.cfg.device
    cfg = model.cfg
    heads = (
        [(layer, 0) for layer in range(cfg.n_layers)]
        if args.hub_shape
        else [(layer, head) for layer in range(cfg.n_layers) for head in range(cfg.n_heads)]
    )
    print(
        f"model {name} on {device}, torch threads {torch.get_num_threads()}, best of {args.repeats} runs "
        f"({args.clock} clock), load average {os.getloadavg()[0]:.2f}"
    )
    for kind in args.corruptions:
        pairs = aligned_ioi_pairs(model.tokenizer, args.prompts, kind=kind, seed=0)
        clean = ioi.tokenize([c for c, _ in pairs], model.tokenizer)
        corrupted = ioi.tokenize([k for _, k in pairs], model.tokenizer)
        answers = torch.stack([clean.io_ids, clean.s_ids], dim=1).to(device)
        clean_tokens, corrupted_tokens = clean.tokens.to(device), corrupted.tokens.to(device)
        with torch.no_grad():
            clean_logits, clean_cache = model.run_with_cache(clean_tokens)
            corrupted_logits = model(corrupted_tokens)
        metric = lambda logits: S.normalised_patching_metric(  # noqa: E731
            logits,
            answers,
            S.logit_diff(clean_logits, answers).mean().item(),
            S.logit_diff(corrupted_logits, answers).mean().item(),
        )
        sweep = (model, corrupted_tokens, clean_cache, metric)
        n_pos = corrupted_tokens.shape[1]
        differs = (clean_tokens != corrupted_tokens).any(0).nonzero().flatten().tolist()
        print(
            f"\ncorruption {kind!r}: {args.prompts} prompts × {n_pos} positions, {cfg.n_layers} layers; "
            f"clean and corrupted differ at positions {differs}"
        )
        resid_methods = {
            "naive loop (one forward per patch)": lambda: S.patch_residual_stream(*sweep),
            "from the layer, batched": lambda: batched_from_layer(*sweep),
            "fast (both prefixes + skip)": lambda: S.patch_residual_stream_fast(*sweep),
            "fast, END only (metric_pos=-1)": lambda: S.patch_residual_stream_fast(*sweep, metric_pos=-1),
            "TL get_act_patch_resid_pre": lambda: patching.get_act_patch_resid_pre(*sweep),
        }
        if args.hub_shape:  # the other two do the naive loop's FLOPs: minutes at this size
            resid_methods = {k: v for k, v in resid_methods.items() if k.startswith(("naive", "fast"))}
        if "resid" in args.sweeps:
            title = f"resid_pre by (layer, position): {cfg.n_layers * n_pos} patches"
            sweep_table(model, title, resid_methods, args.repeats, args.clock)
        if "heads" in args.sweeps:
            sweep_table(
                model,
                f"hook_z by (head, position): {len(heads)} heads × {n_pos} positions",
                {
                    "naive loop (one forward per patch)": lambda: S.patch_head_outputs_by_pos(*sweep, heads),
                    "fast (both prefixes + skip)": lambda: S.patch_head_outputs_by_pos_fast(*sweep, heads),
                    "fast, END only (metric_pos=-1)": lambda: S.patch_head_outputs_by_pos_fast(
                        *sweep, heads, metric_pos=-1
                    ),
                },
                args.repeats,
                args.clock,
            )
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
