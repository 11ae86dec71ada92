"""Neo4j access: schema, batched idempotent writes, and the graph version.

Data model: ``(:Entity {key, name, label, lookup})``, ``(:Document {id})-[:MENTIONS]->(:Entity)``
and relations as one relationship type ``REL`` with a ``type`` property. One type (not a type per
relation) keeps every query fully parameterised: relationship types cannot be parameters in
Cypher, so typed relationships would mean building query text from user input. Retrieval expands
from anchor entities and filters ``r.type`` on the few relationships of each node, which costs the
same as a typed expansion for nodes of ordinary degree.

There is deliberately no index on ``r.type``: nothing looks relations up by type alone, and with
one the planner, working from the statistics of an empty graph, answers ``MERGE (s)-[:REL {type}]
->(o)`` with a seek of every relation of that type instead of an expansion between the two bound
nodes, which made loading a KB quadratic until it re-planned (13 s for the first 5,000 MetaQA
triples instead of 0.3 s). ``ensure_schema`` drops it from graphs made before.

Writes come in batches of documents (the graph-builder consumes a batch of messages at a time):
one transaction and one write query per batch, rows deduplicated and sorted so that concurrent
writers lock nodes in the same order. The graph version lives on a single
``(:GraphMeta {id: 'graph'})`` node and is bumped in the same transaction as a write that changed
something, so caches keyed by it are never stale and a replayed batch leaves it alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction
from neo4j.exceptions import ServiceUnavailable, SessionExpired
from neo4j.exceptions import TransientError as Neo4jTransient

from autoglm.contracts import ParsedDocument
from autoglm.errors import BadInputError, TransientError
from autoglm.nlp.keys import normalize_key
from autoglm.settings import Settings

SCHEMA_STATEMENTS = (
    "CREATE CONSTRAINT entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE e.key IS UNIQUE",
    "CREATE CONSTRAINT document_id IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT graph_meta_id IF NOT EXISTS FOR (m:GraphMeta) REQUIRE m.id IS UNIQUE",
    "CREATE FULLTEXT INDEX entity_names IF NOT EXISTS FOR (e:Entity) ON EACH [e.name]",
    "CREATE INDEX entity_lookup IF NOT EXISTS FOR (e:Entity) ON (e.lookup)",
    "DROP INDEX rel_type IF EXISTS",
)

# One statement per batch. A label is filled in when an entity first met without one (as the end
# of a triple) is later recognised by NER; a known label is never overwritten, so a replay sets
# nothing and the graph version stays put.
_WRITE_BATCH = """
CALL () {
  UNWIND $entities AS e
  MERGE (n:Entity {key: e.key})
  ON CREATE SET n.name = e.name, n.label = e.label, n.lookup = e.lookup
  WITH n, e
  WHERE n.label = '' AND e.label <> ''
  SET n.label = e.label
}
CALL () {
  UNWIND $triples AS t
  MATCH (s:Entity {key: t.subject})
  MATCH (o:Entity {key: t.object})
  MERGE (s)-[r:REL {type: t.predicate}]->(o)
  ON CREATE SET r.confidence = t.confidence
}
CALL () {
  UNWIND $documents AS d
  MERGE (doc:Document {id: d.id})
  ON CREATE SET doc.source = d.source
  WITH doc, d
  UNWIND d.mentions AS key
  MATCH (e:Entity {key: key})
  MERGE (doc)-[:MENTIONS]->(e)
}
"""

_BUMP_VERSION = """
MERGE (m:GraphMeta {id: 'graph'})
ON CREATE SET m.version = 0
SET m.version = m.version + 1
"""

# Counts come from Neo4j's count store: constant time whatever the size of the graph.
_READ_STATE = """
OPTIONAL MATCH (m:GraphMeta {id: 'graph'})
RETURN coalesce(m.version, 0) AS version,
       COUNT { (:Entity) } AS entities,
       COUNT { ()-[:REL]->() } AS relations
"""

_READ_VERSION = "MATCH (m:GraphMeta {id: 'graph'}) RETURN m.version AS version"


@dataclass
class DocumentRows:
    """What one parsed document writes, deduplicated: the rows of the batch query."""

    document_id: str
    source: str
    entities: dict[str, dict[str, str]] = field(default_factory=dict)
    triples: dict[tuple[str, str, str], float] = field(default_factory=dict)
    mentions: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, document: ParsedDocument) -> DocumentRows:
        rows = cls(document.document_id, document.source)
        for mention in document.entities:
            key = rows.add_entity(mention.text, mention.label)
            if key:
                rows.mentions.add(key)
        for triple in document.triples:
            subject = rows.add_entity(triple.subject, "")
            obj = rows.add_entity(triple.object, "")
            predicate = triple.predicate.strip()
            if subject and obj and predicate:
                # A triple said twice keeps its best confidence.
                edge = (subject, predicate, obj)
                rows.triples[edge] = max(rows.triples.get(edge, 0.0), float(triple.confidence))
        return rows

    def check(self, max_chars: int) -> None:
        """Reject names too long to be index keys before they can fail a whole batch."""
        names = [*self.entities, *(predicate for _, predicate, _ in self.triples)]
        too_long = [name for name in names if len(name) > max_chars]
        if too_long:
            raise BadInputError(
                f"{len(too_long)} entity name(s) or relation type(s) longer than {max_chars} "
                f"characters (first: {too_long[0][:80]!r}...)",
                error_type="too_large",
            )

    def add_entity(self, name: str, label: str) -> str:
        key = normalize_key(name)
        if not key:
            return ""
        row = self.entities.get(key)
        if row is None:
            # The name as written (stripped) is what users see; the key is what matches.
            self.entities[key] = {
                "key": key,
                "name": name.strip(),
                "label": label,
                "lookup": key.casefold(),
            }
        elif label and not row["label"]:
            row["label"] = label
        return key


@dataclass(frozen=True)
class WriteSummary:
    """The outcome of one committed batch."""

    graph_version: int
    entities: int
    triples: int
    changed: bool
    graph_entities: int = 0
    graph_relations: int = 0


@dataclass
class _BatchRows:
    entities: list[dict[str, str]]
    triples: list[dict[str, Any]]
    documents: list[dict[str, Any]]


def _batch_rows(batch: Sequence[DocumentRows]) -> _BatchRows:
    entities: dict[str, dict[str, str]] = {}
    triples: dict[tuple[str, str, str], float] = {}
    documents: dict[str, dict[str, Any]] = {}
    for rows in batch:
        for key, row in rows.entities.items():
            known = entities.get(key)
            if known is None:
                entities[key] = row
            elif row["label"] and not known["label"]:
                entities[key] = {**known, "label": row["label"]}
        for edge, confidence in rows.triples.items():
            triples[edge] = max(triples.get(edge, 0.0), confidence)
        document = documents.setdefault(
            rows.document_id, {"id": rows.document_id, "source": rows.source, "mentions": set()}
        )
        document["mentions"] |= rows.mentions
    # Sorted rows: writers lock nodes in one order (no deadlock between replicas), and the
    # triples of one subject are written together.
    return _BatchRows(
        entities=[entities[key] for key in sorted(entities)],
        triples=[
            {"subject": s, "predicate": p, "object": o, "confidence": confidence}
            for (s, p, o), confidence in sorted(triples.items())
        ],
        documents=[{**d, "mentions": sorted(d["mentions"])} for _, d in sorted(documents.items())],
    )


class GraphStore:
    """Async Neo4j client for the graph-builder and the retrieval library."""

    def __init__(self, driver: AsyncDriver, database: str) -> None:
        self.driver = driver
        self.database = database

    @classmethod
    def connect(cls, settings: Settings) -> GraphStore:
        driver = AsyncGraphDatabase.driver(
            settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)
        )
        return cls(driver, settings.neo4j_database)

    async def close(self) -> None:
        await self.driver.close()

    @asynccontextmanager
    async def _unavailable_is_transient(self) -> AsyncIterator[None]:
        try:
            yield
        except (ServiceUnavailable, SessionExpired, Neo4jTransient, OSError) as exc:
            raise TransientError(f"neo4j unavailable: {exc}", error_type="neo4j") from exc

    async def ensure_schema(self) -> None:
        async with self._unavailable_is_transient():
            for statement in SCHEMA_STATEMENTS:
                await self.driver.execute_query(statement, database_=self.database)

    async def graph_version(self) -> int:
        async with self._unavailable_is_transient():
            records, _, _ = await self.driver.execute_query(_READ_VERSION, database_=self.database)
        return int(records[0]["version"]) if records else 0

    async def write_document(self, document: ParsedDocument) -> WriteSummary:
        """Write one parsed document in one transaction; a repeat changes nothing."""
        return await self.write_documents([DocumentRows.of(document)])

    async def write_documents(self, batch: Iterable[DocumentRows]) -> WriteSummary:
        """Write a batch of documents in one transaction with one write query.

        Idempotent: writing the same rows again creates nothing and leaves the version alone.
        """
        rows = _batch_rows(list(batch))

        async def work(tx: AsyncManagedTransaction) -> WriteSummary:
            result = await tx.run(
                _WRITE_BATCH,
                entities=rows.entities,
                triples=rows.triples,
                documents=rows.documents,
            )
            counters = (await result.consume()).counters
            changed = (
                counters.nodes_created + counters.relationships_created + counters.properties_set
            ) > 0
            if changed:
                await (await tx.run(_BUMP_VERSION)).consume()
            state = await (await tx.run(_READ_STATE)).single(strict=True)
            return WriteSummary(
                graph_version=int(state["version"]),
                entities=len(rows.entities),
                triples=len(rows.triples),
                changed=changed,
                graph_entities=int(state["entities"]),
                graph_relations=int(state["relations"]),
            )

        async with (
            self._unavailable_is_transient(),
            self.driver.session(database=self.database) as session,
        ):
            return await session.execute_write(work)

    async def run_write(self, cypher: str, /, **params: Any) -> None:
        """An auto-commit query (needed for ``CALL { ... } IN TRANSACTIONS``)."""
        async with (
            self._unavailable_is_transient(),
            self.driver.session(database=self.database) as session,
        ):
            result = await session.run(cypher, params)
            await result.consume()

    async def run_read(self, cypher: str, /, **params: Any) -> list[dict[str, Any]]:
        async with self._unavailable_is_transient():
            records, _, _ = await self.driver.execute_query(
                cypher, params, database_=self.database, routing_="r"
            )
        return [record.data() for record in records]
