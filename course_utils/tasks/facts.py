"""Factual-recall tasks: relations (country -> capital, country -> language, ...) and prompts.

Prompts use a few-shot Q/A format whose answer is a single token with a leading space:

    "Q: What is the capital of France? A: Paris\\nQ: What is the capital of Poland? A:"  ->  " Warsaw"
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CAPITALS: dict[str, str] = {
    "France": "Paris",
    "Poland": "Warsaw",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Austria": "Vienna",
    "Hungary": "Budapest",
    "Greece": "Athens",
    "Russia": "Moscow",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Ireland": "Dublin",
    "Egypt": "Cairo",
    "Japan": "Tokyo",
    "China": "Beijing",
    "Thailand": "Bangkok",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Chile": "Santiago",
    "Cuba": "Havana",
    "Canada": "Ottawa",
    "Australia": "Canberra",
    "Turkey": "Ankara",
    "Iran": "Tehran",
    "Iraq": "Baghdad",
    "Ukraine": "Kyiv",
    "Romania": "Bucharest",
    "Belgium": "Brussels",
    "Netherlands": "Amsterdam",
    "Switzerland": "Bern",
    "Scotland": "Edinburgh",
    "England": "London",
    "Wales": "Cardiff",
    "Serbia": "Belgrade",
    "Brazil": "Brasilia",
    "Vietnam": "Hanoi",
    "Korea": "Seoul",
}
"""40 countries -> capitals."""

LANGUAGES: dict[str, str] = {
    "France": "French",
    "Poland": "Polish",
    "Germany": "German",
    "Italy": "Italian",
    "Spain": "Spanish",
    "Portugal": "Portuguese",
    "Hungary": "Hungarian",
    "Greece": "Greek",
    "Russia": "Russian",
    "Norway": "Norwegian",
    "Sweden": "Swedish",
    "Finland": "Finnish",
    "Denmark": "Danish",
    "Japan": "Japanese",
    "China": "Chinese",
    "Thailand": "Thai",
    "Turkey": "Turkish",
    "Iran": "Persian",
    "Ukraine": "Ukrainian",
    "Romania": "Romanian",
    "Netherlands": "Dutch",
    "Vietnam": "Vietnamese",
    "Korea": "Korean",
    "Brazil": "Portuguese",
    "Austria": "German",
    "Peru": "Spanish",
    "Chile": "Spanish",
    "Cuba": "Spanish",
    "Egypt": "Arabic",
    "Iraq": "Arabic",
}
"""30 countries -> main language."""


@dataclass(frozen=True)
class Relation:
    """A relation with its question and statement phrasings."""

    name: str
    table: dict[str, str]
    question: str
    """Question with ``{subject}``, e.g. "What is the capital of {subject}?"."""
    statements: tuple[str, ...]
    """Declarative sentences with ``{subject}`` and ``{answer}`` (used in training text)."""


RELATIONS: dict[str, Relation] = {
    "capital": Relation(
        "capital",
        CAPITALS,
        "What is the capital of {subject}?",
        (
            "The capital of {subject} is {answer}.",
            "{answer} is the capital of {subject}.",
            "The capital city of {subject} is {answer}.",
        ),
    ),
    "language": Relation(
        "language",
        LANGUAGES,
        "What language is spoken in {subject}?",
        (
            "The language of {subject} is {answer}.",
            "In {subject}, people speak {answer}.",
            "Most people in {subject} speak {answer}.",
        ),
    ),
}


@dataclass(frozen=True)
class FactPrompt:
    """A few-shot prompt whose correct next token is ``answer`` (with a leading space)."""

    text: str
    relation: str
    subject: str
    answer: str


def get_relation(name: str) -> Relation:
    """Look up a relation by name, with a clear error for unknown names."""
    if name not in RELATIONS:
        raise ValueError(f"unknown relation {name!r}; available: {sorted(RELATIONS)}")
    return RELATIONS[name]


def qa_line(relation: str, subject: str) -> str:
    """One complete Q/A line, e.g. "Q: What is the capital of France? A: Paris"."""
    rel = get_relation(relation)
    if subject not in rel.table:
        raise ValueError(f"{subject!r} has no {relation!r} fact; known subjects: {sorted(rel.table)}")
    return f"Q: {rel.question.format(subject=subject)} A: {rel.table[subject]}"


def few_shot_prompt(relation: str, subject: str, n_shots: int = 2, seed: int = 0) -> FactPrompt:
    """``n_shots`` solved Q/A lines about other subjects, then the question about ``subject``."""
    rel = get_relation(relation)
    if subject not in rel.table:
        raise ValueError(f"{subject!r} has no {relation!r} fact; known subjects: {sorted(rel.table)}")
    others = sorted(s for s in rel.table if s != subject)
    shots = random.Random(f"{seed}|{relation}|{subject}").sample(others, n_shots)
    lines = [qa_line(relation, s) for s in shots]
    lines.append(f"Q: {rel.question.format(subject=subject)} A:")
    return FactPrompt("\n".join(lines), relation, subject, " " + rel.table[subject])


def fact_prompts(relation: str = "capital", n_shots: int = 2, seed: int = 0) -> list[FactPrompt]:
    """One few-shot prompt per subject of ``relation``."""
    return [few_shot_prompt(relation, s, n_shots, seed) for s in sorted(get_relation(relation).table)]


def statements(relation: str) -> list[str]:
    """Every declarative sentence for every fact of ``relation``."""
    rel = get_relation(relation)
    return [t.format(subject=s, answer=a) for s, a in sorted(rel.table.items()) for t in rel.statements]
