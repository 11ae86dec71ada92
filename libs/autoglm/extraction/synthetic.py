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
    (
        "{F} is a {Y} {g} film directed by {D} and written by {W}.",
        ("release_year", "has_genre", "directed_by", "written_by"),
    ),
    ("{F} is a {g} film written and directed by {D}.", ("has_genre", "directed_by")),
    (
        "{F} ({Y}) was directed by {D} from a screenplay by {W}.",
        ("release_year", "directed_by", "written_by"),
    ),
    (
        "{F} is a {Y} {g} film starring {A} and {A2}.",
        ("release_year", "has_genre", "starred_actors"),
    ),
    (
        "{F} is a {Y} film by {D}, starring {A}, {A2} and {A3}.",
        ("release_year", "directed_by", "starred_actors"),
    ),
    ("In {Y}, {D} directed {F}, starring {A}.", ("release_year", "directed_by", "starred_actors")),
    ("{F} is a {Y} {L}-language {g} film.", ("release_year", "in_language", "has_genre")),
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
    "directed_by": [
        "{R} was directed by {D}.",
        "{D} directed it.",
        "{R} is directed by {D} and written by {W}.",
        "{D} directed {R_lower} from a script by {W}.",
    ],
    "release_year": ["{R} was released in {Y}.", "{R} came out in {Y}."],
    "has_genre": ["{R} is a {g}.", "{R} is considered a {g} film."],
}


def _lower_reference(reference: str) -> str:
    return reference.lower() if reference in _REFERENCES else reference


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
    values: dict[str, str] = {"R": reference, "R_lower": _lower_reference(reference)}
    stated: list[tuple[str, str]] = []
    for slot, (relation, key, index) in slots.items():
        if "{" + slot + "}" not in template or slot in ("F", "R", "R_lower"):
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


_BIRTH_PLACES = (
    "Lagos",
    "Lyon",
    "Osaka",
    "Toronto",
    "Buenos Aires",
    "Cork",
    "Kraków",
    "Accra",
    "Perth",
    "Hamburg",
    "Seville",
    "Chennai",
    "Tampere",
    "Leeds",
    "Montreal",
    "Porto",
    "Nairobi",
    "Bergen",
)
_PERSON_TEMPLATES = [
    ("{P} was born in {B} in {Y}.", ("birthPlace", "birthYear")),
    ("{P} was born in {Y} in {B}.", ("birthYear", "birthPlace")),
    ("Born in {B} in {Y}, {P} directed {F}.", ("birthPlace", "birthYear", "directed")),
    ("{P} (born {Y}) is a director from {B}.", ("birthYear", "birthPlace")),
    ("{P}, who was born in {B}, directed {F} in {FY}.", ("birthPlace", "directed", "year")),
]


def person_texts(kb: Path, count: int, seed: int = 11) -> list[TrainingText]:
    """Short biographies of the KB's directors: where and when they were born (invented: the
    KB has no such facts, the sentences teach the pattern) and a film they directed."""
    films = read_kb(kb)
    directed: dict[str, list[str]] = defaultdict(list)
    for film, facts in films.items():
        for person in facts.get("directed_by", []):
            directed[person].append(film)
    rng = random.Random(seed)
    people = sorted(directed)
    rng.shuffle(people)
    texts: list[TrainingText] = []
    for person in people[:count]:
        film = rng.choice(directed[person])
        film_year = (films[film].get("release_year") or [""])[0]
        place, year = rng.choice(_BIRTH_PLACES), str(rng.randint(1900, 1995))
        template, stated = rng.choice(_PERSON_TEMPLATES)
        if "year" in stated and not film_year:
            continue
        text = template.format(P=person, B=place, Y=year, F=film, FY=film_year)
        triples: list[tuple[str, str, str]] = []
        for relation in stated:
            if relation == "birthPlace":
                triples.append((person, "birthPlace", place))
            elif relation == "birthYear":
                triples.append((person, "birthYear", year))
            elif relation == "directed":
                triples.append((film, "directed_by", person))
            elif relation == "year":
                triples.append((film, "release_year", film_year))
        texts.append(
            TrainingText(
                id=f"people/{len(texts)}",
                text=text,
                triples=tuple(triples),
                category="Person (synthetic)",
                group=f"people/{person}",
            )
        )
    return texts


def relation_names(texts: Iterable[TrainingText]) -> list[str]:
    return sorted({p for t in texts for _, p, _ in t.triples})
