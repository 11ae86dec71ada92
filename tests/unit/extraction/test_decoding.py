"""Turning tags and text into mentions: sentences, spans, and clean names."""

from __future__ import annotations

from autoglm.extraction.extractor import (
    _join_articles,
    _strip_span,
    decode_spans,
    split_sentences,
)
from autoglm.extraction.features import Tokenized


def test_sentences_split_on_ends_but_not_on_initials_or_abbreviations():
    text = "J. R. R. Tolkien wrote it. Dr. Smith met Mr. Jones in the U.S. Army. Then he left!"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == [
        "J. R. R. Tolkien wrote it.",
        "Dr. Smith met Mr. Jones in the U.S. Army.",
        "Then he left!",
    ]


def test_tag_sequences_become_spans():
    tokens = Tokenized(
        tuple(range(7)), ((0, 0), (0, 3), (4, 7), (8, 9), (10, 12), (13, 15), (0, 0))
    )
    assert decode_spans([0, 1, 2, 0, 2, 2, 1], tokens) == [(1, 2), (4, 5)]
    assert decode_spans([1, 1, 1, 1, 0, 0, 0], tokens) == [(1, 1), (2, 2), (3, 3)]


def test_mentions_lose_articles_and_edge_punctuation_but_keep_initials():
    text = "the Aarhus airport, (Jr.) and J. R. R."
    start, end = _strip_span(text, 0, 19)
    assert text[start:end] == "Aarhus airport"
    start, end = _strip_span(text, 29, len(text))
    assert text[start:end] == "J. R. R."
    title = "The Glass Orchard,"
    assert title[slice(*_strip_span(title, 0, len(title)))] == "The Glass Orchard"


def test_a_title_cut_after_its_article_is_joined():
    text = "Idris directed The Copper Lantern in Ghent."
    pieces = [(1, 1), (3, 3), (4, 5), (7, 7)]
    mentions = [(0, 5), (15, 18), (19, 33), (37, 42)]
    joined_pieces, joined = _join_articles(text, pieces, mentions)
    assert [text[a:b] for a, b in joined] == ["Idris", "The Copper Lantern", "Ghent"]
    assert joined_pieces == [(1, 1), (3, 5), (7, 7)]
