"""Delivery: at-least-once without duplicates, and retries that back off.

The order that makes at-least-once real is outputs acknowledged by Kafka, then the request ids
marked done, then the offsets committed. The pieces here are what the runtime composes into
that order, each testable alone:

- :class:`Dedupe` turns a message into its idempotency key (service, topic, request id, and the
  ``autoglm-attempt`` of a redrive) and drops what was finished before or repeated in the batch.
  The key is stored with a digest of the content: on the topics clients publish requests to, a
  request id seen before with *other* content is reported (a dead letter ``request_id_reused``
  that names both digests) instead of silently skipped. Internal topics are not checked: a
  replay there may legitimately differ (timings, a newer graph version);
- :class:`Delivery` is what one consumed message caused to be sent and the key it completes;
  :func:`retriable` says whether a failed send may pass (Kafka tells) or is final;
- :class:`Backoff` spaces the retries of one route: a transient error (a store or the broker
  unavailable) leaves the batch uncommitted and it is fetched again, after a wait that doubles
  from ``transient_retry_initial_s`` up to ``transient_retry_max_s`` with a random jitter, so a
  dependency that is down is not hammered and replicas drift apart; the first success resets
  it. An unexpected exception is retried on its message alone with the waits of the same policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError

from autoglm.bus import topics
from autoglm.bus.dead_letters import REQUEST_ID_REUSED
from autoglm.bus.envelope import Envelope
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.errors import BadInputError
from autoglm.retries import RetryPolicy


@dataclass
class Delivery:
    """What one consumed message caused to be sent, and the idempotency key it completes."""

    envelope: Envelope
    sends: list[Awaitable[Any]]
    done_key: str
    is_dead_letter: bool = False

    @property
    def digest(self) -> str:
        return self.envelope.digest

    async def settle(self) -> BaseException | None:
        """Wait for every send; the first failure, or None when all were acknowledged."""
        outcomes = await asyncio.gather(*self.sends, return_exceptions=True)
        self.sends = []
        return next((o for o in outcomes if isinstance(o, BaseException)), None)


async def failed(exc: BaseException) -> None:
    """A send that failed before it reached the producer, settled like any other."""
    raise exc


def retriable(exc: BaseException) -> bool:
    """Kafka errors say whether retrying may help; anything else is assumed to."""
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False))
    return not isinstance(exc, BadInputError)


REQUEST_TOPICS = frozenset({topics.DOCUMENTS, topics.QUESTIONS, topics.FEEDBACK})
"""Topics clients publish requests to: there a request id reused for other content is reported."""


@dataclass(frozen=True)
class Selection:
    """What :meth:`Dedupe.select` made of the decoded messages of a batch."""

    work: list[Envelope]
    skipped: list[Envelope]
    reused: list[tuple[Envelope, BadInputError]]


class Dedupe:
    """Idempotency keys of one service, over its store."""

    def __init__(self, store: IdempotencyStore, service: str, instance_id: str) -> None:
        self.store = store
        self.service = service
        self.instance_id = instance_id

    def key(self, topic: str, envelope: Envelope, *, broadcast: bool = False) -> str:
        # A broadcast route is consumed by every replica: each marks its own keys.
        owner = f"{self.service}@{self.instance_id}" if broadcast else self.service
        key = f"{owner}:{topic}:{envelope.request_id}"
        return f"{key}@{envelope.attempt}" if envelope.attempt else key

    async def select(
        self, topic: str, envelopes: Sequence[Envelope], *, broadcast: bool = False
    ) -> Selection:
        """The messages to process: not finished before, first of their key in the batch; and
        on request topics, those whose request id came before with other content."""
        keys = [self.key(topic, e, broadcast=broadcast) for e in envelopes]
        stored = await self.store.digests_many(keys)
        check = topic in REQUEST_TOPICS
        selection = Selection([], [], [])
        in_batch: dict[str, str] = {}
        for envelope, key, digest in zip(envelopes, keys, stored, strict=True):
            before = in_batch.get(key, digest)
            if before is None:
                in_batch[key] = envelope.digest
                selection.work.append(envelope)
            elif check and before and envelope.digest and before != envelope.digest:
                selection.reused.append((envelope, reused_error(envelope, before)))
            else:
                selection.skipped.append(envelope)
        return selection

    async def mark(self, deliveries: Sequence[Delivery]) -> None:
        await self.store.mark_many({d.done_key: d.digest for d in deliveries if d.done_key})


def reused_error(envelope: Envelope, digest_before: str) -> BadInputError:
    return BadInputError(
        f"request id {envelope.request_id!r} was processed before with other content "
        f"(sha256 {digest_before}); this message's content is sha256 {envelope.digest}: not "
        "processed, send it under a new request id",
        error_type=REQUEST_ID_REUSED,
    )


class Backoff:
    """Consecutive transient failures of one route, and the wait each calls for."""

    def __init__(self) -> None:
        self.failures = 0

    def next_wait(self, policy: RetryPolicy) -> float:
        """Count one more failure; the wait before the retry it calls for."""
        self.failures += 1
        return policy.delay(self.failures)

    def reset(self) -> None:
        self.failures = 0
