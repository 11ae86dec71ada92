"""Document writes with provenance: every edge knows which documents support it, and a document
can be replaced or deleted without a rebuild.

The graph model (what ``autoglm.graph.store`` adds to the ``:Entity`` / ``:REL`` graph):

- **Support on the edge**: ``(:Entity)-[:REL {type, confidence, sources, confidences}]->(:Entity)``.
  ``sources`` lists the documents (KB chunks and texts alike) that state the fact, by their
  ``ref`` (``(:Document {ref})``, indexed: ``MATCH (d:Document) WHERE d.ref IN r.sources``),
  ``confidences`` the confidence each one gave it in thousandths, and ``confidence`` is their
  maximum. The same fact from a KB and from a text is therefore one edge with two sources. The
  list lives on the edge, not on separate support nodes, because retrieval walks ``REL`` edges
  on every question (hubs of ~4,000 edges included): a support node per edge would double the
  relationships of the hot path (and the MetaQA KB's write time) to answer a question asked
  only on updates. Integers, not ids and floats, because Neo4j keeps a short integer array
  inside the relationship's property record, while a string or float array goes to the dynamic
  array store: with document ids and float confidences, loading the MetaQA KB took 60 % longer
  than without provenance; with integers it costs about the same. A ``ref`` is 62 bits of a
  hash of the document id (no counter to lock; a collision needs ~2^31 documents); ``0`` in
  ``sources`` stands for an unknown source: an edge written before provenance was kept, which
  no delete can remove.
- **What a document wrote, on the document**: ``(:Document {id, ref, source, content_hash,
  extractor_version, subjects})``. ``subjects`` (the distinct subject keys of its edges) is how
  an update finds the edges of a document without an index over list elements (Neo4j has
  none): an index seek on each subject, then its outgoing edges whose ``sources`` hold the
  document's ``ref`` (a whole edge list on the node cost a tenth of a KB's load time; a KB
  chunk names each film as subject of several lines). ``content_hash``
  fingerprints what the document wrote (its parsed facts, not its request id), so a redelivered
  or unchanged upsert is recognised before any write and changes nothing, not even the version.
- **Evidence, for text**: ``(:Document)-[:HAS_SENTENCE]->(:Sentence {key, document_id, index,
  text, start_char, end_char})-[:SUPPORTS {type, object, open, start_char, end_char,
  confidence, extractor_version}]->(subject :Entity)``. A sentence keeps its text, so ``ask``
  can show it; a ``SUPPORTS`` relationship says which fact (relation and object key) the
  sentence states about its subject, with the character offsets of the evidence in the
  document. Pointing at the subject makes the evidence of an edge an index seek plus a
  typed expansion (``autoglm.graph.evidence``), and deleting a document's sentences (``DETACH
  DELETE``) removes all of its evidence at once. Only the sentences that state a fact are kept.
- **Open relations** (read from text, outside the schema) are ``:OPEN_REL`` edges, with the same
  properties as ``:REL``. Retrieval matches ``:REL`` only, so they cost nothing there until a
  reader asks for them (``retrieval_include_open``); a property flag would have to be read on
  every edge retrieval walks.
- **Entity types**: a typed entity from text (``subject_type``) that the extractor did not
  resolve to a node is keyed by its name when that key is free or holds an entity of the same
  or no type (KB entities carry no type: MetaQA keys by name, and those keys are unchanged),
  and by ``name|Type`` otherwise, so a person named Paris never merges into the city. ``|``
  cannot occur in a KB key (it separates the fields of a KB line). The choice reads the graph
  inside the write transaction, first come first served: documents in id order, entities in
  the order their document names them.
  Two graph-builder replicas creating the same new name with different types at the same
  moment can still meet in one node (the key constraint serialises them, the type check does
  not); documents of one id always go to one replica.
- **Entity resolution**: a name from text that names an existing node in another form (case,
  accents, punctuation, a leading article, an alias) is that node, under the same type rules;
  several equally good candidates are reported, never guessed (``autoglm.graph.resolution``,
  which also owns ``norm``, the folded name every ``:Entity`` carries, indexed). KB lines and
  values are exact, and a batch of KB documents runs no resolution query.

Updates (``DocumentAction``): an upsert of a known document id removes what the old version
supported and the new one does not (an edge is deleted when no source is left), then writes the
new version; a delete removes the document's whole contribution and its node. Entities left
without any relationship are deleted with it. Both are idempotent: a second delete finds no
document, a second upsert finds the same ``content_hash``. Several messages for one document
in a batch reduce to the last one (the partition keeps their order: documents are keyed by id).

Concurrency: every ``REL`` a statement updates is write-locked (``SET r.locked_``) before its
``sources`` are read, so two transactions adding sources to one edge cannot lose one; rows are
sorted so that concurrent writers lock in the same order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from neo4j import AsyncManagedTransaction

from autoglm.contracts import DocumentAction, DocumentFormat, ParsedDocument
from autoglm.errors import BadInputError
from autoglm.graph.resolution import MATCHED, Ambiguity, Name, fold_name, resolve_mentions
from autoglm.graph.resolution import SCHEMA_STATEMENTS as RESOLUTION_SCHEMA_STATEMENTS
from autoglm.graph.resolution import TYPED_KEY_SEPARATOR as TYPED_KEY_SEPARATOR
from autoglm.graph.resolution import typed_key as typed_key
from autoglm.nlp.keys import normalize_key

UPSERT = DocumentAction.DOCUMENT_ACTION_UPSERT
DELETE = DocumentAction.DOCUMENT_ACTION_DELETE
TRIPLES = DocumentFormat.DOCUMENT_FORMAT_TRIPLES
TEXT = DocumentFormat.DOCUMENT_FORMAT_TEXT

UNKNOWN_SOURCE = 0
"""The source of an edge written before edges recorded their sources."""

REL = "REL"
OPEN_REL = "OPEN_REL"

SCHEMA_STATEMENTS = (
    "CREATE CONSTRAINT sentence_key IF NOT EXISTS FOR (s:Sentence) REQUIRE s.key IS UNIQUE",
    "CREATE INDEX document_ref IF NOT EXISTS FOR (d:Document) ON (d.ref)",
    *RESOLUTION_SCHEMA_STATEMENTS,
)


def document_ref(document_id: str) -> int:
    """The number that stands for a document in the ``sources`` of the edges it supports."""
    digest = hashlib.blake2b(document_id.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") & ((1 << 62) - 1)) or 1


def thousandths(confidence: float) -> int:
    return 0 if confidence <= 0.0 else 1000 if confidence >= 1.0 else int(confidence * 1000 + 0.5)


def sentence_key(document_id: str, index: int) -> str:
    # Unique: the index is digits, so the last '#' separates it from any document id.
    return f"{document_id}#{index}"


class EntityRef(NamedTuple):
    """An entity as a document names it: the key to use, or the name key and a type to resolve
    against the graph (``needs_resolution``). A tuple: a KB batch hashes hundreds of
    thousands of them."""

    key: str
    type: str = ""
    resolved: bool = False  # the key is the extractor's: an existing node, used as is

    @property
    def needs_resolution(self) -> bool:
        return bool(self.type) and not self.resolved


Edge = tuple[EntityRef, str, EntityRef, bool]
"""(subject, relation, object, open) as the document states it."""


@dataclass(frozen=True, order=True)
class EvidenceRow:
    sentence: int
    start_char: int
    end_char: int
    confidence: float


@dataclass
class DocumentRows:
    """What one parsed document writes, deduplicated, before keys are resolved."""

    document_id: str
    source: str
    action: DocumentAction = UPSERT
    extractor_version: str = ""
    text: bool = False  # read from free text: its names are resolved in any form
    exact: bool = False  # KB lines: names are keys as they are (typed ones get a typed key)
    entities: dict[EntityRef, dict[str, str]] = field(default_factory=dict)
    triples: dict[Edge, float] = field(default_factory=dict)
    evidence: dict[Edge, set[EvidenceRow]] = field(default_factory=dict)
    mentions: set[EntityRef] = field(default_factory=set)
    values: set[EntityRef] = field(default_factory=set)  # named as a value: resolved exactly
    sentences: dict[int, dict[str, Any]] = field(default_factory=dict)
    content_hash: str = ""
    _refs: dict[tuple[str, str, str], EntityRef | None] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, document: ParsedDocument) -> DocumentRows:
        action = document.action or UPSERT
        rows = cls(document.document_id, document.source, action, document.extractor_version)
        if action == DELETE:
            return rows
        rows.exact = document.format == TRIPLES
        rows.text = not rows.exact and (document.format == TEXT or bool(document.extractor_version))
        for mention in document.entities:
            ref = rows.add_entity(mention.text, mention.label)
            if ref is not None:
                rows.mentions.add(ref)
        sentences = document.sentences
        for triple in document.triples:
            subject = rows.add_entity(triple.subject, "", triple.subject_type, triple.subject_key)
            obj = rows.add_entity(triple.object, "", triple.object_type, triple.object_key)
            predicate = triple.predicate.strip()
            if subject is None or obj is None or not predicate:
                continue
            if triple.object_literal:
                rows.values.add(obj)
            # A triple said twice keeps its best confidence.
            edge = (subject, predicate, obj, triple.open)
            rows.triples[edge] = max(rows.triples.get(edge, 0.0), float(triple.confidence))
            if 0 <= triple.sentence < len(sentences):
                sentence = sentences[triple.sentence]
                start, end = triple.start_char, triple.end_char
                if end <= start:  # no span of its own: the sentence is the evidence
                    start, end = sentence.start_char, sentence.end_char
                rows.evidence.setdefault(edge, set()).add(
                    EvidenceRow(triple.sentence, start, end, round(float(triple.confidence), 6))
                )
                rows.sentences[triple.sentence] = {
                    "index": triple.sentence,
                    "text": sentence.text,
                    "start_char": sentence.start_char,
                    "end_char": sentence.end_char,
                }
        rows.content_hash = fingerprint(document)
        return rows

    def add_entity(
        self, name: str, label: str, entity_type: str = "", key: str = ""
    ) -> EntityRef | None:
        # A KB names each entity many times: normalise each spelling once.
        spelling = (name, entity_type, key)
        if spelling in self._refs:
            ref = self._refs[spelling]
        else:
            explicit = normalize_key(key)
            name_key = normalize_key(name)
            ref = (
                EntityRef(explicit or name_key, entity_type.strip(), bool(explicit))
                if explicit or name_key
                else None
            )
            self._refs[spelling] = ref
        if ref is None:
            return None
        row = self.entities.get(ref)
        if row is None:
            # The name as written (stripped) is what users see; the key is what matches.
            display = name.strip() or ref.key
            self.entities[ref] = {
                "name": display,
                "label": label,
                "lookup": (normalize_key(display) or ref.key).casefold(),
                "norm": fold_name(display),
            }
        elif label and not row["label"]:
            row["label"] = label
        return ref

    def check(self, max_chars: int) -> None:
        """Reject what cannot be written before it can fail a whole batch: names too long to be
        index keys, an unknown action."""
        if self.action not in (UPSERT, DELETE):
            raise BadInputError(
                f"unknown document action {self.action}", error_type="invalid_field"
            )
        names = [
            *(typed_key(ref.key, ref.type) if ref.type else ref.key for ref in self.entities),
            *(predicate for _, predicate, _, _ in self.triples),
        ]
        too_long = [name for name in names if len(name) > max_chars]
        if too_long:
            raise BadInputError(
                f"{len(too_long)} entity name(s) or relation type(s) longer than {max_chars} "
                f"characters (first: {too_long[0][:80]!r}...)",
                error_type="too_large",
            )


def fingerprint(document: ParsedDocument) -> str:
    """Digest of what a parsed document writes: its facts, mentions, sentences and extractor
    version, not its request id, source or timings (the deterministic protobuf encoding)."""
    content = ParsedDocument()
    content.CopyFrom(document)
    for name in ("request_id", "schema_version", "source", "line_errors", "timings"):
        content.ClearField(name)
    encoded = content.SerializeToString(deterministic=True)
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


@dataclass(frozen=True)
class BatchOutcome:
    """What a batch did: per document id, the edges removed, the names resolved to an existing
    node under another form and the ambiguous ones; which documents were unchanged."""

    changed: bool
    entities: int
    triples: int
    removed: dict[str, int] = field(default_factory=dict)
    unchanged: frozenset[str] = frozenset()
    resolved: dict[str, int] = field(default_factory=dict)
    ambiguous: dict[str, tuple[Ambiguity, ...]] = field(default_factory=dict)


# --- Cypher ------------------------------------------------------------------------------------

_READ_DOCUMENTS = """
UNWIND $ids AS id
MATCH (d:Document {id: id})
RETURN d.id AS id, d.content_hash AS hash
"""

# The edges a stored document supports (only read for documents replaced or deleted).
_READ_DOCUMENT_EDGES = """
UNWIND $documents AS d
MATCH (doc:Document {id: d.id})
UNWIND coalesce(doc.subjects, []) AS key
MATCH (s:Entity {key: key})-[r:REL|OPEN_REL]->(o:Entity)
WHERE d.ref IN r.sources
RETURN d.id AS id, s.key AS subject, r.type AS predicate, o.key AS object,
       type(r) = 'OPEN_REL' AS open
"""

# Mentions and sentences (with their SUPPORTS evidence) of documents being replaced or deleted;
# returns the keys the mentions pointed at (orphan candidates).
_DETACH_DOCUMENTS = """
UNWIND $documents AS d
MATCH (doc:Document {id: d.id})
CALL (doc) {
  MATCH (doc)-[:HAS_SENTENCE]->(s:Sentence)
  DETACH DELETE s
}
CALL (doc) {
  MATCH (doc)-[m:MENTIONS]->(e:Entity)
  DELETE m
  RETURN collect(e.key) AS mentioned
}
CALL (doc, d) {
  WITH doc WHERE d.delete
  DETACH DELETE doc
}
RETURN mentioned
"""

# One row per edge: the documents that no longer support it. Deleted when no source is left
# and no document of the batch writes it again (``keep``).
_UNSUPPORT = """
UNWIND $edges AS x
MATCH (s:Entity {key: x.subject})-[r:%(type)s]->(o:Entity {key: x.object})
WHERE r.type = x.predicate
SET r.locked_ = true
REMOVE r.locked_
WITH r, x, [i IN range(0, size(coalesce(r.sources, [])) - 1)
            WHERE NOT r.sources[i] IN x.documents | i] AS kept
WITH r, x, [i IN kept | r.sources[i]] AS sources,
     [i IN kept | coalesce(r.confidences[i], 1000)] AS confidences
SET r.sources = sources, r.confidences = confidences,
    r.confidence = reduce(m = 0, c IN confidences | CASE WHEN c > m THEN c ELSE m END) / 1000.0
WITH r, x
WHERE size(r.sources) = 0 AND NOT x.keep
DELETE r
RETURN x.documents AS documents
"""

_WRITE_ENTITIES = """
UNWIND $entities AS e
MERGE (n:Entity {key: e.key})
ON CREATE SET n.name = e.name, n.label = e.label, n.lookup = e.lookup, n.norm = e.norm,
              n.type = CASE WHEN e.type = '' THEN null ELSE e.type END
WITH n, e
WHERE (n.label = '' AND e.label <> '') OR (n.type IS NULL AND e.type <> '')
SET n.label = CASE WHEN n.label = '' THEN e.label ELSE n.label END,
    n.type = coalesce(n.type, CASE WHEN e.type = '' THEN null ELSE e.type END)
"""

# One row per edge: the batch's documents that support it and their confidences replace what
# those documents said before; other sources are kept. A new edge (most of a KB) is written in
# one go; an existing one is locked before its sources are read.
_SUPPORT = """
UNWIND $edges AS t
MATCH (s:Entity {key: t.subject})
MATCH (o:Entity {key: t.object})
MERGE (s)-[r:%(type)s {type: t.predicate}]->(o)
ON CREATE SET r.sources = t.documents, r.confidences = t.confidences,
              r.confidence = t.confidence
ON MATCH SET r.locked_ = true
WITH r, t
WHERE r.locked_
REMOVE r.locked_
WITH r, t, coalesce(r.sources, [$unknown]) AS sources,
     coalesce(r.confidences, [toInteger(round(coalesce(r.confidence, 1.0) * 1000))])
     AS confidences
WITH r, t, [i IN range(0, size(sources) - 1) WHERE NOT sources[i] IN t.documents
            | [sources[i], confidences[i]]] + [i IN range(0, size(t.documents) - 1)
            | [t.documents[i], t.confidences[i]]] AS pairs
SET r.sources = [p IN pairs | p[0]],
    r.confidences = [p IN pairs | p[1]],
    r.confidence = reduce(m = 0, p IN pairs | CASE WHEN p[1] > m THEN p[1] ELSE m END) / 1000.0
"""

_WRITE_DOCUMENTS = """
UNWIND $documents AS d
MERGE (doc:Document {id: d.id})
SET doc.ref = d.ref, doc.source = d.source, doc.content_hash = d.hash,
    doc.extractor_version = d.extractor,
    doc.subjects = d.subjects
WITH doc, d
CALL (doc, d) {
  UNWIND d.mentions AS key
  MATCH (e:Entity {key: key})
  MERGE (doc)-[:MENTIONS]->(e)
}
CALL (doc, d) {
  UNWIND d.sentences AS x
  MERGE (s:Sentence {key: x.key})
  SET s.document_id = d.id, s.index = x.index, s.text = x.text,
      s.start_char = x.start_char, s.end_char = x.end_char
  MERGE (doc)-[:HAS_SENTENCE]->(s)
}
"""

_WRITE_EVIDENCE = """
UNWIND $evidence AS x
MATCH (s:Sentence {key: x.sentence})
MATCH (e:Entity {key: x.subject})
CREATE (s)-[:SUPPORTS {type: x.predicate, object: x.object, open: x.open,
                       start_char: x.start_char, end_char: x.end_char,
                       confidence: x.confidence, extractor_version: x.extractor}]->(e)
"""

_DELETE_ORPHANS = """
UNWIND $keys AS key
MATCH (e:Entity {key: key})
WHERE NOT EXISTS { (e)--() }
DELETE e
"""


# --- The plan of a batch -----------------------------------------------------------------------


@dataclass
class _Previous:
    """What a stored document wrote last time (its edges are read only when needed)."""

    content_hash: str
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)


def last_per_document(batch: Iterable[DocumentRows]) -> list[DocumentRows]:
    """The last message of each document id (the state it leaves), in id order."""
    final: dict[str, DocumentRows] = {}
    for rows in batch:
        final[rows.document_id] = rows
    return [final[key] for key in sorted(final)]


@dataclass
class _Keys:
    """The key chosen for each entity that needed one (the others keep theirs), the entities
    resolved to a node under another form, and the ambiguous ones."""

    chosen: dict[EntityRef, str] = field(default_factory=dict)
    matched: set[EntityRef] = field(default_factory=set)
    ambiguous: dict[EntityRef, Ambiguity] = field(default_factory=dict)


def _mention(ref: EntityRef, row: dict[str, str], fuzzy: bool) -> Name:
    return Name(ref.key, ref.type, row["name"], row["lookup"], row["norm"], fuzzy)


async def _resolve(tx: AsyncManagedTransaction, writes: Sequence[DocumentRows]) -> _Keys:
    """Keys for the names of text documents and typed names (``autoglm.graph.resolution``);
    a batch of KB lines needs none and reads nothing."""
    pending: dict[EntityRef, Name] = {}
    for rows in writes:
        if rows.exact:
            for ref, row in rows.entities.items():
                if ref.needs_resolution and ref not in pending:
                    pending[ref] = _mention(ref, row, False)
            continue
        for ref, row in rows.entities.items():
            # Text, and typed names (an extractor's); values only by key.
            fuzzy = (rows.text or bool(ref.type)) and ref not in rows.values
            if (fuzzy or ref.needs_resolution) and ref not in pending:
                pending[ref] = _mention(ref, row, fuzzy)
    keys = _Keys()
    if not pending:
        return keys
    written: dict[EntityRef, Name] = {}
    explicit: set[str] = set()
    if any(m.fuzzy for m in pending.values()):
        # Names the batch writes as they are: candidates for its text from the start.
        for rows in writes:
            for ref, row in rows.entities.items():
                if ref.resolved:
                    explicit.add(ref.key)
                elif ref not in pending and ref not in written:
                    written[ref] = _mention(ref, row, False)
    outcomes = await resolve_mentions(
        tx, list(pending.values()), written.values(), sorted(explicit)
    )
    for ref, outcome in zip(pending, outcomes, strict=True):
        keys.chosen[ref] = outcome.key
        if outcome.how in MATCHED:
            keys.matched.add(ref)
        if outcome.ambiguity is not None:
            keys.ambiguous[ref] = outcome.ambiguity
    return keys


async def write_batch(tx: AsyncManagedTransaction, batch: Sequence[DocumentRows]) -> BatchOutcome:
    """Apply a batch of document upserts and deletes in one transaction (the caller bumps the
    graph version when ``changed``). Pure in its inputs, so a retried transaction redoes it."""
    documents = last_per_document(batch)
    records = await (await tx.run(_READ_DOCUMENTS, ids=[d.document_id for d in documents])).data()
    stored = {r["id"]: _Previous(r["hash"] or "") for r in records}

    writes: list[DocumentRows] = []
    detach: list[tuple[DocumentRows, _Previous]] = []
    unchanged: set[str] = set()
    for rows in documents:
        previous = stored.get(rows.document_id)
        if rows.action == DELETE:
            if previous is None:
                unchanged.add(rows.document_id)
            else:
                detach.append((rows, previous))
            continue
        if previous is not None and previous.content_hash == rows.content_hash:
            unchanged.add(rows.document_id)
            continue
        writes.append(rows)
        if previous is not None:
            detach.append((rows, previous))
    if not writes and not detach:
        return BatchOutcome(False, 0, 0, unchanged=frozenset(unchanged))
    if detach:
        params = [
            {"id": rows.document_id, "ref": document_ref(rows.document_id)} for rows, _ in detach
        ]
        for row in await (await tx.run(_READ_DOCUMENT_EDGES, documents=params)).data():
            edge = (row["subject"], row["predicate"], row["object"], row["open"])
            stored[row["id"]].edges.append(edge)

    # Keys of text names and typed names, chosen against the graph as it is now.
    keys = await _resolve(tx, writes)
    rows_of = _WriteRows.of(writes, keys.chosen, keys.matched)
    removed: dict[str, int] = {}
    orphans: set[str] = set()
    if detach:
        removed, orphans = await _detach(tx, detach, rows_of.edge_set, rows_of.by_document)

    if rows_of.entities:
        await (await tx.run(_WRITE_ENTITIES, entities=rows_of.entities)).consume()
    for rel_type, edges in ((REL, rows_of.edges), (OPEN_REL, rows_of.open_edges)):
        if edges:
            query = _SUPPORT % {"type": rel_type}
            await (await tx.run(query, edges=edges, unknown=UNKNOWN_SOURCE)).consume()
    if rows_of.documents:
        await (await tx.run(_WRITE_DOCUMENTS, documents=rows_of.documents)).consume()
    if rows_of.evidence:
        await (await tx.run(_WRITE_EVIDENCE, evidence=rows_of.evidence)).consume()
    if orphans:
        await (await tx.run(_DELETE_ORPHANS, keys=sorted(orphans))).consume()
    resolved: dict[str, int] = {}
    ambiguous: dict[str, tuple[Ambiguity, ...]] = {}
    for rows in writes:
        if keys.matched:
            resolved[rows.document_id] = sum(ref in keys.matched for ref in rows.entities)
        if keys.ambiguous:
            found = tuple(keys.ambiguous[r] for r in rows.entities if r in keys.ambiguous)
            if found:
                ambiguous[rows.document_id] = found
    return BatchOutcome(
        True,
        len(rows_of.entities),
        len(rows_of.edges) + len(rows_of.open_edges),
        removed,
        frozenset(unchanged),
        resolved,
        ambiguous,
    )


async def _detach(
    tx: AsyncManagedTransaction,
    detach: Sequence[tuple[DocumentRows, _Previous]],
    written: set[tuple[str, str, str, bool]],
    own: dict[str, set[tuple[str, str, str, bool]]],
) -> tuple[dict[str, int], set[str]]:
    """Take away what replaced and deleted documents supported; (edges removed per document,
    orphan candidates)."""
    params = [
        {"id": rows.document_id, "delete": rows.action == DELETE}
        for rows, _ in sorted(detach, key=lambda d: d[0].document_id)
    ]
    orphans: set[str] = set()
    for record in await (await tx.run(_DETACH_DOCUMENTS, documents=params)).data():
        orphans.update(record["mentioned"])
    # A replaced document's edges that it writes again keep its source (rewritten below);
    # the others lose it, and go when no source is left and nothing in the batch writes them.
    by_edge: dict[tuple[str, str, str, bool], list[str]] = {}
    for rows, previous in detach:
        again = own.get(rows.document_id, set()) if rows.action != DELETE else set()
        for edge in previous.edges:
            if edge in again:
                continue
            by_edge.setdefault(edge, []).append(rows.document_id)
            orphans.update((edge[0], edge[2]))
    removed = {rows.document_id: 0 for rows, _ in detach}
    for rel_type, is_open in ((REL, False), (OPEN_REL, True)):
        edges = [
            {
                "subject": s,
                "predicate": p,
                "object": o,
                "documents": sorted(document_ref(d) for d in documents),
                "keep": (s, p, o, is_open) in written,
            }
            for (s, p, o, flag), documents in sorted(by_edge.items())
            if flag == is_open
        ]
        if not edges:
            continue
        result = await tx.run(_UNSUPPORT % {"type": rel_type}, edges=edges)
        ids = {document_ref(rows.document_id): rows.document_id for rows, _ in detach}
        for record in await result.data():
            for ref in record["documents"]:
                removed[ids[ref]] = removed.get(ids[ref], 0) + 1
    return removed, orphans


@dataclass
class _WriteRows:
    """The parameters of the write statements for the documents a batch writes."""

    entities: list[dict[str, str]]
    edges: list[dict[str, Any]]
    open_edges: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    edge_set: set[tuple[str, str, str, bool]]
    by_document: dict[str, set[tuple[str, str, str, bool]]]

    @classmethod
    def of(
        cls,
        writes: Sequence[DocumentRows],
        keys: dict[EntityRef, str],
        matched: set[EntityRef] | frozenset[EntityRef] = frozenset(),
    ) -> _WriteRows:
        """``keys``: the key chosen for each entity that needed one (the others keep theirs);
        ``matched``: those resolved to a node under another form, whose name as written is
        not that node's name (another row of the batch for the node gives it)."""

        def key_of(ref: EntityRef) -> str:
            return keys.get(ref, ref.key) if keys else ref.key

        entities: dict[str, dict[str, str]] = {}
        borrowed: set[str] = set()  # rows made from a matched name
        # Edge -> (document ref, confidence in thousandths) of each document that states it.
        support: dict[tuple[str, str, str, bool], list[tuple[int, int]]] = {}
        documents: list[dict[str, Any]] = []
        evidence: list[dict[str, Any]] = []
        by_document: dict[str, set[tuple[str, str, str, bool]]] = {}
        for rows in writes:
            for ref, row in rows.entities.items():
                key = key_of(ref)
                known = entities.get(key)
                if known is None:
                    entities[key] = {**row, "key": key, "type": ref.type}
                    if matched and ref in matched:
                        borrowed.add(key)
                elif key in borrowed and ref not in matched:
                    # The node's own name, where the batch writes it too.
                    borrowed.discard(key)
                    known.update(name=row["name"], lookup=row["lookup"], norm=row["norm"])
                    known["label"] = known["label"] or row["label"]
                    known["type"] = known["type"] or ref.type
                else:
                    if row["label"] and not known["label"]:
                        known["label"] = row["label"]
                    if ref.type and not known["type"]:
                        known["type"] = ref.type
            own: dict[tuple[str, str, str, bool], float] = {}
            for stated, confidence in rows.triples.items():
                s, p, o, is_open = stated
                edge = (key_of(s), p, key_of(o), is_open) if keys else (s.key, p, o.key, is_open)
                if confidence > own.get(edge, -1.0):
                    own[edge] = confidence
                found_in = rows.evidence.get(stated)
                if found_in:
                    evidence.extend(
                        {
                            "sentence": sentence_key(rows.document_id, found.sentence),
                            "subject": edge[0],
                            "predicate": p,
                            "object": edge[2],
                            "open": is_open,
                            "start_char": found.start_char,
                            "end_char": found.end_char,
                            "confidence": found.confidence,
                            "extractor": rows.extractor_version,
                        }
                        for found in sorted(found_in)
                    )
            number = document_ref(rows.document_id)
            for edge, confidence in own.items():
                supporters = support.get(edge)
                if supporters is None:
                    support[edge] = [(number, thousandths(confidence))]
                else:
                    supporters.append((number, thousandths(confidence)))
            by_document[rows.document_id] = set(own)
            documents.append(
                {
                    "id": rows.document_id,
                    "ref": number,
                    "source": rows.source,
                    "hash": rows.content_hash,
                    "extractor": rows.extractor_version,
                    "subjects": sorted({edge[0] for edge in own}),
                    "mentions": sorted({key_of(ref) for ref in rows.mentions}),
                    "sentences": [
                        {**s, "key": sentence_key(rows.document_id, i)}
                        for i, s in sorted(rows.sentences.items())
                    ],
                }
            )
        # Sorted rows: writers lock nodes and edges in one order (no deadlock between
        # replicas), and the edges of one subject are written together.
        edge_rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for (subject, predicate, obj, is_open), supporters in sorted(support.items()):
            if len(supporters) == 1:  # most of a KB: no sorting, no max
                ((number, confidence),) = supporters
                numbers, confidences, best = [number], [confidence], confidence
            else:
                supporters.sort()
                numbers = [n for n, _ in supporters]
                confidences = [c for _, c in supporters]
                best = max(confidences)
            edge_rows[is_open].append(
                {
                    "subject": subject,
                    "predicate": predicate,
                    "object": obj,
                    "documents": numbers,
                    "confidences": confidences,
                    "confidence": best / 1000.0,
                }
            )
        return cls(
            entities=[entities[key] for key in sorted(entities)],
            edges=edge_rows[False],
            open_edges=edge_rows[True],
            documents=sorted(documents, key=lambda d: d["id"]),
            evidence=evidence,
            edge_set=set(support),
            by_document=by_document,
        )
