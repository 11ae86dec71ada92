"""Movie texts written from the movie KB, to teach the extractor the KB's own relations.

WebNLG has no film category, so nothing in it states ``directed_by`` or ``starred_actors`` in
the words film texts use. These texts are generated from ``kb.txt`` facts with a few templates
per relation, several sentences per film, later sentences referring back with "It", "The film"
or "The movie" — so the extractor also learns to give a fact stated about "it" to the film the
paragraph is about. Seeded: the same KB gives the same texts.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from autoglm.extraction.training import TrainingText

_REFERENCES = ("It", "The film", "The movie")

_OPENINGS = [
    # (template, relations it states); {F} film, {Y} year, {G} genre, {D} director
    ("{F} is a {Y} {g} film directed by {D}.", ("release_year", "has_genre", "directed_by")),
    ("{F} is a {Y} film directed by {D}.", ("release_year", "directed_by")),
    ("{F} is a {g} film directed by {D}.", ("has_genre", "directed_by")),
    ("{F} is a {Y} {g} film.", ("release_year", "has_genre")),
    ("Directed by {D}, {F} was released in {Y}.", ("directed_by", "release_year")),
    ("{D} directed {F}, a {g} film released in {Y}.", ("directed_by", "has_genre", "release_year")),
    ("{F} was directed by {D} and released in {Y}.", ("directed_by", "release_year")),
    ("{F} ({Y}) is a {g} film by director {D}.", ("release_year", "has_genre", "directed_by")),
    (
        "Released in {Y}, {F} is a {g} directed by {D}.",
        ("release_year", "has_genre", "directed_by"),
    ),
    ("{F} is a film released in {Y}.", ("release_year",)),
    ("{F} is a {g} movie from {Y}.", ("has_genre", "release_year")),
]
_FOLLOW_UPS = {
    "written_by": [
        "{R} was written by {W}.",
        "{R} was written by {W} and {W2}.",
        "The screenplay was written by {W}.",
        "{W} wrote the screenplay.",
        "{R} is based on a screenplay by {W}.",
    ],
    "starred_actors": [
        "{R} stars {A}.",
        "{R} stars {A} and {A2}.",
        "{R} stars {A}, {A2} and {A3}.",
        "The cast includes {A} and {A2}.",
        "{A} and {A2} star in it.",
        "{A} plays the lead role.",
        "{R} features {A} in the leading role.",
    ],
    "in_language": [
        "{R} is in {L}.",
        "{R} was made in {L}.",
        "The dialogue is in {L}.",
        "{R} is a {L}-language film.",
    ],
    "directed_by": ["{R} was directed by {D}.", "{D} directed it."],
    "release_year": ["{R} was released in {Y}.", "{R} came out in {Y}."],
    "has_genre": ["{R} is a {g}.", "{R} is considered a {g} film."],
}


def read_kb(path: Path) -> dict[str, dict[str, list[str]]]:
    films: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            fields = line.rstrip("\n").split("|")
            if len(fields) == 3:
                films[fields[0]][fields[1]].append(fields[2])
    return films


def _fill(
    template: str, facts: dict[str, list[str]], reference: str
) -> tuple[str, list[tuple[str, str]]] | None:
    """The sentence and its (relation, object) facts; None when the film lacks a value."""
    slots = {
        "F": ("", "", None),
        "R": ("", "", None),
        "Y": ("release_year", "release_year", 0),
        "g": ("has_genre", "has_genre", 0),
        "D": ("directed_by", "directed_by", 0),
        "W": ("written_by", "written_by", 0),
        "W2": ("written_by", "written_by", 1),
        "A": ("starred_actors", "starred_actors", 0),
        "A2": ("starred_actors", "starred_actors", 1),
        "A3": ("starred_actors", "starred_actors", 2),
        "L": ("in_language", "in_language", 0),
    }
    values: dict[str, str] = {"R": reference}
    stated: list[tuple[str, str]] = []
    for slot, (relation, key, index) in slots.items():
        if "{" + slot + "}" not in template or slot in ("F", "R"):
            continue
        options = facts.get(key, [])
        if index is None or index >= len(options):
            return None
        value = options[index]
        values[slot] = value.lower() if slot == "g" else value
        stated.append((relation, value))
    return template.format(F="{F}", **values), stated


def movie_texts(kb: Path, count: int, seed: int = 7) -> list[TrainingText]:
    films = read_kb(kb)
    rng = random.Random(seed)
    names = sorted(
        f for f, facts in films.items() if "directed_by" in facts or "starred_actors" in facts
    )
    rng.shuffle(names)
    texts: list[TrainingText] = []
    for film in names:
        if len(texts) >= count:
            break
        facts = {k: list(v) for k, v in films[film].items()}
        for values in facts.values():
            rng.shuffle(values)
        sentences: list[str] = []
        triples: list[tuple[str, str, str]] = []
        openings = _OPENINGS[:]
        rng.shuffle(openings)
        opened = None
        for template, _ in openings:
            opened = _fill(template, facts, film)
            if opened:
                break
        if not opened:
            continue
        sentence, stated = opened
        sentences.append(sentence.replace("{F}", film))
        triples += [(film, relation, value) for relation, value in stated]
        done = {relation for relation, _ in stated}
        follow = [r for r in _FOLLOW_UPS if r not in done and r in facts]
        rng.shuffle(follow)
        for relation in follow[: rng.randint(1, 3)]:
            reference = rng.choice((*_REFERENCES, film))
            for template in rng.sample(_FOLLOW_UPS[relation], len(_FOLLOW_UPS[relation])):
                filled = _fill(template, facts, reference)
                if filled:
                    sentences.append(filled[0])
                    triples += [(film, r, value) for r, value in filled[1]]
                    break
        texts.append(
            TrainingText(
                id=f"movies/{len(texts)}",
                text=" ".join(sentences),
                triples=tuple(dict.fromkeys(triples)),
                category="Film (synthetic)",
                group=f"movies/{film}",
            )
        )
    return texts


def relation_names(texts: Iterable[TrainingText]) -> list[str]:
    return sorted({p for t in texts for _, p, _ in t.triples})
