"""How each course model is built: architecture, data mix, objective, steps, and its evaluation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

import torch
import transformer_lens.model_bridge.sources  # noqa: F401 - registers TransformerBridge.boot_native
from jaxtyping import Int
from tqdm.auto import tqdm
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerFast

from course_utils.zoo import batches, corpus, evaluate, ioi_circuit
from course_utils.zoo.train import (
    Batch,
    SinusoidalPositions,
    TrainLog,
    freeze_sinusoidal_positions,
    tie_embeddings,
    train,
)

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
    stories: Int[torch.Tensor, " n"]
    """Ordinary text for preambles: two short stories per document."""
    stories_heldout: Int[torch.Tensor, " n"]


def build_streams(tokenizer: PreTrainedTokenizerFast) -> Streams:
    """Tokenize every corpus once (about half a minute on 2 cores)."""
    steps = tqdm(total=5, desc="tokenizing corpora")
    code = batches.tokenize_documents(corpus.read_code("train"), tokenizer)
    code_heldout = batches.tokenize_documents(corpus.read_code("heldout"), tokenizer)
    steps.update()
    plays = corpus.shakespeare_plays()
    shakespeare = batches.tokenize_documents([t for k, t in plays.items() if k != HELDOUT_PLAY], tokenizer)
    shakespeare_heldout = batches.tokenize_documents([plays[HELDOUT_PLAY]], tokenizer)
    steps.update()
    english = batches.tokenize_documents(
        ["\n".join(corpus.generated_english(8, seed=i)) for i in range(6000)], tokenizer
    )
    steps.update()
    english_heldout = batches.tokenize_documents(
        ["\n".join(corpus.generated_english(8, seed=10**6 + i)) for i in range(100)], tokenizer
    )
    stories = batches.tokenize_documents([_two_stories(i) for i in range(3000)], tokenizer)
    stories_heldout = batches.tokenize_documents([_two_stories(10**6 + i) for i in range(200)], tokenizer)
    steps.update()
    steps.close()
    return Streams(
        code, code_heldout, shakespeare, shakespeare_heldout, english, english_heldout, stories, stories_heldout
    )


def build_heldout_streams(tokenizer: PreTrainedTokenizerFast) -> Streams:
    """Only the held-out streams (what the evaluations read); training streams are empty."""
    empty = torch.zeros(0, dtype=torch.long)
    plays = corpus.shakespeare_plays()
    return Streams(
        empty,
        batches.tokenize_documents(corpus.read_code("heldout"), tokenizer),
        empty,
        batches.tokenize_documents([plays[HELDOUT_PLAY]], tokenizer),
        empty,
        batches.tokenize_documents(
            ["\n".join(corpus.generated_english(8, seed=10**6 + i)) for i in range(100)], tokenizer
        ),
        empty,
        batches.tokenize_documents([_two_stories(10**6 + i) for i in range(200)], tokenizer),
    )


def _two_stories(seed: int) -> str:
    return f"{corpus.simple_story(random.Random(seed))} {corpus.simple_story(random.Random(10**5 + seed))}"


@dataclass(frozen=True)
class Phase:
    """One training run with its own AdamW optimizer and learning-rate schedule."""

    steps: int
    lr: float
    warmup: int
    make_batches: Callable[[Streams, PreTrainedTokenizerFast, dict], Iterator[Batch]]
    """``(streams, tokenizer, config) -> batches``."""


@dataclass(frozen=True)
class ExploratoryRuns:
    """Variants of a recipe that were trained and measured but not shipped, as one table of the card:
    what each changed and what it measured (figures from the run's own card)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]

    def __post_init__(self) -> None:
        if any(len(row) != len(self.columns) for row in self.rows):
            raise ValueError(f"every row of {self.title!r} needs {len(self.columns)} cells, one per column")


@dataclass(frozen=True)
class Recipe:
    """Everything needed to train and evaluate one course model."""

    name: str
    config: dict
    phases: tuple[Phase, ...]
    data: str
    """Markdown description of the data mix and objective, for the model card."""
    evaluate: Callable[[TransformerBridge, Streams], dict]
    tie_embeddings: bool = False
    """Train with ``W_U = W_E.T`` (see :func:`course_utils.zoo.train.tie_embeddings`)."""
    sinusoidal_positions: SinusoidalPositions | None = None
    """Train with ``W_pos`` fixed at these sinusoids (see
    :func:`course_utils.zoo.train.freeze_sinusoidal_positions`); None: a learned ``W_pos``."""
    exploratory: tuple[ExploratoryRuns, ...] = ()
    """Unshipped variants, for the card's "Exploratory runs" section."""

    @property
    def steps(self) -> int:
        return sum(phase.steps for phase in self.phases)

    @property
    def cost(self) -> float:
        """Rough relative training time (steps x parameters), to balance parallel jobs."""
        c = self.config
        per_layer = 4 * c["d_model"] * c["n_heads"] * c["d_head"] + (
            0 if c["attn_only"] else 2 * c["d_model"] * c["d_mlp"]
        )
        return self.steps * (c["n_layers"] * per_layer + c["d_model"] * c["d_vocab"])

    def seeded_model(self, tokenizer: PreTrainedTokenizerFast) -> TransformerBridge:
        """The untrained model every retrain starts from (seeded; embeddings tied and ``W_pos`` fixed as the recipe says)."""
        random.seed(0)
        torch.manual_seed(0)
        model = TransformerBridge.boot_native(TransformerBridgeConfig.from_dict(self.config), tokenizer=tokenizer)
        if self.tie_embeddings:
            tie_embeddings(model)
        if self.sinusoidal_positions is not None:
            freeze_sinusoidal_positions(model, self.sinusoidal_positions)
        return model

    def fit(
        self, model: TransformerBridge, streams: Streams, tokenizer: PreTrainedTokenizerFast, steps_scale: float = 1.0
    ) -> TrainLog:
        """Train ``model`` through every phase (steps scaled by ``steps_scale``); one merged log."""
        log = TrainLog()
        for i, phase in enumerate(self.phases):
            steps = max(1, round(phase.steps * steps_scale))
            part = train(
                model,
                phase.make_batches(streams, tokenizer, self.config),
                steps,
                phase.lr,
                warmup=min(phase.warmup, steps),
                desc=f"{self.name} ({i + 1}/{len(self.phases)})",
            )
            log.steps += part.steps
            log.tokens += part.tokens
            log.seconds += part.seconds
            log.losses += part.losses
        return log


def _base_config(**overrides: object) -> dict:
    config = dict(
        n_layers=2,
        d_model=64,
        n_heads=4,
        d_head=16,
        n_ctx=128,
        d_vocab=4096,
        attn_only=True,
        normalization_type="LN",
        act_fn="gelu",
        seed=0,
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


def _batches_2l(streams: Streams, tok: PreTrainedTokenizerFast, config: dict) -> Iterator[Batch]:
    n_ctx, d_vocab, bos = config["n_ctx"], config["d_vocab"], tok.bos_token_id
    periodic = batches.periodic_batches(d_vocab, bos, 16, n_ctx, seed=1, min_period=5, max_period=60)
    mixed = batches.mix(
        [
            batches.markov_batches(d_vocab, bos, 16, n_ctx, seed=8),
            batches.periodic_batches(d_vocab, bos, 16, n_ctx, seed=5, min_period=5, max_period=30, max_offset=64),
            batches.copy_batches(d_vocab, bos, 16, n_ctx, seed=4, n_copies=4),
            batches.lm_batches(streams.code, 16, n_ctx, bos, seed=2),
        ],
        [0.2, 0.2, 0.2, 0.4],
        seed=3,
    )
    return batches.chain([(periodic, INDUCTION_WARMUP_STEPS), (mixed, 0)])


def _evaluate_2l(model: TransformerBridge, streams: Streams) -> dict:
    scores = evaluate.induction_scores(model, seq_len=50, batch=64, seed=1234)
    prev_head, prev_by_pos = evaluate.previous_token_by_position(model, streams.code_heldout)
    induction_head, induction_by_pos = evaluate.induction_by_position(model)
    return {
        "induction_score_by_head": scores.induction.tolist(),
        "previous_token_score_by_head": scores.previous_token.tolist(),
        "best_layer1_induction": scores.induction[1].max().item(),
        "best_layer0_previous_token": scores.previous_token[0].max().item(),
        "first_repeat_loss": scores.first_half_loss,
        "second_repeat_loss": scores.second_half_loss,
        "previous_token_head": prev_head,
        "previous_token_by_position": prev_by_pos,
        "induction_head": induction_head,
        "induction_by_position": induction_by_pos,
        **_lm_losses(model, streams),
    }


ATTN_ONLY_2L = Recipe(
    name="attn-only-2l",
    config=_base_config(n_layers=2, d_model=64, n_heads=4, d_head=16),
    phases=(Phase(steps=2800, lr=3e-3, warmup=50, make_batches=_batches_2l),),
    data=(
        f"Batches of 16 x 128 tokens. Steps 1-{INDUCTION_WARMUP_STEPS}: only (a) periodic random-token "
        "sequences (BOS + a block of 5-60 uniform tokens repeated to fill the row: the period varies, so "
        "only content-based copying predicts the repeats). Then each batch is drawn with probability 0.2 "
        "from (b) random walks over a small alphabet of random tokens (12-40 per row; each token has a "
        "successor in the row, which comes next with probability 0.6), so predicting the next token needs "
        "the exact previous token at every earlier occurrence, anywhere in the row, 0.2 from (c) periodic "
        "sequences with 0-64 unrelated random tokens before a block of 5-30 tokens (the repeats start late "
        "in the row), 0.2 from (d) random-token sequences in which 4 segments of random length 8-32 are "
        "copied to random later positions, and 0.4 from (e) Python source (standard library, torch, "
        "transformers; random windows). Objective: plain next-token cross-entropy on every position. "
        "The positional embedding `W_pos` is fixed at sinusoids in the last 32 of the 64 dimensions, rows "
        "of norm 1.5 (`course_utils.zoo.train.freeze_sinusoidal_positions`); the tokens' embeddings are "
        "learned. "
        "History: with a learned `W_pos` the previous-token head worked only up to about position 70 "
        "(0.99 before position 48, 0.32 at 64-79, 0.00-0.01 after 80). Late queries attended to scattered "
        "early positions, and no curriculum we tried moved that front past ~80 (late-placed repeats, the "
        "random walks of (b), windows at random position offsets). Sinusoids across all 64 dimensions gave "
        "a head that worked everywhere but less sharply (0.78-0.93 up to position 111, 0.20 after it); "
        "in 32 dimensions with rows of norm 1 the last bin reached 0.85. With the fixed table two layer-0 heads "
        "became previous-token heads, which share the work (chapters 01 and 05 measure both). "
        "The unembedding is tied to the embedding during training (W_U = W_E^T, as in GPT-2); with untied "
        "random matrices and 4096 tokens no induction head formed within the CPU budget (best layer-1 "
        "induction score 0.01 after 500-1500 steps). The checkpoint stores both matrices, equal."
    ),
    evaluate=_evaluate_2l,
    tie_embeddings=True,
    sinusoidal_positions=SinusoidalPositions(dims=32, norm=1.5),
)


# attn-only-1l ---------------------------------------------------------------------------------


def _batches_1l(streams: Streams, tok: PreTrainedTokenizerFast, config: dict) -> Iterator[Batch]:
    n_ctx, bos = config["n_ctx"], tok.bos_token_id
    elses = batches.ternary_else_positions(streams.code, tok)
    return batches.mix(
        [
            batches.lm_batches(streams.code, 16, n_ctx, bos, seed=11),
            batches.ternary_batches(streams.code, elses, 16, n_ctx, bos, seed=12),
            batches.ternary_batches(streams.code, elses, 16, n_ctx, bos, seed=14, min_where=n_ctx - 32),
        ],
        [0.4, 0.4, 0.2],
        seed=13,
    )


def _evaluate_1l(model: TransformerBridge, streams: Streams) -> dict:
    by_preamble = evaluate.ternary_by_preamble(model, streams.code_heldout)
    return {**evaluate.ternary_metrics(model), "p_else_by_preamble_tokens": by_preamble, **_lm_losses(model, streams)}


ATTN_ONLY_1L = Recipe(
    name="attn-only-1l",
    config=_base_config(n_layers=1, d_model=128, n_heads=8, d_head=16),
    phases=(Phase(steps=1200, lr=3e-3, warmup=50, make_batches=_batches_1l),),
    data=(
        "Python source only (standard library, torch, transformers; 1 file in 10 held out). Batches of "
        "16 x 128 tokens, drawn with probability 0.4 each from: (a) random windows of the code stream and "
        "(b) windows that contain the ` else` of a one-line ternary `X if C else Y` at a uniformly random "
        "position (so the model cannot learn a position), and with probability 0.2 from (c) windows whose "
        "ternary ` else` lies in the last 32 positions (after ~100 tokens of other code, where one head "
        "must still find the ` if` among many tokens). Objective: plain next-token cross-entropy on "
        "every position."
    ),
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


def _batches_4l(streams: Streams, tok: PreTrainedTokenizerFast, config: dict) -> Iterator[Batch]:
    bos, seq = tok.bos_token_id, 64
    periodic = batches.periodic_batches(config["d_vocab"], bos, 16, seq, seed=20, min_period=5, max_period=30)
    ioi_prompts = batches.ioi_batches(tok, 64, IOI_ANSWER_WEIGHT, seed=21, context_weight=IOI_CONTEXT_WEIGHT)
    mixed = batches.mix(
        [
            ioi_prompts,
            batches.fact_batches(tok, 16, FACT_ANSWER_WEIGHT, seed=22),
            batches.lm_batches(streams.shakespeare, 16, seq, bos, seed=23),
            batches.lm_batches(streams.code, 16, seq, bos, seed=24),
            batches.lm_batches(streams.english, 16, seq, bos, seed=25),
        ],
        [0.6, 0.15, 0.1, 0.05, 0.1],
        seed=26,
    )
    return batches.chain([(periodic, GELU_WARMUP_STEPS), (ioi_prompts, GELU_IOI_STEPS), (mixed, 0)])


def _batches_4l_long(
    streams: Streams, tok: PreTrainedTokenizerFast, config: dict, seed: int = 27, preamble_skip: float = 0.2
) -> Iterator[Batch]:
    """gelu-4l's long-context mix: IOI prompts, most after a preamble, and 128-token windows of text
    (five generators seeded ``seed`` … ``seed + 4``)."""
    bos, seq = tok.bos_token_id, config["n_ctx"]
    return batches.mix(
        [
            batches.ioi_batches(
                tok,
                32,
                IOI_ANSWER_WEIGHT,
                seed=seed,
                context_weight=IOI_CONTEXT_WEIGHT,
                three_name_fraction=0.4,
                preambles=(streams.stories, streams.shakespeare),
                preamble_skip=preamble_skip,
                seq_len=seq,
            ),
            batches.lm_batches(streams.stories, 16, seq, bos, seed=seed + 1),
            batches.lm_batches(streams.shakespeare, 16, seq, bos, seed=seed + 2),
            batches.lm_batches(streams.code, 16, seq, bos, seed=seed + 3),
        ],
        [0.7, 0.1, 0.1, 0.1],
        seed=seed + 4,
    )


def _evaluate_4l(model: TransformerBridge, streams: Streams) -> dict:
    out: dict = {}
    for split in ("train", "heldout_pairs", "heldout_templates", "heldout"):
        for key, value in evaluate.ioi_metrics(model, split).items():
            out[f"ioi_{split}_{key}"] = value
    out["ioi_by_preamble_tokens"] = evaluate.ioi_by_preamble(model, streams.stories_heldout)
    out["ioi_circuit"] = ioi_circuit.describe(model)
    return {**out, **_lm_losses(model, streams)}


_GELU_4L_PHASES = (
    Phase(steps=2000, lr=3e-3, warmup=100, make_batches=_batches_4l),
    Phase(steps=1200, lr=1e-3, warmup=50, make_batches=_batches_4l_long),
    Phase(steps=500, lr=5e-4, warmup=25, make_batches=partial(_batches_4l_long, seed=32, preamble_skip=0.1)),
)

GELU_4L = Recipe(
    name="gelu-4l",
    config=_base_config(n_layers=4, d_model=128, n_heads=4, d_head=32, d_mlp=512, attn_only=False),
    phases=_GELU_4L_PHASES,
    data=(
        f"Three phases. Phase 1 ({_GELU_4L_PHASES[0].steps} steps, peak learning rate 3e-3) has three stages. Steps 1-{GELU_WARMUP_STEPS}: "
        "periodic random-token rows only (16 x 64: BOS + a block of 5-30 uniform tokens repeated), so "
        "attention learns to find earlier copies of a token. "
        f"Steps {GELU_WARMUP_STEPS + 1}-{GELU_WARMUP_STEPS + GELU_IOI_STEPS}: IOI prompts only (64 per "
        "batch, TRAINING name pairs only, half from the 16 training templates and half built from random "
        "phrase parts: optional scene sentence, intro, one of 20 opening clauses (active and passive), "
        "join, and one of 20 actions; each as BOS + prompt + answer + '.', right-padded; loss weight "
        f"{IOI_ANSWER_WEIGHT:g} on the answer token, {IOI_CONTEXT_WEIGHT:g} on the other tokens, 0 on "
        "padding). Then each batch is drawn from: IOI prompts as above (p=0.6), few-shot fact prompts "
        f"(p=0.15; 16 prompts with 0-3 solved Q/A lines, answer weight {FACT_ANSWER_WEIGHT:g}, 1 "
        f"elsewhere), and 16 x 64-token windows of Shakespeare (p=0.1, all plays but {HELDOUT_PLAY}), "
        "Python source (p=0.05) and generated English (p=0.1: short stories, IOI sentences of training "
        "pairs/templates, factual statements and Q/A lines) with plain next-token loss. "
        f"Phase 2 ({_GELU_4L_PHASES[1].steps} steps, a fresh optimizer, peak learning rate 1e-3) uses the whole 128-token context: "
        "IOI prompts (p=0.7; 32 per batch, as above, 40 % of them with three names of which two act again, "
        '"A, B and C met at the bank. C and A gave a cup to" -> B; 80 % preceded by 1-100 tokens of short '
        "stories or Shakespeare, which name other people) and 16 x 128-token windows of stories, Shakespeare "
        "and code (p=0.1 each). Before phase 2, IOI accuracy fell to chance after two sentences of ordinary "
        f"text (0.43 with a 109-token prompt). Phase 3 ({_GELU_4L_PHASES[2].steps} steps, a fresh optimizer, peak learning rate 5e-4) "
        "is phase 2's mix with new draws and 90 % of the IOI prompts after a preamble: after phase 2 alone (then 900 steps), "
        "IOI accuracy after 25 / 50 / 75 / 100 tokens of held-out stories was 0.905 / 0.925 / 0.88 / 0.91. "
        "Those figures, like the runs below, are from the zoo's earlier numerics (MKL's SSE2 branch, its own "
        "square root); under the current pin, 800 steps of phase 2 and 500 of phase 3 gave 0.88 / 0.905 / "
        "0.915 / 0.915 (under the bar after 25 tokens), 800 and 1000 gave 0.96 / 0.915 / 0.945 / 0.905, and "
        "this model's 1200 and 500 give the card's figures below. "
        "The unembedding is tied to the embedding during training "
        "(W_U = W_E^T): with untied matrices the model stayed at chance on IOI (train accuracy 0.50 after "
        "1000 steps), since moving a name to the output first needs W_E and W_U aligned name by name. "
        "Without the IOI-only stage the circuit had not formed 1000 steps into the mix. "
        "Name movers (heads that attend from END to IO and copy it) were looked for by teaching the model to "
        "copy a name first (two exploratory runs): phase 1 with 300 steps of one-name prompts "
        '("Then, Mary went to the bank. Later the clerk gave a cup to" -> Mary) before the IOI stage, or '
        "with such prompts as half of it. "
        "Layer-0 heads then attended from END to the names and copied them (to IO 0.42-0.44, to S 0.40-0.41, "
        "OV copying 0.59-0.75), but to both names alike; held-out IOI accuracy was still at chance at step 1250 "
        "(0.485 and 0.46) and 0.70 and 0.745 at the end of phase 1, reached again through layer-3 heads that read "
        "S2 (mean-ablating them removed 97 % and 103 % of the logit difference), not by steering those copying "
        "heads away from S."
    ),
    evaluate=_evaluate_4l,
    tie_embeddings=True,
)


# facts-4l -------------------------------------------------------------------------------------

RECALL_ANSWER_WEIGHT = 10.0


def _batches_facts(streams: Streams, tok: PreTrainedTokenizerFast, config: dict) -> Iterator[Batch]:
    seq, bos = config["n_ctx"], tok.bos_token_id
    return batches.mix(
        [
            batches.recall_batches(tok, (streams.stories, streams.shakespeare), 16, seq, RECALL_ANSWER_WEIGHT, seed=41),
            batches.lm_batches(streams.stories, 16, seq, bos, seed=42),
            batches.lm_batches(streams.shakespeare, 16, seq, bos, seed=43),
        ],
        [0.8, 0.1, 0.1],
        seed=44,
    )


def _evaluate_facts(model: TransformerBridge, streams: Streams) -> dict:
    return {**evaluate.recall_metrics(model, streams.stories_heldout), **_lm_losses(model, streams)}


FACTS_4L = Recipe(
    name="facts-4l",
    config=_base_config(n_layers=4, d_model=128, n_heads=4, d_head=32, d_mlp=512, attn_only=False),
    phases=(Phase(steps=2400, lr=3e-3, warmup=100, make_batches=_batches_facts),),
    data=(
        "A model of its own for chapter 02 (early decoding), so that fact recall is not shaped by the IOI "
        "curriculum of gelu-4l and its story can be told alone. The fact world (`course_utils.tasks.recall`): "
        "40 real countries -> capital, 30 -> language, and 420 invented towns -> the country they lie in. A town "
        "is an ordered pair of two different words from a pool of 21 (4-6 tokens), so each word is in 40 towns "
        'and each pair of words names two towns ("Selby Alden" lies in Poland, "Alden Selby" in Egypt). '
        "Batches of 16 x 128 tokens: with p=0.8, rows of BOS + (70 %: 1-100 tokens of short stories or "
        "Shakespeare + newline) + fact lines until the row is full; each line is a statement in one of 5-6 "
        "phrasings (60 %) or a Q/A prompt with 0-3 solved shots (30 % of them about invented subjects with "
        "invented, often multi-token answers) (40 %); answer tokens weigh "
        f"{RECALL_ANSWER_WEIGHT:g}, other tokens 1. With p=0.1 each, plain windows of stories and Shakespeare. "
        'Held out of training: the bare statement form of every relation ("The capital of Poland is"), '
        "and the Q/A form for a quarter of the subjects of each relation. The positional embedding `W_pos` is "
        "fixed at sinusoids with rows of norm 0.3 (`course_utils.zoo.train.freeze_sinusoidal_positions`), "
        "weaker than the tokens' embeddings, so that block 0 cannot find a subject's words at fixed offsets "
        "from the question's end and look the answer up at once: with rows of norm 1 (the model shipped "
        "before, 1600 steps) capitals and languages were resolved by block 0 (median rank 0 after it) and "
        "towns nearly so (median rank 3), with MLP 0 doing the lookup. Norm 0 (no positions) or 0.3 at "
        "1600 steps pushed the towns' answer later (median rank 22 / 13 after block 0) but answered only "
        "0.10 / 0.61 of the held-out town questions; norm 0.5 at 1600 or 2000 steps answered them (0.92 / "
        "0.97) but kept rank 4; norm 0.3 with 2100 steps answered 0.98 with rank 22, and all three relations "
        "rose over depth (2400 steps: 0.99, rank 20); the ranks in these sentences are on Q/A prompts about "
        "every town, the card's tables below use towns never asked in training. The runs this paragraph describes "
        "were trained under the zoo's earlier numerics (MKL's SSE2 branch and its own square root); this model has 2400 steps "
        "because under the current pin the 2100-step recipe can land under a bar after 100 tokens of stories "
        "(capitals 0.875 with only the square root pinned). Statements in "
        'which the country directly follows the name ("Address: Selby Alden Poland.", 2 or 5 of the towns\' 7 or '
        "10 phrasings) taught the model to predict the country at the name's last token (1.00 on 100 towns) but "
        "not to read it from there: causal tracing at that token stayed at most 0.01 at every depth, the towns' "
        "rank after block 0 fell to 10 and 17, and with 5 phrasings held-out language questions fell to 0.80. "
        "With all 5 of the towns' phrasings in that form (two runs under the current pin, 2400 steps), a town "
        "never asked in Q/A form could be answered only from what the name's last token had looked up, yet the "
        "question's end still did not read it: held-out town questions fell to 0.70 and tracing at that token "
        "stayed at most 0.001 (restoring the whole name before block 1: 0.20); with 600 statement-only steps "
        "before any Q/A line, 0.55 and 0.000. "
        "Towns with more than one fact each (so that enriching the name's last token once would serve several "
        "questions), two exploratory runs of this recipe: an emblem animal per town (6 animals, 4 phrasings, "
        "1 line in 5) answered 0.83 of the held-out town questions (MLP 3: 1.55 nats) and 0.32 of the emblem "
        "ones, and tracing at the name's last token stayed at most 0.02 for towns (0.15 for emblems); adding a "
        "trade partner (a second country per town) left 0.14 of the town questions answered, tracing at most "
        "0.13 for towns (0.34 for emblems, at the embeddings). The attempts after these are in the table "
        '"Exploratory runs" below. Older history: with a learned '
        "`W_pos`, a question ending after position ~100 was answered far less often (top-1 after 100 tokens of "
        "stories: capital 0.30, language 0.43, country 0.42; the same with other fact lines as the preamble, "
        "and training preambles up to 100 tokens did not help): the layer-0 heads that move the subject to "
        "the question's end read absolute positions, and late in the context they attend to the question's "
        "other tokens instead. With fixed sinusoids, towns of the earlier world (640 towns, first and last "
        "words from separate lists, so the set of words named the town) were resolved by block 0 (median rank "
        "0 after block 0); towns whose name needs its word order rise over the blocks again. The size of "
        "that world is a trade-off: with 380 towns the answer was already second after block 0 (median rank "
        "1), with 462, 506 or 650 the held-out questions fell to 0.83, 0.67 or 0.61 top-1. Earlier still, "
        "with 160 towns, MLP 0 did all the work. "
        "Tied embeddings (W_U = W_E^T) as in the other course models."
    ),
    evaluate=_evaluate_facts,
    tie_embeddings=True,
    sinusoidal_positions=SinusoidalPositions(dims=128, norm=0.3),
    exploratory=(
        ExploratoryRuns(
            title=(
                "Aimed at a causal-tracing peak at the town's last token (issue 15): each run is this recipe with "
                "the changes named, trained by `python -m course_utils.zoo --only facts-4l --out DIR`; every figure is "
                "on the held-out town questions (country_qa_heldout), as in this card's tables. Tracing: before "
                "block 0, 1, ... and after the last block. \u2013: not recorded."
            ),
            columns=(
                "run",
                "change",
                "layers",
                "held-out town Q/A top-1",
                "towns' median rank after block 0",
                "zeroing the largest MLP after block 0 (nats)",
                "tracing at the name's last token",
                "restoring the whole name before block 1",
                "failed checks",
            ),
            rows=(
                (
                    "asides-0.5",
                    "a random aside of a few words after the name in half of the town lines",
                    4,
                    0.8991,
                    "\u2013",
                    "\u2013",
                    "0.057 / 0.046 / 0.033 / 0.001 / 0.000",
                    "\u2013",
                    1,
                ),
                (
                    "asides-0.8",
                    "the same in 80 % of the town lines",
                    4,
                    0.8716,
                    "\u2013",
                    "\u2013",
                    "0.011 / 0.011 / 0.001 / 0.002 / 0.000",
                    0.65,
                    ">= 1",
                ),
                (
                    "deep",
                    "6 layers (1479 s of training)",
                    6,
                    0.9908,
                    27,
                    "MLP 5: 0.98 (MLP 0: 7.97)",
                    "0.022 / 0.022 / 0.020 / 0.001 / 0.001 / 0.000 / 0.000",
                    0.998,
                    1,
                ),
                (
                    "deep-address",
                    '6 layers; two more town phrasings put the country right after the name ("Address: Selby '
                    'Alden Poland.", "Letters to Selby Alden Poland go by train.")',
                    6,
                    1,
                    32,
                    "MLP 5: 1.34 (MLP 0: 9.45)",
                    "0.000 / 0.000 / 0.000 / 0.000 / 0.000 / 0.000 / 0.000",
                    0.976,
                    1,
                ),
                (
                    "local-positions",
                    "`W_pos` sinusoids in the last 32 dimensions only, rows of norm 1.5 (fixed offsets cheap to read, "
                    "as in attn-only-2l), with deep-address's two phrasings",
                    4,
                    0.9817,
                    4,
                    "MLP 3: 0.26 (MLP 0: 6.94)",
                    "0.003 / 0.000 / 0.000 / 0.000 / 0.000",
                    0.003,
                    3,
                ),
                (
                    "local-positions-address",
                    "local-positions' `W_pos`; all 5 town phrasings put the country right after the name",
                    4,
                    0.4679,
                    5,
                    "MLP 2: 0.71 (MLP 0: 4.92)",
                    "0.034 / 0.000 / 0.000 / 0.000 / 0.000",
                    0.005,
                    6,
                ),
                (
                    "local-positions-asides",
                    'local-positions, and an aside of 1-4 words after the name ("Ivel Selby, mill by green hill, '
                    'lies in Spain.") in 80 % of the other town lines',
                    4,
                    1,
                    6,
                    "MLP 3: 0.22 (MLP 0: 7.37)",
                    "0.019 / 0.000 / 0.000 / 0.000 / 0.000",
                    0.045,
                    3,
                ),
                (
                    "deep-local-positions-asides",
                    "the same with 6 layers (1568 s of training)",
                    6,
                    0.9817,
                    7,
                    "MLP 4: 0.27 (MLP 0: 10.79)",
                    "0.023 / 0.000 / 0.000 / 0.000 / 0.000 / 0.000 / 0.000",
                    0.070,
                    3,
                ),
                (
                    "distractor-town",
                    'another town named right after the subject ("The town of Esker Ulver, near Norvel Lorne, lies '
                    'in Serbia.", "Q: In which country is Nettle Brisk, near Ashby Brisk? A:") in 80 % of the town '
                    "lines, so that the question's end cannot take every town word it sees",
                    4,
                    0.5321,
                    17,
                    "MLP 3: 1.03 (MLP 0: 6.34)",
                    "0.013 / 0.020 / 0.001 / 0.000 / 0.000",
                    1.012,
                    6,
                ),
                (
                    "local-positions-distractor-town",
                    "distractor-town with local-positions' `W_pos` (not its two phrasings)",
                    4,
                    0.9817,
                    14,
                    "MLP 3: 1.04 (MLP 0: 9.64)",
                    "0.009 / 0.001 / 0.000 / 0.000 / 0.000",
                    1.003,
                    1,
                ),
            ),
        ),
    ),
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (ATTN_ONLY_2L, ATTN_ONLY_1L, GELU_4L, FACTS_4L)}
"""In delivery order."""
