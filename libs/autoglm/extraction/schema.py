"""The relation schema: which relations text extraction looks for, and what each one means.

A schema is a file. The minimal form is a text file with one relation name per line (``#``
starts a comment); the rich form is YAML or JSON, a list of relations (or ``{"relations":
[...]}``), each with a ``name`` and optionally a ``description``, ``subject_type``,
``object_type`` (``Date`` and ``Number`` objects are values, not entities), ``aliases`` (other
names of the relation, e.g. another KB's) and ``examples`` (sentences that state it).

Relations are scored against an embedding of their name and description, so a relation with
no training example is still extracted, from what its name and description say. The default
schema (``default_schema.yaml`` beside this file) names the movie KB's relations with the names
KB ingestion writes, so the same fact from text and from the KB is one edge, plus common
biographical, geographic and organisational ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoglm.errors import BadInputError

DEFAULT_SCHEMA = Path(__file__).with_name("default_schema.yaml")
LITERAL_TYPES = frozenset({"Date", "Year", "Number", "Quantity", "Text"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def relation_words(name: str) -> str:
    """A relation name as words: ``birthPlace`` -> "birth place", ``directed_by`` -> "directed
    by", ``associatedBand/associatedMusicalArtist`` -> "associated band / associated musical
    artist"."""
    spaced = _CAMEL.sub(" ", name).replace("_", " ").replace("/", " / ")
    return " ".join(spaced.lower().split())


@dataclass(frozen=True)
class Relation:
    name: str
    description: str = ""
    subject_type: str = ""
    object_type: str = ""
    aliases: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()

    @property
    def literal_object(self) -> bool:
        return self.object_type in LITERAL_TYPES

    def texts(self) -> list[str]:
        """What the relation's embedding is made from: its name (and aliases) in words, with
        its description."""
        names = [relation_words(self.name), *(relation_words(a) for a in self.aliases)]
        head = " / ".join(dict.fromkeys(names))
        return [f"{head}: {self.description}" if self.description else head]


@dataclass(frozen=True)
class Schema:
    relations: tuple[Relation, ...]
    source: str = ""
    by_name: dict[str, Relation] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {r.name: r for r in self.relations})

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.relations]

    def __len__(self) -> int:
        return len(self.relations)

    @classmethod
    def from_names(cls, names: Iterable[str], source: str = "") -> Schema:
        return cls(tuple(Relation(name) for name in dict.fromkeys(names)), source)


def _relation(item: Any, where: str) -> Relation:
    if isinstance(item, str):
        return Relation(item.strip())
    if not isinstance(item, dict) or not str(item.get("name", "")).strip():
        raise BadInputError(f"{where}: each relation needs a name (got {item!r})")

    def strings(key: str) -> tuple[str, ...]:
        value = item.get(key) or ()
        return tuple(str(v) for v in ([value] if isinstance(value, str) else value))

    return Relation(
        name=str(item["name"]).strip(),
        description=str(item.get("description", "") or "").strip(),
        subject_type=str(item.get("subject_type", "") or "").strip(),
        object_type=str(item.get("object_type", "") or "").strip(),
        aliases=strings("aliases"),
        examples=strings("examples"),
    )


def load_schema(path: str | Path | None = None) -> Schema:
    """Read a schema file (text, YAML or JSON); ``None`` reads the default schema."""
    location = Path(path) if path else DEFAULT_SCHEMA
    try:
        text = location.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"cannot read the schema {location}: {exc.strerror}") from exc
    if location.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            data = json.loads(text) if location.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise BadInputError(f"{location} is not valid {location.suffix[1:]}: {exc}") from exc
        items = data.get("relations") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise BadInputError(f"{location}: expected a list of relations")
        relations = [_relation(item, str(location)) for item in items]
    else:
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        relations = [Relation(line) for line in lines if line]
    if not relations:
        raise BadInputError(f"{location} names no relation")
    names = [r.name for r in relations]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadInputError(f"{location} names these relations twice: {', '.join(duplicates)}")
    return Schema(tuple(relations), str(location))


def schema_of(names: Sequence[str] | None, path: str | Path | None) -> Schema:
    """A schema from relation names (e.g. a dataset's predicates) or from a file."""
    return Schema.from_names(names) if names else load_schema(path)
