"""Retries with exponential backoff, jitter and a cap, on tenacity, for work that fails in ways
that may pass.

Why: a fixed interval either hammers a dependency that is down or waits too long once it is
back, and replicas that retry in step hit it together. Before this module the trainer retried a
failing incremental round every 61 s, forever, and nothing ever said that it kept failing.
With a :class:`RetryPolicy` the waits grow exponentially from ``initial_s`` up to ``max_s``,
each plus a random jitter of up to ``jitter_s`` (replicas drift apart), and after ``attempts``
tries the error is raised to the caller, which reports the work as failed instead of looping.

The service runtime's transient retry (``autoglm.bus.delivery``: a store or the broker
unavailable) uses the same policy with sub-second numbers and no attempt limit (a transient
error is retried until the dependency is back, the offsets stay uncommitted); see
:meth:`RetryPolicy.delays` for the waits one policy gives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how long apart, a failing piece of work is tried."""

    initial_s: float = 1.0  # the first wait
    max_s: float = 60.0  # no wait is longer (the cap)
    jitter_s: float = 1.0  # up to this much is added to each wait, at random
    attempts: int | None = None  # tries in all (the first one included); None: no limit

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.jitter_s < 0:
            raise ValueError(f"inconsistent retry policy: {self}")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def wait(self) -> wait_base:
        return wait_exponential_jitter(initial=self.initial_s, max=self.max_s, jitter=self.jitter_s)

    def stop(self, done: int = 0) -> stop_base:
        """Stop after the attempts left once ``done`` were made (e.g. before a restart)."""
        if self.attempts is None:
            return stop_never
        return stop_after_attempt(max(1, self.attempts - done))

    def retrying(
        self, logger: logging.Logger, what: str, *, done: int = 0, **extra: Any
    ) -> AsyncRetrying:
        """An ``async for attempt in ...: with attempt:`` loop over ``Exception``; each retry is
        logged (with the wait), the last failure is raised as it is."""

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            logger.warning(
                f"{what} failed; retrying",
                extra={
                    **extra,
                    "attempt": done + state.attempt_number,
                    "wait_s": round(state.upcoming_sleep, 2),
                    "error": f"{type(error).__name__}: {error}",
                },
            )

        return AsyncRetrying(
            wait=self.wait(),
            stop=self.stop(done),
            retry=retry_if_exception_type(Exception),
            before_sleep=before_sleep,
            reraise=True,
        )

    def delays(self, count: int) -> Iterator[float]:
        """The waits before retries 1..count (random within the jitter)."""
        for retry in range(1, count + 1):
            yield self.delay(retry)

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1: the first), random within the jitter; for
        loops that count their failures themselves (the service runtime's routes)."""
        state = RetryCallState(AsyncRetrying(), None, (), {})
        state.attempt_number = max(1, retry)
        return float(self.wait()(state))
