"""Text understanding: spaCy parsing of documents and questions, and structured KB lines."""

from autoglm.nlp.keys import lookup_key, normalize_key
from autoglm.nlp.parsing import (
    BRACKET_PATTERN,
    TextParser,
    parse_kb_lines,
    strip_brackets,
)

__all__ = [
    "BRACKET_PATTERN",
    "TextParser",
    "lookup_key",
    "normalize_key",
    "parse_kb_lines",
    "strip_brackets",
]
