"""Where a text states an entity: the supervision that teaches the extractor to find spans.

WebNLG pairs a text with the DBpedia triples it states but does not say where; to train a span
tagger the gold subjects and objects are located in the text. Matching is done on a folded
form of both strings — lower-case, accents removed, everything but letters and digits dropped —
so that ``Abraham_A._Ribicoff`` finds "Abraham A Ribicoff", ``N._R._Pogson`` finds "N.R.
Pogson" and a name with an en dash finds it written with a hyphen; a match must start and end on
word boundaries of the original text. Each gold value is tried in several surface forms (a
disambiguation in parentheses dropped, the part before a comma, dates and numbers written out,
see ``literals.surface_forms``). About one element in five is not stated in a form any of this
finds (a pronoun, a paraphrase): those are left out of the span supervision.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from autoglm.extraction.literals import surface_forms


@dataclass(frozen=True)
class Folded:
    """A text folded for matching, and the original offset of every folded character."""

    text: str
    offsets: tuple[int, ...]


def fold(text: str) -> Folded:
    chars: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(text):
        for part in unicodedata.normalize("NFKD", char):
            if part.isalnum():
                chars.append(part.lower())
                offsets.append(index)
    return Folded("".join(chars), tuple(offsets))


def _is_boundary(text: str, index: int) -> bool:
    """No letter or digit on both sides of position ``index`` of ``text``."""
    if index <= 0 or index >= len(text):
        return True
    return not (text[index - 1].isalnum() and text[index].isalnum())


def element_forms(element: str) -> list[str]:
    """Surface forms of a WebNLG subject or object, most specific first, without repeats."""
    name = " ".join(element.replace("_", " ").split())
    if len(name) > 1 and name[0] == '"' and name[-1] == '"':
        name = name[1:-1].strip()
    forms = list(surface_forms(name))
    bare = re.sub(r"\s*\([^()]*\)\s*$", "", name).strip()
    if bare and bare != name:
        forms += surface_forms(bare)
    if "," in bare:
        forms.append(bare.split(",")[0].strip())
    seen: dict[str, None] = {}
    for form in forms:
        if fold(form).text:
            seen.setdefault(form, None)
    return list(seen)


def find_spans(text: str, element: str, folded: Folded | None = None) -> list[tuple[int, int]]:
    """Character spans of ``text`` that state ``element``, from its most specific form that
    occurs; empty when none does."""
    folded = folded or fold(text)
    for form in element_forms(element):
        needle = fold(form).text
        spans: list[tuple[int, int]] = []
        start = folded.text.find(needle)
        while start >= 0:
            begin = folded.offsets[start]
            end = folded.offsets[start + len(needle) - 1] + 1
            if _is_boundary(text, begin) and _is_boundary(text, end):
                spans.append((begin, end))
            start = folded.text.find(needle, start + 1)
        if spans:
            return spans
    return []
