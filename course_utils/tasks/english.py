"""Generated English for the course: short stories, IOI sentences and facts, mixed in paragraphs.

The zoo trains on it (:mod:`course_utils.zoo.corpus`); chapter 02's checks read held-out paragraphs of it.
"""

from __future__ import annotations

import random

from course_utils.tasks import facts, ioi

_STORY_SUBJECTS = (
    "the cat",
    "the dog",
    "a little bird",
    "the old man",
    "the girl",
    "the boy",
    "a farmer",
    "the teacher",
)
_STORY_VERBS = ("found", "saw", "lost", "wanted", "made", "liked", "took", "carried")
_STORY_OBJECTS = (
    "a red ball",
    "a big apple",
    "a small box",
    "the blue cup",
    "a warm hat",
    "a long stick",
    "a shiny coin",
)
_STORY_PLACES = ("in the park", "at home", "near the river", "in the garden", "at school", "in the forest")
_STORY_ENDINGS = ("It was a happy day.", "Then everyone went home.", "They laughed together.", "It was time for bed.")


def simple_story(rng: random.Random, names: tuple[str, ...] = ioi.NAMES) -> str:
    """A three-sentence story about a named person."""
    name = rng.choice(names)
    subj = rng.choice(_STORY_SUBJECTS)
    return (
        f"One day {name} went out {rng.choice(_STORY_PLACES)}. "
        f"{subj.capitalize()} {rng.choice(_STORY_VERBS)} {rng.choice(_STORY_OBJECTS)}. "
        f"{name} {rng.choice(_STORY_VERBS)} {rng.choice(_STORY_OBJECTS)} too. {rng.choice(_STORY_ENDINGS)}"
    )


def ioi_sentence(rng: random.Random) -> str:
    """A complete training IOI sentence (training pairs and templates only)."""
    prompt = ioi.ioi_prompts(1, "train", seed=rng.getrandbits(32))[0]
    return f"{prompt.text} {prompt.io}."


def fact_text(rng: random.Random) -> str:
    """A factual statement, or a block of 2-4 Q/A lines of one relation."""
    relation = rng.choice(sorted(facts.RELATIONS))
    rel = facts.RELATIONS[relation]
    if rng.random() < 0.5:
        subject = rng.choice(sorted(rel.table))
        return rng.choice(rel.statements).format(subject=subject, answer=rel.table[subject])
    subjects = rng.sample(sorted(rel.table), rng.randint(2, 4))
    return "\n".join(facts.qa_line(relation, s) for s in subjects)


def generated_english(n_paragraphs: int, seed: int = 0) -> list[str]:
    """Paragraphs mixing stories, IOI sentences and facts."""
    rng = random.Random(seed)
    makers = (simple_story, ioi_sentence, fact_text)
    return [makers[rng.randrange(3)](rng) for _ in range(n_paragraphs)]
