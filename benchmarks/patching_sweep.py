"""Benchmark for chapter 04: the naive activation-patching sweep against the fast exact sweep and
TransformerLens's own sweep, on the same model and inputs.

    .venv/bin/python benchmarks/patching_sweep.py [--model gelu-4l] [--prompts 16] [--repeats 3] [--threads 1]

For each corruption (the notebook's "abc", one differing token, and "swap", three
differing tokens) it prints the seconds of each sweep of ``blocks.{layer}.hook_resid_pre`` by
(layer, position), the speed-up over the naive loop, and the largest difference from the naive
loop's numbers (target ≤ 1e-5). Times are the best of ``--repeats`` runs, all under
``torch.no_grad()``, on the device ``load_model`` picks (``--device`` to force one).

- naive: ``solutions.patch_residual_stream``, one full forward pass per (layer, position);
- batched: one forward pass per layer holding every position's patched copy of the batch,
  started at the patched layer (``start_at_layer``), no skipping;
- fast: ``solutions.patch_residual_stream_fast``, the same plus skipping the patches where the clean
  and corrupted activations are equal (they cannot change the output);
- TL: ``transformer_lens.patching.get_act_patch_resid_pre``.
This is a benchmark, not a test: the figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would only add noise to the timings

import torch  # noqa: E402
from transformer_lens import patching  # noqa: E402

from course_utils import load_model  # noqa: E402
from course_utils.chapters import solution_module  # noqa: E402
from course_utils.checks.activation_patching import aligned_ioi_pairs  # noqa: E402
from course_utils.tasks import ioi  # noqa: E402

S = solution_module("04_activation_patching")


def batched_from_layer(model, corrupted_tokens, clean_cache, metric):
    """Start at the patched layer and run all positions of a layer in one pass; skip nothing."""
    n_layers, (batch, n_pos) = model.cfg.n_layers, corrupted_tokens.shape
    results = torch.zeros(n_layers, n_pos)
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    with torch.no_grad():
        _, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=names)
        for layer, name in enumerate(names):
            resid = corrupted_cache[name].repeat(n_pos, 1, 1)
            for pos in range(n_pos):
                resid[pos * batch : (pos + 1) * batch, pos] = clean_cache[name][:, pos]
            logits = model(resid, start_at_layer=layer)
            for pos in range(n_pos):
                results[layer, pos] = metric(logits[pos * batch : (pos + 1) * batch])
    return results


def best_time(fn, repeats: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), out.detach().float().cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gelu-4l")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.model, device=args.device)
    device = model.cfg.device
    print(f"model {args.model} on {device}, torch threads {torch.get_num_threads()}, best of {args.repeats} runs")
    for kind in ("abc", "swap"):
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
        sweep_args = (model, corrupted_tokens, clean_cache, metric)
        n_layers, n_pos = model.cfg.n_layers, corrupted_tokens.shape[1]
        differs = (clean_tokens != corrupted_tokens).any(0).nonzero().flatten().tolist()
        print(f"\ncorruption {kind!r}: {args.prompts} prompts × {n_pos} positions, {n_layers} layers = "
              f"{n_layers * n_pos} patches; clean and corrupted differ at positions {differs}")

        naive_s, naive = best_time(lambda: S.patch_residual_stream(*sweep_args), args.repeats)
        rows = [("naive loop (one forward per patch)", naive_s, naive)]
        rows.append(("batched, from the patched layer", *best_time(lambda: batched_from_layer(*sweep_args), args.repeats)))
        rows.append(("fast (batched + skip unchanged)", *best_time(lambda: S.patch_residual_stream_fast(*sweep_args), args.repeats)))
        rows.append(("TL patching.get_act_patch_resid_pre", *best_time(lambda: patching.get_act_patch_resid_pre(*sweep_args), args.repeats)))
        print(f"  {'sweep':40} {'seconds':>8} {'speed-up':>9} {'max |Δ| vs naive':>17}")
        for label, seconds, out in rows:
            print(f"  {label:40} {seconds:8.3f} {naive_s / seconds:8.1f}× {(out - naive).abs().max().item():17.1e}")


if __name__ == "__main__":
    main()
