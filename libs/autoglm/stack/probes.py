"""Real client requests that tell whether a server answers, one per server.

An open port is not enough: Kafka accepts connections before its broker is registered and
Neo4j before the password is set, so each probe makes the request a service would make.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiokafka.admin import AIOKafkaAdminClient
from neo4j import AsyncGraphDatabase
from redis.asyncio import Redis

from autoglm import security
from autoglm.settings import Settings
from autoglm.stack.config import Endpoint, kafka_nodes, server_kind

Probe = Callable[[Settings, float, str, Endpoint], Awaitable[str]]
"""Takes the settings, a timeout in seconds, the server's name and address; returns a short
description of the server or raises when it does not answer (yet)."""


class ProbeError(Exception):
    """The server answered, but not as a ready server would."""


async def tcp_accepts(endpoint: Endpoint, timeout_s: float) -> bool:
    """Whether something accepts TCP connections at the address (cheap pre-check)."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port), timeout_s
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    # The server may reset the idle connection: it did accept it, which is all we ask.
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def probe_kafka(settings: Settings, timeout_s: float, name: str, endpoint: Endpoint) -> str:
    """A metadata request to this node: it must list itself and a controller must be elected."""
    node_id = next((n.node_id for n in kafka_nodes(settings) if n.name == name), None)
    options = security.kafka_client_options(settings, security.ADMIN)
    admin = AIOKafkaAdminClient(
        **{**options, "bootstrap_servers": str(endpoint)},
        client_id="autoglm-stack-probe",
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    finally:
        await admin.close()
    brokers = cluster.get("brokers") or []
    if not brokers:
        raise ProbeError("no broker registered yet")
    if node_id is not None and node_id not in {b.get("node_id") for b in brokers}:
        raise ProbeError(f"broker {node_id} not registered yet")
    if cluster.get("controller_id", -1) < 0:
        raise ProbeError("no controller elected yet")
    if len(brokers) > 1:
        return f"cluster {cluster.get('cluster_id')}, {len(brokers)} brokers up"
    return f"cluster {cluster.get('cluster_id')}"


async def probe_neo4j(settings: Settings, timeout_s: float, name: str, endpoint: Endpoint) -> str:
    """``RETURN 1`` on the configured database, with the configured credentials."""
    driver = AsyncGraphDatabase.driver(
        settings.neo4j_uri,
        **security.neo4j_driver_options(settings),
        connection_timeout=timeout_s,
        connection_acquisition_timeout=timeout_s,
        # The caller retries; the driver's own retries would outlast the timeout.
        max_transaction_retry_time=0,
    )
    try:
        records, summary, _ = await asyncio.wait_for(
            driver.execute_query("RETURN 1 AS ok", database_=settings.neo4j_database),
            timeout_s,
        )
    finally:
        await driver.close()
    if not records or records[0]["ok"] != 1:
        raise ProbeError("RETURN 1 did not return 1")
    return f"{summary.server.agent}, database {settings.neo4j_database}"


async def probe_redis(settings: Settings, timeout_s: float, name: str, endpoint: Endpoint) -> str:
    """``PING``, then the server version."""
    client = Redis(
        **security.redis_connection_options(settings),
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
    )
    try:
        if not await client.ping():
            raise ProbeError("PING did not answer PONG")
        info = await client.info("server")
    finally:
        await client.aclose()
    return f"Redis {info.get('redis_version', '?')}"


PROBES: dict[str, Probe] = {"kafka": probe_kafka, "neo4j": probe_neo4j, "redis": probe_redis}


async def probe_once(name: str, settings: Settings, endpoint: Endpoint, timeout_s: float) -> str:
    """One attempt: raise when the server does not answer a real request within the timeout."""
    if not await tcp_accepts(endpoint, min(timeout_s, 2.0)):
        raise ProbeError(f"nothing accepts connections at {endpoint}")
    return await PROBES[server_kind(name)](settings, timeout_s, name, endpoint)


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
