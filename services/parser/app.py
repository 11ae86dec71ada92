"""parser service: documents -> parsed-documents, questions -> parsed-questions.

A document whose action is DELETE needs no text: it goes on to graph-builder as it is.

Both topics are consumed in batches: the NLP of a batch runs in one ``nlp.pipe`` call, in a worker
thread so that the event loop (Kafka heartbeats, fetches, acknowledgements) keeps running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import Field

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.bus.service import Incoming, ItemResult, Outgoing, ServiceRuntime
from autoglm.contracts import (
    Document,
    DocumentAction,
    ParsedDocument,
    Question,
    require_fields,
)
from autoglm.contracts.bounds import check_hops, check_top_k
from autoglm.errors import BAD_LINES, BadInputError
from autoglm.extraction import load_extractor
from autoglm.nlp.messages import line_error_report, parse_document_batch, parse_question_batch
from autoglm.nlp.parsing import TextParser
from autoglm.settings import Settings

SERVICE = "parser"


class ParserSettings(Settings):
    parser_batch_size: int = Field(
        64,
        ge=1,
        description="Most messages parsed together: the records one poll may bring, and the "
        "spaCy nlp.pipe batch size.",
    )


def _missing_text(document: Document) -> BadInputError | None:
    if document.action == DocumentAction.DOCUMENT_ACTION_DELETE:
        return None
    try:
        require_fields(document, "text")
    except BadInputError as exc:
        return exc
    return None


def question_bounds(question: Question, settings: Settings) -> BadInputError | None:
    """Why a question's hops or top_k is refused (0 asks for the default), or None."""
    try:
        check_hops(question.hops, settings, zero_is_default=True)
        check_top_k(question.top_k, settings, zero_is_default=True)
    except BadInputError as exc:
        return exc
    return None


def build(
    settings: ParserSettings | None = None, *, idempotency: IdempotencyStore | None = None
) -> ServiceRuntime:
    settings = settings or ParserSettings()
    runtime = ServiceRuntime(SERVICE, settings, idempotency=idempotency)
    # Loaded once per process; the model is read-only afterwards.
    parser = TextParser(settings.spacy_model, batch_size=settings.parser_batch_size)
    # Schema relations from free text: the serving extractor version (else the bundled one).
    extractor = load_extractor(settings) if settings.extraction_enabled else None
    # One spaCy pipeline, two consumers: never run it from two threads at once.
    nlp_lock = asyncio.Lock()

    @runtime.consume_batch(
        topics.QUESTIONS,
        Question,
        max_records=settings.parser_batch_size,
        required=("request_id", "text"),
    )
    async def on_questions(items: Sequence[Incoming[Question]]) -> list[ItemResult]:
        # hops and top_k bound the work of every later hop: out of bounds is a dead letter here.
        bounds = [question_bounds(item.message, settings) for item in items]
        questions = [item.message for item, error in zip(items, bounds, strict=True) if not error]
        async with nlp_lock:
            parsed = iter(
                await asyncio.to_thread(parse_question_batch, parser, questions, settings)
            )
        results: list[ItemResult] = []
        for error in bounds:
            result = error or next(parsed)
            results.append(
                result
                if isinstance(result, BadInputError)
                else [Outgoing(topics.PARSED_QUESTIONS, result, key=result.request_id)]
            )
        return results

    @runtime.consume_batch(
        topics.DOCUMENTS,
        Document,
        max_records=settings.parser_batch_size,
        required=("request_id",),
    )
    async def on_documents(items: Sequence[Incoming[Document]]) -> list[ItemResult]:
        # Text is required of everything but a delete.
        results: list[ItemResult | None] = [_missing_text(item.message) for item in items]
        todo = [n for n, result in enumerate(results) if result is None]
        documents = [items[n].message for n in todo]
        async with nlp_lock:
            parsed = await asyncio.to_thread(
                parse_document_batch, parser, documents, settings, extractor
            )
        for n, result in zip(todo, parsed, strict=True):
            results[n] = (
                result if isinstance(result, BadInputError) else document_outputs(items[n], result)
            )
        return [result for result in results if result is not None]

    def document_outputs(item: Incoming[Document], parsed: ParsedDocument) -> list[Outgoing]:
        outputs = [Outgoing(topics.PARSED_DOCUMENTS, parsed, key=parsed.document_id)]
        if parsed.line_errors:
            # The good lines go on; the bad ones are reported, each with its number and why.
            report = line_error_report(parsed.line_errors, len(parsed.triples))
            outputs.append(
                runtime.dead_letter_outgoing(
                    item.context, BadInputError(report, error_type=BAD_LINES)
                )
            )
        return outputs

    return runtime
