"""The real Kafka, Neo4j and Redis for integration and end-to-end tests.

The session fixture ``stack_settings`` finds servers in this order, and never skips:
1. endpoints given in the environment (``AUTOGLM_TEST_ENDPOINTS=env`` plus the usual
   ``AUTOGLM_*`` host/port/password variables);
2. testcontainers, when a Docker engine answers;
3. otherwise the local stack, through the same code as ``autoglm stack up``, on test ports and a
   data folder of its own (``.stack/test``) so a developer's stack is left alone. Two test runs at
   once need their own ports and folder: ``AUTOGLM_TEST_{KAFKA,KAFKA_CONTROLLER,NEO4J,REDIS}_PORT``
   and ``AUTOGLM_TEST_STACK_DIR``.
Every test session uses its own topic prefix, so runs never see each other's messages.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoglm.settings import PROJECT_ROOT, Settings

TEST_PASSWORD = "autoglm-test-secret"


def docker_engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``AUTOGLM_*`` environment that makes a subprocess see the same settings."""
    env = {}
    for name, value in settings.model_dump().items():
        env[f"AUTOGLM_{name.upper()}"] = str(value)
    return env


def _local_stack(prefix: str) -> Iterator[Settings]:
    from autoglm.stack import LocalStack

    settings = Settings(
        kafka_port=int(os.environ.get("AUTOGLM_TEST_KAFKA_PORT", 19092)),
        kafka_controller_port=int(os.environ.get("AUTOGLM_TEST_KAFKA_CONTROLLER_PORT", 19093)),
        neo4j_port=int(os.environ.get("AUTOGLM_TEST_NEO4J_PORT", 17687)),
        neo4j_password=TEST_PASSWORD,
        redis_port=int(os.environ.get("AUTOGLM_TEST_REDIS_PORT", 16379)),
        stack_dir=Path(os.environ.get("AUTOGLM_TEST_STACK_DIR", PROJECT_ROOT / ".stack" / "test")),
        topic_prefix=prefix,
        consumer_group_prefix=prefix,
    )
    stack = LocalStack(settings)
    already_running = all(s.state == "running" for s in stack.status())
    stack.up()
    try:
        yield settings
    finally:
        if not already_running and not os.environ.get("AUTOGLM_TEST_KEEP_STACK"):
            stack.down()


def _containers(prefix: str) -> Iterator[Settings]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.neo4j import Neo4jContainer
    from testcontainers.redis import RedisContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        Neo4jContainer("neo4j:5.26", password=TEST_PASSWORD) as neo4j,
        RedisContainer("redis:7") as redis,
    ):
        host, port = kafka.get_bootstrap_server().rsplit(":", 1)
        yield Settings(
            kafka_host=host,
            kafka_port=int(port),
            neo4j_host=neo4j.get_container_host_ip(),
            neo4j_port=int(neo4j.get_exposed_port(7687)),
            neo4j_password=TEST_PASSWORD,
            redis_host=redis.get_container_host_ip(),
            redis_port=int(redis.get_exposed_port(6379)),
            topic_prefix=prefix,
            consumer_group_prefix=prefix,
        )


def _servers(prefix: str) -> Iterator[Settings]:
    if os.environ.get("AUTOGLM_TEST_ENDPOINTS") == "env":
        yield Settings(topic_prefix=prefix, consumer_group_prefix=prefix)
    elif docker_engine_answers():
        yield from _containers(prefix)
    else:
        yield from _local_stack(prefix)


def bundled_registry(root: Path) -> Path:
    """A registry of the test session's own that serves the checkpoint kept in samples/model,
    so the services under test answer with a trained model and never with whatever a
    developer has trained or promoted in ./models."""
    from autoglm.registry import ModelRegistry

    registry = ModelRegistry(root)
    versions = sorted(p for p in (PROJECT_ROOT / "samples" / "model").iterdir() if p.is_dir())
    assert versions, "samples/model holds no model version"
    registry.set_serving(registry.import_version(versions[-1]).version)
    return root


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    registry = bundled_registry(tmp_path_factory.mktemp("models"))
    for settings in _servers(prefix):
        yield settings.model_copy(update={"model_registry_dir": registry})


@pytest.fixture(scope="session")
def stack_env(stack_settings: Settings) -> dict[str, str]:
    return settings_env(stack_settings)


@pytest.fixture
async def graph_store(stack_settings: Settings) -> Any:
    """A Neo4j store on an empty graph (the test stack's graph is disposable)."""
    from autoglm.graph.store import GraphStore

    store = GraphStore.connect(stack_settings)
    await store.run_write("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS")
    await store.ensure_schema()
    yield store
    await store.close()


def isolated_settings(
    stack_settings: Settings, tmp_path: Path, prefix: str, **overrides: Any
) -> Settings:
    """The test stack's servers, with the test's own topics, consumer groups, model registry
    and service folders (services started by the test run on the CPU)."""
    return stack_settings.model_copy(
        update={
            "stack_dir": tmp_path / "stack",
            "model_registry_dir": tmp_path / "models",
            "topic_prefix": prefix,
            "consumer_group_prefix": prefix,
            "device": "cpu",
            **overrides,
        }
    )


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
