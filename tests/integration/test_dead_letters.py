"""Dead letters you can act on, with real services on the real Kafka, Neo4j and Redis.

- A parsed document dead-lettered by graph-builder (an entity name over ``max_entity_chars``)
  is listed by ``autoglm dead-letters tail``; published again as it was, idempotency skips it
  (its request id was marked done with the dead letter); once the limit is raised (the fix),
  ``autoglm dead-letters redrive`` publishes it under a new attempt id and it is committed,
  once, however often the redrive is run. A letter whose original was truncated cannot be
  redriven, and the command says so.
- A request id reused for other content on the documents topic is reported by the parser as a
  ``request_id_reused`` dead letter carrying both content digests.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient
from autoglm.bus.envelope import content_digest
from autoglm.cli.services import ServiceManager
from autoglm.contracts import (
    SCHEMA_VERSION,
    DeadLetter,
    Document,
    DocumentFormat,
    GraphCommit,
    ParsedDocument,
    Triple,
    encode,
)
from autoglm.settings import PROJECT_ROOT
from tests.integration.test_hostile_inputs import topic_records
from tests.stack_fixtures import isolated_settings, settings_env

pytestmark = pytest.mark.integration

AUTOGLM = str(PROJECT_ROOT / ".venv" / "bin" / "autoglm")


def _document(doc_id: str, subject: str) -> ParsedDocument:
    return ParsedDocument(
        request_id=doc_id,
        schema_version=SCHEMA_VERSION,
        document_id=doc_id,
        triples=[Triple(subject=subject, predicate="directed_by", object="Someone")],
    )


def _cli(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUTOGLM, "dead-letters", *args],
        env={**settings_env(settings), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _commits(settings: Any, request_id: str) -> list[GraphCommit]:
    commits = await topic_records(settings, topics.GRAPH_COMMITS, GraphCommit)
    return [c for c in commits if c.request_id == request_id]


async def test_a_fixed_dead_letter_is_redriven_and_answered_once(stack_settings, tmp_path, unique):
    settings = isolated_settings(
        stack_settings,
        tmp_path,
        f"redrive-{unique}.",
        retrieval_guided=False,
        subgraph_cache_enabled=False,
        max_entity_chars=20,
        max_message_bytes=20_000,
    )
    manager = ServiceManager(settings, env=settings_env(settings))
    rejected, accepted = f"long-{unique}", f"short-{unique}"
    manager.start(["graph-builder"])
    try:
        async with PipelineClient(settings) as client:
            client.expect([rejected, accepted, f"big-{unique}"])
            await client.publish(
                topics.PARSED_DOCUMENTS, _document(rejected, "A" * 30), key=rejected
            )
            await client.publish(topics.PARSED_DOCUMENTS, _document(accepted, "Jaws"), key=accepted)
            # Over the message limit: its dead letter keeps only the first bytes.
            await client.publish_raw(topics.PARSED_DOCUMENTS, b"\x00" * 30_000, key=f"big-{unique}")
            letter = await client.reply(rejected, 60.0)
            assert isinstance(letter, DeadLetter) and letter.error_type == "too_large"
            assert isinstance(await client.reply(accepted, 60.0), GraphCommit)
            big = await client.reply(f"big-{unique}", 60.0)
            assert isinstance(big, DeadLetter) and big.original_truncated

            # Published again as it was: its id is done, nothing happens.
            body, headers = encode(_document(rejected, "A" * 30))
            await client.publish_raw(topics.PARSED_DOCUMENTS, body, rejected, headers)
            await asyncio.sleep(5)
        assert await _commits(settings, rejected) == []

        tail = _cli(settings, "tail", "--json")
        assert tail.returncode == 0, tail.stderr
        lines = [json.loads(line) for line in tail.stdout.splitlines()]
        (row,) = [r for r in lines if r["request_id"] == rejected]
        assert row["service"] == "graph-builder" and row["error_type"] == "too_large"
        assert row["topic"] == settings.topic(topics.PARSED_DOCUMENTS) and not row["truncated"]
        (big_row,) = [r for r in lines if r["truncated"]]
        assert big_row["length"] == 30_000
        plain = _cli(settings, "tail", "--since", "1h")
        assert rejected in plain.stdout and "30000 B truncated" in plain.stdout

        truncated = _cli(settings, "redrive", "--error-type", "too_large", "--dry-run")
        assert "would redrive" in truncated.stdout and rejected in truncated.stdout
        assert "truncated to fit the dead letter" in truncated.stderr
        assert await _commits(settings, rejected) == []  # a dry run publishes nothing

        # The fix: the limit raised. Then the redrive, twice.
        manager.stop(["graph-builder"])
        fixed = settings.model_copy(update={"max_entity_chars": 1_000})
        manager = ServiceManager(fixed, env=settings_env(fixed))
        manager.start(["graph-builder"])
        async with PipelineClient(settings) as client:
            client.expect([rejected])
            done = _cli(settings, "redrive", "--request-id", rejected)
            assert done.returncode == 0, done.stderr
            assert "redriven:" in done.stdout and "attempt=redrive-" in done.stdout
            commit = await client.reply(rejected, 60.0)
            assert isinstance(commit, GraphCommit) and commit.triples == 1
        again = _cli(settings, "redrive", "--request-id", rejected)
        assert again.returncode == 0, again.stderr
        await asyncio.sleep(5)
        assert len(await _commits(settings, rejected)) == 1  # the same attempt: a replay
    finally:
        manager.stop(["graph-builder"])


async def test_a_reused_request_id_is_reported_with_both_digests(stack_settings, tmp_path, unique):
    settings = isolated_settings(stack_settings, tmp_path, f"reuse-{unique}.")
    manager = ServiceManager(settings, env=settings_env(settings))
    request_id = f"doc-{unique}"
    first, second = (
        Document(
            request_id=request_id,
            schema_version=SCHEMA_VERSION,
            document_id=f"kb:{unique}",
            format=DocumentFormat.DOCUMENT_FORMAT_TRIPLES,
            text=text,
        )
        for text in ("Jaws|directed_by|Steven Spielberg", "Alien|directed_by|Ridley Scott")
    )
    manager.start(["parser"])
    try:
        async with PipelineClient(settings) as client:
            client.expect([request_id])
            await client.publish(topics.DOCUMENTS, first, key=request_id)
            parsed: list[Any] = []
            for _ in range(60):
                parsed = await topic_records(settings, topics.PARSED_DOCUMENTS, ParsedDocument)
                if parsed:
                    break
                await asyncio.sleep(1)
            assert [p.request_id for p in parsed] == [request_id]
            await client.publish(topics.DOCUMENTS, second, key=request_id)
            letter = await client.reply(request_id, 60.0)
    finally:
        manager.stop(["parser"])
    assert isinstance(letter, DeadLetter) and letter.error_type == "request_id_reused"
    assert content_digest(first) in letter.reason and content_digest(second) in letter.reason
    # The reused one was not processed.
    parsed = await topic_records(settings, topics.PARSED_DOCUMENTS, ParsedDocument)
    assert [p.document_id for p in parsed] == [f"kb:{unique}"]
    assert "Alien" not in str(parsed[0])
