"""Normalized entity keys: the one place that decides when two names are the same entity."""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")


def normalize_key(name: str) -> str:
    """Case-folded, NFKC-normalized, whitespace-collapsed name.

    MetaQA names differ only in case between some entities and mentions ("the matrix" vs
    "The Matrix"), so case is not part of identity.
    """
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", name)).strip().casefold()
