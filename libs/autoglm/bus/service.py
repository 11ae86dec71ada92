"""The thin FastStream adapter every service is built from.

A service registers core functions with :meth:`ServiceRuntime.consume` (one message at a time) or
:meth:`ServiceRuntime.consume_batch` (a batch of messages in one call, for work that is cheaper
in bulk: spaCy's ``nlp.pipe``, one Neo4j transaction for many documents). Both go through the
same steps, for every message of a batch on its own: decode (binary protobuf or proto3 JSON),
check required fields, skip request ids already finished (or repeated within the batch), call
the core, publish the core's outputs, wait until Kafka has acknowledged every output of the
batch, mark the request ids done, and only then let FastStream commit the offsets.

What happens when something fails is decided by the error category (``autoglm.errors``), per
message: bad input goes to the dead-letter topic with the original bytes and the reason while the
rest of its batch goes on; transient errors are retried without committing (the whole batch is
fetched again, and what was already finished is skipped by its request id); an unexpected
exception is retried a few times and then dead-lettered, so one poisonous message can block
neither its partition nor the good messages it was batched with.

Each message gets its own span, named ``<service>.<topic>``, a child of the context its own
``traceparent`` header carries (a message of a batch is also linked to the batch's span), and
what the message causes to be published carries that span in its ``traceparent``: a trace
follows every request through every hop, batched or not. The runtime does this itself rather
than through FastStream's telemetry middleware, which gives a batch one span with no parent and
costs two more spans per published message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, Span

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore, MemoryIdempotencyStore
from autoglm.bus.limits import Encoded, OutputTooLargeError, encode_within
from autoglm.contracts import JSON, DeadLetter, decode, require_fields
from autoglm.contracts.codec import content_type_of
from autoglm.errors import AutoGLMError, BadInputError, TransientError
from autoglm.logs import request_id_var
from autoglm.settings import Settings
from autoglm.tracing import setup_tracing

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

# A transient error is re-raised: nothing is committed, the batch is fetched again after the
# backoff, and what was finished before is skipped by its request id.
TRANSIENT_RETRY = "transient failure, will retry the batch"


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


@dataclass
class _Route(Generic[M]):
    topic: str
    message_type: type[M]
    required: Sequence[str]
    core: BatchCoreFunction[M]
    batched: bool
    broadcast: bool = False  # every replica gets every message (its own consumer group)


@dataclass
class _Envelope:
    """One consumed record on its way through the runtime."""

    record: ConsumerRecord[Any, Any]
    body: bytes
    headers: dict[str, str]
    span: Span
    content_type: str = JSON
    request_id: str = ""
    decoded: Message | None = None

    def position(self) -> str:
        return f"{self.record.topic}[{self.record.partition}]@{self.record.offset}"


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    # Decoding belongs to the runtime (with dead-lettering), not to FastStream's JSON decoder.
    return bytes(message.body)


async def _raw_bodies(message: StreamMessage[Any]) -> list[bytes]:
    return [bytes(body) for body in message.body]


def _records(message: KafkaMessage) -> list[ConsumerRecord[Any, Any]]:
    raw = message.raw_message
    return list(raw) if isinstance(raw, tuple | list) else [raw]


def _per_message(core: CoreFunction[M]) -> BatchCoreFunction[M]:
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
        # Tells replicas apart: broadcast routes consume in a group of their own.
        self.instance_id = uuid.uuid4().hex[:12]
        self.tracer_provider = tracer_provider or setup_tracing(name, settings)
        self.tracer = self.tracer_provider.get_tracer(f"autoglm.{name}")
        self.idempotency: IdempotencyStore = idempotency or MemoryIdempotencyStore()
        self.broker = KafkaBroker(
            settings.kafka_bootstrap,
            client_id=f"autoglm-{name}",
            acks="all",
            enable_idempotence=True,
            # Outputs are fitted to max_message_bytes (bus.limits); this leaves room for the
            # key, headers and record framing around the largest body.
            max_request_size=settings.max_message_bytes + 64 * 1024,
            logger=logging.getLogger(f"autoglm.{name}.broker"),
        )
        self.app = FastStream(self.broker, logger=logging.getLogger(f"autoglm.{name}"))
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

    def _subscriber_options(self, broadcast: bool = False) -> dict[str, Any]:
        if broadcast:
            # A group per replica, reading only what is published from now on: a replica
            # that starts later reads the current state at start-up instead (the registry).
            group, reset = f"{self.settings.group(self.name)}-{self.instance_id}", "latest"
        else:
            group, reset = self.settings.group(self.name), "earliest"
        return {
            "group_id": group,
            "auto_offset_reset": reset,
            "ack_policy": AckPolicy.NACK_ON_ERROR,
            "max_poll_interval_ms": 10 * 60 * 1000,
        }

    def consume(
        self,
        topic: str,
        message_type: type[M],
        *,
        required: Sequence[str] = ("request_id",),
        broadcast: bool = False,
    ) -> Callable[[CoreFunction[M]], CoreFunction[M]]:
        """Register ``core`` as the one-message handler of ``topic`` (from ``bus.topics``).

        ``broadcast``: every replica of the service handles every message (control messages
        such as model updates) instead of sharing the partitions in one consumer group."""

        def register(core: CoreFunction[M]) -> CoreFunction[M]:
            route = _Route(
                topic, message_type, tuple(required), _per_message(core), False, broadcast
            )

            async def handle(body: bytes, message: KafkaMessage) -> None:
                await self._handle(route, _records(message))

            handle.__name__ = f"{self.name}_{topic.replace('-', '_')}"
            self.broker.subscriber(
                self.settings.topic(topic),
                decoder=_raw_body,
                **self._subscriber_options(broadcast),
            )(handle)
            return core

        return register

    def consume_batch(
        self,
        topic: str,
        message_type: type[M],
        *,
        max_records: int,
        required: Sequence[str] = ("request_id",),
        max_wait_ms: float | None = None,
    ) -> Callable[[BatchCoreFunction[M]], BatchCoreFunction[M]]:
        """Register ``core`` as the batch handler of ``topic``.

        ``core`` gets up to ``max_records`` decoded messages (whatever has arrived within
        ``max_wait_ms``, by default ``consume_poll_ms``: it never waits for a batch to fill
        once something is there) and returns one ``ItemResult`` per message, in order.
        """
        wait_ms = (
            self.settings.consume_poll_ms if max_wait_ms is None else max(1, round(max_wait_ms))
        )

        def register(core: BatchCoreFunction[M]) -> BatchCoreFunction[M]:
            route = _Route(topic, message_type, tuple(required), core, True)

            async def handle(body: list[bytes], message: KafkaMessage) -> None:
                await self._handle(route, _records(message))

            handle.__name__ = f"{self.name}_{topic.replace('-', '_')}_batch"
            self.broker.subscriber(
                self.settings.topic(topic),
                batch=True,
                max_records=max_records,
                batch_timeout_ms=wait_ms,
                decoder=_raw_bodies,
                **self._subscriber_options(),
            )(handle)
            return core

        return register

    async def _handle(
        self, route: _Route[Any], records: Sequence[ConsumerRecord[Any, Any]]
    ) -> None:
        # Log records carry a request id only while that message is being handled.
        token = request_id_var.set("")
        batch = (
            self.tracer.start_span(f"{self.name}.{route.topic} batch") if route.batched else None
        )
        links = [Link(batch.get_span_context())] if batch is not None else None
        envelopes = [self._envelope(route, record, links) for record in records]
        try:
            await self._handle_envelopes(route, envelopes)
        finally:
            for envelope in envelopes:
                envelope.span.end()
            if batch is not None:
                batch.set_attribute("messaging.batch.message_count", len(records))
                batch.end()
            request_id_var.reset(token)

    def _envelope(
        self, route: _Route[Any], record: ConsumerRecord[Any, Any], links: list[Link] | None
    ) -> _Envelope:
        headers = {
            key: value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            for key, value in record.headers or ()
        }
        span = self.tracer.start_span(
            f"{self.name}.{route.topic}",
            context=propagate.extract(headers),
            kind=trace.SpanKind.CONSUMER,
            links=links,
        )
        return _Envelope(record, bytes(record.value or b""), headers, span)

    def _decode(self, route: _Route[Any], envelope: _Envelope) -> None:
        envelope.content_type = content_type_of(envelope.headers, envelope.body)
        if len(envelope.body) > self.settings.max_message_bytes:
            raise BadInputError(
                f"message of {len(envelope.body)} bytes exceeds the limit of "
                f"{self.settings.max_message_bytes}",
                error_type="too_large",
            )
        decoded = decode(route.message_type, envelope.body, envelope.headers)
        envelope.request_id = getattr(decoded, "request_id", "")
        require_fields(decoded, *route.required)
        envelope.decoded = decoded

    def _key(self, route: _Route[Any], envelope: _Envelope) -> str:
        owner = f"{self.name}@{self.instance_id}" if route.broadcast else self.name
        return f"{owner}:{route.topic}:{envelope.request_id}"

    async def _handle_envelopes(self, route: _Route[Any], envelopes: list[_Envelope]) -> None:
        deliveries: list[_Delivery] = []

        fresh: list[_Envelope] = []
        for envelope in envelopes:
            try:
                self._decode(route, envelope)
            except BadInputError as exc:
                deliveries.append(await self._dead_letter_delivery(route, envelope, exc))
                continue
            fresh.append(envelope)

        keys = [self._key(route, e) for e in fresh]
        seen = await self.idempotency.seen_many(keys)
        work: list[_Envelope] = []
        in_batch: set[str] = set()
        for envelope, key, already in zip(fresh, keys, seen, strict=True):
            if already or key in in_batch:
                self._log(envelope, logging.INFO, "replayed request skipped")
                continue
            in_batch.add(key)
            work.append(envelope)

        try:
            results = await self._run_core(route, work) if work else []
        except BaseException:
            # The batch will be fetched again; let what was already sent finish first.
            await asyncio.gather(*(d.settle() for d in deliveries), return_exceptions=True)
            raise
        for envelope, result in zip(work, results, strict=True):
            if isinstance(result, BadInputError):
                deliveries.append(await self._dead_letter_delivery(route, envelope, result))
            else:
                deliveries.append(await self._output_delivery(route, envelope, result))

        # At-least-once: every output acknowledged, then marked done, then (on return) committed.
        await self._settle(route, deliveries)

    async def _settle(self, route: _Route[Any], deliveries: list[_Delivery]) -> None:
        """Wait for every message's outputs; mark done what was delivered.

        A message whose outputs the broker refused for good (too large, invalid) is
        dead-lettered in their place; one that failed for a reason that may pass leaves the
        batch uncommitted, but what was delivered is marked done first, so the refetch does
        not publish it again.
        """
        failures = await asyncio.gather(*(d.settle() for d in deliveries))
        retry: BaseException | None = None
        for delivery, failure in zip(deliveries, failures, strict=True):
            if failure is None:
                continue
            if _retriable(failure):
                retry = retry or failure
                delivery.done_key = ""
                continue
            if delivery.is_dead_letter:
                # Fitted to the limit, so this should not happen; retrying would block the
                # partition forever, so say so loudly and go on.
                self._log(
                    delivery.envelope,
                    logging.ERROR,
                    f"the broker refused the dead letter ({failure!r}); the message is dropped",
                )
                continue
            error = BadInputError(
                f"the broker refused an output: {type(failure).__name__}: {failure}",
                error_type="output_refused",
            )
            replacement = await self._dead_letter_delivery(route, delivery.envelope, error)
            if await replacement.settle() is not None:
                retry = retry or failure
                delivery.done_key = ""
        await self.idempotency.mark_many([d.done_key for d in deliveries if d.done_key])
        if retry is not None:
            raise TransientError(f"publishing failed, the batch will be retried: {retry}")

    async def _run_core(self, route: _Route[Any], work: list[_Envelope]) -> list[ItemResult]:
        """The core on the whole batch; after an unexpected failure, on each message alone."""
        if len(work) > 1:
            try:
                return await self._call_core(route, work)
            except TransientError:
                log.warning(TRANSIENT_RETRY, exc_info=True)
                raise
            except AutoGLMError:
                # Fatal, or bad input the core did not pin on one message: find out which.
                log.warning("batch failed; running its messages one by one", exc_info=True)
            except Exception:
                log.warning("batch failed; running its messages one by one", exc_info=True)
        return [await self._run_alone(route, envelope) for envelope in work]

    async def _run_alone(self, route: _Route[Any], envelope: _Envelope) -> ItemResult:
        """One message, retried in place, dead-lettered after ``max_attempts`` failures."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                (result,) = await self._call_core(route, [envelope])
                return result
            except BadInputError as exc:
                return exc
            except TransientError:
                self._log(envelope, logging.WARNING, TRANSIENT_RETRY, exc=True)
                raise
            except AutoGLMError:
                # Fatal: leave the offsets uncommitted and stop; the batch is retried on restart.
                self._log(envelope, logging.CRITICAL, "fatal error, stopping the service", True)
                self.app.exit()
                raise
            except Exception as exc:
                if attempt == self.max_attempts:
                    self._log(envelope, logging.ERROR, "processing failed repeatedly", exc=True)
                    return BadInputError(
                        f"processing failed {attempt} times: {type(exc).__name__}: {exc}",
                        error_type="processing",
                    )
                self._log(envelope, logging.WARNING, "processing failed, will retry", exc=True)
                await asyncio.sleep(self.retry_backoff_s * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _call_core(self, route: _Route[Any], work: list[_Envelope]) -> list[ItemResult]:
        items: list[Incoming[Any]] = []
        for envelope in work:
            assert envelope.decoded is not None  # only decoded messages get this far
            items.append(Incoming(envelope.decoded, self._context(envelope, route.topic)))
        try:
            if len(work) == 1:
                request_id_var.set(work[0].request_id)
                with trace.use_span(work[0].span, end_on_exit=False):
                    results = list(await route.core(items))
            else:
                results = list(await route.core(items))
        except TransientError:
            await asyncio.sleep(self.retry_backoff_s)
            raise
        finally:
            request_id_var.set("")
        if len(results) != len(items):
            raise RuntimeError(f"core returned {len(results)} results for {len(items)} messages")
        return results

    def _context(self, envelope: _Envelope, topic: str = "") -> HandlerContext:
        span_context = envelope.span.get_span_context()
        return HandlerContext(
            self.name,
            topic,
            envelope.headers,
            envelope.content_type,
            request_id=envelope.request_id,
            trace_id=format(span_context.trace_id, "032x") if span_context.is_valid else "",
            record=envelope.record,
        )

    def _log(self, envelope: _Envelope, level: int, text: str, exc: bool = False) -> None:
        token = request_id_var.set(envelope.request_id)
        try:
            with trace.use_span(envelope.span, end_on_exit=False):
                log.log(level, text, exc_info=exc, extra={"position": envelope.position()})
        finally:
            request_id_var.reset(token)

    async def _output_delivery(
        self, route: _Route[Any], envelope: _Envelope, outputs: Sequence[Outgoing]
    ) -> _Delivery:
        """Send a message's outputs, or its dead letter if one of them cannot fit the limit.

        Every output is encoded and measured before any is sent: a message is published whole
        or not at all."""
        try:
            encoded = [self._encode(o, envelope.content_type) for o in outputs]
        except OutputTooLargeError as exc:
            return await self._dead_letter_delivery(route, envelope, exc)
        with trace.use_span(envelope.span, end_on_exit=False):
            sends = [await self._send(o, body, headers) for o, (body, headers) in encoded]
        return _Delivery(envelope, sends, self._key(route, envelope))

    # --- producing ----------------------------------------------------------------------------

    def _encode(self, outgoing: Outgoing, content_type: str) -> tuple[Outgoing, Encoded]:
        return outgoing, encode_within(
            outgoing.message, content_type, self.settings.max_message_bytes
        )

    async def publish(self, outgoing: Outgoing, *, content_type: str) -> None:
        """Publish and wait for the broker's acknowledgement (acks=all)."""
        await (await self.publish_nowait(outgoing, content_type=content_type))

    async def publish_nowait(self, outgoing: Outgoing, *, content_type: str) -> Awaitable[Any]:
        """Hand a message to the producer; await the result for the acknowledgement.

        Outputs of a batch are sent together and acknowledged together, instead of one round
        trip to the broker per output. A message over the size limit is shortened where its
        kind allows (``bus.limits``) or refused with ``OutputTooLargeError`` before sending.
        """
        _, (body, headers) = self._encode(outgoing, content_type)
        return await self._send(outgoing, body, headers)

    async def _send(
        self, outgoing: Outgoing, body: bytes, headers: dict[str, str]
    ) -> Awaitable[Any]:
        headers = dict(headers)
        propagate.inject(headers)  # the current span (the message's own) becomes the parent
        try:
            sent = await self.broker.publish(
                body,
                topic=self.settings.topic(outgoing.topic),
                key=outgoing.key.encode("utf-8"),
                headers=headers,
                no_confirm=True,
            )
        except Exception as exc:  # refused at send time (e.g. too large): settled by the caller
            return _failed(exc)
        # FastStream's in-memory test broker delivers at once and returns no future.
        return sent if inspect.isawaitable(sent) else asyncio.sleep(0)

    def dead_letter_message(self, context: HandlerContext, error: AutoGLMError) -> DeadLetter:
        """The dead letter for the message ``context`` describes: its bytes, and why."""
        record = context.record
        failed_at = Timestamp()
        failed_at.GetCurrentTime()
        letter = DeadLetter(
            request_id=context.request_id,
            schema_version=1,
            service=self.name,
            source_topic=getattr(record, "topic", "") or "",
            source_partition=getattr(record, "partition", -1),
            source_offset=getattr(record, "offset", -1),
            original_key=getattr(record, "key", None) or b"",
            original_value=bytes(getattr(record, "value", None) or b""),
            original_length=len(getattr(record, "value", None) or b""),
            reason=error.reason,
            error_type=error.error_type,
            trace_id=context.trace_id,
            failed_at=failed_at,
        )
        letter.original_headers.update(context.headers)
        return letter

    def dead_letter_outgoing(self, context: HandlerContext, error: AutoGLMError) -> Outgoing:
        letter = self.dead_letter_message(context, error)
        key = letter.request_id or letter.original_key.decode("utf-8", "replace")
        return Outgoing(topics.DEAD_LETTERS, letter, key=key)

    async def _dead_letter_delivery(
        self, route: _Route[Any], envelope: _Envelope, error: AutoGLMError
    ) -> _Delivery:
        envelope.span.set_attribute("autoglm.dead_letter.reason", error.reason)
        self._log(envelope, logging.WARNING, f"dead-lettered: {error.reason}")
        outgoing = self.dead_letter_outgoing(self._context(envelope), error)
        with trace.use_span(envelope.span, end_on_exit=False):
            send = await self.publish_nowait(outgoing, content_type=envelope.content_type)
        key = self._key(route, envelope) if envelope.request_id else ""
        return _Delivery(envelope, [send], key, is_dead_letter=True)


@dataclass
class _Delivery:
    """What one consumed message caused to be sent, and the idempotency key it completes."""

    envelope: _Envelope
    sends: list[Awaitable[Any]]
    done_key: str
    is_dead_letter: bool = False

    async def settle(self) -> BaseException | None:
        """Wait for every send; the first failure, or None when all were acknowledged."""
        outcomes = await asyncio.gather(*self.sends, return_exceptions=True)
        self.sends = []
        return next((o for o in outcomes if isinstance(o, BaseException)), None)


async def _failed(exc: BaseException) -> None:
    raise exc


def _retriable(exc: BaseException) -> bool:
    """Kafka errors say whether retrying may help; anything else is assumed to."""
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False))
    return not isinstance(exc, BadInputError)
