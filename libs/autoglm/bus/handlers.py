"""What a service's core functions receive and return: the runtime's only contract with them.

Kept apart from the runtime so that a core (and its tests) depends on these few types and
nothing of Kafka, tracing or idempotency: a core takes decoded messages with their
:class:`HandlerContext` and returns :class:`Outgoing` messages, or a ``BadInputError`` for a
message it refuses.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiokafka import ConsumerRecord
from google.protobuf.message import Message

from autoglm.errors import BadInputError

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Outgoing:
    """A message a core function wants published: logical topic, message, partition key."""

    topic: str
    message: Message
    key: str


@dataclass
class HandlerContext:
    """What a core function may want to know about the message it handles."""

    service: str
    topic: str
    headers: dict[str, str]
    content_type: str
    received_at: float = field(default_factory=time.perf_counter)
    request_id: str = ""
    trace_id: str = ""
    """Hex W3C trace id of this message's span."""
    record: ConsumerRecord[Any, Any] | None = None
    """The Kafka record as received (what a dead letter about this message carries)."""

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.received_at) * 1000.0


@dataclass(frozen=True)
class Incoming(Generic[M]):
    """One decoded message of a batch and its context."""

    message: M
    context: HandlerContext


CoreFunction = Callable[[M, HandlerContext], Awaitable[Iterable[Outgoing]]]

ItemResult = Sequence[Outgoing] | BadInputError
"""What a batch core returns for each message: its outputs, or why it is bad input."""

BatchCoreFunction = Callable[[Sequence[Incoming[M]]], Awaitable[Sequence[ItemResult]]]


def per_message(core: CoreFunction[M]) -> BatchCoreFunction[M]:
    """A one-message core as a batch core (its batches hold a single message)."""

    async def batch_core(items: Sequence[Incoming[M]]) -> list[ItemResult]:
        results: list[ItemResult] = []
        for item in items:
            try:
                results.append(list(await core(item.message, item.context)))
            except BadInputError as exc:
                results.append(exc)
        return results

    return batch_core
