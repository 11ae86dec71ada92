"""Redis access in one place: one breaker, short timeouts, and every user degrades instead of
failing or waiting when Redis refuses connections or does not answer at all (blackholed)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from autoglm.contracts import Result
from autoglm.errors import TransientError
from autoglm.models.encoding_cache import EncodingCache
from autoglm.models.result_cache import ResultCache
from autoglm.redis_access import (
    CircuitBreaker,
    RedisIdempotencyStore,
    RedisResultMemory,
    async_client,
    breaker_for,
    sync_client,
)
from autoglm.settings import Settings


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never answers (a Redis that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def refusing() -> int:
    """A port nothing listens on (a Redis that is stopped)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def _settings(port: int) -> Settings:
    return Settings(redis_port=port, redis_timeout_s=0.3, redis_breaker_open_s=30.0)


def test_the_breaker_opens_on_a_failure_probes_after_a_while_and_closes(caplog):
    breaker = CircuitBreaker("test", open_s=0.05)
    assert breaker.allow()
    with caplog.at_level(logging.INFO, logger="autoglm.redis_access.breaker"):
        breaker.failed("read", ConnectionError("refused"))
        breaker.failed("read", ConnectionError("refused"))
        assert not breaker.allow() and breaker.bypassed == 1
        time.sleep(0.06)
        assert breaker.allow()  # a probe
        breaker.failed("read", ConnectionError("still refused"))
        assert not breaker.allow()
        time.sleep(0.06)
        breaker.succeeded()
        assert breaker.allow() and not breaker.is_open
    lines = [r.getMessage() for r in caplog.records]
    assert sum("working without it" in line for line in lines) == 1, "one warning per outage"
    assert sum("reachable again" in line for line in lines) == 1


def test_every_client_has_short_timeouts_and_no_retries_of_its_own():
    settings = Settings(redis_password="p@ss:/word", redis_timeout_s=0.25)
    for client in (async_client(settings), sync_client(settings)):
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.25
        assert kwargs["password"] == "p@ss:/word"  # no URL: nothing to quote
        assert kwargs["retry"].get_retries() == 0
    assert breaker_for(settings) is breaker_for(settings.model_copy())  # one per server


@pytest.mark.parametrize("server", ["blackhole", "refusing"])
async def test_the_idempotency_store_says_not_seen_and_then_stops_asking(server, request):
    settings = _settings(request.getfixturevalue(server))
    store = RedisIdempotencyStore.connect(settings, f"unit-{server}")
    started = time.monotonic()
    assert await store.digests_many(["a", "b"]) == [None, None]  # processed, not dropped
    assert time.monotonic() - started < 1.5, "one short timeout, not redis-py's 5 s and retries"
    started = time.monotonic()
    await store.mark_many({"a": "digest"})  # skipped, not raised
    assert await store.seen_many(["a"]) == [False]
    assert time.monotonic() - started < 0.05, "the breaker is open: no more waiting"
    await store.close()


async def test_caches_miss_and_the_result_memory_is_transient_when_redis_hangs(blackhole):
    settings = _settings(blackhole)
    cache = ResultCache.connect(settings)
    memory = RedisResultMemory.connect(settings, "unit", 60)
    encodings = EncodingCache.connect(settings, "pretrained:")
    started = time.monotonic()
    results = await asyncio.gather(cache.get("k"), cache.put("k", Result(request_id="r")))
    assert results == [None, None]
    assert encodings.get_many(["who directed Jaws"]) == {}
    with pytest.raises(TransientError, match="redis unavailable"):
        await memory.recall("r")
    assert time.monotonic() - started < 1.5, "one timeout for all: they share the breaker"
    assert cache.breaker is memory.breaker is encodings.breaker
    for closing in (cache.close(), memory.close()):
        await closing
    encodings.close()
