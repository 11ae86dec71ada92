"""One circuit breaker for every Redis user of a process.

Closed: calls go through. A failure opens it: for ``open_s`` every call is refused at once
(:meth:`CircuitBreaker.allow` is False; the caller degrades: a miss, "not seen", or a transient
error for the one store that needs Redis). After that the next calls go through again as
probes: a success closes it, a failure opens it for another ``open_s``. It logs one warning
when it opens and one line when Redis is back, instead of one per request.

Plain state with no lock: it is read and written from the event loop and from the inference
worker thread, and a lost update only costs one more probe.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(self, name: str, open_s: float) -> None:
        self.name = name
        self.open_s = open_s
        self._open_until = 0.0
        self._opened = False
        self.failures = 0
        self.bypassed = 0

    @property
    def is_open(self) -> bool:
        return self._opened and time.monotonic() < self._open_until

    def allow(self) -> bool:
        """May a call go to Redis now? (False is counted as a bypass.)"""
        if self.is_open:
            self.bypassed += 1
            return False
        return True

    def failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        if not self._opened:
            log.warning(
                "redis %s failed (%s: %s); working without it, next try in %.1fs",
                self.name,
                what,
                exc,
                self.open_s,
                extra={"error": f"{type(exc).__name__}: {exc}", "open_s": self.open_s},
            )
        self._opened = True
        self._open_until = time.monotonic() + self.open_s

    def succeeded(self) -> None:
        if self._opened:
            log.info("redis %s reachable again", self.name)
            self._opened = False
            self._open_until = 0.0
