"""The Redis idempotency store, and that losing Redis never loses a request."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from autoglm.bus.idempotency import RedisIdempotencyStore

pytestmark = pytest.mark.integration


async def test_mark_then_seen_with_ttl(stack_settings, unique):
    client = aioredis.Redis.from_url(stack_settings.redis_url)
    store = RedisIdempotencyStore(client, namespace=unique, ttl_s=60)
    assert not await store.seen("r1")
    await store.mark("r1")
    assert await store.seen("r1")
    assert 0 < await client.ttl(f"{unique}:done:r1") <= 60
    await store.close()


async def test_unreachable_redis_degrades_to_processing():
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    store = RedisIdempotencyStore(client, namespace="x", ttl_s=60)
    assert not await store.seen("r1")  # process it rather than drop it
    await store.mark("r1")  # and do not fail the message
    await store.close()


async def test_the_content_digest_is_kept_with_the_mark(stack_settings, unique):
    client = aioredis.Redis.from_url(stack_settings.redis_url)
    store = RedisIdempotencyStore(client, namespace=unique, ttl_s=60)
    await store.mark_many({"r1": "abc123"})
    await store.mark("r2")  # no digest: remembered as unknown
    assert await store.digests_many(["r1", "r2", "r3"]) == ["abc123", "", None]
    await store.close()
