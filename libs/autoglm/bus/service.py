"""The thin FastStream adapter every service is built from.

A service registers core functions with :meth:`ServiceRuntime.consume`. For each message the
runtime decodes it (binary protobuf or proto3 JSON), checks required fields, skips request ids it
has already finished, calls the core, publishes the core's outputs and waits for Kafka to
acknowledge them, marks the request id done, and only then lets FastStream commit the offset.

What happens when something fails is decided by the error category (``autoglm.errors``):
bad input goes to the dead-letter topic with the original bytes and the reason; transient errors
are retried without committing; an unexpected exception is retried a few times and then
dead-lettered, so one poisonous message cannot block its partition forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.message import StreamMessage
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore, MemoryIdempotencyStore
from autoglm.contracts import JSON, DeadLetter, decode, encode, require_fields
from autoglm.contracts.codec import content_type_of
from autoglm.errors import AutoGLMError, BadInputError, TransientError
from autoglm.logs import request_id_var
from autoglm.settings import Settings
from autoglm.tracing import current_trace_id, setup_tracing

log = logging.getLogger(__name__)

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

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.received_at) * 1000.0


CoreFunction = Callable[[M, HandlerContext], Awaitable[Iterable[Outgoing]]]


@dataclass
class _Route(Generic[M]):
    topic: str
    message_type: type[M]
    required: Sequence[str]
    core: CoreFunction[M]


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    # Decoding belongs to the runtime (with dead-lettering), not to FastStream's JSON decoder.
    return bytes(message.body)


class ServiceRuntime:
    """Broker, tracing, idempotency and dead-lettering for one service."""

    max_attempts = 3
    retry_backoff_s = 0.5

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        idempotency: IdempotencyStore | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.tracer_provider = tracer_provider or setup_tracing(name, settings)
        self.tracer = self.tracer_provider.get_tracer(f"autoglm.{name}")
        self.idempotency: IdempotencyStore = idempotency or MemoryIdempotencyStore()
        self.broker = KafkaBroker(
            settings.kafka_bootstrap,
            client_id=f"autoglm-{name}",
            acks="all",
            enable_idempotence=True,
            middlewares=[KafkaTelemetryMiddleware(tracer_provider=self.tracer_provider)],
            logger=logging.getLogger(f"autoglm.{name}.broker"),
        )
        self.app = FastStream(self.broker, logger=logging.getLogger(f"autoglm.{name}"))
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._startup: list[Callable[[], Awaitable[None]]] = []
        self._shutdown: list[Callable[[], Awaitable[None]]] = []
        self.app.on_startup(self._run_startup)
        self.app.after_startup(self._announce_ready)
        self.app.after_shutdown(self._run_shutdown)

    # --- lifecycle ----------------------------------------------------------------------------

    def on_startup(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._startup.append(hook)

    def on_shutdown(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._shutdown.append(hook)

    async def _run_startup(self) -> None:
        await topics.ensure_topics(self.settings)
        for hook in self._startup:
            await hook()
        log.info("service starting", extra={"bootstrap": self.settings.kafka_bootstrap})

    async def _announce_ready(self) -> None:
        # `autoglm services start` waits for this line (READY_MARKER).
        log.info("service ready")

    async def _run_shutdown(self) -> None:
        for hook in reversed(self._shutdown):
            await hook()
        await self.idempotency.close()
        self.tracer_provider.force_flush()
        self.tracer_provider.shutdown()

    async def run(self) -> None:
        await self.app.run()

    # --- consuming ----------------------------------------------------------------------------

    def consume(
        self, topic: str, message_type: type[M], *, required: Sequence[str] = ("request_id",)
    ) -> Callable[[CoreFunction[M]], CoreFunction[M]]:
        """Register ``core`` as the handler of ``topic`` (a logical name from ``bus.topics``)."""

        def register(core: CoreFunction[M]) -> CoreFunction[M]:
            route = _Route(topic, message_type, tuple(required), core)

            async def handle(body: bytes, message: KafkaMessage) -> None:
                await self._handle(route, body, message)

            handle.__name__ = f"{self.name}_{topic.replace('-', '_')}"
            self.broker.subscriber(
                self.settings.topic(topic),
                group_id=self.settings.group(self.name),
                auto_offset_reset="earliest",
                ack_policy=AckPolicy.NACK_ON_ERROR,
                decoder=_raw_body,
                max_poll_interval_ms=10 * 60 * 1000,
            )(handle)
            return core

        return register

    async def _handle(self, route: _Route[Any], body: bytes, message: KafkaMessage) -> None:
        # Log records carry the request id while this message is handled, and only then.
        token = request_id_var.set("")
        try:
            await self._handle_message(route, body, message)
        finally:
            request_id_var.reset(token)

    async def _handle_message(self, route: _Route[Any], body: bytes, message: KafkaMessage) -> None:
        record = message.raw_message
        headers = {k: v for k, v in message.headers.items() if isinstance(v, str)}
        position = (route.topic, getattr(record, "partition", -1), getattr(record, "offset", -1))
        request_id = ""
        content_type = JSON
        try:
            content_type = content_type_of(headers, body)
            if len(body) > self.settings.max_message_bytes:
                raise BadInputError(
                    f"message of {len(body)} bytes exceeds the limit of "
                    f"{self.settings.max_message_bytes}",
                    error_type="too_large",
                )
            decoded = decode(route.message_type, body, headers)
            request_id = getattr(decoded, "request_id", "")
            request_id_var.set(request_id)
            require_fields(decoded, *route.required)
        except BadInputError as exc:
            await self.dead_letter(message, exc, request_id=request_id, content_type=content_type)
            return

        idempotency_key = f"{self.name}:{route.topic}:{request_id}"
        if await self.idempotency.seen(idempotency_key):
            log.info("replayed request skipped", extra={"topic": route.topic})
            return

        context = HandlerContext(self.name, route.topic, headers, content_type)
        try:
            with self.tracer.start_as_current_span(f"{self.name}.{route.topic}"):
                outputs = list(await route.core(decoded, context))
        except BadInputError as exc:
            await self.dead_letter(message, exc, request_id=request_id, content_type=content_type)
            await self.idempotency.mark(idempotency_key)
            return
        except TransientError:
            log.warning("transient failure, will retry", exc_info=True)
            await asyncio.sleep(self.retry_backoff_s)
            raise
        except AutoGLMError:
            # Fatal: leave the offset uncommitted and stop; the message is retried on restart.
            log.critical("fatal error, stopping the service", exc_info=True)
            self.app.exit()
            raise
        except Exception as exc:
            attempts = self._attempts.get(position, 0) + 1
            self._attempts[position] = attempts
            if attempts < self.max_attempts:
                log.warning("processing failed, will retry", exc_info=True)
                await asyncio.sleep(self.retry_backoff_s * attempts)
                raise
            self._attempts.pop(position, None)
            log.error("processing failed repeatedly, dead-lettering", exc_info=True)
            failure = BadInputError(
                f"processing failed {attempts} times: {type(exc).__name__}: {exc}",
                error_type="processing",
            )
            await self.dead_letter(
                message, failure, request_id=request_id, content_type=content_type
            )
            return

        for outgoing in outputs:
            await self.publish(outgoing, content_type=content_type)
        await self.idempotency.mark(idempotency_key)
        self._attempts.pop(position, None)

    # --- producing ----------------------------------------------------------------------------

    async def publish(self, outgoing: Outgoing, *, content_type: str) -> None:
        """Publish and wait for the broker's acknowledgement (acks=all)."""
        body, headers = encode(outgoing.message, content_type)
        await self.broker.publish(
            body,
            topic=self.settings.topic(outgoing.topic),
            key=outgoing.key.encode("utf-8"),
            headers=headers,
        )

    async def dead_letter(
        self,
        message: KafkaMessage,
        error: AutoGLMError,
        *,
        request_id: str,
        content_type: str,
    ) -> None:
        record = message.raw_message
        failed_at = Timestamp()
        failed_at.GetCurrentTime()
        letter = DeadLetter(
            request_id=request_id,
            schema_version=1,
            service=self.name,
            source_topic=getattr(record, "topic", "") or "",
            source_partition=getattr(record, "partition", -1),
            source_offset=getattr(record, "offset", -1),
            original_key=getattr(record, "key", None) or b"",
            original_value=bytes(message.body),
            reason=error.reason,
            error_type=error.error_type,
            trace_id=current_trace_id(),
            failed_at=failed_at,
        )
        for key, value in message.headers.items():
            if isinstance(value, str):
                letter.original_headers[key] = value
        span = trace.get_current_span()
        span.set_attribute("autoglm.dead_letter.reason", error.reason)
        log.warning(
            "dead-lettered",
            extra={"reason": error.reason, "error_type": error.error_type},
        )
        await self.publish(
            Outgoing(
                topics.DEAD_LETTERS,
                letter,
                key=request_id or letter.original_key.decode("utf-8", "replace"),
            ),
            content_type=content_type,
        )
