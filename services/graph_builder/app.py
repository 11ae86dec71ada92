"""graph-builder service.

parsed-documents -> Neo4j (+ graph-commits); parsed-questions -> reasoning-inputs.
"""

from __future__ import annotations

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.bus.service import HandlerContext, Outgoing, ServiceRuntime
from autoglm.contracts import SCHEMA_VERSION, GraphCommit, ParsedDocument, ParsedQuestion
from autoglm.graph.questions import QuestionGrounder
from autoglm.graph.store import GraphStore
from autoglm.settings import Settings

SERVICE = "graph-builder"


class GraphBuilderSettings(Settings):
    pass


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

    @runtime.consume(
        topics.PARSED_DOCUMENTS, ParsedDocument, required=("request_id", "document_id")
    )
    async def on_document(document: ParsedDocument, ctx: HandlerContext) -> list[Outgoing]:
        summary = await store.write_document(document)
        commit = GraphCommit(
            request_id=document.request_id,
            schema_version=SCHEMA_VERSION,
            document_id=document.document_id,
            graph_version=summary.graph_version,
            entities=summary.entities,
            triples=summary.triples,
            line_errors=len(document.line_errors),
        )
        return [Outgoing(topics.GRAPH_COMMITS, commit, key=document.document_id)]

    @runtime.consume(topics.PARSED_QUESTIONS, ParsedQuestion, required=("request_id", "question"))
    async def on_question(question: ParsedQuestion, ctx: HandlerContext) -> list[Outgoing]:
        reasoning_input = await grounder.ground(question)
        return [Outgoing(topics.REASONING_INPUTS, reasoning_input, key=question.request_id)]

    return runtime
