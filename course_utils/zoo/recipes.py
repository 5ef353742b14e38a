"""How each course model is built: architecture, data mix, objective, steps, and its evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from jaxtyping import Int
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerFast

from course_utils.zoo import batches, corpus, evaluate
from course_utils.zoo.train import Batch

HELDOUT_PLAY = "the-tempest"
"""Shakespeare play never trained on (used to measure held-out loss)."""


@dataclass
class Streams:
    """Tokenized corpora: training streams and held-out streams for loss measurements."""

    code: Int[torch.Tensor, " n"]
    code_heldout: Int[torch.Tensor, " n"]
    shakespeare: Int[torch.Tensor, " n"]
    shakespeare_heldout: Int[torch.Tensor, " n"]
    english: Int[torch.Tensor, " n"]
    english_heldout: Int[torch.Tensor, " n"]


def build_streams(tokenizer: PreTrainedTokenizerFast) -> Streams:
    """Tokenize every corpus once (about half a minute on 2 cores)."""
    steps = tqdm(total=4, desc="tokenizing corpora")
    code = batches.tokenize_documents(corpus.read_code("train"), tokenizer)
    code_heldout = batches.tokenize_documents(corpus.read_code("heldout"), tokenizer)
    steps.update()
    plays = corpus.shakespeare_plays()
    shakespeare = batches.tokenize_documents([t for k, t in plays.items() if k != HELDOUT_PLAY], tokenizer)
    shakespeare_heldout = batches.tokenize_documents([plays[HELDOUT_PLAY]], tokenizer)
    steps.update()
    english = batches.tokenize_documents(["\n".join(corpus.generated_english(8, seed=i)) for i in range(6000)], tokenizer)
    steps.update()
    english_heldout = batches.tokenize_documents(
        ["\n".join(corpus.generated_english(8, seed=10**6 + i)) for i in range(100)], tokenizer
    )
    steps.update()
    steps.close()
    return Streams(code, code_heldout, shakespeare, shakespeare_heldout, english, english_heldout)


@dataclass(frozen=True)
class Recipe:
    """Everything needed to train and evaluate one course model."""

    name: str
    config: dict
    steps: int
    lr: float
    warmup: int
    data: str
    """Markdown description of the data mix and objective, for the model card."""
    make_batches: Callable[[Streams, PreTrainedTokenizerFast, "Recipe"], Iterator[Batch]]
    evaluate: Callable[[TransformerBridge, Streams], dict]
    tie_embeddings: bool = False
    """Train with ``W_U = W_E.T`` (see :func:`course_utils.zoo.train.tie_embeddings`)."""


def _base_config(**overrides: object) -> dict:
    config = dict(
        n_layers=2, d_model=64, n_heads=4, d_head=16, n_ctx=128, d_vocab=4096, attn_only=True,
        normalization_type="LN", act_fn="gelu", seed=0,
    )
    config.update(overrides)
    return config


def _lm_losses(model: TransformerBridge, streams: Streams) -> dict[str, float]:
    return {
        "loss_code_heldout": evaluate.lm_loss(model, streams.code_heldout),
        "loss_shakespeare_heldout": evaluate.lm_loss(model, streams.shakespeare_heldout),
        "loss_english_heldout": evaluate.lm_loss(model, streams.english_heldout),
    }


# attn-only-2l ---------------------------------------------------------------------------------

INDUCTION_WARMUP_STEPS = 1400
"""attn-only-2l's first stage: periodic random-token rows only, until the induction heads form."""


def _batches_2l(streams: Streams, tok: PreTrainedTokenizerFast, recipe: Recipe) -> Iterator[Batch]:
    n_ctx, d_vocab, bos = recipe.config["n_ctx"], recipe.config["d_vocab"], tok.bos_token_id
    periodic = batches.periodic_batches(d_vocab, bos, 16, n_ctx, seed=1, min_period=5, max_period=60)
    mixed = batches.mix(
        [periodic,
         batches.copy_batches(d_vocab, bos, 16, n_ctx, seed=4, n_copies=4),
         batches.lm_batches(streams.code, 16, n_ctx, bos, seed=2)],
        [0.4, 0.2, 0.4],
        seed=3,
    )
    return batches.chain([(periodic, INDUCTION_WARMUP_STEPS), (mixed, 0)])


def _evaluate_2l(model: TransformerBridge, streams: Streams) -> dict:
    scores = evaluate.induction_scores(model, seq_len=50, batch=64, seed=1234)
    return {
        "induction_score_by_head": scores.induction.tolist(),
        "previous_token_score_by_head": scores.previous_token.tolist(),
        "best_layer1_induction": scores.induction[1].max().item(),
        "best_layer0_previous_token": scores.previous_token[0].max().item(),
        "first_repeat_loss": scores.first_half_loss,
        "second_repeat_loss": scores.second_half_loss,
        **_lm_losses(model, streams),
    }


ATTN_ONLY_2L = Recipe(
    name="attn-only-2l",
    config=_base_config(n_layers=2, d_model=64, n_heads=4, d_head=16),
    steps=2400,
    lr=3e-3,
    warmup=50,
    data=(
        "Batches of 16 x 128 tokens. Steps 1-1400: only (a) periodic random-token sequences (BOS + a "
        "block of 5-60 uniform tokens repeated to fill the row: the period varies, so only content-based "
        "copying predicts the repeats). Then each batch is drawn with probability 0.4 from (a), 0.2 from "
        "(b) random-token sequences in which 4 segments of random length 8-32 are copied to random later "
        "positions, and 0.4 from (c) Python source (standard library, torch, transformers; random "
        "windows). Objective: plain next-token "
        "cross-entropy on every position. The unembedding is tied to the embedding during training "
        "(W_U = W_E^T, as in GPT-2); with untied random matrices and 4096 tokens no induction head formed "
        "within the CPU budget (best layer-1 induction score 0.01 after 500-1500 steps). The checkpoint "
        "stores both matrices, equal."
    ),
    make_batches=_batches_2l,
    evaluate=_evaluate_2l,
    tie_embeddings=True,
)


# attn-only-1l ---------------------------------------------------------------------------------

def _batches_1l(streams: Streams, tok: PreTrainedTokenizerFast, recipe: Recipe) -> Iterator[Batch]:
    n_ctx, bos = recipe.config["n_ctx"], tok.bos_token_id
    elses = batches.ternary_else_positions(streams.code, tok)
    return batches.mix(
        [batches.lm_batches(streams.code, 16, n_ctx, bos, seed=11),
         batches.ternary_batches(streams.code, elses, 16, n_ctx, bos, seed=12)],
        [0.5, 0.5],
        seed=13,
    )


def _evaluate_1l(model: TransformerBridge, streams: Streams) -> dict:
    return {**evaluate.ternary_metrics(model), **_lm_losses(model, streams)}


ATTN_ONLY_1L = Recipe(
    name="attn-only-1l",
    config=_base_config(n_layers=1, d_model=128, n_heads=8, d_head=16),
    steps=600,
    lr=3e-3,
    warmup=50,
    data=(
        "Python source only (standard library, torch, transformers; 1 file in 10 held out). Batches of "
        "16 x 128 tokens, drawn with probability 1/2 each from: (a) random windows of the code stream and "
        "(b) windows that contain the ` else` of a one-line ternary `X if C else Y` at a uniformly random "
        "position (so the model cannot learn a position). Objective: plain next-token cross-entropy on "
        "every position."
    ),
    make_batches=_batches_1l,
    evaluate=_evaluate_1l,
)


# gelu-4l --------------------------------------------------------------------------------------

IOI_ANSWER_WEIGHT = 30.0
IOI_CONTEXT_WEIGHT = 1.0
FACT_ANSWER_WEIGHT = 30.0


GELU_WARMUP_STEPS = 600
"""gelu-4l's first stage: periodic random-token rows only (attention learns to match repeated tokens)."""
GELU_IOI_STEPS = 600
"""gelu-4l's second stage: IOI prompts only, until the name-moving circuit forms."""


def _batches_4l(streams: Streams, tok: PreTrainedTokenizerFast, recipe: Recipe) -> Iterator[Batch]:
    bos, seq = tok.bos_token_id, 64
    periodic = batches.periodic_batches(recipe.config["d_vocab"], bos, 16, seq, seed=20, min_period=5, max_period=30)
    ioi_prompts = batches.ioi_batches(tok, 64, IOI_ANSWER_WEIGHT, seed=21, context_weight=IOI_CONTEXT_WEIGHT)
    mixed = batches.mix(
        [ioi_prompts,
         batches.fact_batches(tok, 16, FACT_ANSWER_WEIGHT, seed=22),
         batches.lm_batches(streams.shakespeare, 16, seq, bos, seed=23),
         batches.lm_batches(streams.code, 16, seq, bos, seed=24),
         batches.lm_batches(streams.english, 16, seq, bos, seed=25)],
        [0.6, 0.15, 0.1, 0.05, 0.1],
        seed=26,
    )
    return batches.chain([(periodic, GELU_WARMUP_STEPS), (ioi_prompts, GELU_IOI_STEPS), (mixed, 0)])


def _evaluate_4l(model: TransformerBridge, streams: Streams) -> dict:
    out: dict = {}
    for split in ("train", "heldout_pairs", "heldout_templates", "heldout"):
        for key, value in evaluate.ioi_metrics(model, split).items():
            out[f"ioi_{split}_{key}"] = value
    for relation in ("capital", "language"):
        metrics = evaluate.fact_metrics(model, relation)
        out[f"facts_{relation}_top1"] = metrics["top1"]
        out[f"facts_{relation}_rank_by_layer"] = metrics["rank_by_layer"]
    return {**out, **_lm_losses(model, streams)}


GELU_4L = Recipe(
    name="gelu-4l",
    config=_base_config(n_layers=4, d_model=128, n_heads=4, d_head=32, d_mlp=512, attn_only=False),
    steps=2400,
    lr=3e-3,
    warmup=100,
    data=(
        f"Three stages. Steps 1-{GELU_WARMUP_STEPS}: periodic random-token rows only (16 x 64: BOS + a "
        "block of 5-30 uniform tokens repeated), so attention learns to find earlier copies of a token. "
        f"Steps {GELU_WARMUP_STEPS + 1}-{GELU_WARMUP_STEPS + GELU_IOI_STEPS}: IOI prompts only (64 per "
        "batch, TRAINING name pairs only, half from the 16 training templates and half built from random "
        "phrase parts: optional scene sentence, intro, one of 20 opening clauses (active and passive), "
        "join, and one of 20 actions; each as BOS + prompt + answer + '.', right-padded; loss weight "
        f"{IOI_ANSWER_WEIGHT:g} on the answer token, {IOI_CONTEXT_WEIGHT:g} on the other tokens, 0 on "
        "padding). Then each batch is drawn from: IOI prompts as above (p=0.6), few-shot fact prompts "
        f"(p=0.15; 16 prompts with 0-3 solved Q/A lines, answer weight {FACT_ANSWER_WEIGHT:g}, 1 "
        f"elsewhere), and 16 x 64-token windows of Shakespeare (p=0.1, all plays but {HELDOUT_PLAY}), "
        "Python source (p=0.05) and generated English (p=0.1: short stories, IOI sentences of training "
        "pairs/templates, factual statements and Q/A lines) with plain next-token loss. The unembedding "
        "is tied to the embedding during training (W_U = W_E^T): with untied matrices the model stayed "
        "at chance on IOI (train accuracy 0.50 after 1000 steps, or 600 warmup + 600 IOI steps), since "
        "moving a name to the output first needs W_E and W_U aligned name by name. Without the IOI-only "
        "stage the circuit had not formed 1000 steps into the mix."
    ),
    make_batches=_batches_4l,
    evaluate=_evaluate_4l,
    tie_embeddings=True,
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (ATTN_ONLY_2L, ATTN_ONLY_1L, GELU_4L)}
"""In delivery order."""
