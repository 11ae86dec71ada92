"""How graph-builder groups a batch of parsed documents into Neo4j transactions."""

from __future__ import annotations

import pytest

from autoglm.contracts import ParsedDocument, Triple
from autoglm.graph.store import DocumentRows
from autoglm.graph.writes import EntityRef
from services.graph_builder.app import transactions


def _rows(doc_id: str, triples: int) -> DocumentRows:
    return DocumentRows.of(
        ParsedDocument(
            document_id=doc_id,
            triples=[Triple(subject=f"s{i}", predicate="r", object="o") for i in range(triples)],
        )
    )


def test_transactions_hold_whole_documents_up_to_the_triple_budget():
    batch = list(enumerate([_rows("a", 4), _rows("b", 5), _rows("c", 2), _rows("d", 12)]))
    groups = [[rows.document_id for _, rows in group] for group in transactions(batch, 10)]
    # "d" alone is over the budget: a document is never split.
    assert groups == [["a", "b"], ["c"], ["d"]]
    assert list(transactions([], 10)) == []


def test_document_rows_deduplicate_and_keep_the_best_confidence():
    rows = DocumentRows.of(
        ParsedDocument(
            document_id="d",
            triples=[
                Triple(subject="A ", predicate="r", object="B", confidence=0.5),
                Triple(subject="A", predicate="r", object=" B", confidence=0.9),
                Triple(subject="A", predicate=" ", object="B", confidence=1.0),
            ],
        )
    )
    a, b = EntityRef("A"), EntityRef("B")
    assert list(rows.triples) == [(a, "r", b, False)]
    assert rows.triples[a, "r", b, False] == pytest.approx(0.9)
    assert sorted(rows.entities) == [a, b]
