"""spaCy parsing of questions and documents, and the structured-line fast path."""

from __future__ import annotations

import pytest

from autoglm.contracts import Document, DocumentFormat, Question
from autoglm.errors import BadInputError
from autoglm.nlp import lookup_key, normalize_key, parse_kb_lines, strip_brackets
from autoglm.nlp.messages import (
    line_error_report,
    parse_document,
    parse_document_batch,
    parse_question_batch,
    parse_questions,
)
from autoglm.settings import Settings


def test_normalize_key():
    assert normalize_key("  The   Matrix ") == "The Matrix"
    assert normalize_key("Ｆｕｌｌwidth") == "Fullwidth"
    assert lookup_key("  The   Matrix ") == "the matrix"


def test_bracketed_mention_first_with_offsets_in_plain_text(text_parser):
    (parsed,) = parse_questions(
        text_parser,
        [Question(request_id="r", text="what movies did [Ginger Rogers] act in")],
        Settings(),
    )
    assert parsed.normalized_text == "what movies did Ginger Rogers act in"
    first = parsed.mentions[0]
    assert (first.text, first.source, first.key) == ("Ginger Rogers", "bracket", "Ginger Rogers")
    assert parsed.normalized_text[first.start_char : first.end_char] == "Ginger Rogers"
    assert parsed.timings[0].service == "parser"


def test_ner_mentions_without_brackets(text_parser):
    (parsed,) = parse_questions(
        text_parser,
        [Question(request_id="r", text="what films did Steven Spielberg direct")],
        Settings(),
    )
    assert [(m.text, m.source) for m in parsed.mentions] == [("Steven Spielberg", "ner")]


def test_question_limits(text_parser):
    settings = Settings(max_question_chars=10)
    with pytest.raises(BadInputError, match="exceeds the limit"):
        parse_questions(text_parser, [Question(request_id="r", text="x" * 11)], settings)
    with pytest.raises(BadInputError, match="hops"):
        parse_questions(text_parser, [Question(request_id="r", text="x", hops=4)], Settings())


def test_text_document_triples(text_parser):
    doc = Document(
        request_id="d",
        document_id="d",
        format=DocumentFormat.DOCUMENT_FORMAT_TEXT,
        text="Steven Spielberg directed Jaws. Jaws was released in 1975.",
    )
    parsed = parse_document(text_parser, doc, Settings())
    assert len(parsed.sentences) == 2
    assert "Steven Spielberg" in {e.text for e in parsed.entities}
    triples = {(t.subject, t.predicate, t.object) for t in parsed.triples}
    assert ("Steven Spielberg", "direct", "Jaws") in triples
    assert ("Jaws", "release_in", "1975") in triples


def test_kb_lines_report_bad_lines_and_keep_good_ones():
    text = "A|r|B\nonly|two\n\nC|r|D|extra\nE| |F\nG|r|H"
    triples, errors = parse_kb_lines(text, first_line=10)
    assert [(t.subject, t.object) for t in triples] == [("A", "B"), ("G", "H")]
    assert [(e.line, e.reason.split(",")[0]) for e in errors] == [
        (11, "expected 3 fields separated by '|'"),
        (13, "expected 3 fields separated by '|'"),
        (14, "empty field"),
    ]


def test_structured_document_without_any_good_line_is_rejected(text_parser):
    doc = Document(
        request_id="d",
        document_id="d",
        format=DocumentFormat.DOCUMENT_FORMAT_TRIPLES,
        text="a|b\nc|d|e|f",
    )
    with pytest.raises(BadInputError, match="no usable line"):
        parse_document(text_parser, doc, Settings())


def test_document_limits(text_parser):
    with pytest.raises(BadInputError, match="exceeds the limit"):
        parse_document(
            text_parser, Document(request_id="d", text="x" * 20), Settings(max_document_chars=10)
        )
    with pytest.raises(BadInputError, match="NUL"):
        parse_document(text_parser, Document(request_id="d", text="a\x00b"), Settings())


def test_strip_brackets():
    assert strip_brackets("who is [a] and [b c]") == "who is a and b c"


def test_document_batch_answers_each_document_and_parses_the_text_ones_together(text_parser):
    settings = Settings(max_document_tokens=50, max_entity_chars=20)
    documents = [
        Document(request_id="t1", text="Steven Spielberg directed Jaws."),
        Document(request_id="empty", text="  \n "),
        Document(request_id="long", text="a " * 60),
        Document(
            request_id="kb",
            format=DocumentFormat.DOCUMENT_FORMAT_TRIPLES,
            text="Jaws|directed_by|Steven Spielberg\nJaws|only two\n" + "x" * 21 + "|r|y",
            first_line=7,
        ),
        Document(request_id="t2", text="Ridley Scott directed Alien in 1979."),
    ]
    results = parse_document_batch(text_parser, documents, settings)
    ok = {r.request_id: r for r in results if not isinstance(r, BadInputError)}
    bad = [
        (d.request_id, r.error_type)
        for d, r in zip(documents, results, strict=True)
        if isinstance(r, BadInputError)
    ]
    assert bad == [("empty", "empty"), ("long", "too_large")]
    assert ("Steven Spielberg", "direct", "Jaws") in {
        (t.subject, t.predicate, t.object) for t in ok["t1"].triples
    }
    assert "Ridley Scott" in {e.text for e in ok["t2"].entities}
    assert [(t.subject, t.object) for t in ok["kb"].triples] == [("Jaws", "Steven Spielberg")]
    assert [(e.line, e.reason) for e in ok["kb"].line_errors] == [
        (8, "expected 3 fields separated by '|', got 2"),
        (9, "field longer than 20 characters"),
    ]
    report = line_error_report(ok["kb"].line_errors, len(ok["kb"].triples))
    assert report.startswith("2 bad line(s) skipped, 1 good line(s) kept: line 8: expected 3")
    assert "line 9: field longer than 20 characters" in report


def test_question_batch_rejects_each_bad_question_alone(text_parser):
    questions = [
        Question(request_id="a", text="who directed [Jaws]"),
        Question(request_id="b", text="x", hops=7),
        Question(request_id="c", text="what films did [Tom Hanks] act in"),
    ]
    results = parse_question_batch(text_parser, questions, Settings())
    assert isinstance(results[1], BadInputError)
    assert [r.mentions[0].text for r in (results[0], results[2])] == ["Jaws", "Tom Hanks"]
