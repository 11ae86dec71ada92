"""Entity linking of questions against the real Neo4j (exact index, full-text index)."""

from __future__ import annotations

import time

import pytest

from autoglm.contracts import Mention, ParsedDocument, Triple
from autoglm.graph.linking import EntityLinker
from autoglm.nlp import normalize_key

pytestmark = pytest.mark.integration

TRIPLES = [
    ("Jaws", "directed_by", "Steven Spielberg"),
    ("Jaws", "has_tags", "spielberg"),
    ("The Fury", "directed_by", "Brian De Palma"),
    ("Fury", "directed_by", "David Ayer"),
    ("Unforgiven", "starred_actors", "Clint Eastwood"),
    ("Unforgiven", "has_tags", "clint eastwood"),
    ("Unforgiven", "has_genre", "Western"),
    ("Fall", "written_by", "Tarsem Singh"),
    ("Fall", "has_tags", "writers"),
    ("Moulin Rouge!", "directed_by", "Baz Luhrmann"),
    ("Moulin Rouge", "directed_by", "John Huston"),
    ("AC/DC: Let There Be Rock", "directed_by", "Eric Dionysius"),
    ("M*A*S*H", "directed_by", "Robert Altman"),
    ("What's Up, Doc?", "directed_by", "Peter Bogdanovich"),
    ('Say "Cheese"', "directed_by", "Anon Ymous"),
    ("Don't Look Now", "directed_by", "Nicolas Roeg"),
    ("Sleepless in Seattle", "starred_actors", "Tom Hanks"),
    ("Sleepless in Seattle", "starred_actors", "Meg Ryan"),
]


@pytest.fixture
async def linker(graph_store):
    await graph_store.write_document(
        ParsedDocument(
            request_id="linking",
            document_id="linking",
            triples=[
                Triple(subject=s, predicate=p, object=o, confidence=1.0) for s, p, o in TRIPLES
            ],
        )
    )
    return EntityLinker(graph_store)


def ner(text: str, piece: str, label: str = "WORK_OF_ART") -> Mention:
    start = text.index(piece)
    return Mention(
        text=piece,
        label=label,
        start_char=start,
        end_char=start + len(piece),
        key=normalize_key(piece),
        source="ner",
    )


def anchors(report) -> list[str]:
    return [a.key for a in report.anchors]


async def test_exact_names_in_plain_questions(linker):
    assert anchors(await linker.link([], text="who directed Jaws?")) == ["Jaws"]
    assert anchors(await linker.link([], text="who acted in the movie Moulin Rouge!")) == [
        "Moulin Rouge!"
    ]
    assert anchors(await linker.link([], text="Moulin Rouge, who directed it")) == ["Moulin Rouge"]


async def test_ngram_found_without_any_ner_mention(linker):
    report = await linker.link([], text="what genres are the movies directed by the Fury director")
    assert anchors(report) == ["Fury"] and not report.ambiguous_candidates
    report = await linker.link([], text="when was The Fury released")
    assert anchors(report) == ["The Fury"]


async def test_case_variants(linker):
    text = "which films did Clint Eastwood star in"
    assert anchors(await linker.link([ner(text, "Clint Eastwood", "PERSON")], text=text)) == [
        "Clint Eastwood"
    ]
    assert anchors(await linker.link([], text="Which movies are about clint eastwood")) == [
        "clint eastwood"
    ]
    # no capital letter anywhere: the case says nothing, both entities are anchors
    report = await linker.link([], text="what movies are about clint eastwood")
    assert sorted(anchors(report)) == ["Clint Eastwood", "clint eastwood"]
    # a bracketed mention keeps its rule: exact spelling, else every case variant
    bracket = Mention(text="CLINT EASTWOOD", key="CLINT EASTWOOD", source="bracket")
    assert sorted(anchors(await linker.link([bracket], text="about CLINT EASTWOOD"))) == [
        "Clint Eastwood",
        "clint eastwood",
    ]


async def test_ambiguity_is_reported_not_guessed(linker):
    report = await linker.link([], text="the movies that share writers with the movie fall")
    assert not report.anchors
    assert {a.key for a in report.ambiguous_candidates} == {"writers", "Fall"}
    assert {a.mention for a in report.ambiguous_candidates} == {"writers", "fall"}


async def test_several_strong_names_are_all_anchors(linker):
    text = "Which movies star Tom Hanks and Meg Ryan?"
    mentions = [ner(text, "Tom Hanks", "PERSON"), ner(text, "Meg Ryan", "PERSON")]
    assert anchors(await linker.link(mentions, text=text)) == ["Tom Hanks", "Meg Ryan"]


async def test_lucene_special_characters_in_names(linker):
    assert anchors(await linker.link([], text="who directed AC/DC: Let There Be Rock")) == [
        "AC/DC: Let There Be Rock"
    ]
    assert anchors(await linker.link([], text="who directed M*A*S*H?")) == ["M*A*S*H"]
    assert anchors(await linker.link([], text="What's Up, Doc?, when was it released")) == [
        "What's Up, Doc?"
    ]
    # NER mentions with no exact name go to the full-text index, escaped
    for piece in ("AC/DC: Let There", "Let There Be Rock"):
        text = f"who directed {piece}"
        report = await linker.link([ner(text, piece)], text=text)
        assert anchors(report) == ["AC/DC: Let There Be Rock"], piece
    # and so do mentions linked without the question text
    report = await linker.link([Mention(text="M*A*S*H (", key="M*A*S*H (", source="ner")])
    assert anchors(report) == ["M*A*S*H"]


async def test_names_with_quotes(linker):
    assert anchors(await linker.link([], text='who directed Say "Cheese"')) == ['Say "Cheese"']
    assert anchors(await linker.link([], text="who directed Don't Look Now")) == ["Don't Look Now"]
    assert anchors(await linker.link([], text='who wrote "Jaws"?')) == ["Jaws"]
    text = 'who directed Say "Chee'
    report = await linker.link([ner(text, 'Say "Chee')], text=text)
    assert not report.anchors  # a phrase query with an escaped quote, no hit, no error
    assert list(report.unlinked_mentions) == ['Say "Chee']


async def test_fulltext_for_a_partial_name(linker):
    text = "which films did Spielberg direct"
    report = await linker.link([ner(text, "Spielberg", "PERSON")], text=text)
    # "spielberg" the tag is an exact name: it wins over a full-text match of the director
    assert anchors(report) == ["spielberg"]
    text = "which films did Steven S. direct"
    report = await linker.link([ner(text, "Steven", "PERSON")], text=text)
    assert anchors(report) == ["Steven Spielberg"]


async def test_nothing_to_link(linker):
    report = await linker.link([], text="what movies did you like")
    assert not report.anchors and not report.ambiguous_candidates
    text = "who directed Zorblax"
    report = await linker.link([ner(text, "Zorblax", "PERSON")], text=text)
    assert not report.anchors and list(report.unlinked_mentions) == ["Zorblax"]


async def test_hostile_question_is_bounded_and_still_linked(linker):
    """The issue's 997-character question of brackets and short words (~249,000 spans, 12 s of
    CPU before the bounds), with a real name in it: one bounded query, the name found."""
    text = ("who directed Moulin Rouge! " + "([a]) " * 200)[:997]
    started = time.perf_counter()
    report = await linker.link([ner(text, "Moulin Rouge!")], text=text)
    elapsed = time.perf_counter() - started
    assert anchors(report) == ["Moulin Rouge!"]
    assert elapsed < 1.0, f"{elapsed:.2f} s"  # wall clock, Neo4j round trips included
    many = [ner(text, "([a])") for _ in range(500)]  # a forged parsed question's mentions
    started = time.perf_counter()
    await linker.link(many, text=text)
    assert time.perf_counter() - started < 1.0
