"""Start-up shared by every service's ``__main__``: logging, Redis idempotency, run until signal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from autoglm.bus.idempotency import IdempotencyStore, RedisIdempotencyStore
from autoglm.bus.service import ServiceRuntime
from autoglm.logs import setup_logging
from autoglm.settings import Settings


def redis_idempotency(settings: Settings, service: str) -> IdempotencyStore:
    return RedisIdempotencyStore.connect(settings, service)


def run_service(service: str, build: Callable[..., ServiceRuntime]) -> None:
    setup_logging(service)
    settings = Settings()
    runtime = build(idempotency=redis_idempotency(settings, service))
    asyncio.run(runtime.run())
