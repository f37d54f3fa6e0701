"""The demo model's synthetic English: six tasks whose circuits the literature knows.

Every text is lower-case words separated by spaces (the tokenizer is word-level). Texts are
split into train and held-out by a hash of the text, so :func:`dataset` never returns a text
the shipped model was trained on.
"""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass

NAMES = [
    "mary",
    "john",
    "alice",
    "bob",
    "emma",
    "james",
    "sarah",
    "david",
    "anna",
    "tom",
    "lucy",
    "peter",
    "kate",
    "mark",
    "julia",
    "paul",
    "nina",
    "sam",
    "rose",
    "leo",
]
PLACES = ["store", "park", "school", "beach", "garden", "station", "library", "market", "office", "museum"]
OBJECTS = ["drink", "book", "ball", "letter", "gift", "key", "apple", "ticket", "card", "flower"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
STEPS = ["one", "two", "three", "four", "five"]
POSITIVE = [
    "great",
    "lovely",
    "wonderful",
    "excellent",
    "delightful",
    "superb",
    "charming",
    "brilliant",
    "pleasant",
    "fantastic",
]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "horrible", "poor", "dull", "nasty", "disappointing", "bland"]
TOPICS = ["food", "service", "movie", "film", "music", "book", "room", "staff", "show", "meal"]
SUBJECTS = [
    ("dog", "dogs"),
    ("cat", "cats"),
    ("key", "keys"),
    ("teacher", "teachers"),
    ("car", "cars"),
    ("bird", "birds"),
    ("child", "children"),
    ("friend", "friends"),
    ("box", "boxes"),
    ("girl", "girls"),
]
DISTRACTORS = [
    ("tree", "trees"),
    ("house", "houses"),
    ("table", "tables"),
    ("river", "rivers"),
    ("man", "men"),
    ("door", "doors"),
    ("wall", "walls"),
    ("lamp", "lamps"),
]
PREPOSITIONS = ["near", "behind", "beside", "under", "above"]
CAPITALS = {
    "france": "paris",
    "spain": "madrid",
    "italy": "rome",
    "germany": "berlin",
    "japan": "tokyo",
    "egypt": "cairo",
    "peru": "lima",
    "kenya": "nairobi",
    "norway": "oslo",
    "greece": "athens",
    "china": "beijing",
    "russia": "moscow",
    "canada": "ottawa",
    "cuba": "havana",
    "chile": "santiago",
    "poland": "warsaw",
    "austria": "vienna",
    "ireland": "dublin",
    "portugal": "lisbon",
    "sweden": "stockholm",
}
#: words used only by the induction task: random sequences of them have no meaning to predict from
FILLER = [
    "red",
    "blue",
    "green",
    "stone",
    "cloud",
    "river",
    "sugar",
    "paper",
    "glass",
    "metal",
    "window",
    "engine",
    "silver",
    "forest",
    "candle",
    "pepper",
    "rocket",
    "tiger",
    "violin",
    "lemon",
    "garlic",
    "marble",
    "planet",
    "shadow",
    "thunder",
    "copper",
    "velvet",
    "island",
    "pillow",
    "hammer",
    "basket",
    "rabbit",
    "orange",
    "mirror",
    "feather",
    "button",
    "ladder",
    "bottle",
    "wagon",
    "circle",
    "arrow",
    "needle",
    "jacket",
    "carpet",
    "spoon",
    "tunnel",
    "barrel",
    "cactus",
    "anchor",
    "puzzle",
    "magnet",
    "parrot",
    "lantern",
    "saddle",
]

TASKS = ("induction", "ioi", "sentiment", "cycles", "agreement", "facts")
#: how often each task is drawn for training: copying needs the most practice to form induction heads
WEIGHTS = (3, 1, 1, 1, 1, 1)


@dataclass(frozen=True)
class Example:
    """A held-out example: ``target`` is the expected next word (or the class, for ``sentiment``)."""

    text: str
    target: str


def _induction(rng: random.Random) -> Example:
    """Random words, then a random sequence repeated two to four times: only copying predicts the repeats.

    The random words before the sequence move it to random positions, so the model cannot learn
    where a repeat starts and must look back at what followed the token's last occurrence.
    """
    words = rng.sample(_pool(), 16)
    before, n, copies = rng.randint(0, 6), rng.randint(5, 10), rng.randint(2, 4)
    seq = words[before : before + n]
    text = words[:before] + seq * copies
    cut = rng.randint(before + n + 1, len(text) - 1)  # somewhere in the repeats, past their first word
    return Example(" ".join(text[:cut]), text[cut])


def _ioi(rng: random.Random) -> Example:
    a, b = rng.sample(NAMES, 2)
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
    template = rng.choice(
        [
            "when {x} and {y} went to the {p} , {s} gave a {o} to",
            "then {x} and {y} had a long day at the {p} . {s} gave the {o} to",
            "after {x} and {y} walked to the {p} , {s} handed a {o} to",
        ]
    )
    return Example(template.format(x=first, y=second, p=place, o=obj, s=b), a)


def _sentiment(rng: random.Random) -> Example:
    label = rng.choice(["positive", "negative"])
    words = POSITIVE if label == "positive" else NEGATIVE
    topics = rng.sample(TOPICS, rng.randint(1, 2))
    parts = [f"the {t} was {rng.choice(words)}" for t in topics]
    return Example("review : " + " and ".join(parts) + " .", label)


def _cycles(rng: random.Random) -> Example:
    step = rng.randrange(len(STEPS))
    cycle, unit = (DAYS, "day") if rng.random() < 0.5 else (MONTHS, "month")
    start = rng.randrange(len(cycle))
    units = unit if step == 0 else unit + "s"
    prefix = rng.choice(
        ["", "so ", "we know that ", "i think ", f"{rng.choice(NAMES)} says ", f"{rng.choice(NAMES)} thinks "]
    )
    text = f"{prefix}{STEPS[step]} {units} after {cycle[start]} is"
    return Example(text, cycle[(start + step + 1) % len(cycle)])


def _agreement(rng: random.Random) -> Example:
    plural = rng.random() < 0.5
    subject = rng.choice(SUBJECTS)[plural]
    distractor = rng.choice(DISTRACTORS)[rng.random() < 0.5]
    past = rng.random() < 0.5
    verb = ("were" if plural else "was") if past else ("are" if plural else "is")
    text = f"{'yesterday' if past else 'today'} the {subject} {rng.choice(PREPOSITIONS)} the {distractor}"
    return Example(text, verb)


def _facts(rng: random.Random) -> Example:
    country = rng.choice(list(CAPITALS))
    name = rng.choice(NAMES)
    prefix = rng.choice(
        [
            "",
            "we know that ",
            "everyone knows ",
            "i read that ",
            f"{name} said that ",
            f"{name} knows that ",
            f"{name} told me that ",
        ]
    )
    return Example(f"{prefix}the capital of {country} is", CAPITALS[country])


GENERATORS: dict[str, Callable[[random.Random], Example]] = {
    "induction": _induction,
    "ioi": _ioi,
    "sentiment": _sentiment,
    "cycles": _cycles,
    "agreement": _agreement,
    "facts": _facts,
}


def is_held_out(text: str) -> bool:
    """One text in ten is never trained on (chosen by a hash of the text)."""
    return zlib.crc32(text.encode()) % 10 == 0


def document(example: Example, task: str) -> str:
    """The training text of an example: the text and its continuation, ended by a full stop."""
    if task == "sentiment":
        return f"{example.text} verdict : {example.target}"
    if task == "induction":
        return example.text  # the repeat itself is the lesson
    return f"{example.text} {example.target} ."


def dataset(task: str, n: int = 100, seed: int = 0) -> list[Example]:
    """``n`` held-out labelled examples of ``task`` (one of :data:`TASKS`), reproducible by ``seed``.

    ``target`` is the expected next word for completion tasks and ``"positive"``/``"negative"``
    for ``sentiment`` (whose text the model continues with ``verdict :`` and the label).
    """
    if task not in GENERATORS:
        raise ValueError(f"unknown task {task!r}; the tasks are {', '.join(TASKS)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    rng = random.Random(f"{task}-{seed}")
    out: list[Example] = []
    seen: set[str] = set()
    for _ in range(n * 1000):
        example = GENERATORS[task](rng)
        if (task == "induction" or is_held_out(example.text)) and example.text not in seen:
            seen.add(example.text)
            out.append(example)
            if len(out) == n:
                return out
    raise ValueError(f"could not find {n} distinct held-out {task} examples; ask for fewer")


def training_example(rng: random.Random) -> tuple[str, Example]:
    """One training example ``(task, example)`` of a random task, never a held-out text."""
    while True:
        task = rng.choices(TASKS, WEIGHTS)[0]
        example = GENERATORS[task](rng)
        if task == "induction" or not is_held_out(example.text):
            return task, example


@functools.cache
def _pool() -> list[str]:
    """The words of random sequences: every word of the vocabulary, so copying is the only way to predict."""
    return [w for w in vocabulary() if w.isalpha()]


def vocabulary() -> list[str]:
    """Every word any task can produce, in a fixed order."""
    words: list[str] = []
    structural = [
        "when",
        "and",
        "went",
        "to",
        "the",
        ",",
        "gave",
        "a",
        "had",
        "long",
        "day",
        "at",
        ".",
        "handed",
        "after",
        "walked",
        "then",
        "review",
        ":",
        "was",
        "verdict",
        "positive",
        "negative",
        "days",
        "day",
        "months",
        "month",
        "after",
        "is",
        "says",
        "we",
        "know",
        "that",
        "so",
        "yesterday",
        "today",
        "were",
        "are",
        "capital",
        "of",
        "said",
        "everyone",
        "knows",
        "i",
        "think",
        "thinks",
        "read",
        "told",
        "me",
    ]
    groups = [
        structural,
        NAMES,
        PLACES,
        OBJECTS,
        DAYS,
        MONTHS,
        STEPS,
        POSITIVE,
        NEGATIVE,
        TOPICS,
        [w for pair in SUBJECTS for w in pair],
        [w for pair in DISTRACTORS for w in pair],
        PREPOSITIONS,
        list(CAPITALS),
        list(CAPITALS.values()),
        FILLER,
    ]
    for group in groups:
        for w in group:
            if w not in words:
                words.append(w)
    return words
