"""The one way a process makes a Redis client, and the one timeout policy they all follow.

Every client connects and reads with ``redis_timeout_s`` (0.5 s) and never retries by itself:
whether and when to try again is the breaker's decision (``breaker.py``) and, for work that
needs Redis, the service runtime's backoff. Connection parameters are passed as they are, not
through a URL, so a password needs no quoting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from autoglm.redis_access.breaker import CircuitBreaker
from autoglm.security import redis_connection_options
from autoglm.settings import Settings

FAILURES = (RedisError, OSError, asyncio.TimeoutError)
"""What a Redis call may raise when the server is down or slow."""

_breakers: dict[tuple[str, int, int], CircuitBreaker] = {}


def client_options(settings: Settings, timeout_s: float | None = None) -> dict[str, Any]:
    timeout = settings.redis_timeout_s if timeout_s is None else timeout_s
    return {
        # Address, ACL user and password, and TLS in secure mode (autoglm.security).
        **redis_connection_options(settings),
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }


def async_client(settings: Settings, *, timeout_s: float | None = None) -> aioredis.Redis:
    """A client for the event loop (idempotency, caches, the trainer's result memory).

    ``timeout_s`` overrides the policy for administrative calls that may take long (a
    benchmark flushing its database), never for the services' own."""
    return aioredis.Redis(
        **client_options(settings, timeout_s), retry=aioredis.retry.Retry(NoBackoff(), 0)
    )


def sync_client(settings: Settings) -> redis.Redis:
    """A client for worker threads (the inference encoder's encoding cache)."""
    return redis.Redis(**client_options(settings), retry=redis.retry.Retry(NoBackoff(), 0))


def breaker_for(settings: Settings) -> CircuitBreaker:
    """The process's breaker for the configured server: what one user learns (Redis is down)
    every other user of the process knows at once."""
    server = (settings.redis_host, settings.redis_port, settings.redis_db)
    breaker = _breakers.get(server)
    if breaker is None or breaker.open_s != settings.redis_breaker_open_s:
        breaker = _breakers[server] = CircuitBreaker(
            f"{settings.redis_host}:{settings.redis_port}/{settings.redis_db}",
            settings.redis_breaker_open_s,
        )
    return breaker
