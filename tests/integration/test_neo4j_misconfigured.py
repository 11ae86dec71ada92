"""Neo4j refusing the graph-builder's configuration (a wrong password) loses nothing: nothing is
dead-lettered, nothing is committed, the service says why and resumes once it is fixed.

The wrong password belongs to a Neo4j user of the test's own (created and dropped here), so
the fix (setting that user's password to the configured one) touches nobody else's login."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient
from autoglm.cli.services import ServiceManager
from autoglm.contracts import SCHEMA_VERSION, DeadLetter, GraphCommit, ParsedDocument, Triple
from autoglm.errors import MisconfiguredError
from autoglm.graph.store import DocumentRows, GraphStore
from tests.integration.test_hostile_inputs import topic_records
from tests.stack_fixtures import isolated_settings, settings_env

pytestmark = pytest.mark.integration


@pytest.fixture
async def neo4j_user(stack_settings, unique):
    """A user whose password is *not* the one the service will be given."""
    admin = GraphStore.connect(stack_settings)
    name = f"it_{unique}"
    actual, configured = secrets.token_hex(8), secrets.token_hex(8)
    await admin.driver.execute_query(
        f"CREATE USER {name} SET PASSWORD $p CHANGE NOT REQUIRED", p=actual, database_="system"
    )

    async def fix() -> None:
        await admin.driver.execute_query(
            f"ALTER USER {name} SET PASSWORD $p CHANGE NOT REQUIRED",
            p=configured,
            database_="system",
        )

    yield name, configured, fix, admin
    await admin.driver.execute_query(f"DROP USER {name} IF EXISTS", database_="system")
    await admin.close()


def _document(doc_id: str) -> ParsedDocument:
    return ParsedDocument(
        request_id=doc_id,
        schema_version=SCHEMA_VERSION,
        document_id=doc_id,
        triples=[Triple(subject=f"{doc_id} film", predicate="directed_by", object="Someone")],
    )


async def _documents_in_graph(store: GraphStore, ids: list[str]) -> int:
    rows = await store.run_read(
        "MATCH (d:Document) WHERE d.id IN $ids RETURN count(d) AS n", ids=ids
    )
    return int(rows[0]["n"])


async def test_a_store_with_a_wrong_password_raises_a_configuration_error(
    stack_settings, neo4j_user
):
    user, wrong_password, _, _ = neo4j_user
    bad = GraphStore.connect(
        stack_settings.model_copy(update={"neo4j_user": user, "neo4j_password": wrong_password})
    )
    try:
        with pytest.raises(MisconfiguredError, match=r"Security\.Unauthorized") as caught:
            await bad.write_documents([DocumentRows.of(_document("never-written"))])
        assert caught.value.error_type == "neo4j_configuration"
        with pytest.raises(MisconfiguredError):
            await bad.run_read("RETURN 1")
    finally:
        await bad.close()


async def test_graph_builder_with_a_wrong_password_commits_nothing_and_resumes_when_fixed(
    stack_settings, tmp_path, unique, neo4j_user
):
    user, password, fix, admin = neo4j_user
    settings = isolated_settings(
        stack_settings,
        tmp_path,
        f"neo4j-auth-{unique}.",
        neo4j_user=user,
        neo4j_password=password,
        retrieval_guided=False,
        subgraph_cache_enabled=False,
        transient_retry_initial_s=0.5,
        transient_retry_max_s=2.0,
    )
    manager = ServiceManager(settings, env=settings_env(settings))
    ids = [f"auth-{unique}-{n}" for n in range(5)]
    try:
        with pytest.raises(RuntimeError, match="not ready"):
            manager.start(["graph-builder"], timeout_s=25)
        log = (manager.log_dir / "graph-builder.log").read_text()
        assert "not consuming" in log and "neo4j refuses this service's configuration" in log

        async with PipelineClient(settings) as client:
            client.expect(ids)
            for doc_id in ids:
                await client.publish(topics.PARSED_DOCUMENTS, _document(doc_id), key=doc_id)
            await asyncio.sleep(8)  # the service keeps failing to log in meanwhile
            assert await topic_records(settings, topics.GRAPH_COMMITS, GraphCommit) == []
            assert await topic_records(settings, topics.DEAD_LETTERS, DeadLetter) == []
            assert await _documents_in_graph(admin, ids) == 0

            await fix()
            started = time.monotonic()
            replies = [reply async for _, reply in client.replies(ids, 90.0)]
        assert all(isinstance(r, GraphCommit) for r in replies), replies
        resumed_s = time.monotonic() - started
    finally:
        manager.stop(["graph-builder"])
    assert await _documents_in_graph(admin, ids) == len(ids)
    letters: list[Any] = await topic_records(settings, topics.DEAD_LETTERS, DeadLetter)
    assert letters == []
    assert resumed_s < 60
