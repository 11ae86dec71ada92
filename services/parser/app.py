"""parser service: documents -> parsed-documents, questions -> parsed-questions."""

from __future__ import annotations

from pydantic import Field

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.bus.service import HandlerContext, Outgoing, ServiceRuntime
from autoglm.contracts import Document, Question
from autoglm.nlp.messages import parse_document, parse_questions
from autoglm.nlp.parsing import TextParser
from autoglm.settings import Settings

SERVICE = "parser"


class ParserSettings(Settings):
    parser_batch_size: int = Field(64, description="spaCy nlp.pipe batch size.")


def build(
    settings: ParserSettings | None = None, *, idempotency: IdempotencyStore | None = None
) -> ServiceRuntime:
    settings = settings or ParserSettings()
    runtime = ServiceRuntime(SERVICE, settings, idempotency=idempotency)
    # Loaded once per process; the model is read-only afterwards.
    parser = TextParser(settings.spacy_model, batch_size=settings.parser_batch_size)

    @runtime.consume(topics.QUESTIONS, Question, required=("request_id", "text"))
    async def on_question(question: Question, ctx: HandlerContext) -> list[Outgoing]:
        (parsed,) = parse_questions(parser, [question], settings)
        return [Outgoing(topics.PARSED_QUESTIONS, parsed, key=question.request_id)]

    @runtime.consume(topics.DOCUMENTS, Document, required=("request_id", "text"))
    async def on_document(document: Document, ctx: HandlerContext) -> list[Outgoing]:
        parsed = parse_document(parser, document, settings)
        return [Outgoing(topics.PARSED_DOCUMENTS, parsed, key=parsed.document_id)]

    return runtime
