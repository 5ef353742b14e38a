"""Random-token sequences for induction: repeated blocks (evaluation) and random copies (training)."""

from __future__ import annotations

import torch
from jaxtyping import Int


def _check(d_vocab: int, low: int) -> None:
    if not 0 <= low < d_vocab:
        raise ValueError(f"need 0 <= low < d_vocab, got low={low}, d_vocab={d_vocab}")


def repeated_tokens(
    batch: int, seq_len: int, d_vocab: int, bos_id: int, low: int = 1, seed: int = 0
) -> Int[torch.Tensor, "batch 1+2*seq_len"]:
    """BOS followed by ``seq_len`` uniform random tokens in ``[low, d_vocab)``, repeated once.

    Induction heads predict the second copy: loss on positions ``seq_len+1 ..`` drops sharply.
    """
    _check(d_vocab, low)
    if batch < 1 or seq_len < 1:
        raise ValueError(f"batch and seq_len must be >= 1, got {batch}, {seq_len}")
    g = torch.Generator().manual_seed(seed)
    half = torch.randint(low, d_vocab, (batch, seq_len), generator=g)
    bos = torch.full((batch, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, half, half], dim=1)


def random_copy_sequences(
    batch: int,
    seq_len: int,
    d_vocab: int,
    bos_id: int,
    generator: torch.Generator,
    low: int = 1,
    min_segment: int = 4,
    max_segment: int = 24,
    n_copies: int = 3,
) -> Int[torch.Tensor, "batch seq_len"]:
    """BOS + random tokens in which ``n_copies`` segments of random length are copied to random
    later positions (random source, random gap), so only content-based copying predicts them.

    A fixed offset would let a model solve copying positionally; random gaps force induction.
    """
    _check(d_vocab, low)
    if not 1 <= min_segment <= max_segment or 2 * max_segment + 1 > seq_len:
        raise ValueError(
            f"need 1 <= min_segment <= max_segment and 2*max_segment+1 <= seq_len; "
            f"got {min_segment}, {max_segment}, seq_len={seq_len}"
        )
    tokens = torch.randint(low, d_vocab, (batch, seq_len), generator=generator)
    tokens[:, 0] = bos_id
    lengths = torch.randint(min_segment, max_segment + 1, (batch, n_copies), generator=generator)
    for row in range(batch):
        for length in lengths[row].tolist():
            src = int(torch.randint(1, seq_len - 2 * length + 1, (1,), generator=generator))
            dst = int(torch.randint(src + length, seq_len - length + 1, (1,), generator=generator))
            tokens[row, dst : dst + length] = tokens[row, src : src + length].clone()
    return tokens


def periodic_sequences(
    batch: int,
    seq_len: int,
    d_vocab: int,
    bos_id: int,
    generator: torch.Generator,
    low: int = 1,
    min_period: int = 5,
    max_period: int = 60,
    max_offset: int = 0,
) -> Int[torch.Tensor, "batch seq_len"]:
    """BOS + a random block of random length (``min_period`` … ``max_period``) repeated to fill
    ``seq_len``: after the first period every token is predictable, but only by content (the
    period changes from row to row, so no fixed offset works). With ``max_offset > 0`` each row
    first has 0 … ``max_offset`` unrelated random tokens, so the repeats also start late in the row."""
    _check(d_vocab, low)
    if not 1 <= min_period <= max_period < seq_len - max_offset:
        raise ValueError(
            f"need 1 <= min_period <= max_period < seq_len - max_offset; got {min_period}, {max_period}, seq_len={seq_len}, max_offset={max_offset}"
        )
    rows = torch.full((batch, seq_len), bos_id, dtype=torch.long)
    for row in rows:
        period = int(torch.randint(min_period, max_period + 1, (1,), generator=generator))
        block = torch.randint(low, d_vocab, (period,), generator=generator)
        offset = int(torch.randint(0, max_offset + 1, (1,), generator=generator)) if max_offset else 0
        if offset:
            row[1 : 1 + offset] = torch.randint(low, d_vocab, (offset,), generator=generator)
        row[1 + offset :] = block.repeat(seq_len // period + 1)[: seq_len - 1 - offset]
    return rows


def markov_sequences(
    batch: int,
    seq_len: int,
    d_vocab: int,
    bos_id: int,
    generator: torch.Generator,
    low: int = 1,
    min_alphabet: int = 12,
    max_alphabet: int = 40,
    p_follow: float = 0.6,
) -> Int[torch.Tensor, "batch seq_len"]:
    """BOS + a random walk over a row's own small alphabet of random tokens: each row draws an
    alphabet and a successor for every letter; the next token is the current token's successor with
    probability ``p_follow``, else a uniform letter. Predicting a successor needs the exact previous
    token at every earlier occurrence (bigram induction), in every position of the row alike."""
    _check(d_vocab, low)
    rows = torch.full((batch, seq_len), bos_id, dtype=torch.long)
    for row in rows:
        k = int(torch.randint(min_alphabet, max_alphabet + 1, (1,), generator=generator))
        alphabet = torch.randperm(d_vocab - low, generator=generator)[:k] + low
        successor = torch.randint(0, k, (k,), generator=generator)
        follow = torch.rand(seq_len, generator=generator) < p_follow
        jump = torch.randint(0, k, (seq_len,), generator=generator)
        state = int(jump[0])
        for t in range(1, seq_len):
            row[t] = alphabet[state]
            state = int(successor[state]) if follow[t] else int(jump[t])
    return rows
