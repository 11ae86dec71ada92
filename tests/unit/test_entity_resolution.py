"""Entity resolution without a graph: folded names, the tiers, types and ambiguity
(``autoglm.graph.resolution``), and which names of a document are resolved at all."""

from __future__ import annotations

import pytest

from autoglm.contracts import DocumentFormat, Mention, ParsedDocument, Triple
from autoglm.graph.resolution import (
    ALIAS,
    CASE,
    EXACT,
    NEW,
    NORMALISED,
    TYPED,
    Name,
    Resolver,
    fold_name,
    typed_key,
)
from autoglm.graph.writes import DocumentRows, EntityRef


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("The Sorrow and the Pity", "the Sorrow and the Pity"),
        ("The Sorrow and the Pity", "Sorrow and the Pity"),
        ("The Sorrow and the Pity", "Sorrow & the Pity!"),
        ("Jacob Bundsgaard", "Jacob bundsgaard"),
        ("Aarhus Airport", "  Aarhus   airport "),
        ("Amélie", "Amelie"),
        ("Ørsted", "Orsted"),
        ("Schindler's List", "Schindler’s List"),
        ("Spider-Man", "spider man"),
        ("St. Louis", "St Louis"),
        ("8½", "81⁄2"),
    ],
)
def test_spellings_of_one_name_fold_alike(a: str, b: str):
    assert fold_name(a) == fold_name(b) != ""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("A Beautiful Mind", "Beautiful Minds"),
        ("3.5", "35"),
        ("Aarhus", "Århus"),  # a different spelling, not a folded one: an alias's job
        ("हिन्दी", "हिन्द"),  # marks of other scripts are letters, not accents
    ],
)
def test_different_names_stay_different(a: str, b: str):
    assert fold_name(a) != fold_name(b)


def test_a_one_word_article_and_punctuation_only_names():
    assert fold_name("The") == "the" and fold_name("A") == "a"
    assert fold_name("!!!") == ""


def name(text: str, entity_type: str = "", fuzzy: bool = True) -> Name:
    key = " ".join(text.split())
    return Name(key, entity_type, text, key.casefold(), fold_name(text), fuzzy)


def graph(*nodes: tuple[str, str]) -> Resolver:
    """A resolver that knows these (name, type) nodes, keyed as the writer keys them."""
    resolver = Resolver()
    for key, entity_type in nodes:
        display = key.split("|")[0]
        resolver.add(key, entity_type, display.casefold(), fold_name(display))
    return resolver


def test_a_name_in_another_form_is_the_existing_node():
    resolver = graph(("The Sorrow and the Pity", ""), ("Jacob Bundsgaard", ""))
    found = resolver.resolve(name("the Sorrow and the Pity", "Film"))
    assert (found.key, found.how, found.ambiguity) == ("The Sorrow and the Pity", CASE, None)
    assert resolver.resolve(name("Sorrow and the Pity", "Film")).how == NORMALISED
    assert resolver.resolve(name("Jacob bundsgaard", "Person")).key == "Jacob Bundsgaard"
    # The untyped KB node took the type of the first typed name resolved to it.
    assert resolver.types["The Sorrow and the Pity"] == "Film"
    assert resolver.resolve(name("The Sorrow and the Pity", "Film")).how == EXACT


def test_types_are_respected():
    resolver = graph(("Paris", "Place"), ("Aarhus Airport", "Airport"))
    person = resolver.resolve(name("Paris", "Person"))
    assert (person.key, person.how) == (typed_key("Paris", "Person"), NEW)
    assert resolver.resolve(name("paris", "Person")).key == typed_key("Paris", "Person")
    assert resolver.resolve(name("PARIS", "Place")).key == "Paris"
    # An untyped name may be any node; another type never matches, in any form.
    assert resolver.resolve(name("Aarhus airport")).key == "Aarhus Airport"
    assert resolver.resolve(name("aarhus airport", "Person")).how == NEW
    # A typed node made before wins over the name.
    assert resolver.resolve(name("Paris", "Person")).how == TYPED


def test_equal_candidates_are_reported_not_merged():
    # MetaQA: "War" the genre and "war" the tag, both untyped.
    resolver = graph(("War", ""), ("war", ""))
    found = resolver.resolve(name("WAR", "Genre"))
    assert found.how == NEW and found.key == "WAR"
    assert found.ambiguity is not None
    assert (found.ambiguity.mention, found.ambiguity.type) == ("WAR", "Genre")
    assert (found.ambiguity.key, found.ambiguity.candidates) == ("WAR", ("War", "war"))
    # The exact name is no ambiguity, and the new node is found next time.
    assert resolver.resolve(name("war", "Genre")).how == EXACT
    assert resolver.resolve(name("WAR", "Genre")).ambiguity is None


def test_a_closer_tier_or_the_own_type_decides():
    # Case-folded beats folded; a node of the name's type beats an untyped one.
    resolver = graph(("The Road", ""), ("Road", ""))
    assert resolver.resolve(name("the road", "Film")).key == "The Road"
    resolver = graph(("Aarhus Airport", ""), ("AARHUS AIRPORT|Airport", "Airport"))
    assert resolver.resolve(name("aarhus airport", "Airport")).key == "AARHUS AIRPORT|Airport"
    # Two untyped nodes and a typed name of a third type: still two equal candidates.
    resolver = graph(("Paris", "Place"), ("Paris|Film", "Film"))
    assert resolver.resolve(name("paris")).ambiguity is not None


def test_names_made_by_the_batch_are_candidates_first_come_first_served():
    resolver = Resolver()
    first = resolver.resolve(name("Aarhus airport", "Airport"))
    assert (first.key, first.how) == ("Aarhus airport", NEW)
    assert resolver.resolve(name("Aarhus Airport", "Airport")).key == "Aarhus airport"


def test_exact_names_never_match_other_forms():
    resolver = graph(("The Sorrow and the Pity", ""))
    assert resolver.resolve(name("the Sorrow and the Pity", "", fuzzy=False)).how == NEW


def test_aliases_are_the_last_tier():
    resolver = graph(("Aarhus", "City"))
    resolver.add_alias(fold_name("Århus"), "Aarhus")
    found = resolver.resolve(name("århus", "City"))
    assert (found.key, found.how) == ("Aarhus", ALIAS)
    assert resolver.resolve(name("Århus", "Person")).how == NEW


def test_which_names_of_a_document_are_resolved():
    triples = [
        Triple(subject="Jaws", predicate="release_year", object="1975", object_literal=True),
        Triple(subject="Jaws", predicate="directed_by", object="Steven Spielberg"),
    ]
    text = DocumentRows.of(
        ParsedDocument(
            document_id="t",
            extractor_version="x-1",
            triples=triples,
            entities=[Mention(text="Amity")],
        )
    )
    assert text.text and not text.exact and text.values == {EntityRef("1975")}
    assert {ref.key: row["norm"] for ref, row in text.entities.items()} == {
        "Amity": "amity",
        "Jaws": "jaws",
        "1975": "1975",
        "Steven Spielberg": "steven spielberg",
    }
    kb = DocumentRows.of(
        ParsedDocument(
            document_id="k", format=DocumentFormat.DOCUMENT_FORMAT_TRIPLES, triples=triples
        )
    )
    assert kb.exact and not kb.text
    # Neither a text format nor an extractor: untyped names are keys (typed ones are resolved).
    plain = DocumentRows.of(ParsedDocument(document_id="p", triples=triples))
    assert not plain.exact and not plain.text
