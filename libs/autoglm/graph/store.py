"""Neo4j access: schema, batched idempotent writes, and the graph version.

Data model: ``(:Entity {key, name, label})``, ``(:Document {id})-[:MENTIONS]->(:Entity)`` and
relations as one relationship type ``REL`` with a ``type`` property. One type (not a type per
relation) keeps every query fully parameterised (relationship types cannot be parameters in Cypher,
so typed relationships would mean building query text from user input), and with a relationship
index on ``type`` a typed expansion is as selective as a per-type one for the small number of
relation types a KB has.

The graph version lives on a single ``(:GraphMeta {id: 'graph'})`` node and is bumped in the same
transaction as a write that changed something, so caches keyed by it are never stale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction
from neo4j.exceptions import ServiceUnavailable, SessionExpired
from neo4j.exceptions import TransientError as Neo4jTransient

from autoglm.contracts import ParsedDocument
from autoglm.errors import TransientError
from autoglm.nlp.keys import normalize_key
from autoglm.settings import Settings

SCHEMA_STATEMENTS = (
    "CREATE CONSTRAINT entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE e.key IS UNIQUE",
    "CREATE CONSTRAINT document_id IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT graph_meta_id IF NOT EXISTS FOR (m:GraphMeta) REQUIRE m.id IS UNIQUE",
    "CREATE FULLTEXT INDEX entity_names IF NOT EXISTS FOR (e:Entity) ON EACH [e.name]",
    "CREATE INDEX entity_lookup IF NOT EXISTS FOR (e:Entity) ON (e.lookup)",
    "CREATE INDEX rel_type IF NOT EXISTS FOR ()-[r:REL]-() ON (r.type)",
)

_WRITE_ENTITIES = """
UNWIND $entities AS e
MERGE (n:Entity {key: e.key})
ON CREATE SET n.name = e.name, n.label = e.label, n.lookup = e.lookup
"""

_WRITE_TRIPLES = """
UNWIND $triples AS t
MATCH (s:Entity {key: t.subject})
MATCH (o:Entity {key: t.object})
MERGE (s)-[r:REL {type: t.predicate}]->(o)
ON CREATE SET r.confidence = t.confidence
"""

_WRITE_DOCUMENT = """
MERGE (d:Document {id: $document_id})
ON CREATE SET d.source = $source
WITH d
UNWIND $mentions AS key
MATCH (e:Entity {key: key})
MERGE (d)-[:MENTIONS]->(e)
"""

_BUMP_VERSION = """
MERGE (m:GraphMeta {id: 'graph'})
ON CREATE SET m.version = 0
SET m.version = m.version + 1
RETURN m.version AS version
"""

_READ_VERSION = "MATCH (m:GraphMeta {id: 'graph'}) RETURN m.version AS version"


@dataclass(frozen=True)
class WriteSummary:
    graph_version: int
    entities: int
    triples: int
    changed: bool


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
        """Write a parsed document in one transaction; a repeat changes nothing."""
        entities = _entity_rows(document)
        triples = [
            {
                "subject": normalize_key(t.subject),
                "predicate": t.predicate,
                "object": normalize_key(t.object),
                "confidence": float(t.confidence),
            }
            for t in document.triples
        ]
        mentions = sorted({normalize_key(m.text) for m in document.entities})

        async def work(tx: AsyncManagedTransaction) -> WriteSummary:
            changes = 0
            for query, params in (
                (_WRITE_ENTITIES, {"entities": entities}),
                (_WRITE_TRIPLES, {"triples": triples}),
                (
                    _WRITE_DOCUMENT,
                    {
                        "document_id": document.document_id,
                        "source": document.source,
                        "mentions": mentions,
                    },
                ),
            ):
                result = await tx.run(query, params)
                counters = (await result.consume()).counters
                changes += (
                    counters.nodes_created
                    + counters.relationships_created
                    + counters.properties_set
                )
            if changes:
                record = await (await tx.run(_BUMP_VERSION)).single()
                version = int(record["version"]) if record else 0
            else:
                record = await (await tx.run(_READ_VERSION)).single()
                version = int(record["version"]) if record else 0
            return WriteSummary(version, len(entities), len(triples), changes > 0)

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


def _entity_rows(document: ParsedDocument) -> list[dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}

    def add(names: Iterable[tuple[str, str]]) -> None:
        for name, label in names:
            key = normalize_key(name)
            if key and key not in rows:
                rows[key] = {"key": key, "name": key, "label": label, "lookup": key.casefold()}

    add((m.text, m.label) for m in document.entities)
    for t in document.triples:
        add(((t.subject, ""), (t.object, "")))
    return list(rows.values())
