"""Batched writes to the real Neo4j: one transaction per batch, idempotent, literal text."""

from __future__ import annotations

import pytest

from autoglm.contracts import Mention, ParsedDocument, Triple
from autoglm.errors import BadInputError
from autoglm.graph.store import DocumentRows

pytestmark = pytest.mark.integration


def _document(doc_id: str, triples, mentions=()) -> ParsedDocument:
    return ParsedDocument(
        request_id=doc_id,
        document_id=doc_id,
        triples=[Triple(subject=s, predicate=p, object=o, confidence=0.9) for s, p, o in triples],
        entities=[Mention(text=text, label=label) for text, label in mentions],
    )


async def _graph(store) -> tuple[set, set, dict]:
    rows = await store.run_read(
        "MATCH (s:Entity)-[r:REL]->(o:Entity) RETURN s.key AS s, r.type AS p, o.key AS o"
    )
    entities = await store.run_read(
        "MATCH (e:Entity) RETURN e.key AS key, e.name AS name, e.label AS label"
    )
    mentions = await store.run_read(
        "MATCH (d:Document)-[:MENTIONS]->(e:Entity) RETURN d.id AS doc, collect(e.key) AS keys"
    )
    return (
        {(r["s"], r["p"], r["o"]) for r in rows},
        {(e["key"], e["name"], e["label"]) for e in entities},
        {m["doc"]: sorted(m["keys"]) for m in mentions},
    )


BATCH = [
    _document("doc-a", [("Jaws", "directed_by", "Steven Spielberg")], [("Jaws", "WORK_OF_ART")]),
    _document(
        "doc-b", [("Jaws", "release_year", "1975"), ("Jaws", "directed_by", "Steven  Spielberg")]
    ),
    _document("doc-c", [], [("Steven Spielberg", "PERSON"), ("Amity", "GPE")]),
]


async def test_a_batch_is_one_version_and_a_replay_changes_nothing(graph_store):
    before = await graph_store.graph_version()
    summary = await graph_store.write_documents([DocumentRows.of(d) for d in BATCH])
    assert summary.changed and summary.graph_version == before + 1
    assert (summary.graph_entities, summary.graph_relations) == (4, 2)
    triples, entities, mentions = await _graph(graph_store)
    # "Steven  Spielberg" is the same key; doc-c's NER label fills in the label a triple left empty.
    assert triples == {
        ("Jaws", "directed_by", "Steven Spielberg"),
        ("Jaws", "release_year", "1975"),
    }
    assert entities == {
        ("Jaws", "Jaws", "WORK_OF_ART"),
        ("Steven Spielberg", "Steven Spielberg", "PERSON"),
        ("1975", "1975", ""),
        ("Amity", "Amity", "GPE"),
    }
    assert mentions == {"doc-a": ["Jaws"], "doc-c": ["Amity", "Steven Spielberg"]}

    # The same documents again, in other batches and another order: nothing changes.
    for batch in ([BATCH[2]], [BATCH[1], BATCH[0]]):
        again = await graph_store.write_documents([DocumentRows.of(d) for d in batch])
        assert not again.changed and again.graph_version == summary.graph_version
    assert await _graph(graph_store) == (triples, entities, mentions)
    assert await graph_store.graph_version() == summary.graph_version


async def test_names_are_kept_as_written_and_keyed_normalised(graph_store):
    await graph_store.write_document(_document("doc-1", [("8½", "has_tags", "Gen¹³")]))
    _, entities, _ = await _graph(graph_store)
    assert {(key, name) for key, name, _ in entities} == {("81⁄2", "8½"), ("Gen13", "Gen¹³")}


async def test_case_variants_are_distinct_entities(graph_store):
    await graph_store.write_document(
        _document("doc-1", [("Film A", "has_genre", "War"), ("Film B", "has_tags", "war")])
    )
    triples, entities, _ = await _graph(graph_store)
    assert {("Film A", "has_genre", "War"), ("Film B", "has_tags", "war")} == triples
    assert len(entities) == 4


async def test_injection_attempts_are_stored_as_literal_text(graph_store):
    evil = "x'}) MATCH (n) DETACH DELETE n //"
    backticks = '`weird` name" with quotes'
    braces = "$entities} RETURN 1 UNION MATCH (m) SET m.key = 'pwned"
    await graph_store.write_documents(
        [
            DocumentRows.of(_document("doc-evil", [(evil, "rel`) DELETE n", backticks)])),
            DocumentRows.of(_document("doc-2", [(braces, "r'\"", "Jaws")], [(evil, "PERSON")])),
        ]
    )
    triples, entities, mentions = await _graph(graph_store)
    assert triples == {(evil, "rel`) DELETE n", backticks), (braces, "r'\"", "Jaws")}
    assert {name for _, name, _ in entities} == {evil, backticks, braces, "Jaws"}
    assert mentions == {"doc-2": [evil]}


def test_overlong_names_are_bad_input_before_any_write():
    rows = DocumentRows.of(_document("doc-1", [("x" * 1001, "r", "y")]))
    with pytest.raises(BadInputError, match="longer than 1000"):
        rows.check(1000)
    DocumentRows.of(_document("doc-2", [("x" * 1000, "r", "y")])).check(1000)
