"""The secure local stack end to end: every connection encrypted and authenticated.

``autoglm stack up --secure`` on ports and in a folder of its own (never the session's test
stack): Kafka with a SASL_SSL listener only (SCRAM-SHA-512) and ACLs, Neo4j with Bolt over TLS
only, Redis with a TLS port only and the default user off. Parser, graph-builder and inference
run as processes whose environment holds no password: they read the generated ones from the
stack's secret files, each service as its own Kafka principal. The test checks that plaintext
and wrong credentials are refused, that the ACLs keep principals off topics they must not
write, that a question is answered through the three services, and that no password shows in
the logs or in `autoglm stack status`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, ServiceUnavailable
from redis.backoff import NoBackoff
from redis.retry import Retry

from autoglm import security
from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.cli.requests import kb_documents
from autoglm.cli.services import ServiceManager
from autoglm.contracts import GraphCommit, Question, Result, ResultStatus
from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.stack import LocalStack, StackError, ensure_jars
from autoglm.stack.config import Endpoint, find_java, find_redis_server
from autoglm.stack.procs import port_in_use
from tests.stack_fixtures import bundled_registry

pytestmark = pytest.mark.e2e

SERVICES = ["parser", "graph-builder", "inference"]
SAMPLE_KB = PROJECT_ROOT / "samples" / "kb_sample.txt"
QUESTION = ("who was the director of [Inseparable]", "Dayyan Eng")


def _free_port(block: int = 1) -> int:
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base: int = sock.getsockname()[1]
        ports = range(base, base + block)
        if base + block < 65535 and not any(port_in_use(Endpoint("127.0.0.1", p)) for p in ports):
            return base
    raise RuntimeError("no free port")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    kafka = _free_port(2)
    prefix = f"secure-{uuid.uuid4().hex[:8]}."
    settings = Settings(
        secure=True,
        stack_dir=tmp_path_factory.mktemp("secure-stack"),
        kafka_port=kafka,
        kafka_controller_port=kafka + 1,
        neo4j_port=_free_port(),
        redis_port=_free_port(),
        topic_prefix=prefix,
        consumer_group_prefix=prefix,
        model_registry_dir=bundled_registry(tmp_path_factory.mktemp("models")),
        device="cpu",
        # Nothing secret from the caller's environment: the stack generates every password.
        neo4j_password="",
        redis_password="",
        kafka_username="",
        kafka_password="",
    )
    try:
        ensure_jars(settings)
        find_java()
        find_redis_server()
    except StackError as exc:
        pytest.skip(str(exc))
    return settings


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Settings]:
    """The secure stack; yields the settings as a client would read them (passwords from the
    secret files the first `up` generated)."""
    local = LocalStack(settings)
    try:
        statuses = local.up()
        assert all(s.state == "running" for s in statuses), statuses
        yield Settings(
            **_env(settings, with_prefix=False),  # type: ignore[arg-type]
            neo4j_password="",
            redis_password="",
            kafka_username="",
            kafka_password="",
        )
    finally:
        local.down()


def _env(settings: Settings, with_prefix: bool = True) -> dict[str, str]:
    """What a process needs to reach the secure stack: no password, no user."""
    values = {
        "secure": "true",
        "stack_dir": str(settings.stack_dir),
        "kafka_port": str(settings.kafka_port),
        "kafka_controller_port": str(settings.kafka_controller_port),
        "neo4j_port": str(settings.neo4j_port),
        "redis_port": str(settings.redis_port),
        "topic_prefix": settings.topic_prefix,
        "consumer_group_prefix": settings.consumer_group_prefix,
        "model_registry_dir": str(settings.model_registry_dir),
        "device": "cpu",
        # KB lines only: the text extractor is not what this test is about.
        "extraction_enabled": "false",
    }
    return {f"AUTOGLM_{k.upper()}" if with_prefix else k: v for k, v in values.items()}


def test_certificates_and_passwords_are_private(stack: Settings) -> None:
    folders = [stack.stack_dir / "secrets", stack.stack_dir / "tls", stack.stack_dir / "conf"]
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        for path in folder.rglob("*"):
            expected = 0o700 if path.is_dir() else 0o600
            assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert (stack.stack_dir / "tls" / "ca.pem").is_file()
    generated = {p.name for p in (stack.stack_dir / "secrets").iterdir()}
    assert {"neo4j", "redis", "kafka-admin", "kafka-client", "kafka-parser"} <= generated
    assert stack.neo4j_password and stack.redis_password
    # The Redis config holds a hash, never the password.
    assert stack.redis_password not in (stack.stack_dir / "conf" / "redis.conf").read_text()


LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
"""127.0.0.1, ::1 and ::ffff:127.0.0.1 as /proc/net/tcp{,6} write them."""


def _listening_addresses(pid: int) -> list[tuple[str, int]]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                address, port = cols[1].rsplit(":", 1)
                found.append((address, int(port, 16)))
    return found


def test_servers_listen_on_loopback_only(stack: Settings) -> None:
    for name in ("kafka", "neo4j", "redis"):
        record = json.loads((stack.stack_dir / "run" / f"{name}.pid").read_text())
        addresses = _listening_addresses(record["pid"])
        assert addresses, name
        assert all(address in LOOPBACK for address, _ in addresses), (name, addresses)


def test_plaintext_and_wrong_credentials_are_refused(stack: Settings) -> None:
    async def kafka_refuses(**options: object) -> BaseException:
        admin = AIOKafkaAdminClient(request_timeout_ms=5000, **options)
        try:
            await asyncio.wait_for(admin.start(), 30)
        except (KafkaError, TimeoutError, OSError) as exc:
            return exc
        finally:
            await admin.close()
        raise AssertionError(f"Kafka accepted {options}")

    plain = asyncio.run(kafka_refuses(bootstrap_servers=stack.kafka_bootstrap))
    assert isinstance(plain, KafkaConnectionError | TimeoutError), plain
    wrong = {**security.kafka_client_options(stack, security.CLIENT), "sasl_plain_password": "x"}
    asyncio.run(kafka_refuses(**wrong))

    with (
        GraphDatabase.driver(stack.neo4j_uri, auth=(stack.neo4j_user, stack.neo4j_password)) as d,
        pytest.raises(ServiceUnavailable),
    ):
        d.verify_connectivity()
    options = security.neo4j_driver_options(stack)
    with (
        GraphDatabase.driver(stack.neo4j_uri, **{**options, "auth": ("neo4j", "wrong-pass")}) as d,
        pytest.raises(AuthError),
    ):
        d.verify_connectivity()

    no_retry: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_timeout": 5}
    plain_redis = redis.Redis(host=stack.redis_host, port=stack.redis_port, **no_retry)
    with pytest.raises(redis.ConnectionError):
        plain_redis.ping()
    tls = security.redis_connection_options(stack)
    for refused in ({**tls, "password": "wrong"}, {**tls, "username": None}):
        client = redis.Redis(**refused, **no_retry)
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            client.ping()
    assert redis.Redis(**tls, **no_retry).ping()
    assert redis.Redis.from_url(stack.redis_url, **no_retry).ping()


async def _produce(settings: Settings, role: str, topic: str) -> None:
    producer = AIOKafkaProducer(
        **security.kafka_client_options(settings, role), acks="all", request_timeout_ms=20_000
    )
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topic), b"{}", key=b"acl-test")
    finally:
        await producer.stop()


def test_acls_keep_principals_to_their_topics(stack: Settings) -> None:
    async def check() -> None:
        await topics.ensure_topics(stack, role="parser")  # services may create the topics
        await _produce(stack, security.CLIENT, topics.QUESTIONS)  # users ask questions
        for topic in (
            topics.MODEL_UPDATES,
            topics.RESULTS,
            topics.TRAINING_EXAMPLES,
            topics.FEEDBACK,
        ):
            with pytest.raises(TopicAuthorizationFailedError):
                await _produce(stack, security.CLIENT, topic)
        # A service is no better placed: the parser may not publish answers or models.
        for topic in (topics.RESULTS, topics.MODEL_UPDATES):
            with pytest.raises(TopicAuthorizationFailedError):
                await _produce(stack, "parser", topic)
        await _produce(stack, "inference", topics.RESULTS)
        # Topics cannot be created by users.
        with pytest.raises(TopicAuthorizationFailedError):
            await topics.ensure_topics(stack.model_copy(update={"topic_prefix": "x."}), 10)

    asyncio.run(check())


def test_question_answered_through_encrypted_authenticated_services(stack: Settings) -> None:
    env = _env(stack)
    assert not [k for k in env if "PASSWORD" in k or "USERNAME" in k]
    manager = ServiceManager(stack, env=env)
    manager.start(SERVICES, timeout_s=420)
    try:
        documents = list(kb_documents(Path(SAMPLE_KB), 50))

        async def ingest_and_ask() -> Result:
            async with PipelineClient(stack) as client:
                client.expect(d.request_id for d in documents)
                for document in documents:
                    await client.publish(topics.DOCUMENTS, document, key=document.document_id)
                async for _, reply in client.replies([d.request_id for d in documents], 180.0):
                    assert isinstance(reply, GraphCommit), reply
                question = Question(request_id=new_request_id(), text=QUESTION[0], hops=1)
                client.expect([question.request_id])
                await client.publish(topics.QUESTIONS, question, key=question.request_id)
                reply = await client.reply(question.request_id, 180.0)
            assert isinstance(reply, Result), reply
            return reply

        result = asyncio.run(ingest_and_ask())
        assert result.status == ResultStatus.RESULT_STATUS_OK, result.error
        assert result.answers[0].name == QUESTION[1]
        assert [t.service for t in result.timings] == SERVICES
        # The services reached Redis too (over TLS, as the ACL user): their idempotency keys.
        client = redis.Redis(**security.redis_connection_options(stack))
        assert list(client.scan_iter(f"{stack.topic_prefix}*", count=1000))
    finally:
        manager.stop(SERVICES)


def test_no_secret_in_logs_or_cli_output(stack: Settings) -> None:
    secrets = security.secret_values(stack, security.kafka_principals())
    assert len(secrets) >= 9
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGLM_")}
    env.update(_env(stack))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "autoglm"), *args],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    done = cli("stack", "status")
    assert done.stdout.count("answering") == 3, done.stdout
    # The operator's dead-letter tool reads over TLS as admin: the parser's rejection of the
    # body the ACL test published is there, and no secret with it.
    letters = cli("dead-letters", "tail", "--json")
    summaries = [json.loads(line) for line in letters.stdout.splitlines() if line.strip()]
    assert any(
        s["service"] == "parser" and s["topic"] == stack.topic(topics.QUESTIONS) for s in summaries
    ), letters.stdout
    logs = [p for p in (stack.stack_dir / "logs").rglob("*") if p.is_file()]
    assert any("services" in p.parts for p in logs), logs
    texts = {str(p): p.read_text(errors="replace") for p in logs}
    texts["stack status"] = done.stdout + done.stderr
    texts["dead-letters tail"] = letters.stdout + letters.stderr
    leaks = [(where, s[:4] + "...") for where, text in texts.items() for s in secrets if s in text]
    assert not leaks, leaks
