"""Entity resolution on the real Neo4j: a name from text that names an existing node in another
form is that node, types are respected, equal candidates are reported and not merged, KB lines
stay exact, and the lookups are index seeks (``autoglm.graph.resolution``)."""

from __future__ import annotations

import logging

import pytest

from autoglm.contracts import DocumentAction, DocumentFormat, ParsedDocument, Triple
from autoglm.graph.resolution import _FIND, fold_name
from autoglm.graph.store import DocumentRows
from autoglm.graph.writes import typed_key
from services.graph_builder.app import graph_commit

pytestmark = pytest.mark.integration

DELETE = DocumentAction.DOCUMENT_ACTION_DELETE
TEXT = DocumentFormat.DOCUMENT_FORMAT_TEXT
TRIPLES = DocumentFormat.DOCUMENT_FORMAT_TRIPLES


def kb(doc_id: str, lines: list[tuple[str, str, str]]) -> ParsedDocument:
    return ParsedDocument(
        request_id=doc_id,
        document_id=doc_id,
        format=TRIPLES,
        triples=[
            Triple(subject=s, predicate=p, object=o, sentence=-1, confidence=1.0)
            for s, p, o in lines
        ],
    )


def text(doc_id: str, facts: list[tuple[str, str, str, str, str]]) -> ParsedDocument:
    """Facts as the extractor gives them: (subject, subject type, relation, object, object type)."""
    return ParsedDocument(
        request_id=doc_id,
        document_id=doc_id,
        format=TEXT,
        extractor_version="test-extractor",
        triples=[
            Triple(
                subject=s,
                predicate=p,
                object=o,
                sentence=-1,
                confidence=0.8,
                subject_type=st,
                object_type=ot,
            )
            for s, st, p, o, ot in facts
        ],
    )


async def write(store, *documents: ParsedDocument):
    return await store.write_documents([DocumentRows.of(d) for d in documents])


async def edges(store) -> set[tuple[str, str, str]]:
    rows = await store.run_read(
        "MATCH (s:Entity)-[r:REL]->(o:Entity) RETURN s.key AS s, r.type AS p, o.key AS o"
    )
    return {(r["s"], r["p"], r["o"]) for r in rows}


async def nodes(store) -> dict[str, tuple[str, str | None]]:
    rows = await store.run_read(
        "MATCH (e:Entity) RETURN e.key AS key, e.name AS name, e.type AS type"
    )
    return {r["key"]: (r["name"], r["type"]) for r in rows}


async def test_a_name_in_another_form_is_the_existing_kb_node(graph_store):
    await write(
        graph_store,
        kb(
            "kb:1",
            [
                ("The Sorrow and the Pity", "directed_by", "Marcel Ophüls"),
                ("Jacob Bundsgaard", "mayor_of", "Aarhus"),
                ("Aarhus Airport", "city_served", "Aarhus"),
            ],
        ),
    )
    before = await nodes(graph_store)
    summary = await write(
        graph_store,
        text(
            "text:1",
            [
                ("the Sorrow and the Pity", "Film", "release_year", "1969", "Year"),
                ("Sorrow and the Pity", "Film", "directed_by", "Marcel Ophuls", "Person"),
                ("Jacob bundsgaard", "Person", "born_in", "aarhus", "Place"),
                ("Aarhus airport", "Airport", "runway_length", "2702.0", "Number"),
            ],
        ),
    )
    graph = await edges(graph_store)
    # Every form attached its edge to the KB's node; only the year and the length are new.
    assert {
        ("The Sorrow and the Pity", "release_year", "1969"),
        ("The Sorrow and the Pity", "directed_by", "Marcel Ophüls"),
        ("Jacob Bundsgaard", "born_in", "Aarhus"),
        ("Aarhus Airport", "runway_length", "2702.0"),
    } <= graph
    after = await nodes(graph_store)
    assert set(after) - set(before) == {"1969", "2702.0"}
    # The nodes keep the KB's names and take the types the text gave them.
    assert after["The Sorrow and the Pity"] == ("The Sorrow and the Pity", "Film")
    assert after["Marcel Ophüls"] == ("Marcel Ophüls", "Person")
    assert summary.resolved == {"text:1": 6} and summary.ambiguous == {}
    # The evidence and the document's subjects point at the resolved nodes: a delete removes
    # the text's edges from them and leaves the KB's.
    await write(graph_store, ParsedDocument(request_id="d", document_id="text:1", action=DELETE))
    assert await edges(graph_store) == {
        ("The Sorrow and the Pity", "directed_by", "Marcel Ophüls"),
        ("Jacob Bundsgaard", "mayor_of", "Aarhus"),
        ("Aarhus Airport", "city_served", "Aarhus"),
    }


async def test_a_person_never_resolves_to_a_same_name_place(graph_store):
    await write(
        graph_store, text("text:city", [("Paris", "Place", "country", "France", "Country")])
    )
    await write(
        graph_store,
        text(
            "text:person",
            [
                ("Paris", "Person", "born_in", "New York", "Place"),
                ("PARIS", "Person", "occupation", "Model", "Occupation"),
            ],
        ),
    )
    graph = await edges(graph_store)
    person = typed_key("Paris", "Person")
    assert {
        ("Paris", "country", "France"),
        (person, "born_in", "New York"),
        (person, "occupation", "Model"),
    } == graph
    assert (await nodes(graph_store))["Paris"] == ("Paris", "Place")
    # A later mention of the city in another case finds the city, not the person.
    await write(
        graph_store, text("text:city2", [("paris", "Place", "twinned_with", "Rome", "Place")])
    )
    assert ("Paris", "twinned_with", "Rome") in await edges(graph_store)


async def test_equal_candidates_are_reported_not_merged(graph_store, caplog):
    # MetaQA holds "War" the genre and "war" the tag: a KB keeps both, exactly.
    await write(
        graph_store, kb("kb:war", [("Film A", "has_genre", "War"), ("Film B", "has_tags", "war")])
    )
    document = text("text:war", [("Film C", "Film", "has_genre", "WAR", "Genre")])
    rows = DocumentRows.of(document)
    summary = await graph_store.write_documents([rows])
    (ambiguity,) = summary.ambiguous["text:war"]
    assert (ambiguity.mention, ambiguity.type, ambiguity.key) == ("WAR", "Genre", "WAR")
    assert ambiguity.candidates == ("War", "war")
    assert {"War", "war", "WAR"} <= set(await nodes(graph_store))
    assert ("Film C", "has_genre", "WAR") in await edges(graph_store)
    # The commit lists it and the graph-builder logs it.
    with caplog.at_level(logging.INFO, logger="services.graph_builder.app"):
        commit = graph_commit(document, rows, summary)
    (listed,) = commit.ambiguous_mentions
    assert (listed.mention, listed.type, listed.key) == ("WAR", "Genre", "WAR")
    assert list(listed.candidates) == ["War", "war"] and commit.entities_resolved == 0
    assert "ambiguous mention 'WAR' (Genre) in document text:war" in caplog.text


async def test_kb_lines_stay_exact_and_a_batch_resolves_against_itself(graph_store):
    # One batch: a text naming a film in another form, and the KB line that makes the film
    # (after the text in id order: the KB's names are candidates from the start).
    summary = await write(
        graph_store,
        text("a:text", [("the Glass Orchard", "Film", "directed_by", "Mara Okafor", "Person")]),
        kb("b:kb", [("The Glass Orchard", "release_year", "2019")]),
    )
    assert summary.resolved == {"a:text": 1, "b:kb": 0}
    assert await edges(graph_store) == {
        ("The Glass Orchard", "release_year", "2019"),
        ("The Glass Orchard", "directed_by", "Mara Okafor"),
    }
    # The node has the KB's name, not the text's spelling.
    assert (await nodes(graph_store))["The Glass Orchard"] == ("The Glass Orchard", "Film")
    # KB lines are exact: another case is another entity, as MetaQA keys them.
    await write(graph_store, kb("c:kb", [("the glass orchard", "has_tags", "orchard")]))
    assert ("the glass orchard", "has_tags", "orchard") in await edges(graph_store)


async def test_entities_written_before_norm_existed_are_backfilled(graph_store):
    # A graph from before entity resolution: no norm on its nodes.
    await graph_store.run_write(
        "CREATE (:Entity {key: 'Amélie', name: 'Amélie', lookup: 'amélie', label: ''}), "
        "(:Entity {key: 'Aarhus', name: 'Aarhus', lookup: 'aarhus', label: '', "
        "aliases: ['Århus', 'City of Smiles']})"
    )
    await graph_store.ensure_schema()  # the graph-builder's start
    rows = await graph_store.run_read("MATCH (e:Entity) RETURN e.key AS key, e.norm AS norm")
    assert {r["key"]: r["norm"] for r in rows} == {"Amélie": "amelie", "Aarhus": "aarhus"}
    await graph_store.run_write("CALL db.awaitIndexes(60)")
    summary = await write(
        graph_store,
        text(
            "text:amelie",
            [
                ("AMELIE", "Film", "filmed_in", "Århus", "City"),
                ("Amelie", "Film", "nickname_of", "city of smiles!", "City"),
            ],
        ),
    )
    # Accents folded; the aliases (a full-text lookup, checked exactly) name the city.
    assert await edges(graph_store) == {
        ("Amélie", "filmed_in", "Aarhus"),
        ("Amélie", "nickname_of", "Aarhus"),
    }
    assert summary.resolved == {"text:amelie": 4}


async def test_the_lookups_are_index_seeks(graph_store):
    await write(
        graph_store, kb("kb:1", [("The Sorrow and the Pity", "directed_by", "Marcel Ophüls")])
    )
    async with graph_store.driver.session(database=graph_store.database) as session:
        result = await session.run(
            "EXPLAIN " + _FIND, keys=["x"], norms=[fold_name("the Sorrow and the Pity")]
        )
        plan = (await result.consume()).plan

    def operators(node) -> list[str]:
        return [node["operatorType"], *(o for c in node.get("children", []) for o in operators(c))]

    found = [o.split("@")[0] for o in operators(plan)]
    assert "NodeUniqueIndexSeek" in found and "NodeIndexSeek" in found, found
    assert not {"AllNodesScan", "NodeByLabelScan"} & set(found), found
