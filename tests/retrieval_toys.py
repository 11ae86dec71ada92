"""Test doubles for subgraph retrieval: a deterministic bag-of-words embedder and a small film
graph with a hub (``InMemoryGraph``, the in-memory ``GraphAccess``, lives in the library)."""

from __future__ import annotations

import hashlib
import re

import torch
from torch import Tensor

from autoglm.graph.memory import InMemoryGraph

# A small film KB. "Thriller" is a hub: HUB_FILMS filler films have that genre, so the plain
# 2-hop neighbourhood of Jaws holds them all.
HUB_FILMS = 300
FILMS = [
    ("Jaws", "directed_by", "Steven Spielberg"),
    ("Jaws", "starred_actors", "Roy Scheider"),
    ("Jaws", "release_year", "1975"),
    ("Jaws", "has_genre", "Thriller"),
    ("Jurassic Park", "directed_by", "Steven Spielberg"),
    ("Jurassic Park", "starred_actors", "Sam Neill"),
    ("Jurassic Park", "release_year", "1993"),
    ("Jurassic Park", "has_genre", "Adventure"),
    ("Sorcerer", "directed_by", "William Friedkin"),
    ("Sorcerer", "starred_actors", "Roy Scheider"),
    ("Sorcerer", "release_year", "1977"),
    ("Sorcerer", "has_genre", "Thriller"),
    ("The French Connection", "directed_by", "William Friedkin"),
    ("The French Connection", "starred_actors", "Gene Hackman"),
    ("The French Connection", "starred_actors", "Roy Scheider"),
    ("The French Connection", "release_year", "1971"),
    ("The French Connection", "has_genre", "Thriller"),
]
TOY_KB = FILMS + [(f"Thriller {n:03d}", "has_genre", "Thriller") for n in range(HUB_FILMS)]


def bag_of_words_embed(texts: list[str], dim: int = 128) -> Tensor:
    """L2-normalised sums of fixed random word vectors: cosine similarity ~ shared words."""
    out = []
    for text in texts:
        vector = torch.zeros(dim)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
            vector += torch.randn(dim, generator=torch.Generator().manual_seed(seed))
        out.append(torch.nn.functional.normalize(vector, dim=0) if vector.any() else vector)
    return torch.stack(out)


__all__ = ["FILMS", "HUB_FILMS", "TOY_KB", "InMemoryGraph", "bag_of_words_embed"]
