"""Indirect-object-identification (IOI) prompts: names, templates, splits, clean/corrupted pairs.

A prompt names two people (IO and S), mentions S again, and ends just before the answer,
which is the indirect object IO:

    "When Mary and John went to the store, John gave a drink to"  ->  " Mary"

Every name is one token with a leading space in the course tokenizer; in another tokenizer
(GPT-2's splits " Ella" in two), pass ``tokenizer=`` to the samplers to use only the names that are
one token there (the course prompts stay the same). Unordered name PAIRS and some TEMPLATES are
held out: the training generator (``split="train"``) never produces them.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from jaxtyping import Float, Int
from transformers import PreTrainedTokenizerFast

NAMES: tuple[str, ...] = (
    "Mary",
    "John",
    "Alice",
    "Bob",
    "James",
    "Emma",
    "David",
    "Sarah",
    "Michael",
    "Anna",
    "Tom",
    "Lisa",
    "Paul",
    "Laura",
    "Mark",
    "Kate",
    "Peter",
    "Jane",
    "Daniel",
    "Susan",
    "George",
    "Helen",
    "Henry",
    "Rachel",
    "Jack",
    "Emily",
    "Frank",
    "Grace",
    "Steven",
    "Linda",
    "Robert",
    "Karen",
    "William",
    "Julia",
    "Richard",
    "Nancy",
    "Thomas",
    "Amy",
    "Charles",
    "Sophie",
    "Joseph",
    "Lucy",
    "Andrew",
    "Jessica",
    "Ryan",
    "Hannah",
    "Kevin",
    "Olivia",
    "Brian",
    "Chloe",
    "Eric",
    "Megan",
    "Adam",
    "Claire",
    "Jason",
    "Diana",
    "Simon",
    "Fiona",
    "Scott",
    "Monica",
    "Patrick",
    "Rose",
    "Sam",
    "Ruth",
    "Luke",
    "Alex",
    "Martin",
    "Carol",
    "Victor",
    "Irene",
    "Oscar",
    "Nina",
    "Leo",
    "Vera",
    "Max",
    "Sofia",
    "Ben",
    "Ella",
    "Carl",
    "Ivy",
    "Dean",
    "Joan",
    "Gary",
    "Betty",
    "Roger",
    "Tina",
    "Harry",
    "Kelly",
    "Joe",
    "Maria",
    "Dan",
    "Beth",
    "Tim",
    "Jill",
    "Ian",
    "Ann",
    "Matt",
    "Eve",
    "Nick",
    "Lily",
    "Phil",
    "Joy",
    "Ray",
    "May",
    "Kim",
    "Jim",
    "Roy",
    "Fred",
    "Ted",
    "Jenny",
)
"""110 common English first names; each ``" " + name`` is a single token in the course tokenizer."""

TEMPLATES: tuple[str, ...] = (
    "When {A} and {B} went to the store, {S} gave a drink to",
    "When {A} and {B} went to the park, {S} gave a ball to",
    "After {A} and {B} went to the market, {S} handed a basket to",
    "Then, {A} and {B} had a long day at the office. {S} gave a letter to",
    "While {A} and {B} were working at the garden, {S} passed a spade to",
    "When {A} and {B} got a snack at the house, {S} decided to give it to",
    "Then, {A} and {B} were thinking about going to the school. {S} wanted to give a book to",
    "Friends {A} and {B} found a ring at the river. {S} gave it to",
    "After the lunch, {A} and {B} went to the station. {S} gave a ticket to",
    "The local big shop was visited by {A} and {B}. {S} brought a cake for",
    "When {A} and {B} arrived at the hospital, {S} handed the flowers to",
    "Yesterday {A} and {B} cooked dinner together, and {S} served the soup to",
    "{A} and {B} walked home from the library. {S} lent a pen to",
    "At the party, {A} and {B} danced all night. Later {S} sent a message to",
    "In the morning, {A} and {B} cleaned the kitchen. Then {S} threw a towel to",
    "After school, {A} and {B} played a game. {S} showed the cards to",
    "When {A} and {B} sat down at the table, {S} poured some tea for",
    "On Sunday, {A} and {B} visited the museum, and {S} bought a gift for",
    "As {A} and {B} were leaving the cinema, {S} gave the keys to",
    "Last week {A} and {B} painted the fence. Afterwards {S} paid the money to",
)
"""20 templates; ``{A}`` and ``{B}`` are the two names of the first clause, ``{S}`` the repeated one."""

HELDOUT_TEMPLATE_IDS: tuple[int, ...] = (3, 9, 13, 18)
"""Templates never used for training."""

Split = Literal["train", "heldout_pairs", "heldout_templates", "heldout"]
Order = Literal["ABBA", "BABA", "both"]


@dataclass(frozen=True)
class IOIPrompt:
    """One IOI prompt. ``text`` ends just before the answer ``" " + io``."""

    text: str
    io: str
    s: str
    template_id: int
    order: Literal["ABBA", "BABA"]

    @property
    def answer(self) -> str:
        """The correct completion, with its leading space."""
        return " " + self.io


@dataclass(frozen=True)
class IOIBatch:
    """Tokenized prompts (BOS first, right-padded) with answer and distractor token ids."""

    tokens: Int[torch.Tensor, "batch seq"]
    io_ids: Int[torch.Tensor, " batch"]
    s_ids: Int[torch.Tensor, " batch"]
    answer_pos: Int[torch.Tensor, " batch"]
    """Index of each prompt's last token: the logits there predict the answer."""


def is_heldout_pair(a: str, b: str) -> bool:
    """True for the ~20 % of unordered name pairs kept out of training (stable hash)."""
    key = "|".join(sorted((a, b))).encode()
    return hashlib.sha256(key).digest()[0] % 5 == 0


def _template_ids(split: Split) -> list[int]:
    heldout = split in ("heldout_templates", "heldout")
    return [i for i in range(len(TEMPLATES)) if (i in HELDOUT_TEMPLATE_IDS) == heldout]


def render(template_id: int, io: str, s: str, order: Literal["ABBA", "BABA"]) -> IOIPrompt:
    """Fill a template: ABBA puts IO first in the opening clause, BABA puts S first."""
    a, b = (io, s) if order == "ABBA" else (s, io)
    text = TEMPLATES[template_id].format(A=a, B=b, S=s)
    return IOIPrompt(text=text, io=io, s=s, template_id=template_id, order=order)


def single_token_names(tokenizer: PreTrainedTokenizerFast | None) -> tuple[str, ...]:
    """The names whose ``" " + name`` is one token in ``tokenizer`` (all of ``NAMES`` for None or the
    course tokenizer)."""
    if tokenizer is None:
        return NAMES
    return tuple(n for n in NAMES if len(tokenizer.encode(" " + n, add_special_tokens=False)) == 1)


def ioi_prompts(
    n: int,
    split: Split = "train",
    order: Order = "both",
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
) -> list[IOIPrompt]:
    """Sample ``n`` prompts from one split.

    ``split``: "train" (training pairs and templates), "heldout_pairs" (held-out pairs, training
    templates), "heldout_templates" (training pairs, held-out templates), "heldout" (both held out).
    ``tokenizer``: skip names that are not one token in it (with the course tokenizer, or None,
    nothing is skipped and the prompts are the same).
    """
    if split not in ("train", "heldout_pairs", "heldout_templates", "heldout"):
        raise ValueError(f"unknown IOI split {split!r}; use train, heldout_pairs, heldout_templates or heldout")
    if order not in ("ABBA", "BABA", "both"):
        raise ValueError(f"unknown IOI order {order!r}; use 'ABBA', 'BABA' or 'both'")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    want_heldout_pair = split in ("heldout_pairs", "heldout")
    templates = _template_ids(split)
    allowed = set(single_token_names(tokenizer))
    if len(allowed) < 2:
        raise ValueError("fewer than two IOI names are single tokens in this tokenizer")
    prompts = []
    while len(prompts) < n:
        io, s = rng.sample(NAMES, 2)  # from all names, then skipped: the course prompts never change
        if is_heldout_pair(io, s) != want_heldout_pair or not {io, s} <= allowed:
            continue
        this_order = order if order != "both" else ("ABBA", "BABA")[len(prompts) % 2]
        prompts.append(render(rng.choice(templates), io, s, this_order))
    return prompts


_SCENES = (
    "",
    "",
    "",
    "It was a warm day. ",
    "The {place} was quiet that morning. ",
    "Nobody expected rain that week. ",
    "Everyone was tired after a long and busy week. ",
    "The old town was full of visitors. ",
    "It had snowed all night and the roads were white. ",
    "The new {place} had just opened. ",
)
"""Optional opening sentences: they move the names to later positions, so position is no cue."""
_INTROS = (
    "",
    "Then, ",
    "Later, ",
    "Today ",
    "This morning ",
    "One evening ",
    "After dinner, ",
    "Once again ",
    "On Monday ",
    "In the end, ",
    "Earlier, ",
    "That night ",
)
_CLAUSES = (
    "{A} and {B} went to the {place}",
    "{A} and {B} met at the {place}",
    "{A} and {B} were at the {place}",
    "{A} and {B} stayed at the {place}",
    "{A} met {B} at the {place}",
    "{A} talked with {B} at the {place}",
    "{A} and {B} walked to the {place}",
    "{A} and {B} worked at the {place}",
    "{A} visited {B} at the {place}",
    "{A} and {B} were invited to the {place}",
    "{A} sat next to {B} at the {place}",
    "{A} and {B} were seen near the {place}",
    "{A} called {B} from the {place}",
    "{A} and {B} arrived at the busy {place}",
    "{A} and {B} spent the day at the {place}",
    "{A} waited for {B} outside the {place}",
    "the {place} was cleaned by {A} and {B}",
    "a trip to the {place} was planned by {A} and {B}",
    "the {place} was painted by {A} and {B}",
    "{A} was joined by {B} at the {place}",
)
_JOINS = (". ", ", and ", ", then ", ". Soon ", ". After a while ", ". Later ", "; ")
_ACTIONS = (
    "gave {obj} to",
    "handed {obj} to",
    "passed {obj} to",
    "sent {obj} to",
    "showed {obj} to",
    "threw {obj} to",
    "brought {obj} to",
    "offered {obj} to",
    "sold {obj} to",
    "lent {obj} to",
    "said goodbye to",
    "waved at",
    "smiled at",
    "wrote a note to",
    "made a sandwich for",
    "bought {obj} for",
    "found {obj} for",
    "kept {obj} for",
    "baked a pie for",
    "read a story to",
)
_OBJECTS = (
    "a book",
    "an apple",
    "the bag",
    "a letter",
    "some water",
    "a cup",
    "the phone",
    "a hat",
    "a coin",
    "the map",
    "a flower",
    "the box",
    "a toy",
    "some bread",
    "a ticket",
)
_PLACES = (
    "beach",
    "farm",
    "bank",
    "zoo",
    "shop",
    "church",
    "restaurant",
    "bakery",
    "theatre",
    "airport",
    "lake",
    "hotel",
    "gym",
    "office",
    "market",
    "garden",
)


def procedural_prompt(rng: random.Random, io: str, s: str, order: Literal["ABBA", "BABA"]) -> IOIPrompt:
    """A training prompt built from random phrase parts (thousands of surface forms, none equal to
    a held-out template); ``template_id`` is -1."""
    a, b = (io, s) if order == "ABBA" else (s, io)
    clause = rng.choice(_CLAUSES).format(A=a, B=b, place=rng.choice(_PLACES))
    action = rng.choice(_ACTIONS).format(obj=rng.choice(_OBJECTS))
    scene = rng.choice(_SCENES).format(place=rng.choice(_PLACES))
    opening = f"{scene}{rng.choice(_INTROS)}{clause}"
    text = f"{opening[0].upper()}{opening[1:]}{rng.choice(_JOINS)}{s} {action}"
    return IOIPrompt(text=text, io=io, s=s, template_id=-1, order=order)


def training_prompts(n: int, procedural_fraction: float = 0.5, seed: int = 0) -> list[IOIPrompt]:
    """Training-pair prompts: a fraction from :func:`procedural_prompt`, the rest from the training templates."""
    rng = random.Random(seed)
    out = ioi_prompts(n, "train", seed=rng.getrandbits(32))
    return [procedural_prompt(rng, p.io, p.s, p.order) if rng.random() < procedural_fraction else p for p in out]


_CLAUSES_3 = (
    "{A}, {B} and {C} went to the {place}",
    "{A}, {B} and {C} met at the {place}",
    "{A} met {B} and {C} at the {place}",
    "{A}, {B} and {C} were at the {place}",
    "the {place} was visited by {A}, {B} and {C}",
)


def three_name_prompt(rng: random.Random) -> IOIPrompt:
    """A training variant with three names, two of which act again: "A, B and C met at the bank.
    C and A gave a cup to" -> " B". Training name pairs only; ``s`` is the first repeated name and
    ``template_id`` is -2."""
    while True:
        names = rng.sample(NAMES, 3)
        if not any(is_heldout_pair(a, b) for a in names for b in names if a < b):
            break
    io = names[rng.randrange(3)]
    repeated = [n for n in names if n != io]
    rng.shuffle(repeated)
    clause = rng.choice(_CLAUSES_3).format(A=names[0], B=names[1], C=names[2], place=rng.choice(_PLACES))
    action = rng.choice(_ACTIONS).format(obj=rng.choice(_OBJECTS))
    text = f"{rng.choice(_INTROS)}{clause}{rng.choice(_JOINS)}{repeated[0]} and {repeated[1]} {action}"
    return IOIPrompt(text=text[0].upper() + text[1:], io=io, s=repeated[0], template_id=-2, order="ABBA")


def corrupt(
    prompt: IOIPrompt,
    kind: Literal["abc", "flip"] = "abc",
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
) -> IOIPrompt:
    """Corrupted partner of ``prompt`` with the same token length: the second mention of S becomes
    a third name C ("abc": no name repeats, so the duplicate-token signal is gone) or IO ("flip":
    IO becomes the repeated name, so the answer flips to S). The returned prompt keeps the clean
    prompt's ``io`` and ``s`` so logit differences are measured on the same tokens. ``tokenizer``:
    the third name is one token in it."""
    if kind not in ("abc", "flip"):
        raise ValueError(f"unknown corruption {kind!r}; use 'abc' or 'flip'")
    if kind == "flip":
        new_name = prompt.io
    else:
        rng = random.Random(f"{seed}|{prompt.text}")
        new_name = rng.choice([name for name in single_token_names(tokenizer) if name not in (prompt.io, prompt.s)])
    matches = list(re.finditer(rf"\b{re.escape(prompt.s)}\b", prompt.text))
    if len(matches) < 2:
        raise ValueError(f"prompt does not mention {prompt.s!r} twice: {prompt.text!r}")
    last = matches[-1]
    return replace(prompt, text=prompt.text[: last.start()] + new_name + prompt.text[last.end() :])


def abc_reference(prompt: IOIPrompt, seed: int = 0, tokenizer: PreTrainedTokenizerFast | None = None) -> str:
    """The prompt's template filled with three fresh, distinct names (no name repeats): the
    reference distribution for mean ablation, with the clean prompt's token positions (names that
    are one token in ``tokenizer``)."""
    if prompt.template_id < 0:
        raise ValueError("abc_reference() needs a template prompt (template_id >= 0), not a procedural one")
    rng = random.Random(f"{seed}|abc|{prompt.text}")
    a, b, c = rng.sample([name for name in single_token_names(tokenizer) if name not in (prompt.io, prompt.s)], 3)
    return TEMPLATES[prompt.template_id].format(A=a, B=b, S=c)


def clean_corrupted_pairs(
    n: int,
    split: Split = "heldout",
    kind: Literal["abc", "flip"] = "abc",
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
) -> list[tuple[IOIPrompt, IOIPrompt]]:
    """``n`` (clean, corrupted) prompt pairs for activation patching (names one token in ``tokenizer``)."""
    return [(p, corrupt(p, kind, seed, tokenizer)) for p in ioi_prompts(n, split, seed=seed, tokenizer=tokenizer)]


def name_token_id(tokenizer: PreTrainedTokenizerFast, name: str) -> int:
    """Token id of ``" " + name``; raises ValueError if it is not a single token."""
    ids = tokenizer.encode(" " + name, add_special_tokens=False)
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise ValueError(
            f"name {name!r} is {len(ids)} tokens in this tokenizer ({pieces}), expected 1: "
            "sample prompts with tokenizer=model.tokenizer to use only single-token names"
        )
    return ids[0]


def tokenize(prompts: Sequence[IOIPrompt], tokenizer: PreTrainedTokenizerFast) -> IOIBatch:
    """Tokenize prompts as BOS + text, right-padded with the pad token."""
    if not prompts:
        raise ValueError("tokenize() needs at least one prompt")
    rows = [[tokenizer.bos_token_id] + tokenizer.encode(p.text, add_special_tokens=False) for p in prompts]
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
    return IOIBatch(
        tokens=tokens,
        io_ids=torch.tensor([name_token_id(tokenizer, p.io) for p in prompts]),
        s_ids=torch.tensor([name_token_id(tokenizer, p.s) for p in prompts]),
        answer_pos=torch.tensor([len(r) - 1 for r in rows]),
    )


def logit_diff(logits: Float[torch.Tensor, "batch seq vocab"], batch: IOIBatch) -> Float[torch.Tensor, " batch"]:
    """Logit of IO minus logit of S at each prompt's answer position."""
    final = logits[torch.arange(len(batch.answer_pos)), batch.answer_pos]
    rows = torch.arange(len(final))
    return final[rows, batch.io_ids] - final[rows, batch.s_ids]
