"""Provenance and updates on the real Neo4j: every edge from text knows its documents and
sentences, a document can be replaced or deleted, and a redelivery changes nothing.

The documents are graph-builder's input contract (``ParsedDocument`` with provenance fields),
fed to the store the way its consumer does.
"""

from __future__ import annotations

import pytest

from autoglm.contracts import (
    DocumentAction,
    DocumentFormat,
    Mention,
    ParsedDocument,
    Sentence,
    Triple,
)
from autoglm.graph.evidence import attach_evidence
from autoglm.graph.retrieval import Neo4jGraphAccess, RetrievalCaps, SubgraphRetriever
from autoglm.graph.store import DocumentRows
from autoglm.graph.writes import typed_key

pytestmark = pytest.mark.integration

UPSERT = DocumentAction.DOCUMENT_ACTION_UPSERT
DELETE = DocumentAction.DOCUMENT_ACTION_DELETE
EXTRACTOR = "test-extractor-1"

TEXT_V1 = (
    "The Glass Orchard is a 2019 drama film directed by Mara Okafor. "
    "It stars Helena Voss. Mara Okafor was born in Lagos."
)
TEXT_V2 = "The Glass Orchard is a 2019 drama film directed by Mara Okafor. It stars Ada Lindqvist."


def _sentences(text: str) -> list[Sentence]:
    out, start = [], 0
    for part in text.split(". "):
        part = part if part.endswith(".") else part + "."
        begin = text.index(part, start)
        out.append(Sentence(text=part, start_char=begin, end_char=begin + len(part)))
        start = begin + len(part)
    return out


def _fact(text, sentences, sentence, s, p, o, evidence, **extra) -> Triple:
    start = text.index(evidence)
    return Triple(
        subject=s,
        predicate=p,
        object=o,
        sentence=sentence,
        confidence=extra.pop("confidence", 0.8),
        start_char=start,
        end_char=start + len(evidence),
        **extra,
    )


def text_v1(doc_id: str = "text:glass.txt") -> ParsedDocument:
    sentences = _sentences(TEXT_V1)
    return ParsedDocument(
        request_id=f"{doc_id}:v1",
        document_id=doc_id,
        format=DocumentFormat.DOCUMENT_FORMAT_TEXT,
        action=UPSERT,
        extractor_version=EXTRACTOR,
        sentences=sentences,
        entities=[Mention(text="Mara Okafor", label="PERSON")],
        triples=[
            _fact(
                TEXT_V1,
                sentences,
                0,
                "The Glass Orchard",
                "directed_by",
                "Mara Okafor",
                "directed by Mara Okafor",
                subject_type="Film",
                object_type="Person",
            ),
            _fact(
                TEXT_V1,
                sentences,
                0,
                "The Glass Orchard",
                "release_year",
                "2019",
                "2019",
                subject_type="Film",
                object_type="Year",
                object_literal=True,
                confidence=0.9,
            ),
            _fact(
                TEXT_V1,
                sentences,
                1,
                "The Glass Orchard",
                "starred_actors",
                "Helena Voss",
                "stars Helena Voss",
                subject_type="Film",
                object_type="Person",
            ),
            _fact(
                TEXT_V1,
                sentences,
                2,
                "Mara Okafor",
                "born_in",
                "Lagos",
                "born in Lagos",
                subject_type="Person",
                object_type="Place",
            ),
            _fact(
                TEXT_V1,
                sentences,
                0,
                "The Glass Orchard",
                "is_a",
                "drama film",
                "drama film",
                open=True,
            ),
        ],
    )


def text_v2(doc_id: str = "text:glass.txt") -> ParsedDocument:
    sentences = _sentences(TEXT_V2)
    return ParsedDocument(
        request_id=f"{doc_id}:v2",
        document_id=doc_id,
        format=DocumentFormat.DOCUMENT_FORMAT_TEXT,
        action=UPSERT,
        extractor_version=EXTRACTOR,
        sentences=sentences,
        triples=[
            _fact(
                TEXT_V2,
                sentences,
                0,
                "The Glass Orchard",
                "directed_by",
                "Mara Okafor",
                "directed by Mara Okafor",
                subject_type="Film",
                object_type="Person",
            ),
            _fact(
                TEXT_V2,
                sentences,
                1,
                "The Glass Orchard",
                "starred_actors",
                "Ada Lindqvist",
                "stars Ada Lindqvist",
                subject_type="Film",
                object_type="Person",
            ),
        ],
    )


def kb(doc_id: str, lines: list[tuple[str, str, str]]) -> ParsedDocument:
    return ParsedDocument(
        request_id=doc_id,
        document_id=doc_id,
        format=DocumentFormat.DOCUMENT_FORMAT_TRIPLES,
        triples=[
            Triple(subject=s, predicate=p, object=o, sentence=-1, confidence=1.0)
            for s, p, o in lines
        ],
    )


def delete(doc_id: str) -> ParsedDocument:
    return ParsedDocument(request_id=f"{doc_id}:delete", document_id=doc_id, action=DELETE)


async def write(store, *documents: ParsedDocument):
    return await store.write_documents([DocumentRows.of(d) for d in documents])


async def edges(store, rel: str = "REL") -> dict[tuple[str, str, str], list[str]]:
    rows = await store.run_read(
        f"MATCH (s:Entity)-[r:{rel}]->(o:Entity) "
        "RETURN s.key AS s, r.type AS p, o.key AS o, "
        "COLLECT { MATCH (d:Document) WHERE d.ref IN r.sources RETURN d.id } AS sources"
    )
    return {(r["s"], r["p"], r["o"]): sorted(r["sources"]) for r in rows}


async def entity_keys(store) -> set[str]:
    return {r["key"] for r in await store.run_read("MATCH (e:Entity) RETURN e.key AS key")}


async def counts(store) -> dict[str, int]:
    (row,) = await store.run_read(
        "RETURN COUNT { (:Sentence) } AS sentences, COUNT { ()-[:SUPPORTS]->() } AS supports, "
        "COUNT { (:Document) } AS documents, COUNT { ()-[:MENTIONS]->() } AS mentions"
    )
    return row


async def test_edges_from_text_carry_their_provenance(graph_store):
    summary = await write(graph_store, text_v1())
    assert summary.changed and summary.triples == 5
    assert await edges(graph_store) == {
        ("The Glass Orchard", "directed_by", "Mara Okafor"): ["text:glass.txt"],
        ("The Glass Orchard", "release_year", "2019"): ["text:glass.txt"],
        ("The Glass Orchard", "starred_actors", "Helena Voss"): ["text:glass.txt"],
        ("Mara Okafor", "born_in", "Lagos"): ["text:glass.txt"],
    }
    rows = await graph_store.run_read(
        "MATCH (d:Document {id: 'text:glass.txt'})-[:HAS_SENTENCE]->(s:Sentence)"
        "-[x:SUPPORTS]->(e:Entity) "
        "RETURN e.key AS subject, x.type AS relation, x.object AS object, s.index AS sentence, "
        "s.text AS text, x.start_char AS start, x.end_char AS end, "
        "x.extractor_version AS extractor, x.confidence AS confidence, x.open AS open"
    )
    evidence = {(r["subject"], r["relation"], r["object"]): r for r in rows}
    assert len(evidence) == 5
    born = evidence[("Mara Okafor", "born_in", "Lagos")]
    assert born["sentence"] == 2 and born["text"] == "Mara Okafor was born in Lagos."
    assert TEXT_V1[born["start"] : born["end"]] == "born in Lagos"
    assert (born["extractor"], round(born["confidence"], 2), born["open"]) == (
        EXTRACTOR,
        0.8,
        False,
    )
    year = evidence[("The Glass Orchard", "release_year", "2019")]
    assert TEXT_V1[year["start"] : year["end"]] == "2019" and round(year["confidence"], 2) == 0.9
    # Typed entities keep their type; the open relation is stored, apart from REL.
    types = await graph_store.run_read(
        "MATCH (e:Entity) WHERE e.key IN ['The Glass Orchard', 'Mara Okafor', 'Lagos'] "
        "RETURN e.key AS key, e.type AS type, e.label AS label"
    )
    assert {(r["key"], r["type"], r["label"]) for r in types} == {
        ("The Glass Orchard", "Film", ""),
        ("Mara Okafor", "Person", "PERSON"),
        ("Lagos", "Place", ""),
    }
    assert await edges(graph_store, "OPEN_REL") == {
        ("The Glass Orchard", "is_a", "drama film"): ["text:glass.txt"]
    }
    (document,) = await graph_store.run_read(
        "MATCH (d:Document {id: 'text:glass.txt'}) RETURN d.extractor_version AS extractor, "
        "d.subjects AS subjects, d.content_hash AS hash"
    )
    assert document["extractor"] == EXTRACTOR and document["hash"]
    assert document["subjects"] == ["Mara Okafor", "The Glass Orchard"]


async def test_a_fact_from_text_and_from_a_kb_is_one_edge_with_two_sources(graph_store):
    await write(
        graph_store, kb("kb:films:1", [("The Glass Orchard", "directed_by", "Mara Okafor")])
    )
    await write(graph_store, text_v1())
    graph = await edges(graph_store)
    assert graph[("The Glass Orchard", "directed_by", "Mara Okafor")] == [
        "kb:films:1",
        "text:glass.txt",
    ]
    assert len([e for e in graph if e[1] == "directed_by"]) == 1
    (edge,) = await graph_store.run_read(
        "MATCH (:Entity {key: 'The Glass Orchard'})-[r:REL {type: 'directed_by'}]->() "
        "RETURN r.confidence AS confidence, r.confidences AS confidences"
    )
    assert edge["confidence"] == 1.0 and sorted(edge["confidences"]) == [800, 1000]


async def test_reingesting_a_document_replaces_its_facts(graph_store):
    await write(
        graph_store, kb("kb:films:1", [("The Glass Orchard", "directed_by", "Mara Okafor")])
    )
    first = await write(graph_store, text_v1())
    second = await write(graph_store, text_v2())
    assert second.changed and second.graph_version == first.graph_version + 1
    # Helena Voss, Lagos, the year and the open relation were only in v1: gone, with their
    # entities. The director stays (v2 says it again, and the KB says it).
    assert second.triples_removed == {"text:glass.txt": 4}
    assert await edges(graph_store) == {
        ("The Glass Orchard", "directed_by", "Mara Okafor"): ["kb:films:1", "text:glass.txt"],
        ("The Glass Orchard", "starred_actors", "Ada Lindqvist"): ["text:glass.txt"],
    }
    assert await edges(graph_store, "OPEN_REL") == {}
    assert await entity_keys(graph_store) == {"The Glass Orchard", "Mara Okafor", "Ada Lindqvist"}
    # Evidence is v2's only: two sentences, two supports, no mention left from v1.
    assert await counts(graph_store) == {
        "sentences": 2,
        "supports": 2,
        "documents": 2,
        "mentions": 0,
    }
    texts = await graph_store.run_read("MATCH (s:Sentence) RETURN s.text AS text ORDER BY text")
    assert [r["text"] for r in texts] == ["It stars Ada Lindqvist.", TEXT_V2.split(". ")[0] + "."]


async def test_delete_keeps_what_other_sources_support(graph_store):
    await write(
        graph_store, kb("kb:films:1", [("The Glass Orchard", "directed_by", "Mara Okafor")])
    )
    await write(graph_store, text_v1())
    before = await graph_store.graph_version()
    summary = await write(graph_store, delete("text:glass.txt"))
    assert summary.changed and summary.graph_version == before + 1
    assert summary.triples_removed == {"text:glass.txt": 4}
    assert await edges(graph_store) == {
        ("The Glass Orchard", "directed_by", "Mara Okafor"): ["kb:films:1"]
    }
    assert await edges(graph_store, "OPEN_REL") == {}
    assert await entity_keys(graph_store) == {"The Glass Orchard", "Mara Okafor"}
    assert await counts(graph_store) == {
        "sentences": 0,
        "supports": 0,
        "documents": 1,
        "mentions": 0,
    }
    (edge,) = await graph_store.run_read(
        "MATCH ()-[r:REL {type: 'directed_by'}]->() RETURN r.confidences AS c, r.confidence AS m"
    )
    assert edge == {"c": [1000], "m": 1.0}

    # Deleting the KB document too leaves nothing behind.
    gone = await write(graph_store, delete("kb:films:1"))
    assert gone.triples_removed == {"kb:films:1": 1}
    assert await edges(graph_store) == {} and await entity_keys(graph_store) == set()


async def test_redelivered_upserts_and_deletes_change_nothing(graph_store):
    first = await write(graph_store, text_v1())
    again = await write(graph_store, text_v1())
    assert not again.changed and again.graph_version == first.graph_version
    assert again.unchanged == {"text:glass.txt"} and again.triples_removed == {}
    snapshot = (await edges(graph_store), await entity_keys(graph_store), await counts(graph_store))

    removed = await write(graph_store, delete("text:glass.txt"))
    assert removed.changed and removed.graph_version == first.graph_version + 1
    for _ in range(2):
        redelivered = await write(graph_store, delete("text:glass.txt"))
        assert not redelivered.changed and redelivered.graph_version == removed.graph_version
        assert redelivered.triples_removed == {} and redelivered.unchanged == {"text:glass.txt"}
    assert await edges(graph_store) == {} and await entity_keys(graph_store) == set()

    # Ingested again after the delete: the same graph as the first time.
    await write(graph_store, text_v1())
    assert (
        await edges(graph_store),
        await entity_keys(graph_store),
        await counts(graph_store),
    ) == snapshot


async def test_messages_of_one_document_in_one_batch_leave_the_last_state(graph_store):
    summary = await write(graph_store, text_v1(), text_v2())
    assert summary.changed and summary.triples_removed == {}
    assert set(await edges(graph_store)) == {
        ("The Glass Orchard", "directed_by", "Mara Okafor"),
        ("The Glass Orchard", "starred_actors", "Ada Lindqvist"),
    }
    await write(graph_store, text_v1(), delete("text:glass.txt"))
    assert await edges(graph_store) == {} and await entity_keys(graph_store) == set()


async def test_same_name_entities_of_different_types_stay_apart(graph_store):
    # A KB entity (no type, keyed by name) meets a typed text entity of the same name.
    await write(graph_store, kb("kb:places", [("Paris", "located_in", "France")]))
    doc = ParsedDocument(
        request_id="r",
        document_id="text:paris.txt",
        triples=[
            Triple(
                subject="Paris",
                predicate="located_in",
                object="France",
                sentence=-1,
                subject_type="Place",
                object_type="Place",
                confidence=0.7,
            ),
            Triple(
                subject="Paris",
                predicate="starred_actors",
                object="Paris Hilton",
                sentence=-1,
                subject_type="Film",
                object_type="Person",
                confidence=0.7,
            ),
            Triple(
                subject="Paris Hilton",
                predicate="born_in",
                object="New York",
                sentence=-1,
                subject_type="Person",
                object_type="Place",
                confidence=0.7,
            ),
        ],
    )
    await write(graph_store, doc)
    graph = await edges(graph_store)
    # The city is the KB's node (now typed Place); the film is another node.
    assert graph[("Paris", "located_in", "France")] == ["kb:places", "text:paris.txt"]
    film = typed_key("Paris", "Film")
    assert graph[(film, "starred_actors", "Paris Hilton")] == ["text:paris.txt"]
    rows = await graph_store.run_read(
        "MATCH (e:Entity) WHERE e.lookup = 'paris' RETURN e.key AS key, e.name AS name, "
        "e.type AS type ORDER BY key"
    )
    assert rows == [
        {"key": "Paris", "name": "Paris", "type": "Place"},
        {"key": film, "name": "Paris", "type": "Film"},
    ]
    # A later mention of the film finds its typed node; a resolved key is used as it is.
    later = ParsedDocument(
        request_id="r2",
        document_id="text:later.txt",
        triples=[
            Triple(
                subject="Paris",
                predicate="release_year",
                object="2003",
                sentence=-1,
                subject_type="Film",
                object_type="Year",
                confidence=0.7,
            ),
            Triple(
                subject="the French capital",
                predicate="has_tags",
                object="capital",
                sentence=-1,
                subject_key="Paris",
                subject_type="Place",
                confidence=0.7,
            ),
        ],
    )
    await write(graph_store, later)
    graph = await edges(graph_store)
    assert (film, "release_year", "2003") in graph and ("Paris", "has_tags", "capital") in graph
    assert len(await graph_store.run_read("MATCH (e:Entity {lookup: 'paris'}) RETURN e")) == 2


async def test_open_relations_stay_out_of_retrieval_unless_asked_for(graph_store):
    await write(graph_store, text_v1())
    caps = RetrievalCaps(hops=1, max_nodes=100, max_edges=100)

    def relations(subgraph) -> set[str]:
        return {subgraph.relation_types[r] for r in subgraph.edge_relation}

    default = await SubgraphRetriever(graph_store).retrieve(["The Glass Orchard"], caps)
    assert relations(default) == {"directed_by", "release_year", "starred_actors"}
    asked = await SubgraphRetriever(Neo4jGraphAccess(graph_store, include_open=True)).retrieve(
        ["The Glass Orchard"], caps
    )
    assert relations(asked) == {"directed_by", "release_year", "starred_actors", "is_a"}


async def test_retrieved_subgraphs_carry_the_evidence_of_text_edges(graph_store):
    await write(graph_store, kb("kb:films:1", [("The Glass Orchard", "has_genre", "Drama")]))
    await write(graph_store, text_v1())
    subgraph = await SubgraphRetriever(graph_store).retrieve(
        ["The Glass Orchard"], RetrievalCaps(hops=1, max_nodes=100, max_edges=100)
    )
    await attach_evidence(graph_store, [subgraph], per_edge=3)
    by_relation = {
        subgraph.relation_types[subgraph.edge_relation[e.edge]]: list(e.evidence)
        for e in subgraph.edge_evidence
    }
    # The KB edge has no evidence; each text edge has its sentence.
    assert set(by_relation) == {"directed_by", "release_year", "starred_actors"}
    (directed,) = by_relation["directed_by"]
    assert directed.document_id == "text:glass.txt" and directed.sentence == 0
    assert directed.text.startswith("The Glass Orchard is a 2019 drama film")
    assert TEXT_V1[directed.start_char : directed.end_char] == "directed by Mara Okafor"
    assert directed.extractor_version == EXTRACTOR
    assert directed.confidence == pytest.approx(0.8)
    # A KB-only graph: no evidence, and nothing else is touched.
    await write(graph_store, delete("text:glass.txt"))
    kb_only = await SubgraphRetriever(graph_store).retrieve(
        ["The Glass Orchard"], RetrievalCaps(hops=1, max_nodes=100, max_edges=100)
    )
    await attach_evidence(graph_store, [kb_only], per_edge=3)
    assert len(kb_only.edge_source) == 1 and not kb_only.edge_evidence
