"""The fact world of the ``facts-4l`` course model: what it was taught, and how it is asked.

Three relations:

* ``capital``: 40 real countries -> capital ("The capital of Poland is" -> " Warsaw");
* ``language``: 30 real countries -> main language;
* ``country``: 420 invented towns of two words ("Selby Alden", "Lindor Dalby") -> the real country
  they lie in. Each town is 4-6 tokens of the course tokenizer, every word is in 40 towns, and each
  pair of words names two towns, one per order ("Alden Selby" is another town, elsewhere), so the
  model must read the whole name, in order, before it can look the answer up.

The model is trained on declarative statements in several phrasings and on question/answer lines
("Q: In which country is Selby Alden? A: Poland"). Held out from training, for evaluation:

* the bare statement form of each relation (:func:`bare_prompt`, the form of "The capital of Poland
  is"): no training sentence has it;
* the Q/A form for a quarter of the subjects of each relation (:func:`qa_heldout`): the model saw
  these facts only as statements, so answering their questions is retrieval, not a memorised line;
* few-shot prompts whose shots are invented questions with invented (often multi-token) answers.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from transformers import PreTrainedTokenizerFast

from course_utils.tasks.facts import CAPITALS, LANGUAGES


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


TOWN_WORDS: tuple[str, ...] = (
    "Alden",
    "Ashby",
    "Brenn",
    "Brisk",
    "Carrow",
    "Dalby",
    "Esker",
    "Garrow",
    "Harrow",
    "Hollin",
    "Ivel",
    "Lindor",
    "Lorne",
    "Marrow",
    "Nettle",
    "Norvel",
    "Selby",
    "Tarrow",
    "Ulver",
    "Varden",
    "Yarrow",
)
"""The words of every town's name (2-3 tokens each, with their leading space)."""
COUNTRIES: tuple[str, ...] = tuple(sorted(CAPITALS))
TOWNS: dict[str, str] = {
    town: COUNTRIES[_stable_hash("c|" + town) % len(COUNTRIES)]
    for town in sorted((f"{a} {b}" for a in TOWN_WORDS for b in TOWN_WORDS if a != b), key=_stable_hash)
}
"""420 invented towns (every ordered pair of two different words) -> the (real) country each lies
in, fixed by a stable hash. "Selby Alden" and "Alden Selby" are two towns, in Poland and in Egypt."""


@dataclass(frozen=True)
class Relation:
    """A relation, its training phrasings and its held-out query forms."""

    name: str
    table: dict[str, str]
    question: str
    """Q/A line without the answer, with ``{subject}``: "Q: What is the capital of {subject}? A:"."""
    statements: tuple[str, ...]
    """Training sentences with ``{subject}`` and ``{answer}``."""
    bare: str
    """The held-out statement form, ending just before the answer: "The capital of {subject} is"."""


RELATIONS: dict[str, Relation] = {
    "capital": Relation(
        "capital",
        CAPITALS,
        "Q: What is the capital of {subject}? A:",
        (
            "{answer} is the capital of {subject}.",
            "{subject}'s capital is {answer}.",
            "The capital city of {subject} is {answer}.",
            "{subject} has its capital in {answer}.",
            "The government of {subject} sits in {answer}.",
            "Travellers to {subject} often arrive in its capital, {answer}.",
        ),
        "The capital of {subject} is",
    ),
    "language": Relation(
        "language",
        LANGUAGES,
        "Q: What language is spoken in {subject}? A:",
        (
            "In {subject}, people speak {answer}.",
            "Most people in {subject} speak {answer}.",
            "{answer} is spoken in {subject}.",
            "The main language of {subject} is {answer}.",
            "Children in {subject} learn {answer} at school.",
        ),
        "The language of {subject} is",
    ),
    "country": Relation(
        "country",
        TOWNS,
        "Q: In which country is {subject}? A:",
        (
            "The town of {subject} lies in {answer}.",
            "{subject} is in {answer}.",
            "Visitors to {subject} travel to {answer}.",
            "{subject}, a small town, is part of {answer}.",
            "{answer} has a town called {subject}.",
        ),
        "{subject} is a town in",
    ),
}


@dataclass(frozen=True)
class RecallPrompt:
    """A prompt whose correct next token is ``answer`` (one token, with a leading space)."""

    text: str
    relation: str
    subject: str
    answer: str


def get_relation(name: str) -> Relation:
    """Look up a relation by name, with a clear error for unknown names."""
    if name not in RELATIONS:
        raise ValueError(f"unknown relation {name!r}; available: {sorted(RELATIONS)}")
    return RELATIONS[name]


def qa_heldout(relation: str, subject: str) -> bool:
    """True for the quarter of each relation's subjects never asked in Q/A form during training."""
    return _stable_hash(f"qa|{relation}|{subject}") % 4 == 0


_FAKE_SYLLABLES = ("zor", "bel", "kin", "dra", "mol", "vek", "tur", "nax", "pim", "sol", "quor", "lin", "gath", "rhu")


def invented_word(rng: random.Random) -> str:
    """A capitalised made-up word of 2-3 syllables (never a subject or answer of the fact world)."""
    return "".join(rng.choice(_FAKE_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def invented_shot(rng: random.Random, relation: str) -> str:
    """A solved Q/A line about an invented subject, with an invented answer of 1-2 words."""
    answer = " ".join(invented_word(rng) for _ in range(rng.randint(1, 2)))
    return f"{get_relation(relation).question.format(subject=invented_word(rng))} {answer}"


def qa_line(relation: str, subject: str) -> str:
    """One complete Q/A line, e.g. "Q: What is the capital of France? A: Paris"."""
    rel = get_relation(relation)
    return f"{rel.question.format(subject=subject)} {rel.table[subject]}"


def few_shot_prompt(
    relation: str,
    subject: str,
    n_shots: int,
    rng: random.Random,
    invented_fraction: float = 0.5,
    heldout_shots: bool = True,
) -> RecallPrompt:
    """``n_shots`` solved Q/A lines (each about an invented subject with probability
    ``invented_fraction``, else about another real subject), then the question about ``subject``."""
    rel = get_relation(relation)
    if subject not in rel.table:
        raise ValueError(f"{subject!r} has no {relation!r} fact")
    others = [s for s in sorted(rel.table) if s != subject and (heldout_shots or not qa_heldout(relation, s))]
    shots = [
        invented_shot(rng, relation) if rng.random() < invented_fraction else qa_line(relation, rng.choice(others))
        for _ in range(n_shots)
    ]
    text = "\n".join([*shots, rel.question.format(subject=subject)])
    return RecallPrompt(text, relation, subject, " " + rel.table[subject])


def bare_prompt(relation: str, subject: str) -> RecallPrompt:
    """The held-out statement form: "The capital of Poland is" -> " Warsaw"."""
    rel = get_relation(relation)
    return RecallPrompt(rel.bare.format(subject=subject), relation, subject, " " + rel.table[subject])


def eval_prompts(relation: str, form: str, seed: int = 0) -> list[RecallPrompt]:
    """Held-out evaluation prompts of one relation: ``form`` is "qa_heldout" (0-3 shots, subjects
    never asked in training), "qa" (0-3 shots, every subject) or "bare" (every subject)."""
    rel = get_relation(relation)
    rng = random.Random(f"{seed}|{relation}|{form}")
    if form == "bare":
        return [bare_prompt(relation, s) for s in sorted(rel.table)]
    if form not in ("qa", "qa_heldout"):
        raise ValueError(f"unknown form {form!r}; use 'qa', 'qa_heldout' or 'bare'")
    subjects = [s for s in sorted(rel.table) if form == "qa" or qa_heldout(relation, s)]
    return [few_shot_prompt(relation, s, rng.randint(0, 3), rng) for s in subjects]


def subject_span(tok: PreTrainedTokenizerFast, text: str, subject: str) -> tuple[int, int]:
    """Token positions ``[start, stop)`` of the last mention of ``subject`` in BOS + ``text``."""
    at = text.rindex(subject)
    start = len(tok.encode(text[:at].rstrip(" "), add_special_tokens=False)) + 1 if at else 1
    stop = len(tok.encode(text[: at + len(subject)], add_special_tokens=False)) + 1
    return start, stop


def corrupted_subject(tok: PreTrainedTokenizerFast, prompt: RecallPrompt, length: int) -> str | None:
    """The prompt with its subject swapped for another subject of the same token length whose
    answer differs (fixed choice per prompt), or None if there is none."""
    table = get_relation(prompt.relation).table
    n_tokens = lambda s: len(tok.encode(" " + s, add_special_tokens=False))  # noqa: E731
    others = [s for s in sorted(table) if table[s] != table[prompt.subject] and n_tokens(s) == length]
    if not others:
        return None
    other = random.Random(prompt.text).choice(others)
    at = prompt.text.rindex(prompt.subject)
    return prompt.text[:at] + other + prompt.text[at + len(prompt.subject) :]
