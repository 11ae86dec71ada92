"""The local stack for real: Kafka, Neo4j and Redis started as processes on non-default ports.

Ports are picked free at random, so this stack never meets the session's test stack
(tests/stack_fixtures.py) or a developer's. The stack folder is temporary; the jars come from
the project's ``.stack/lib`` (``make setup``). Tests run in file order: up, answers, second up,
status, down. Neo4j's start dominates (20-40 s on two cores).
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from neo4j import GraphDatabase
from redis.backoff import NoBackoff
from redis.retry import Retry

from autoglm.settings import Settings
from autoglm.stack import LocalStack, ServerStatus, StackError, ensure_jars
from autoglm.stack.config import Endpoint, find_java, find_redis_server, server_endpoints
from autoglm.stack.procs import port_in_use

pytestmark = pytest.mark.integration


def _settings(stack_dir: Path, **ports: int) -> Settings:
    return Settings(stack_dir=stack_dir, redis_password="redis-secret", **ports)  # type: ignore[arg-type]


def _require_tools(settings: Settings) -> None:
    try:
        ensure_jars(settings)
        find_java()
        find_redis_server()
    except StackError as exc:
        pytest.skip(str(exc))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _free_ports() -> dict[str, int]:
    return {
        "kafka_port": _free_port(),
        "kafka_controller_port": _free_port(),
        "neo4j_port": _free_port(),
        "redis_port": _free_port(),
    }


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = _settings(tmp_path_factory.mktemp("stack"), **_free_ports())
    _require_tools(settings)
    return settings


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[LocalStack]:
    """The stack, stopped at the end whatever happened."""
    stack = LocalStack(settings)
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def started(stack: LocalStack) -> tuple[list[ServerStatus], float]:
    began = time.monotonic()
    statuses = stack.up()
    return statuses, time.monotonic() - began


def _by_name(statuses: list[ServerStatus]) -> dict[str, ServerStatus]:
    return {s.name: s for s in statuses}


def test_foreign_port_refuses_to_start(tmp_path: Path) -> None:
    """A port held by a process the stack did not start: one line naming it, nothing started."""
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        settings = _settings(tmp_path, **{**_free_ports(), "redis_port": port})
        _require_tools(settings)
        stack = LocalStack(settings)
        with pytest.raises(StackError) as caught:
            stack.up()
        message = str(caught.value)
        assert "\n" not in message
        assert f"redis: 127.0.0.1:{port} is already in use by pid {os.getpid()}" in message
        assert not list((tmp_path / "run").glob("*.pid"))
        status = _by_name(stack.status())
        assert status["redis"].state == "foreign"
        assert status["kafka"].state == "stopped"


def test_up_starts_every_server(
    settings: Settings, started: tuple[list[ServerStatus], float]
) -> None:
    statuses, _ = started
    assert [s.name for s in statuses] == ["kafka", "neo4j", "redis"]
    for s in statuses:
        assert s.state == "running", s
        assert s.pid is not None
        assert s.detail.startswith("started in"), s
    by_name = _by_name(statuses)
    assert by_name["kafka"].address == settings.kafka_bootstrap
    assert by_name["neo4j"].address == f"{settings.neo4j_host}:{settings.neo4j_port}"
    assert by_name["redis"].address == f"{settings.redis_host}:{settings.redis_port}"


def test_kafka_answers(settings: Settings, started: object) -> None:
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"

    async def round_trip() -> bytes | None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"hello")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), 30)
            partitions = consumer.partitions_for_topic(topic)
        finally:
            await consumer.stop()
        assert partitions is not None and len(partitions) == settings.topic_partitions
        value: bytes | None = message.value
        return value

    assert asyncio.run(round_trip()) == b"hello"


def test_neo4j_answers_with_the_generated_password(settings: Settings, started: object) -> None:
    # No password was configured: the first `up` generated one, kept 0600 under the stack
    # folder, and a client started afterwards reads it from there.
    secret = settings.stack_dir / "secrets" / "neo4j"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    client = Settings(stack_dir=settings.stack_dir, neo4j_password="")
    assert client.neo4j_password == secret.read_text().strip()
    auth = (client.neo4j_user, client.neo4j_password)
    with GraphDatabase.driver(settings.neo4j_uri, auth=auth) as driver:
        records, _, _ = driver.execute_query(
            "CREATE (n:StackTest {id: $id}) RETURN n.id AS id",
            id=7,
            database_=settings.neo4j_database,
        )
    assert records[0]["id"] == 7


def test_redis_answers_with_password(settings: Settings, started: object) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        assert client.ping()
        client.set("stack-test", "1")
        assert client.get("stack-test") == b"1"
    finally:
        client.close()
    # No retries: an authentication error is final.
    anonymous = redis.Redis(
        host=settings.redis_host, port=settings.redis_port, retry=Retry(NoBackoff(), 0)
    )
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()


def test_second_up_is_a_noop(stack: LocalStack, started: tuple[list[ServerStatus], float]) -> None:
    first, _ = started
    began = time.monotonic()
    again = stack.up()
    assert time.monotonic() - began < 10
    assert [s.pid for s in again] == [s.pid for s in first]
    for s in again:
        assert s.state == "running"
        assert s.detail.startswith("already running"), s


def test_status_probes_running_servers(stack: LocalStack, started: object) -> None:
    for s in stack.status():
        assert s.state == "running", s
        assert s.detail.startswith("answering"), s


def test_down_stops_everything_and_frees_ports(
    stack: LocalStack, settings: Settings, started: tuple[list[ServerStatus], float]
) -> None:
    first, _ = started
    statuses = stack.down()
    for s in statuses:
        assert s.state == "stopped", s
        assert s.pid is None
        assert s.detail.startswith(("stopped in", "killed")), s
    for s in first:
        assert s.pid is not None
        proc = Path(f"/proc/{s.pid}")
        assert not proc.exists(), (
            s,
            (proc / "status").read_text(),
            (proc / "cmdline").read_bytes(),
        )
    endpoints: list[Endpoint] = [e for es in server_endpoints(settings).values() for e in es]
    assert not [e for e in endpoints if port_in_use(e)]
    assert not list((settings.stack_dir / "run").glob("*.pid"))
    assert all(s.state == "stopped" for s in stack.status())
    # Nothing left to stop: a second down says so.
    assert all(s.detail == "not running" for s in stack.down())
