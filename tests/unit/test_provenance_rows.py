"""The pure parts of provenance writes: rows of a parsed document, typed keys, batch reduction;
the parser's side of deletes and evidence spans."""

from __future__ import annotations

import pytest

from autoglm.contracts import (
    Document,
    DocumentAction,
    ParsedDocument,
    Sentence,
    Subgraph,
    Triple,
)
from autoglm.errors import BadInputError
from autoglm.extraction.types import ExtractedTriple
from autoglm.graph.resolution import Name, Resolver
from autoglm.graph.writes import (
    DocumentRows,
    EntityRef,
    EvidenceRow,
    document_ref,
    last_per_document,
    thousandths,
    typed_key,
)
from autoglm.models.base import path_edge
from autoglm.nlp.messages import (
    extracted_triples,
    parse_document_batch,
    with_sentence_spans,
)
from autoglm.settings import Settings

DELETE = DocumentAction.DOCUMENT_ACTION_DELETE
UPSERT = DocumentAction.DOCUMENT_ACTION_UPSERT


def _text_document(**triple_fields) -> ParsedDocument:
    return ParsedDocument(
        document_id="d",
        extractor_version="x-1",
        sentences=[Sentence(text="Ann directed Film A.", start_char=10, end_char=30)],
        triples=[
            Triple(
                subject="Film A", predicate="directed_by", object="Ann", sentence=0, **triple_fields
            )
        ],
    )


def test_rows_keep_types_evidence_and_the_sentence():
    rows = DocumentRows.of(
        _text_document(
            confidence=0.75, start_char=10, end_char=22, subject_type="Film", object_type="Person"
        )
    )
    film, ann = EntityRef("Film A", "Film"), EntityRef("Ann", "Person")
    edge = (film, "directed_by", ann, False)
    assert rows.triples == {edge: 0.75}
    assert rows.evidence == {edge: {EvidenceRow(0, 10, 22, 0.75)}}
    assert rows.sentences == {
        0: {"index": 0, "text": "Ann directed Film A.", "start_char": 10, "end_char": 30}
    }
    assert film.needs_resolution and rows.action == UPSERT and rows.extractor_version == "x-1"


def test_without_a_span_the_sentence_is_the_evidence_and_a_resolved_key_is_kept():
    rows = DocumentRows.of(_text_document(confidence=0.5, subject_key="Film A (2001)"))
    (edge,) = rows.evidence
    assert edge[0] == EntityRef("Film A (2001)", "", resolved=True)
    assert rows.evidence[edge] == {EvidenceRow(0, 10, 30, 0.5)}
    assert not edge[0].needs_resolution


def test_the_fingerprint_follows_what_is_written_not_the_request():
    one = DocumentRows.of(_text_document(confidence=0.5))
    same = _text_document(confidence=0.5)
    same.request_id, same.source = "another request", "another/path.txt"
    other = DocumentRows.of(_text_document(confidence=0.6))
    assert one.content_hash == DocumentRows.of(same).content_hash != other.content_hash


def test_a_delete_writes_nothing_and_unknown_actions_are_bad_input():
    rows = DocumentRows.of(ParsedDocument(document_id="d", action=DELETE))
    assert rows.action == DELETE and not rows.triples and not rows.entities
    weird = DocumentRows.of(ParsedDocument(document_id="d"))
    weird.action = 7  # type: ignore[assignment]
    with pytest.raises(BadInputError, match="unknown document action") as raised:
        weird.check(100)
    assert raised.value.error_type == "invalid_field"


def resolve_keys(refs: list[EntityRef], existing: dict[str, str]) -> dict[EntityRef, str]:
    """The key chosen for each typed name, exact (as for KB lines), first come first served."""
    resolver = Resolver()
    for key, entity_type in existing.items():
        resolver.add(key, entity_type)
    return {
        ref: resolver.resolve(Name(ref.key, ref.type, ref.key, ref.key.casefold(), "", False)).key
        for ref in dict.fromkeys(refs)
    }


def test_typed_keys_share_a_name_only_with_the_same_or_no_type():
    existing = {"Paris": "", "Lagos": "Place"}
    refs = [
        EntityRef("Paris", "Place"),  # the KB's untyped Paris: becomes the city
        EntityRef("Paris", "Film"),  # the name is taken by a Place now
        EntityRef("Lagos", "Place"),
        EntityRef("Lagos", "Film"),
        EntityRef("Northern Salt", "Film"),  # free name
        EntityRef("Paris", "Film"),  # the same film again
    ]
    assert resolve_keys(refs, existing) == {
        EntityRef("Paris", "Place"): "Paris",
        EntityRef("Paris", "Film"): typed_key("Paris", "Film"),
        EntityRef("Lagos", "Place"): "Lagos",
        EntityRef("Lagos", "Film"): typed_key("Lagos", "Film"),
        EntityRef("Northern Salt", "Film"): "Northern Salt",
    }
    # A typed node made before wins over the name.
    assert resolve_keys([EntityRef("Paris", "Film")], {"Paris": "Place", "Paris|Film": "Film"}) == {
        EntityRef("Paris", "Film"): "Paris|Film"
    }


def test_a_batch_reduces_to_the_last_message_of_each_document():
    first = DocumentRows.of(
        ParsedDocument(document_id="b", triples=[Triple(subject="x", predicate="r", object="y")])
    )
    other = DocumentRows.of(ParsedDocument(document_id="a"))
    last = DocumentRows.of(ParsedDocument(document_id="b", action=DELETE))
    assert last_per_document([first, other, last]) == [other, last]


def test_the_parser_passes_deletes_without_text_and_spans_text_triples(text_parser):
    settings = Settings()
    results = parse_document_batch(
        text_parser,
        [
            Document(request_id="r1", document_id="text:a.txt", action=DELETE),
            Document(request_id="r2", action=DELETE),
            Document(
                request_id="r3", document_id="t", text="Stanley Kubrick directed The Shining."
            ),
        ],
        settings,
    )
    deleted, missing, parsed = results
    assert isinstance(deleted, ParsedDocument) and deleted.action == DELETE
    assert deleted.document_id == "text:a.txt" and not deleted.triples
    assert getattr(missing, "error_type", "") == "missing_field"
    assert isinstance(parsed, ParsedDocument) and parsed.action == UPSERT
    assert parsed.extractor_version and parsed.triples
    for triple in parsed.triples:
        sentence = parsed.sentences[triple.sentence]
        assert (triple.start_char, triple.end_char) == (sentence.start_char, sentence.end_char)


def test_extracted_triples_keep_their_provenance():
    (triple,) = extracted_triples(
        [
            ExtractedTriple(
                "Mara Okafor", "birth_year", "1981", 2, 40, 60, 0.7, "Person", "Year", False, True
            )
        ]
    )
    assert (triple.subject, triple.predicate, triple.object, triple.sentence) == (
        "Mara Okafor",
        "birth_year",
        "1981",
        2,
    )
    assert (triple.start_char, triple.end_char, triple.object_literal) == (40, 60, True)
    assert (triple.subject_type, triple.object_type, triple.open) == ("Person", "Year", False)
    spanned = ParsedDocument(
        sentences=[Sentence(text="s", start_char=3, end_char=9)],
        triples=[
            Triple(sentence=0),
            Triple(sentence=0, start_char=4, end_char=6),
            Triple(sentence=-1),
        ],
    )
    with_sentence_spans(spanned)
    assert [(t.start_char, t.end_char) for t in spanned.triples] == [(3, 9), (4, 6), (0, 0)]


def test_path_edges_carry_the_evidence_of_their_subgraph_edge():
    subgraph = Subgraph()
    subgraph.nodes.add(key="a", name="A")
    subgraph.nodes.add(key="b", name="B")
    subgraph.edge_source.extend([0, 1])
    subgraph.edge_target.extend([1, 0])
    subgraph.edge_relation.extend([0, 0])
    subgraph.relation_types.append("r")
    subgraph.edge_evidence.add(edge=1).evidence.add(document_id="doc", text="B r A.")
    assert not path_edge(subgraph, 0, 0.5).evidence
    edge = path_edge(subgraph, 1, 0.5)
    assert (edge.source_key, edge.relation, edge.target_key, edge.weight) == ("b", "r", "a", 0.5)
    assert [(e.document_id, e.text) for e in edge.evidence] == [("doc", "B r A.")]


def test_document_refs_are_stable_positive_62_bit_numbers():
    refs = {document_ref(f"kb:kb.txt:{n}") for n in range(10_000)}
    assert len(refs) == 10_000 and all(0 < r < 2**62 for r in refs)
    assert document_ref("text:a.txt") == document_ref("text:a.txt") != document_ref("text:b.txt")
    assert [thousandths(c) for c in (0.0, 0.8, 0.8999999761581421, 1.0, 1.7)] == [
        0,
        800,
        900,
        1000,
        1000,
    ]
