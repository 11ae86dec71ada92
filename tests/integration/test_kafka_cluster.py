"""Three Kafka brokers as local processes: a broker killed with SIGKILL loses no message.

The cluster (``autoglm stack up --brokers 3``, Kafka alone) runs on ports and in a folder of its
own, so it never meets the session's test stack (tests/stack_fixtures.py) or a developer's.
Topics get 3 replicas and ``min.insync.replicas`` 2; the producer writes with ``acks=all``.
The test kills the leader of a partition mid-stream, keeps producing and consuming while it is
down, brings it back with ``stack up`` and checks that every message was consumed and that the
restarted broker is back in every in-sync replica set. It runs twice: plain, and secure
(SASL_SSL with SCRAM between brokers and clients, mTLS to the controllers, ACLs: the producer is
the ``client`` principal, the consumer the parser's). Three JVMs start in 20-40 s on two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from autoglm import security
from autoglm.bus import topics
from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.stack import LocalStack, StackError, ensure_jars
from autoglm.stack.config import Endpoint, find_java, server_endpoints
from autoglm.stack.manager import stack_shape
from autoglm.stack.procs import is_alive, port_in_use, read_pid_file

pytestmark = pytest.mark.integration

BROKERS = 3
MESSAGES_PER_PHASE = 200  # before the kill, while the broker is down, after it is back


def _free_port_block(size: int) -> int:
    """A base port with ``size`` consecutive free ports (node n takes base + 2n, + 2n + 1)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base: int = sock.getsockname()[1]
        ports = range(base, base + size)
        if base + size < 65535 and not any(port_in_use(Endpoint("127.0.0.1", p)) for p in ports):
            return base
    raise RuntimeError("no block of free ports")


@pytest.fixture(scope="module", params=["plain", "secure"])
def configured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    base = _free_port_block(2 * BROKERS)
    prefix = f"cluster-{uuid.uuid4().hex[:8]}."
    settings = Settings(
        stack_dir=tmp_path_factory.mktemp("cluster"),
        kafka_brokers=BROKERS,
        kafka_port=base,
        kafka_controller_port=base + 1,
        topic_prefix=prefix,
        consumer_group_prefix=prefix,
        secure=request.param == "secure",
    )
    try:
        ensure_jars(settings)
        find_java()
    except StackError as exc:
        pytest.skip(str(exc))
    return settings


@pytest.fixture(scope="module")
def cluster(configured: Settings) -> Iterator[LocalStack]:
    stack = LocalStack(configured, only={"kafka"})
    try:
        statuses = stack.up()
        assert [s.name for s in statuses] == ["kafka-1", "kafka-2", "kafka-3"]
        assert all(s.state == "running" for s in statuses), statuses
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def settings(cluster: LocalStack) -> Settings:
    """The cluster's settings as clients see them (secure: with the generated passwords)."""
    return cluster.settings


def test_settings_follow_the_broker_count(settings: Settings) -> None:
    assert settings.topic_replication_factor == 3
    assert settings.topic_min_isr == 2
    assert len(settings.kafka_bootstrap.split(",")) == 3
    single = Settings(kafka_brokers=1)
    assert (single.topic_replication_factor, single.topic_min_isr) == (1, 1)


async def _describe(settings: Settings, topic: str) -> tuple[list[dict[str, object]], str]:
    admin = AIOKafkaAdminClient(**security.kafka_client_options(settings, security.ADMIN))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = configs[0].to_object()["resources"][0]["config_entries"]
    min_isr = next(e["config_value"] for e in entries if e["config_names"] == "min.insync.replicas")
    return described["partitions"], min_isr


def test_topics_get_three_replicas_and_min_isr_two(settings: Settings, cluster: LocalStack) -> None:
    async def check() -> None:
        await topics.ensure_topics(settings, role="parser")
        partitions, min_isr = await _describe(settings, settings.topic(topics.QUESTIONS))
        assert min_isr == "2"
        assert len(partitions) == settings.topic_partitions
        for partition in partitions:
            assert len(partition["replicas"]) == 3, partition  # type: ignore[arg-type]
            assert len(partition["isr"]) == 3, partition  # type: ignore[arg-type]

    asyncio.run(check())


def test_cli_status_sees_the_recorded_cluster(settings: Settings, cluster: LocalStack) -> None:
    assert stack_shape(settings.stack_dir) == {"kafka_brokers": 3, "secure": settings.secure}
    env = {
        **os.environ,
        "AUTOGLM_STACK_DIR": str(settings.stack_dir),
        "AUTOGLM_KAFKA_PORT": str(settings.kafka_port),
        "AUTOGLM_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
    }
    env.pop("AUTOGLM_KAFKA_BROKERS", None)
    env.pop("AUTOGLM_SECURE", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "autoglm"), "stack", "status"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in ("kafka-1", "kafka-2", "kafka-3"):
        line = next(line for line in done.stdout.splitlines() if name in line)
        assert "running" in line and "answering" in line, done.stdout


def test_killed_broker_loses_no_message(settings: Settings, cluster: LocalStack) -> None:
    topic = settings.topic(topics.QUESTIONS)
    pid_files = {name: settings.stack_dir / "run" / f"{name}.pid" for name in cluster.names}

    async def scenario() -> tuple[list[str], dict[str, int], list[dict[str, object]]]:
        await topics.ensure_topics(settings, role="parser")
        partitions, _ = await _describe(settings, topic)
        leader = next(int(p["leader"]) for p in partitions if p["partition"] == 0)  # type: ignore[call-overload]
        victim = f"kafka-{leader}"

        producer = AIOKafkaProducer(
            **security.kafka_client_options(settings, security.CLIENT),
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=60_000,
            linger_ms=5,
        )
        consumer = AIOKafkaConsumer(
            topic,
            **security.kafka_client_options(settings, "parser"),
            group_id=settings.group("parser"),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await producer.start()
        await consumer.start()
        received: list[str] = []
        counts = {"sent": 0}

        all_received = asyncio.Event()

        async def consume() -> None:
            async for record in consumer:
                received.append(record.value.decode())
                await consumer.commit()
                if len(set(received)) == 3 * MESSAGES_PER_PHASE:
                    all_received.set()

        reader = asyncio.create_task(consume())

        async def produce(phase: str) -> None:
            # Acknowledged by all in-sync replicas (at least 2) before it counts as sent.
            futures = [
                await producer.send(topic, f"{phase}-{i}".encode(), key=f"{phase}-{i}".encode())
                for i in range(MESSAGES_PER_PHASE)
            ]
            for future in futures:
                await future
                counts["sent"] += 1

        try:
            await produce("before")
            record = read_pid_file(pid_files[victim])
            assert record is not None
            os.kill(record.pid, signal.SIGKILL)
            for _ in range(100):
                if not is_alive(record.process):
                    break
                await asyncio.sleep(0.1)
            assert not is_alive(record.process)
            statuses = {s.name: s for s in await asyncio.to_thread(cluster.status)}
            assert statuses[victim].state == "stopped", statuses[victim]

            await produce("down")
            restarted = {s.name: s for s in await asyncio.to_thread(cluster.up)}
            assert restarted[victim].detail.startswith("started in"), restarted[victim]
            others = [n for n in restarted if n != victim]
            assert all(restarted[n].detail.startswith("already running") for n in others)
            await produce("back")

            deadline = time.monotonic() + 120
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_received.wait(), 120)
            # The restarted broker catches up and rejoins every in-sync replica set.
            while time.monotonic() < deadline:
                partitions, _ = await _describe(settings, topic)
                if all(len(p["isr"]) == 3 for p in partitions):  # type: ignore[arg-type]
                    break
                await asyncio.sleep(1.0)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await consumer.stop()
            await producer.stop()
        return received, counts, partitions

    received, counts, partitions = asyncio.run(scenario())
    expected = {
        f"{phase}-{i}" for phase in ("before", "down", "back") for i in range(MESSAGES_PER_PHASE)
    }
    assert counts["sent"] == len(expected)
    missing = expected - set(received)
    duplicated = len(received) - len(set(received))
    print(
        f"sent {counts['sent']}, received {len(received)}, missing {len(missing)}, "
        f"duplicated {duplicated}"
    )
    assert not missing, sorted(missing)[:10]
    assert all(len(p["isr"]) == 3 for p in partitions), partitions  # type: ignore[arg-type]


def test_down_stops_every_broker(settings: Settings, cluster: LocalStack) -> None:
    statuses = cluster.down()
    assert [s.name for s in statuses] == ["kafka-1", "kafka-2", "kafka-3"]
    assert all(s.state == "stopped" for s in statuses), statuses
    busy = [str(e) for es in server_endpoints(settings).values() for e in es if port_in_use(e)]
    kafka_ports = {p for n in (settings.kafka_port,) for p in range(n, n + 2 * BROKERS)}
    assert not [e for e in busy if int(e.rsplit(":", 1)[1]) in kafka_ports]
    assert not list(Path(settings.stack_dir / "run").glob("kafka*.pid"))
