"""Infinite, seeded batch iterators for :func:`course_utils.zoo.train.train`.

Every sequence starts with BOS, as the bridge prepends BOS at evaluation time.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator, Sequence

import torch
from jaxtyping import Int
from transformers import PreTrainedTokenizerFast

from course_utils.tasks import facts, ioi, recall
from course_utils.tasks.repeated import markov_sequences, periodic_sequences, random_copy_sequences
from course_utils.zoo.train import Batch

Stream = Int[torch.Tensor, " n_tokens"]


def tokenize_documents(texts: Sequence[str], tokenizer: PreTrainedTokenizerFast) -> Stream:
    """Concatenate documents into one token stream, each document preceded by BOS."""
    if not texts:
        raise ValueError("tokenize_documents() got no documents")
    encoded = tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)
    bos = tokenizer.bos_token_id
    return torch.tensor([t for enc in encoded for t in [bos, *enc.ids]], dtype=torch.long)


def windows(
    stream: Stream, starts: Int[torch.Tensor, " batch"], seq_len: int, bos_id: int
) -> Int[torch.Tensor, "batch seq_len"]:
    """BOS followed by ``seq_len - 1`` stream tokens from each start."""
    offsets = starts[:, None] + torch.arange(seq_len - 1)
    body = stream[offsets]
    return torch.cat([torch.full((len(starts), 1), bos_id, dtype=torch.long), body], dim=1)


def lm_batches(stream: Stream, batch: int, seq_len: int, bos_id: int, seed: int) -> Iterator[Batch]:
    """Random windows of a token stream."""
    if len(stream) < seq_len + 1:
        raise ValueError(f"stream of {len(stream)} tokens is shorter than seq_len={seq_len}")
    g = torch.Generator().manual_seed(seed)
    while True:
        yield windows(stream, torch.randint(0, len(stream) - seq_len, (batch,), generator=g), seq_len, bos_id)


def ternary_else_positions(stream: Stream, tokenizer: PreTrainedTokenizerFast) -> Int[torch.Tensor, " n"]:
    """Stream positions of `` else`` tokens closing a one-line ``X if C else`` (an `` if`` earlier on
    the same line)."""
    if_id, else_id = (tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w))[0] for w in (" if", " else"))
    newline = torch.tensor(["\n" in tokenizer.decode([i]) for i in range(len(tokenizer))])
    line_id = torch.cumsum(newline[stream].long(), 0)
    is_if = stream == if_id
    if_line = torch.where(is_if, line_id, torch.full_like(line_id, -1))
    last_if_line = torch.cummax(if_line, 0).values
    return torch.nonzero((stream == else_id) & (last_if_line == line_id)).flatten()


def ternary_batches(
    stream: Stream,
    else_positions: Int[torch.Tensor, " n"],
    batch: int,
    seq_len: int,
    bos_id: int,
    seed: int,
    min_where: int = 1,
) -> Iterator[Batch]:
    """Windows that contain a ternary's `` else`` at a uniformly random position (never a fixed one)
    of ``min_where`` … ``seq_len - 2``."""
    usable = else_positions[(else_positions >= seq_len) & (else_positions < len(stream) - seq_len)]
    if len(usable) == 0:
        raise ValueError("no usable ternary positions in the stream")
    g = torch.Generator().manual_seed(seed)
    while True:
        picks = usable[torch.randint(0, len(usable), (batch,), generator=g)]
        where = torch.randint(min_where, seq_len - 1, (batch,), generator=g)
        yield windows(stream, picks - where + 1, seq_len, bos_id)


def copy_batches(
    d_vocab: int,
    bos_id: int,
    batch: int,
    seq_len: int,
    seed: int = 0,
    low: int = 1,
    min_segment: int = 8,
    max_segment: int = 32,
    n_copies: int = 3,
) -> Iterator[Batch]:
    """Random-token sequences with segments copied to random later positions (induction training);
    see :func:`course_utils.tasks.repeated.random_copy_sequences`."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield random_copy_sequences(batch, seq_len, d_vocab, bos_id, g, low, min_segment, max_segment, n_copies)


def periodic_batches(
    d_vocab: int,
    bos_id: int,
    batch: int,
    seq_len: int,
    seed: int = 0,
    min_period: int = 5,
    max_period: int = 60,
    max_offset: int = 0,
) -> Iterator[Batch]:
    """BOS + a random block repeated to fill the row (dense induction training); see
    :func:`course_utils.tasks.repeated.periodic_sequences`."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield periodic_sequences(
            batch, seq_len, d_vocab, bos_id, g, min_period=min_period, max_period=max_period, max_offset=max_offset
        )


def markov_batches(d_vocab: int, bos_id: int, batch: int, seq_len: int, seed: int = 0) -> Iterator[Batch]:
    """Random walks over small per-row alphabets (bigram induction at every position); see
    :func:`course_utils.tasks.repeated.markov_sequences`."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield markov_sequences(batch, seq_len, d_vocab, bos_id, g)


def _padded(
    rows: list[list[int]], answer_index: list[int], answer_weight: float, pad_id: int, context_weight: float = 1.0
) -> Batch:
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    weights = torch.zeros(len(rows), width - 1)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
        weights[i, : len(row) - 1] = context_weight
        weights[i, answer_index[i] - 1] = answer_weight
    return tokens, weights


def preamble_tokens(rng: random.Random, sources: Sequence[Stream], max_len: int, skip: float) -> list[int]:
    """0 tokens with probability ``skip``, else a window of 1..``max_len`` tokens from one of ``sources``
    (chosen uniformly), ending where the text after it starts (the caller adds a separator)."""
    if not sources or rng.random() < skip:
        return []
    n = rng.randint(1, max_len)
    stream = rng.choice(sources)
    start = rng.randrange(len(stream) - n)
    return stream[start : start + n].tolist()


def ioi_batches(
    tokenizer: PreTrainedTokenizerFast,
    batch: int,
    answer_weight: float,
    seed: int,
    procedural_fraction: float = 0.5,
    context_weight: float = 1.0,
    three_name_fraction: float = 0.0,
    preambles: Sequence[Stream] = (),
    preamble_skip: float = 1.0,
    seq_len: int = 128,
) -> Iterator[Batch]:
    """Training IOI sentences (BOS + [preamble + newline] + prompt + answer + "."), training name
    pairs only, a fraction built procedurally (see :func:`course_utils.tasks.ioi.training_prompts`)
    and a fraction with three names (:func:`course_utils.tasks.ioi.three_name_prompt`). A preamble
    of ordinary text (up to 100 tokens, cut to fit ``seq_len``) precedes the prompt unless skipped
    (probability ``preamble_skip``). The answer token's loss is weighted ``answer_weight``, every
    other real token ``context_weight``, padding 0."""
    rng = random.Random(seed)
    bos, dot, newline = (
        tokenizer.bos_token_id,
        tokenizer.encode(".", add_special_tokens=False),
        tokenizer.encode("\n", add_special_tokens=False),
    )
    while True:
        rows, answers = [], []
        for prompt in ioi.training_prompts(batch, procedural_fraction, seed=rng.getrandbits(32)):
            if rng.random() < three_name_fraction:
                prompt = ioi.three_name_prompt(rng)
            body = [*tokenizer.encode(prompt.text, add_special_tokens=False), ioi.name_token_id(tokenizer, prompt.io)]
            pre = preamble_tokens(rng, preambles, 100, preamble_skip)[: max(0, seq_len - 3 - len(body))]
            row = [bos, *(pre + newline if pre else []), *body]
            answers.append(len(row) - 1)
            rows.append(row + dot)
        yield _padded(rows, answers, answer_weight, tokenizer.pad_token_id, context_weight)


def fact_batches(tokenizer: PreTrainedTokenizerFast, batch: int, answer_weight: float, seed: int) -> Iterator[Batch]:
    """Few-shot fact prompts of every relation followed by their answer (answer up-weighted)."""
    rng = random.Random(seed)
    pairs = [(r, s) for r, rel in sorted(facts.RELATIONS.items()) for s in sorted(rel.table)]
    bos = tokenizer.bos_token_id
    while True:
        rows, answers = [], []
        for _ in range(batch):
            relation, subject = rng.choice(pairs)
            prompt = facts.few_shot_prompt(relation, subject, n_shots=rng.randint(0, 3), seed=rng.getrandbits(32))
            row = [bos, *tokenizer.encode(prompt.text + prompt.answer, add_special_tokens=False)]
            answers.append(len(row) - 1)
            rows.append(row)
        yield _padded(rows, answers, answer_weight, tokenizer.pad_token_id)


def _recall_item(
    rng: random.Random, tokenizer: PreTrainedTokenizerFast, qa_fraction: float
) -> tuple[list[int], int | None]:
    """One training line of the ``facts-4l`` world and the index of its answer token (None when the
    answer opens the sentence, so nothing before it predicts it)."""
    relation = rng.choice(("capital", "language", "country", "country"))
    rel = recall.get_relation(relation)
    encode = functools.partial(tokenizer.encode, add_special_tokens=False)
    if rng.random() < qa_fraction:
        subject = rng.choice([s for s in sorted(rel.table) if not recall.qa_heldout(relation, s)])
        prompt = recall.few_shot_prompt(
            relation, subject, rng.randint(0, 3), rng, invented_fraction=0.3, heldout_shots=False
        )
        ids = encode(prompt.text)
        return ids + encode(prompt.answer), len(ids)
    subject = rng.choice(sorted(rel.table))
    before, after = rng.choice(rel.statements).format(subject=subject, answer="\0").split("\0")
    if not before:
        return encode(rel.table[subject] + after), None
    ids = encode(before.rstrip(" "))
    return ids + encode(" " + rel.table[subject]) + encode(after), len(ids)


def recall_batches(
    tokenizer: PreTrainedTokenizerFast,
    preambles: Sequence[Stream],
    batch: int,
    seq_len: int,
    answer_weight: float,
    seed: int,
    qa_fraction: float = 0.4,
) -> Iterator[Batch]:
    """Rows of BOS + (1-100 tokens of ordinary text + newline, 70 % of rows) + fact lines of the ``facts-4l`` world
    (:mod:`course_utils.tasks.recall`: statements, and Q/A lines for subjects that are not held out),
    one per line until the row is full. Answer tokens weigh ``answer_weight``, other tokens 1."""
    rng = random.Random(seed)
    newline = tokenizer.encode("\n", add_special_tokens=False)
    while True:
        rows, weights = [], []
        for _ in range(batch):
            pre = preamble_tokens(rng, preambles, 100, skip=0.3)
            row = [tokenizer.bos_token_id, *(pre + newline if pre else [])]
            weight = [1.0] * len(row)
            while True:
                ids, answer = _recall_item(rng, tokenizer, qa_fraction)
                if len(row) + len(ids) + 1 > seq_len:
                    break
                item_weight = [1.0] * (len(ids) + 1)
                if answer is not None:
                    item_weight[answer] = answer_weight
                row += ids + newline
                weight += item_weight
            rows.append(row)
            weights.append(weight)
        width = max(len(r) for r in rows)
        tokens = torch.full((batch, width), tokenizer.pad_token_id, dtype=torch.long)
        loss_weights = torch.zeros(batch, width - 1)
        for i, (row, weight) in enumerate(zip(rows, weights)):
            tokens[i, : len(row)] = torch.tensor(row)
            loss_weights[i, : len(row) - 1] = torch.tensor(weight[1:])
        yield tokens, loss_weights


def chain(stages: Sequence[tuple[Iterator[Batch], int]]) -> Iterator[Batch]:
    """A curriculum: ``n`` batches from the first iterator, then from the next, ...; the last
    stage runs on forever."""
    if not stages:
        raise ValueError("chain() needs at least one stage")
    for source, n in stages[:-1]:
        for _ in range(n):
            yield next(source)
    yield from stages[-1][0]


def mix(sources: Sequence[Iterator[Batch]], weights: Sequence[float], seed: int) -> Iterator[Batch]:
    """Draw each batch from one source, chosen at random with the given weights."""
    if len(sources) != len(weights) or not sources:
        raise ValueError("mix() needs as many weights as sources, and at least one source")
    rng = random.Random(seed)
    while True:
        yield next(rng.choices(sources, weights)[0])
