"""Training examples of the extractor: a text's word pieces, the spans that state its gold
entities and values, and the relations between those spans.

Built from WebNLG texts (``webnlg.WebNLGText``) or from any ``(text, triples)`` pair; gold
elements are located in the text by ``align.find_spans``. Elements the text does not state in
a findable form are left out; a triple whose subject or object is left out gives no pair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from autoglm.extraction.align import find_spans, fold
from autoglm.extraction.features import Tokenized

TripleStrings = tuple[str, str, str]


@dataclass(frozen=True)
class Example:
    """One text as the extractor's model learns from it.

    ``spans`` are inclusive word-piece index ranges; ``labels`` are (head span, tail span,
    relation index) with indices into ``spans`` and the relation inventory.
    """

    id: str
    text: str
    tokens: Tokenized
    tags: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    labels: tuple[tuple[int, int, int], ...]
    group: str = ""
    """What held-out slices are drawn by (a WebNLG entry: all its texts state the same
    triples, so they go to the same side)."""


def piece_span(tokens: Tokenized, start: int, end: int) -> tuple[int, int] | None:
    """The word pieces covering characters ``[start, end)``, or None (truncated away)."""
    inside = [i for i, (a, b) in enumerate(tokens.offsets) if b > a and b > start and a < end]
    return (inside[0], inside[-1]) if inside else None


def build_example(
    id: str,
    text: str,
    triples: Sequence[TripleStrings],
    tokens: Tokenized,
    relation_index: dict[str, int],
    group: str = "",
) -> Example:
    folded = fold(text)
    element_spans: dict[str, list[int]] = {}
    spans: list[tuple[int, int]] = []
    for element in dict.fromkeys(e for s, _, o in triples for e in (s, o)):
        indices: list[int] = []
        for start, end in find_spans(text, element, folded):
            span = piece_span(tokens, start, end)
            if span is None:
                continue
            if span not in spans:
                spans.append(span)
            indices.append(spans.index(span))
        element_spans[element] = indices
    tags = [0] * len(tokens)
    # Longer spans first, so that a span nested in another ("Aarhus" in "Aarhus Airport") does
    # not cut the outer one: the outer span is what the text names.
    for first, last in sorted(spans, key=lambda s: s[0] - s[1]):
        if any(tags[i] for i in range(first, last + 1)):
            continue
        tags[first] = 1
        for i in range(first + 1, last + 1):
            tags[i] = 2
    labels: set[tuple[int, int, int]] = set()
    for subject, relation, obj in triples:
        if relation not in relation_index:
            continue
        for head in element_spans.get(subject, ()):
            for tail in element_spans.get(obj, ()):
                if head != tail:
                    labels.add((head, tail, relation_index[relation]))
    return Example(id, text, tokens, tuple(tags), tuple(spans), tuple(sorted(labels)), group)


def held_out(group: str, fraction: float) -> bool:
    """Deterministic slice by a hash of the group: the same on every run and machine."""
    digest = hashlib.sha256(group.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def label_counts(examples: Iterable[Example], relations: int) -> list[int]:
    counts = [0] * relations
    for example in examples:
        for _, _, relation in example.labels:
            counts[relation] += 1
    return counts
