"""Parser core: contract messages in, contract messages out. No Kafka here."""

from __future__ import annotations

import time

from autoglm.contracts import (
    SCHEMA_VERSION,
    Document,
    DocumentFormat,
    HopTiming,
    ParsedDocument,
    ParsedQuestion,
    Question,
)
from autoglm.errors import BadInputError
from autoglm.nlp.parsing import TextParser, parse_kb_lines
from autoglm.settings import Settings


def check_question(question: Question, settings: Settings) -> None:
    if len(question.text) > settings.max_question_chars:
        raise BadInputError(
            f"question of {len(question.text)} characters exceeds the limit of "
            f"{settings.max_question_chars}",
            error_type="too_large",
        )
    if question.hops > 3:
        raise BadInputError(
            f"hops must be 0 (default) to 3, got {question.hops}", error_type="invalid_field"
        )


def parse_questions(
    parser: TextParser, questions: list[Question], settings: Settings
) -> list[ParsedQuestion]:
    started = time.perf_counter()
    for question in questions:
        check_question(question, settings)
    parsed = parser.parse_questions([q.text for q in questions])
    per_message_ms = (time.perf_counter() - started) * 1000.0 / max(1, len(questions))
    return [
        ParsedQuestion(
            request_id=q.request_id,
            schema_version=SCHEMA_VERSION,
            question=q,
            normalized_text=p.normalized_text,
            mentions=p.mentions,
            timings=[HopTiming(service="parser", milliseconds=per_message_ms)],
        )
        for q, p in zip(questions, parsed, strict=True)
    ]


def check_document(document: Document, settings: Settings) -> None:
    if len(document.text) > settings.max_document_chars:
        raise BadInputError(
            f"document of {len(document.text)} characters exceeds the limit of "
            f"{settings.max_document_chars}",
            error_type="too_large",
        )
    if "\x00" in document.text:
        raise BadInputError(
            "document text contains NUL characters (binary data?)", error_type="binary"
        )


def parse_document(parser: TextParser, document: Document, settings: Settings) -> ParsedDocument:
    check_document(document, settings)
    started = time.perf_counter()
    parsed = ParsedDocument(
        request_id=document.request_id,
        schema_version=SCHEMA_VERSION,
        document_id=document.document_id or document.request_id,
        format=document.format,
        source=document.source,
    )
    if document.format == DocumentFormat.DOCUMENT_FORMAT_TRIPLES:
        triples, errors = parse_kb_lines(document.text, first_line=document.first_line or 1)
        if not triples and errors:
            raise BadInputError(
                f"no usable line in structured document ({len(errors)} bad line(s); first: "
                f"line {errors[0].line}: {errors[0].reason})",
                error_type="kb_lines",
            )
        parsed.triples.extend(triples)
        parsed.line_errors.extend(errors)
    else:
        (result,) = parser.parse_documents([document.text])
        parsed.sentences.extend(result.sentences)
        parsed.entities.extend(result.entities)
        parsed.triples.extend(result.triples)
    parsed.timings.append(
        HopTiming(service="parser", milliseconds=(time.perf_counter() - started) * 1000.0)
    )
    return parsed
