"""graph-builder service.

parsed-documents -> Neo4j (+ graph-commits); parsed-questions -> reasoning-inputs.

Parsed documents are consumed in batches and written with one transaction per batch (split when
it holds more triples than ``graph_write_max_triples``): a KB of 100k triples is a few dozen
transactions instead of hundreds. A parsed document with the id of one already written replaces
it, and one with the action DELETE removes its contribution (``autoglm.graph.writes``); the commit
says how many edges went with it (``triples_removed``). Names from text are resolved against the
graph in the same transaction (``autoglm.graph.resolution``); a name that several nodes match
equally is written as its own node, logged, and listed in the commit (``ambiguous_mentions``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from pydantic import Field

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.bus.service import Incoming, ItemResult, Outgoing, ServiceRuntime
from autoglm.contracts import (
    SCHEMA_VERSION,
    AmbiguousMention,
    GraphCommit,
    ParsedDocument,
    ParsedQuestion,
)
from autoglm.errors import BadInputError
from autoglm.graph.questions import QuestionGrounder
from autoglm.graph.store import DocumentRows, GraphStore, WriteSummary
from autoglm.settings import Settings

SERVICE = "graph-builder"

log = logging.getLogger(__name__)


class GraphBuilderSettings(Settings):
    graph_batch_size: int = Field(
        64, ge=1, description="Most parsed documents one poll brings into a write batch."
    )
    question_batch_size: int = Field(
        32,
        ge=1,
        description="Most parsed questions grounded together (one encoder call for their "
        "scoring texts, linking and retrieval concurrent).",
    )
    graph_write_max_triples: int = Field(
        10_000,
        ge=1,
        description="Most triples per Neo4j transaction; a batch with more is split (a document "
        "is never split).",
    )


def transactions(
    batch: Sequence[tuple[int, DocumentRows]], max_triples: int
) -> Iterator[list[tuple[int, DocumentRows]]]:
    """Consecutive groups of documents of at most ``max_triples`` triples (or one document)."""
    group: list[tuple[int, DocumentRows]] = []
    size = 0
    for item in batch:
        triples = len(item[1].triples)
        if group and size + triples > max_triples:
            yield group
            group, size = [], 0
        group.append(item)
        size += triples
    if group:
        yield group


def graph_commit(
    document: ParsedDocument, rows: DocumentRows, summary: WriteSummary
) -> GraphCommit:
    """What the commit of one document of a written batch says; its ambiguous names are
    logged too (one line each)."""
    ambiguous = summary.ambiguous.get(document.document_id, ())
    for found in ambiguous:
        log.info(
            "ambiguous mention %r (%s) in document %s: %d equal candidates %s; written as its "
            "own node %r",
            found.mention,
            found.type or "untyped",
            document.document_id,
            len(found.candidates),
            list(found.candidates),
            found.key,
            extra={
                "request_id": document.request_id,
                "document_id": document.document_id,
                "candidates": list(found.candidates),
            },
        )
    return GraphCommit(
        request_id=document.request_id,
        schema_version=SCHEMA_VERSION,
        document_id=document.document_id,
        graph_version=summary.graph_version,
        entities=len(rows.entities),
        triples=len(rows.triples),
        line_errors=len(document.line_errors),
        graph_entities=summary.graph_entities,
        graph_relations=summary.graph_relations,
        action=rows.action,
        triples_removed=summary.triples_removed.get(document.document_id, 0),
        entities_resolved=summary.resolved.get(document.document_id, 0),
        ambiguous_mentions=[
            AmbiguousMention(mention=a.mention, type=a.type, key=a.key, candidates=a.candidates)
            for a in ambiguous
        ],
    )


def build(
    settings: GraphBuilderSettings | None = None, *, idempotency: IdempotencyStore | None = None
) -> ServiceRuntime:
    settings = settings or GraphBuilderSettings()
    runtime = ServiceRuntime(SERVICE, settings, idempotency=idempotency)
    store = GraphStore.connect(settings)
    grounder = QuestionGrounder(store, settings)
    runtime.on_startup(store.ensure_schema)
    runtime.on_startup(grounder.start)
    runtime.on_shutdown(store.close)
    runtime.on_shutdown(grounder.close)

    @runtime.consume_batch(
        topics.PARSED_DOCUMENTS,
        ParsedDocument,
        max_records=settings.graph_batch_size,
        required=("request_id", "document_id"),
    )
    async def on_documents(items: Sequence[Incoming[ParsedDocument]]) -> list[ItemResult]:
        results: list[ItemResult] = []
        writable: list[tuple[int, DocumentRows]] = []
        for index, item in enumerate(items):
            rows = DocumentRows.of(item.message)
            try:
                rows.check(settings.max_entity_chars)
            except BadInputError as exc:
                results.append(exc)
                continue
            results.append([])
            writable.append((index, rows))
        for group in transactions(writable, settings.graph_write_max_triples):
            summary = await store.write_documents([rows for _, rows in group])
            for index, rows in group:
                document = items[index].message
                commit = graph_commit(document, rows, summary)
                results[index] = [Outgoing(topics.GRAPH_COMMITS, commit, key=document.document_id)]
        return results

    @runtime.consume_batch(
        topics.PARSED_QUESTIONS,
        ParsedQuestion,
        max_records=settings.question_batch_size,
        required=("request_id", "question"),
    )
    async def on_questions(items: Sequence[Incoming[ParsedQuestion]]) -> list[ItemResult]:
        grounded = await grounder.ground_many([item.message for item in items])
        return [[Outgoing(topics.REASONING_INPUTS, r, key=r.request_id)] for r in grounded]

    return runtime
