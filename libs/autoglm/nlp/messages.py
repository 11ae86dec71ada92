"""Parser core: contract messages in, contract messages out. No Kafka here.

The batch functions take every message a consumer poll brought and answer one item per message:
its parsed form, or the ``BadInputError`` that says why it cannot be parsed. The NLP of all the
good messages runs in one ``nlp.pipe`` call, which is where batching pays.

A parsed document carries what graph-builder needs to keep provenance: its action (a delete goes
through without text or NLP), the version of the extractor that read its triples, and for each
triple from text the sentence and the character span of its evidence (the sentence's span when
the extractor gives none), so that an edge can show where it was read and a document can be
replaced or deleted later.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from spacy.tokens import Doc

from autoglm.contracts import (
    SCHEMA_VERSION,
    Document,
    DocumentAction,
    DocumentFormat,
    HopTiming,
    LineError,
    ParsedDocument,
    ParsedQuestion,
    Question,
    Triple,
)
from autoglm.errors import BadInputError
from autoglm.extraction.types import ExtractedTriple, TextExtractor
from autoglm.nlp.parsing import TextParser, parse_kb_lines
from autoglm.settings import Settings

UPSERT = DocumentAction.DOCUMENT_ACTION_UPSERT
DELETE = DocumentAction.DOCUMENT_ACTION_DELETE

SVO_EXTRACTOR_VERSION = "spacy-svo-1"
"""Extractor version of the triples ``TextParser`` reads from the dependency tree."""

BAD_LINE_REPORT_CHARS = 120
"""How much of each bad line a line-error report quotes."""


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


def parse_question_batch(
    parser: TextParser, questions: Sequence[Question], settings: Settings
) -> list[ParsedQuestion | BadInputError]:
    started = time.perf_counter()
    errors: list[BadInputError | None] = []
    for question in questions:
        try:
            check_question(question, settings)
            errors.append(None)
        except BadInputError as exc:
            errors.append(exc)
    good = [q for q, error in zip(questions, errors, strict=True) if error is None]
    texts = iter(parser.parse_questions([q.text for q in good]))
    per_message_ms = (time.perf_counter() - started) * 1000.0 / max(1, len(questions))
    results: list[ParsedQuestion | BadInputError] = []
    for question, error in zip(questions, errors, strict=True):
        if error is not None:
            results.append(error)
            continue
        text = next(texts)
        results.append(
            ParsedQuestion(
                request_id=question.request_id,
                schema_version=SCHEMA_VERSION,
                question=question,
                normalized_text=text.normalized_text,
                mentions=text.mentions,
                timings=[HopTiming(service="parser", milliseconds=per_message_ms)],
            )
        )
    return results


def parse_questions(
    parser: TextParser, questions: list[Question], settings: Settings
) -> list[ParsedQuestion]:
    """Like ``parse_question_batch``, raising the first bad input."""
    results = parse_question_batch(parser, questions, settings)
    for result in results:
        if isinstance(result, BadInputError):
            raise result
    return [r for r in results if isinstance(r, ParsedQuestion)]


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
    if not document.text.strip():
        raise BadInputError("document text is empty", error_type="empty")


def _structured(document: Document, parsed: ParsedDocument, settings: Settings) -> None:
    triples, errors = parse_kb_lines(
        document.text, document.first_line or 1, max_field_chars=settings.max_entity_chars
    )
    if not triples and errors:
        raise BadInputError(
            f"no usable line in structured document ({len(errors)} bad line(s); first: "
            f"line {errors[0].line}: {errors[0].reason})",
            error_type="kb_lines",
        )
    parsed.triples.extend(triples)
    parsed.line_errors.extend(errors)


def parse_document_batch(
    parser: TextParser,
    documents: Sequence[Document],
    settings: Settings,
    extractor: TextExtractor | None = None,
) -> list[ParsedDocument | BadInputError]:
    """Documents to parsed documents: structured lines as they are; free text through spaCy
    (sentences, mentions) and ``extractor`` (schema relations with provenance) when given, else
    spaCy's subject-verb-object triples."""
    started = time.perf_counter()
    results: list[ParsedDocument | BadInputError] = []
    texts: list[tuple[ParsedDocument, Doc]] = []
    for document in documents:
        action = document.action or UPSERT
        parsed = ParsedDocument(
            request_id=document.request_id,
            schema_version=SCHEMA_VERSION,
            document_id=document.document_id or document.request_id,
            format=document.format,
            source=document.source,
            action=action,
        )
        try:
            if action == DELETE:
                # Nothing to read: graph-builder removes what the document wrote.
                check_delete(document)
            elif action != UPSERT:
                raise BadInputError(f"unknown document action {action}", error_type="invalid_field")
            elif document.format == DocumentFormat.DOCUMENT_FORMAT_TRIPLES:
                check_document(document, settings)
                _structured(document, parsed, settings)
            else:
                check_document(document, settings)
                tokens = parser.tokenize(document.text)
                if len(tokens) > settings.max_document_tokens:
                    raise BadInputError(
                        f"document of {len(tokens)} tokens exceeds the limit of "
                        f"{settings.max_document_tokens}",
                        error_type="too_large",
                    )
                texts.append((parsed, tokens))
        except BadInputError as exc:
            results.append(exc)
            continue
        results.append(parsed)
    parsed_texts = parser.parse_documents(
        [tokens for _, tokens in texts], with_triples=extractor is None
    )
    extracted: list[list[ExtractedTriple]] | None = None
    if extractor is not None and texts:
        extracted = extractor.extract(
            [tokens.text for _, tokens in texts],
            [[(s.start_char, s.end_char) for s in text.sentences] for text in parsed_texts],
        )
    for index, ((parsed, _), text) in enumerate(zip(texts, parsed_texts, strict=True)):
        parsed.sentences.extend(text.sentences)
        parsed.entities.extend(text.entities)
        if extracted is not None and extractor is not None:
            parsed.triples.extend(extracted_triples(extracted[index]))
            parsed.extractor_version = extractor.version
        else:
            parsed.triples.extend(text.triples)
            parsed.extractor_version = SVO_EXTRACTOR_VERSION
        with_sentence_spans(parsed)
    per_message_ms = (time.perf_counter() - started) * 1000.0 / max(1, len(documents))
    for result in results:
        if isinstance(result, ParsedDocument):
            result.timings.append(HopTiming(service="parser", milliseconds=per_message_ms))
    return results


def check_delete(document: Document) -> None:
    """A delete must name the document it deletes (a request id is no document id)."""
    if not document.document_id.strip():
        raise BadInputError(
            "a DELETE document must name the document_id to delete", error_type="missing_field"
        )


def with_sentence_spans(parsed: ParsedDocument) -> None:
    """Give every triple read from a sentence an evidence span: the sentence's own when the
    extractor gave none."""
    for triple in parsed.triples:
        if 0 <= triple.sentence < len(parsed.sentences) and triple.end_char <= triple.start_char:
            sentence = parsed.sentences[triple.sentence]
            triple.start_char, triple.end_char = sentence.start_char, sentence.end_char


def extracted_triples(extracted: Sequence[ExtractedTriple]) -> list[Triple]:
    """A text extractor's facts as contract triples, with their provenance."""
    return [
        Triple(
            subject=t.subject,
            predicate=t.relation,
            object=t.object,
            sentence=t.sentence,
            confidence=t.confidence,
            start_char=t.start_char,
            end_char=t.end_char,
            subject_type=t.subject_type,
            object_type=t.object_type,
            open=t.open,
            object_literal=t.object_literal,
        )
        for t in extracted
    ]


def parse_document(parser: TextParser, document: Document, settings: Settings) -> ParsedDocument:
    """Like ``parse_document_batch`` for one document, raising bad input."""
    (result,) = parse_document_batch(parser, [document], settings)
    if isinstance(result, BadInputError):
        raise result
    return result


def line_error_report(errors: Sequence[LineError], good_lines: int) -> str:
    """Every bad line of a structured document and why, for its dead-letter record."""
    lines = "; ".join(
        f"line {e.line}: {e.reason} ({e.content[:BAD_LINE_REPORT_CHARS]!r})" for e in errors
    )
    return f"{len(errors)} bad line(s) skipped, {good_lines} good line(s) kept: {lines}"
