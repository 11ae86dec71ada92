"""Neo4j access: schema, batched idempotent writes, and the graph version.

Data model: ``(:Entity {key, name, label, lookup, norm})``,
``(:Document {id})-[:MENTIONS]->(:Entity)`` and relations as one relationship type ``REL`` with
a ``type`` property (``norm``: ``autoglm.graph.resolution``). One type (not a type per relation)
keeps every query fully parameterised: relationship types cannot be parameters in
Cypher, so typed relationships would mean building query text from user input. Retrieval expands
from anchor entities and filters ``r.type`` on the few relationships of each node, which costs the
same as a typed expansion for nodes of ordinary degree.

There is deliberately no index on ``r.type``: nothing looks relations up by type alone, and with
one the planner, working from the statistics of an empty graph, answers ``MERGE (s)-[:REL {type}]
->(o)`` with a seek of every relation of that type instead of an expansion between the two bound
nodes, which made loading a KB quadratic until it re-planned (13 s for the first 5,000 MetaQA
triples instead of 0.3 s). ``ensure_schema`` drops it from graphs made before.

Provenance (which documents support an edge, the sentences that state it), open relations
(``OPEN_REL``), typed entity keys and document updates and deletes are ``autoglm.graph.writes``.

Writes come in batches of documents (the graph-builder consumes a batch of messages at a time):
one transaction per batch, a few ``UNWIND ... MERGE`` statements each, rows deduplicated and
sorted so that concurrent writers lock nodes in the same order. The graph version lives on a single
``(:GraphMeta {id: 'graph'})`` node and is bumped in the same transaction as a write that changed
something, so caches keyed by it are never stale and a replayed batch leaves it alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction
from neo4j.exceptions import ClientError, ConfigurationError, ServiceUnavailable, SessionExpired
from neo4j.exceptions import TransientError as Neo4jTransient

from autoglm.contracts import ParsedDocument
from autoglm.errors import MisconfiguredError, TransientError
from autoglm.graph.resolution import Ambiguity, backfill_norms
from autoglm.graph.writes import SCHEMA_STATEMENTS as WRITE_SCHEMA_STATEMENTS
from autoglm.graph.writes import DocumentRows, write_batch
from autoglm.security import neo4j_driver_options
from autoglm.settings import Settings

__all__ = ["SCHEMA_STATEMENTS", "DocumentRows", "GraphStore", "WriteSummary"]

SCHEMA_STATEMENTS = (
    "CREATE CONSTRAINT entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE e.key IS UNIQUE",
    "CREATE CONSTRAINT document_id IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT graph_meta_id IF NOT EXISTS FOR (m:GraphMeta) REQUIRE m.id IS UNIQUE",
    "CREATE FULLTEXT INDEX entity_names IF NOT EXISTS FOR (e:Entity) ON EACH [e.name]",
    "CREATE INDEX entity_lookup IF NOT EXISTS FOR (e:Entity) ON (e.lookup)",
    "DROP INDEX rel_type IF EXISTS",
    *WRITE_SCHEMA_STATEMENTS,
)

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
       COUNT { ()-[:REL]->() } + COUNT { ()-[:OPEN_REL]->() } AS relations
"""

_READ_VERSION = "MATCH (m:GraphMeta {id: 'graph'}) RETURN m.version AS version"


@dataclass(frozen=True)
class WriteSummary:
    """The outcome of one committed batch."""

    graph_version: int
    entities: int
    triples: int
    changed: bool
    graph_entities: int = 0
    graph_relations: int = 0
    triples_removed: dict[str, int] = field(default_factory=dict)
    """Per document id: edges removed because it no longer supports them (update, delete)."""
    unchanged: frozenset[str] = frozenset()
    """Documents whose write changed nothing (same content as stored, or deleted already)."""
    resolved: dict[str, int] = field(default_factory=dict)
    """Per document id: its names resolved to an existing node under another form."""
    ambiguous: dict[str, tuple[Ambiguity, ...]] = field(default_factory=dict)
    """Per document id: its names that several nodes matched equally (written as their own)."""


class GraphStore:
    """Async Neo4j client for the graph-builder and the retrieval library."""

    def __init__(self, driver: AsyncDriver, database: str) -> None:
        self.driver = driver
        self.database = database

    @classmethod
    def connect(cls, settings: Settings) -> GraphStore:
        # Credentials, and TLS in secure mode, come from autoglm.security.
        driver = AsyncGraphDatabase.driver(settings.neo4j_uri, **neo4j_driver_options(settings))
        return cls(driver, settings.neo4j_database)

    async def close(self) -> None:
        await self.driver.close()

    @asynccontextmanager
    async def _unavailable_is_transient(self) -> AsyncIterator[None]:
        try:
            yield
        except (ServiceUnavailable, SessionExpired, Neo4jTransient, OSError) as exc:
            raise TransientError(f"neo4j unavailable: {exc}", error_type="neo4j") from exc
        except (ClientError, ConfigurationError) as exc:
            # A wrong password or database is not the message's fault: never dead-letter it.
            if not _misconfigured(exc):
                raise
            raise MisconfiguredError(
                f"neo4j refuses this service's configuration ({type(exc).__name__}: {exc}); "
                "nothing is consumed until it is fixed (AUTOGLM_NEO4J_USER, _PASSWORD, "
                "_DATABASE, or the server's settings)",
                error_type="neo4j_configuration",
            ) from exc

    async def ensure_schema(self) -> None:
        async with self._unavailable_is_transient():
            for statement in SCHEMA_STATEMENTS:
                await self.driver.execute_query(statement, database_=self.database)
        # The folded names that entity resolution seeks (nodes written before it existed).
        await backfill_norms(self)

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
        rows = list(batch)

        async def work(tx: AsyncManagedTransaction) -> WriteSummary:
            outcome = await write_batch(tx, rows)
            if outcome.changed:
                await (await tx.run(_BUMP_VERSION)).consume()
            state = await (await tx.run(_READ_STATE)).single(strict=True)
            return WriteSummary(
                graph_version=int(state["version"]),
                entities=outcome.entities,
                triples=outcome.triples,
                changed=outcome.changed,
                graph_entities=int(state["entities"]),
                graph_relations=int(state["relations"]),
                triples_removed=outcome.removed,
                unchanged=outcome.unchanged,
                resolved=outcome.resolved,
                ambiguous=outcome.ambiguous,
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


def _misconfigured(exc: Exception) -> bool:
    """Errors that only a change of configuration can fix: security (authentication,
    authorisation, credentials expired, the rate limit after failed logins), a database that
    does not exist, a transaction timeout the server is configured with, the driver's own
    configuration."""
    if isinstance(exc, ConfigurationError):
        return True
    code = getattr(exc, "code", "") or ""
    return (
        code.startswith("Neo.ClientError.Security.")
        or code.endswith(".DatabaseNotFound")
        or ".TransactionTimedOut" in code
    )
