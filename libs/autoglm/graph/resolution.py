"""Entity resolution: a name read from text that names a node the graph holds is that node.

Text names things loosely ("the Sorrow and the Pity", "Jacob bundsgaard", "Aarhus airport") where
the graph holds "The Sorrow and the Pity", "Jacob Bundsgaard", "Aarhus Airport". Each distinct
name of a text document (``DOCUMENT_FORMAT_TEXT``, or parsed by an extractor: its
``extractor_version`` is set), and each typed name, that came without a key
(``Triple.subject_key`` / ``object_key``) is resolved, in this order, to the first tier that has
a candidate of a compatible type:

1. its typed key (``name|Type``) when that node exists, then its exact key;
2. a node whose ``lookup`` (the case-folded name) is the mention's;
3. a node whose ``norm`` is the mention's: :func:`fold_name` (case, accents, punctuation and a
   leading "the"/"a"/"an" folded away);
4. a node that lists the mention among its ``aliases`` (folded the same way).

Types: a typed mention (``Person``) resolves only to a node of its type or an untyped one (KB
nodes carry no type), so a person named Paris never becomes the city; an untyped mention may
resolve to any node. Within a tier, nodes of the mention's own type beat untyped ones. When a
tier still holds several nodes the mention is not guessed: it keeps a node of its own (its
name's key, or ``name|Type`` when another type holds it) and the ambiguity is reported with the
candidates (``GraphCommit.ambiguous_mentions``, and a log line of the graph-builder). A mention
that matches nothing is a new node. Values (``object_literal``: dates, numbers) resolve by key
only, and KB lines (``DOCUMENT_FORMAT_TRIPLES``, and untyped lines of documents that are neither
text nor extracted) are exact: a KB batch runs no resolution query at all, so KB ingestion keeps
its speed and MetaQA's case-distinct keys ("War" the genre, "war" the tag, "Moulin Rouge!" and
"Moulin Rouge").

The graph side is one query per write batch (:data:`_FIND`), run inside the write transaction:
an ``UNWIND`` of index seeks on the keys (the uniqueness constraint) and on the folded names
(``entity_norm``, a range index on ``Entity.norm``), plus whether any node has aliases. Only when
some do, and some mention found nothing, a second query looks the mentions up in the
``entity_aliases`` full-text index (list properties have no range-index seek in Neo4j; the
full-text index holds each element), and the hits are checked against the folded mention in
Python. ``norm`` is written with every new entity; :func:`backfill_norms` (at the graph-builder's
start, with the schema) sets it on nodes written before it existed, or by an older version of
:func:`fold_name` (``NORM_VERSION`` on the ``GraphMeta`` node).

Mentions are resolved first come first served, documents in id order: a batch's new nodes are
candidates for the mentions after them, and so are the nodes its KB documents write, so the
outcome does not depend on how documents fall into batches. Like typed keys, two graph-builder
replicas creating variants of one new name at the same moment can still make two nodes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neo4j import AsyncManagedTransaction

if TYPE_CHECKING:
    from autoglm.graph.store import GraphStore

TYPED_KEY_SEPARATOR = "|"
"""Between name and type in the key of a typed entity whose name key is taken."""

NORM_VERSION = 1
"""Bump when :func:`fold_name` changes: ``backfill_norms`` then recomputes every node."""

ALIAS_HITS_PER_MENTION = 20
"""Full-text hits read per mention from the alias index (each is checked exactly)."""

SCHEMA_STATEMENTS = (
    "CREATE INDEX entity_norm IF NOT EXISTS FOR (e:Entity) ON (e.norm)",
    # Only nodes that have aliases are in it: "does any node have aliases?" is one index probe.
    "CREATE INDEX entity_has_aliases IF NOT EXISTS FOR (e:Entity) ON (e.aliases)",
    "CREATE FULLTEXT INDEX entity_aliases IF NOT EXISTS FOR (e:Entity) ON EACH [e.aliases] "
    "OPTIONS {indexConfig: {`fulltext.analyzer`: 'standard-folding'}}",
)

# How a mention found its node, best first.
TYPED, EXACT, CASE, NORMALISED, ALIAS, NEW = "typed", "exact", "case", "normalised", "alias", "new"
MATCHED = frozenset({CASE, NORMALISED, ALIAS})
"""Resolved to an existing node under another form."""


def typed_key(key: str, entity_type: str) -> str:
    return f"{key}{TYPED_KEY_SEPARATOR}{entity_type}"


# --- Folding names -----------------------------------------------------------------------------

_ARTICLES = frozenset({"the", "a", "an"})
_APOSTROPHES = "'`\u2018\u2019\u02bc\u00b4"
# Letters that have no decomposition but an obvious base letter.
_LETTERS = str.maketrans(
    {"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L",
     "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH", "\u0131": "i"}
)  # fmt: skip
_ASCII = str.maketrans(
    {
        **{c: " " for c in '!"#$%()*+,-./:;<=>?@[\\]^_{|}~'},
        **{c: "" for c in "'`"},
        "&": " and ",
    }
)


def fold_name(name: str) -> str:
    """The form under which two spellings of a name are the same name: case-folded, accents and
    punctuation folded (apostrophes dropped, other punctuation and symbols a space, "&" is
    "and"), whitespace collapsed, a leading "the", "a" or "an" dropped (not from a one-word
    name). "The Sorrow and the Pity", "sorrow and the pity" and "Sorrow & the Pity!" fold
    alike; "Schindler's List" and "Schindlers List" too. Empty when nothing is left."""
    # Almost every KB name is ASCII: one translate, no Unicode tables.
    text = name.lower().translate(_ASCII) if name.isascii() else _fold_unicode(name)
    words = text.split()
    if len(words) > 1 and words[0] in _ARTICLES:
        del words[0]
    return " ".join(words)


def _fold_unicode(name: str) -> str:
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", name.translate(_LETTERS)):
        category = unicodedata.category(char)
        if category[0] == "M":
            # Accents of Latin letters go; marks are letters' vowels in other scripts.
            if out and out[-1] < "\u0250":
                continue
            out.append(char)
        elif char in _APOSTROPHES:
            continue
        elif char == "&":
            out.append(" and ")
        elif category[0] in "PSZC":
            out.append(" ")
        else:
            out.append(char)
    return unicodedata.normalize("NFC", "".join(out)).casefold()


# --- Resolving ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    """A name to resolve: its key (the name as keyed), type ('' when untyped), the name as
    written with its ``lookup`` (case-folded) and ``norm`` (:func:`fold_name`) forms, and
    whether it may match other forms (``fuzzy``: a name from text) or only its key and typed
    key (KB lines, values)."""

    key: str
    type: str
    name: str
    lookup: str
    norm: str
    fuzzy: bool = True


@dataclass(frozen=True)
class Ambiguity:
    """A mention that several nodes matched equally; it was written as ``key``."""

    mention: str
    type: str
    key: str
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class Resolved:
    key: str
    how: str
    ambiguity: Ambiguity | None = None


def compatible(node_type: str, mention_type: str) -> bool:
    return not node_type or not mention_type or node_type == mention_type


@dataclass
class Resolver:
    """The nodes a batch's mentions can resolve to (found in the graph, or made by the batch
    before them), and the resolution of each mention in turn (pure: the tests drive it)."""

    types: dict[str, str] = field(default_factory=dict)
    lookups: dict[str, str] = field(default_factory=dict)
    by_lookup: dict[str, list[str]] = field(default_factory=dict)
    by_norm: dict[str, list[str]] = field(default_factory=dict)
    by_alias: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, entity_type: str = "", lookup: str = "", norm: str = "") -> None:
        """A node: as the graph holds it, or as the batch writes it. A key known already keeps
        its forms; an untyped one takes the type."""
        known = self.types.get(key)
        if known is not None:
            if not known and entity_type:
                self.types[key] = entity_type
            return
        self.types[key] = entity_type
        if lookup:
            self.lookups[key] = lookup
            self.by_lookup.setdefault(lookup, []).append(key)
        if norm:
            self.by_norm.setdefault(norm, []).append(key)

    def add_alias(self, norm: str, key: str) -> None:
        keys = self.by_alias.setdefault(norm, [])
        if key not in keys:
            keys.append(key)

    def found(self, mention: Name) -> bool:
        """Whether the graph side has anything for the mention (else aliases are looked up)."""
        if mention.key in self.types or typed_key(mention.key, mention.type) in self.types:
            return True
        return bool(mention.fuzzy and self.by_norm.get(mention.norm))

    def resolve(self, mention: Name) -> Resolved:
        key, kind = mention.key, mention.type
        if kind and typed_key(key, kind) in self.types:
            return self._take(typed_key(key, kind), TYPED, mention)
        own = self.types.get(key)
        if own is not None and compatible(own, kind):
            return self._take(key, EXACT, mention)
        ambiguity: Ambiguity | None = None
        norm = mention.norm if mention.fuzzy else ""
        if norm:
            lookup = mention.lookup
            tiers = (
                (CASE, self.by_lookup.get(lookup, ())),
                (NORMALISED, self.by_norm.get(norm, ())),
                (ALIAS, self.by_alias.get(norm, ())),
            )
            for how, keys in tiers:
                candidates = [k for k in keys if compatible(self.types.get(k, ""), kind)]
                same_type = [k for k in candidates if kind and self.types.get(k) == kind]
                candidates = same_type or candidates
                if len(candidates) == 1:
                    return self._take(candidates[0], how, mention)
                if candidates:
                    ambiguity = Ambiguity(mention.name, kind, "", tuple(sorted(candidates)))
                    break
        # Its own node: the name's key unless a node of another type holds it.
        chosen = key if own is None or compatible(own, kind) else typed_key(key, kind)
        self.add(chosen, kind, mention.lookup, mention.norm or fold_name(mention.name))
        if ambiguity is not None:
            ambiguity = Ambiguity(ambiguity.mention, kind, chosen, ambiguity.candidates)
        return Resolved(chosen, NEW, ambiguity)

    def _take(self, key: str, how: str, mention: Name) -> Resolved:
        if not self.types.get(key) and mention.type:
            self.types[key] = mention.type
        return Resolved(key, how)


# --- The graph side ----------------------------------------------------------------------------

# Index seeks only: the keys on the uniqueness constraint, the folded names on entity_norm.
_FIND = """
CALL () {
  UNWIND $keys AS k
  MATCH (e:Entity {key: k})
  RETURN e
  UNION
  UNWIND $norms AS n
  MATCH (e:Entity {norm: n})
  RETURN e
}
WITH collect({key: e.key, type: coalesce(e.type, ''), lookup: e.lookup, norm: e.norm}) AS nodes
RETURN nodes, EXISTS { MATCH (a:Entity) WHERE a.aliases IS NOT NULL } AS aliased
"""

_FIND_ALIASES = """
UNWIND $probes AS p
CALL db.index.fulltext.queryNodes('entity_aliases', p.query, {limit: $limit}) YIELD node
RETURN p.norm AS norm, node.key AS key, coalesce(node.type, '') AS type, node.lookup AS lookup,
       node.norm AS node_norm, node.aliases AS aliases
"""


def _phrase(norm: str) -> str:
    """A Lucene phrase query for a folded name (no operators survive inside the quotes)."""
    escaped = norm.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


async def resolve_mentions(
    tx: AsyncManagedTransaction,
    pending: Sequence[Name],
    written: Iterable[Name] = (),
    explicit: Iterable[str] = (),
) -> list[Resolved]:
    """Resolve ``pending`` in order against the graph and the batch. ``written``: the exact
    names the batch writes (KB lines), candidates from the start; ``explicit``: keys given by
    the extractor (their nodes' types matter)."""
    if not pending:
        return []
    written = list(written)
    keys: set[str] = set(explicit)
    norms: set[str] = set()
    for mention in pending:
        keys.add(mention.key)
        if mention.type:
            keys.add(typed_key(mention.key, mention.type))
        if mention.fuzzy and mention.norm:
            norms.add(mention.norm)
    fuzzy = bool(norms)
    record = await (await tx.run(_FIND, keys=sorted(keys), norms=sorted(norms))).single(strict=True)
    resolver = Resolver()
    for node in record["nodes"]:
        resolver.add(node["key"], node["type"], node["lookup"] or "", node["norm"] or "")
    for key in explicit:
        resolver.add(key, "", "", "")
    if fuzzy:
        for mention in written:
            resolver.add(mention.key, mention.type, mention.lookup, mention.norm)
    if fuzzy and record["aliased"]:
        await _find_aliases(tx, resolver, pending)
    return [resolver.resolve(mention) for mention in pending]


async def _find_aliases(
    tx: AsyncManagedTransaction, resolver: Resolver, pending: Sequence[Name]
) -> None:
    probes = sorted({m.norm for m in pending if m.fuzzy and m.norm and not resolver.found(m)})
    if not probes:
        return
    params = [{"norm": norm, "query": _phrase(norm)} for norm in probes]
    result = await tx.run(_FIND_ALIASES, probes=params, limit=ALIAS_HITS_PER_MENTION)
    for row in await result.data():
        aliases: Any = row["aliases"]
        if not isinstance(aliases, list):
            continue
        if any(isinstance(a, str) and fold_name(a) == row["norm"] for a in aliases):
            resolver.add(row["key"], row["type"], row["lookup"] or "", row["node_norm"] or "")
            resolver.add_alias(row["norm"], row["key"])


# --- Backfill ----------------------------------------------------------------------------------

_READ_UNFOLDED = """
MATCH (e:Entity) WHERE e.norm IS NULL
RETURN e.key AS key, coalesce(e.name, e.key) AS name
LIMIT $limit
"""

_WRITE_FOLDED = """
UNWIND $rows AS row
MATCH (e:Entity {key: row.key})
SET e.norm = row.norm
"""

# properties(): no warning about a property key a fresh graph has never seen.
_READ_NORM_VERSION = "MATCH (m:GraphMeta {id: 'graph'}) RETURN properties(m) AS meta"

_CLEAR_NORMS = """
MATCH (e:Entity) WHERE e.norm IS NOT NULL
CALL (e) { SET e.norm = null } IN TRANSACTIONS OF 10000 ROWS
"""

# Only in a graph that has entities (an empty one stays empty).
_WRITE_NORM_VERSION = """
MATCH (e:Entity) WITH e LIMIT 1
MERGE (m:GraphMeta {id: 'graph'})
ON CREATE SET m.version = 0
SET m.norm_version = $version
"""


async def backfill_norms(store: GraphStore, batch: int = 10_000) -> int:
    """Set ``norm`` on the entities that lack it (written before it existed, or by a writer
    that did not set it); returns how many were set. Writers set it on every node they make,
    so this is one label scan that finds nothing, at the graph-builder's start. When the graph
    was folded by another ``NORM_VERSION``, every node is folded again."""
    meta = await store.run_read(_READ_NORM_VERSION)
    stored = meta[0]["meta"].get("norm_version") if meta else None
    if stored is not None and stored != NORM_VERSION:
        await store.run_write(_CLEAR_NORMS)
    total = 0
    while True:
        rows = await store.run_read(_READ_UNFOLDED, limit=batch)
        if not rows:
            break
        folded = [{"key": r["key"], "norm": fold_name(str(r["name"]))} for r in rows]
        await store.run_write(_WRITE_FOLDED, rows=folded)
        total += len(folded)
    if stored != NORM_VERSION:
        await store.run_write(_WRITE_NORM_VERSION, version=NORM_VERSION)
    return total
