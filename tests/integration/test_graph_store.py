"""Neo4j writes, linking and retrieval against the real server."""

from __future__ import annotations

import pytest

from autoglm.contracts import Mention, ParsedDocument, Triple
from autoglm.graph.linking import EntityLinker
from autoglm.graph.retrieval import RetrievalCaps, SubgraphRetriever
from autoglm.nlp import normalize_key

pytestmark = pytest.mark.integration


def _document(doc_id: str, triples: list[tuple[str, str, str]]) -> ParsedDocument:
    return ParsedDocument(
        request_id=doc_id,
        document_id=doc_id,
        triples=[Triple(subject=s, predicate=p, object=o, confidence=1.0) for s, p, o in triples],
    )


async def _counts(store) -> tuple[int, int]:
    (row,) = await store.run_read(
        "MATCH (e:Entity) WITH count(e) AS entities "
        "OPTIONAL MATCH ()-[r:REL]->() RETURN entities, count(r) AS relations"
    )
    return row["entities"], row["relations"]


JAWS = [
    ("Jaws", "directed_by", "Steven Spielberg"),
    ("Jaws", "release_year", "1975"),
    ("Jaws", "starred_actors", "Roy Scheider"),
    ("Jurassic Park", "directed_by", "Steven Spielberg"),
]


async def test_rewriting_a_document_changes_nothing(graph_store):
    first = await graph_store.write_document(_document("doc-1", JAWS))
    assert first.changed and first.graph_version >= 1
    counts = await _counts(graph_store)
    assert counts == (5, 4)
    again = await graph_store.write_document(_document("doc-1", JAWS))
    assert not again.changed
    assert again.graph_version == first.graph_version == await graph_store.graph_version()
    assert await _counts(graph_store) == counts
    more = await graph_store.write_document(_document("doc-2", [("Jaws", "has_genre", "Thriller")]))
    assert more.graph_version == first.graph_version + 1


async def test_injection_attempts_are_stored_as_literal_text(graph_store):
    evil = "x'}) MATCH (n) DETACH DELETE n //"
    backticks = '`weird` name" with quotes'
    await graph_store.write_document(_document("doc-evil", [(evil, "rel`) DELETE n", backticks)]))
    rows = await graph_store.run_read(
        "MATCH (s:Entity)-[r:REL]->(o:Entity) RETURN s.name AS s, r.type AS t, o.name AS o"
    )
    assert rows == [{"s": evil, "t": "rel`) DELETE n", "o": backticks}]


async def test_linking_reports_instead_of_guessing(graph_store):
    await graph_store.write_document(_document("doc-1", JAWS))
    linker = EntityLinker(graph_store)
    bracket = Mention(text="jaws", key="jaws", source="bracket")
    report = await linker.link([bracket])
    assert [(a.key, a.name) for a in report.anchors] == [("Jaws", "Jaws")]
    missing = Mention(text="Alien", key="alien", source="bracket")
    report = await linker.link([missing])
    assert not report.anchors and list(report.unlinked_mentions) == ["Alien"]
    # NER mention that is not an exact name: full-text search finds the entity
    ner = Mention(text="Spielberg", key=normalize_key("Spielberg"), source="ner")
    report = await linker.link([ner])
    assert [a.name for a in report.anchors] == ["Steven Spielberg"]


async def test_retrieval_is_bounded_and_directed(graph_store):
    await graph_store.write_document(_document("doc-1", JAWS))
    retriever = SubgraphRetriever(graph_store)
    one_hop = await retriever.retrieve(
        ["Jaws"], RetrievalCaps(hops=1, max_nodes=100, max_edges=100)
    )
    names = [n.name for n in one_hop.nodes]
    assert names[0] == "Jaws" and list(one_hop.anchor_indices) == [0]
    assert set(names) == {"Jaws", "Steven Spielberg", "1975", "Roy Scheider"}
    edges = {
        (one_hop.nodes[s].name, one_hop.relation_types[r], one_hop.nodes[t].name)
        for s, t, r in zip(
            one_hop.edge_source, one_hop.edge_target, one_hop.edge_relation, strict=True
        )
    }
    assert edges == set(JAWS[:3])
    two_hop = await retriever.retrieve(
        ["Jaws"], RetrievalCaps(hops=2, max_nodes=100, max_edges=100)
    )
    assert "Jurassic Park" in {n.name for n in two_hop.nodes} and not two_hop.truncated
    capped = await retriever.retrieve(["Jaws"], RetrievalCaps(hops=2, max_nodes=3, max_edges=100))
    assert len(capped.nodes) == 3 and capped.truncated
