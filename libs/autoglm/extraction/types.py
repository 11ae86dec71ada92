"""What a text extractor produces, shared by the parser, the dry run and the benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ExtractedTriple:
    """One fact read from a text, with where it was read.

    ``subject`` / ``object`` are surface names as a knowledge graph would hold them (full names,
    ISO dates, numbers with units); ``relation`` is a schema relation name (or an open relation
    when ``open``). Offsets are character offsets into the text the extractor was given.
    """

    subject: str
    relation: str
    object: str
    sentence: int
    start_char: int
    end_char: int
    confidence: float
    subject_type: str = ""
    object_type: str = ""
    open: bool = False
    object_literal: bool = False


class TextExtractor(Protocol):
    """Texts in, facts out; one call handles a batch (the parser's ``nlp.pipe`` batch)."""

    version: str

    def extract(
        self,
        texts: Sequence[str],
        sentences: Sequence[Sequence[tuple[int, int]]] | None = None,
    ) -> list[list[ExtractedTriple]]:
        """Facts per text; ``sentences`` are each text's sentence spans when known."""
        ...
