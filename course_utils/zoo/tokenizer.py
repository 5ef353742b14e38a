"""The course tokenizer: byte-level BPE (4096 tokens) trained on the zoo's corpus.

``<|endoftext|>`` is BOS, EOS, PAD and UNK. The tokenizer never adds it by itself (the bridge
prepends BOS). A lexicon of task words (IOI names, countries, capitals, languages, `` if`` and
`` else``) is mixed into the training text often enough that each becomes a single token.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from course_utils.tasks import facts, ioi
from course_utils.zoo import corpus

VOCAB_SIZE = 4096
SPECIAL = "<|endoftext|>"
LEXICON_REPEATS = 400
CODE_BYTES_FOR_TOKENIZER = 4_000_000


def lexicon() -> list[str]:
    """Words that must be single tokens (with a leading space)."""
    words = {"if", "else", "Q", "A"}
    words.update(ioi.NAMES)
    for rel in facts.RELATIONS.values():
        words.update(rel.table)
        words.update(rel.table.values())
    return sorted(words)


def _training_texts() -> Iterator[str]:
    budget = CODE_BYTES_FOR_TOKENIZER
    for text in corpus.read_code("train"):
        if budget <= 0:
            break
        budget -= len(text)
        yield text
    yield from corpus.shakespeare_plays().values()
    yield from corpus.generated_english(20_000, seed=1)
    for word in lexicon():
        yield (" " + word) * LEXICON_REPEATS


def wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap a raw ``tokenizers`` BPE as the HF fast tokenizer the bridge expects.

    Round-trips through a folder: an in-memory ``PreTrainedTokenizerFast`` crashes the bridge.
    """
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=SPECIAL, eos_token=SPECIAL, pad_token=SPECIAL, unk_token=SPECIAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        fast.save_pretrained(tmp)
        return PreTrainedTokenizerFast.from_pretrained(tmp)


def train_tokenizer() -> PreTrainedTokenizerFast:
    """Train the BPE on the corpus and check that every lexicon word is one token."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    bpe.train_from_iterator(_training_texts(), trainer=trainer)
    fast = wrap(bpe)
    multi = [w for w in lexicon() if len(fast.encode(" " + w, add_special_tokens=False)) != 1]
    if multi:
        raise RuntimeError(f"these lexicon words are not single tokens: {multi}; raise LEXICON_REPEATS")
    return fast
