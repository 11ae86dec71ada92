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
fetched again after a backoff, and what was already finished is skipped by its request id); an
unexpected exception is retried a few times and then dead-lettered, so one poisonous message can
block neither its partition nor the good messages it was batched with. A dependency refusing the
service's configuration (``MisconfiguredError``: Neo4j refusing the password) is transient too,
logged as an error: nothing is dead-lettered or committed until it is fixed, and a start-up hook
failing so is retried the same way instead of the service exiting. On the request topics a
request id seen before with other content is dead-lettered as ``request_id_reused``.

This module only composes the steps; each lives in a module of its own:

- ``bus.handlers``: what cores take and return (``Outgoing``, ``HandlerContext``, ``Incoming``);
- ``bus.envelope``: a consumed record, its size limit and decoding;
- ``bus.delivery``: idempotency keys and dedupe, settling sends, the backoff of retries;
- ``bus.dead_letters``: what a dead letter holds; ``bus.limits``: every output fits the limit;
- ``bus.spans``: a span per message and the trace context of what it causes to be published.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from aiokafka import ConsumerRecord
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.sdk.trace import TracerProvider

from autoglm.bus import topics
from autoglm.bus.dead_letters import dead_letter_message as _dead_letter_message
from autoglm.bus.dead_letters import dead_letter_outgoing as _dead_letter_outgoing
from autoglm.bus.delivery import Backoff, Dedupe, Delivery, failed, retriable
from autoglm.bus.envelope import Envelope, decode_envelope, raw_bodies, raw_body, record_headers
from autoglm.bus.envelope import records as _records
from autoglm.bus.handlers import (
    BatchCoreFunction,
    CoreFunction,
    HandlerContext,
    Incoming,
    ItemResult,
    M,
    Outgoing,
    per_message,
)
from autoglm.bus.idempotency import IdempotencyStore, MemoryIdempotencyStore
from autoglm.bus.limits import Encoded, OutputTooLargeError, encode_within
from autoglm.bus.spans import MessageSpans, inject
from autoglm.contracts import DeadLetter
from autoglm.errors import AutoGLMError, BadInputError, MisconfiguredError, TransientError
from autoglm.logs import request_id_var
from autoglm.retries import RetryPolicy
from autoglm.security import kafka_security
from autoglm.settings import Settings
from autoglm.tracing import setup_tracing

__all__ = [
    "BatchCoreFunction",
    "CoreFunction",
    "HandlerContext",
    "Incoming",
    "ItemResult",
    "Outgoing",
    "ServiceRuntime",
    "transient_retry_policy",
]

log = logging.getLogger(__name__)

# A transient error is re-raised: nothing is committed, the batch is fetched again after the
# backoff, and what was finished before is skipped by its request id.
TRANSIENT_RETRY = "transient failure, will retry the batch"

_failed = failed  # the name tests use for a send that fails at once


def transient_retry_policy(settings: Settings) -> RetryPolicy:
    """The waits between retries of a route's transient failures (no limit: the offsets stay
    uncommitted until the dependency is back)."""
    return RetryPolicy(
        initial_s=settings.transient_retry_initial_s,
        max_s=max(settings.transient_retry_initial_s, settings.transient_retry_max_s),
        jitter_s=settings.transient_retry_jitter_s,
    )


@dataclass
class _Route(Generic[M]):
    topic: str
    message_type: type[M]
    required: Sequence[str]
    core: BatchCoreFunction[M]
    batched: bool
    broadcast: bool = False  # every replica gets every message (its own consumer group)
    backoff: Backoff = field(default_factory=Backoff)


class ServiceRuntime:
    """Broker, tracing, idempotency and dead-lettering for one service."""

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
        self.spans = MessageSpans(self.tracer, name, log)
        self.idempotency: IdempotencyStore = idempotency or MemoryIdempotencyStore()
        self.dedupe = Dedupe(self.idempotency, name, self.instance_id)
        self.retry_policy = transient_retry_policy(settings)
        """Waits between transient retries of a route, and between the tries of a message
        that raised an unexpected exception."""
        self.max_attempts = settings.processing_attempts
        self.broker = KafkaBroker(
            # A list: faststream hands a string to aiokafka as one host ("a:1,b:2" unsplit).
            settings.kafka_bootstrap.split(","),
            # Secure mode: SASL_SSL as this service's own principal (autoglm.security).
            security=kafka_security(settings, name),
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
        await topics.ensure_topics(self.settings, role=self.name)
        for hook in self._startup:
            await self._start_when_possible(hook)
        log.info("service starting", extra={"bootstrap": self.settings.kafka_bootstrap})

    async def _start_when_possible(self, hook: Callable[[], Awaitable[None]]) -> None:
        """A start-up hook that fails transiently (a store down, or refusing the configuration)
        is retried with the backoff until it succeeds: the service does not consume meanwhile,
        and says why, instead of exiting."""
        backoff = Backoff()
        while True:
            try:
                await hook()
                return
            except TransientError as exc:
                wait = backoff.next_wait(self.retry_policy)
                self._log_retry(exc, wait, backoff.failures, "start-up")
                await asyncio.sleep(wait)

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
                topic, message_type, tuple(required), per_message(core), False, broadcast
            )

            async def handle(body: bytes, message: KafkaMessage) -> None:
                await self._handle(route, _records(message))

            handle.__name__ = f"{self.name}_{topic.replace('-', '_')}"
            self.broker.subscriber(
                self.settings.topic(topic),
                decoder=raw_body,
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
                decoder=raw_bodies,
                **self._subscriber_options(),
            )(handle)
            return core

        return register

    async def _handle(
        self, route: _Route[Any], records: Sequence[ConsumerRecord[Any, Any]]
    ) -> None:
        # Log records carry a request id only while that message is being handled.
        token = request_id_var.set("")
        batch = self.spans.batch(route.topic) if route.batched else None
        envelopes = [
            Envelope(
                record,
                bytes(record.value or b""),
                headers,
                self.spans.message(route.topic, headers, batch),
            )
            for record in records
            for headers in (record_headers(record),)
        ]
        try:
            await self._handle_envelopes(route, envelopes)
        except TransientError as exc:
            await self._back_off(route, exc)
            raise
        else:
            route.backoff.reset()
        finally:
            for envelope in envelopes:
                envelope.span.end()
            if batch is not None:
                batch.set_attribute("messaging.batch.message_count", len(records))
                batch.end()
            request_id_var.reset(token)

    async def _back_off(self, route: _Route[Any], error: TransientError) -> None:
        """Wait before the batch is fetched again: the longer, the more often it failed."""
        wait = route.backoff.next_wait(self.retry_policy)
        self._log_retry(error, wait, route.backoff.failures, route.topic)
        await asyncio.sleep(wait)

    def _log_retry(self, error: TransientError, wait: float, failures: int, where: str) -> None:
        extra = {
            "topic": where,
            "error_type": error.error_type,
            "consecutive_failures": failures,
            "wait_s": round(wait, 3),
        }
        if isinstance(error, MisconfiguredError):
            # Only a person can fix it: say so at error level, every time.
            log.error(f"{where}: not consuming, retry in {wait:.1f}s: {error.reason}", extra=extra)
        else:
            log.warning(f"{TRANSIENT_RETRY} in {wait:.1f}s: {error.reason}", extra=extra)

    async def _handle_envelopes(self, route: _Route[Any], envelopes: list[Envelope]) -> None:
        deliveries: list[Delivery] = []

        decoded: list[Envelope] = []
        for envelope in envelopes:
            try:
                decode_envelope(
                    envelope, route.message_type, route.required, self.settings.max_message_bytes
                )
            except BadInputError as exc:
                deliveries.append(await self._dead_letter_delivery(route, envelope, exc))
                continue
            decoded.append(envelope)

        selection = await self.dedupe.select(route.topic, decoded, broadcast=route.broadcast)
        for envelope in selection.skipped:
            self.spans.log_about(envelope, logging.INFO, "replayed request skipped")
        for envelope, reused in selection.reused:
            # Not marked: the digest kept is that of what was processed under this id.
            deliveries.append(await self._dead_letter_delivery(route, envelope, reused, mark=False))
        work = selection.work

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

    async def _settle(self, route: _Route[Any], deliveries: list[Delivery]) -> None:
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
            if retriable(failure):
                retry = retry or failure
                delivery.done_key = ""
                continue
            if delivery.is_dead_letter:
                # Fitted to the limit, so this should not happen; retrying would block the
                # partition forever, so say so loudly and go on.
                self.spans.log_about(
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
        await self.dedupe.mark(deliveries)
        if retry is not None:
            raise TransientError(
                f"publishing failed, the batch will be retried: {retry}", error_type="publish"
            )

    # --- calling the core ---------------------------------------------------------------------

    async def _run_core(self, route: _Route[Any], work: list[Envelope]) -> list[ItemResult]:
        """The core on the whole batch; after an unexpected failure, on each message alone."""
        if len(work) > 1:
            try:
                return await self._call_core(route, work)
            except TransientError:
                raise
            except AutoGLMError:
                # Fatal, or bad input the core did not pin on one message: find out which.
                log.warning("batch failed; running its messages one by one", exc_info=True)
            except Exception:
                log.warning("batch failed; running its messages one by one", exc_info=True)
        return [await self._run_alone(route, envelope) for envelope in work]

    async def _run_alone(self, route: _Route[Any], envelope: Envelope) -> ItemResult:
        """One message, retried in place with the route's backoff policy, dead-lettered after
        ``max_attempts`` failures."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                (result,) = await self._call_core(route, [envelope])
                return result
            except BadInputError as exc:
                return exc
            except TransientError:
                raise
            except AutoGLMError:
                # Fatal: leave the offsets uncommitted and stop; the batch is retried on restart.
                self.spans.log_about(
                    envelope, logging.CRITICAL, "fatal error, stopping the service", exc=True
                )
                self.app.exit()
                raise
            except Exception as exc:
                if attempt == self.max_attempts:
                    self.spans.log_about(
                        envelope, logging.ERROR, "processing failed repeatedly", exc=True
                    )
                    return BadInputError(
                        f"processing failed {attempt} times: {type(exc).__name__}: {exc}",
                        error_type="processing",
                    )
                wait = self.retry_policy.delay(attempt)
                self.spans.log_about(
                    envelope,
                    logging.WARNING,
                    f"processing failed, will retry in {wait:.1f}s",
                    exc=True,
                    attempt=attempt,
                    wait_s=round(wait, 3),
                )
                await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _call_core(self, route: _Route[Any], work: list[Envelope]) -> list[ItemResult]:
        items: list[Incoming[Any]] = []
        for envelope in work:
            assert envelope.decoded is not None  # only decoded messages get this far
            items.append(Incoming(envelope.decoded, self._context(envelope, route.topic)))
        try:
            if len(work) == 1:
                request_id_var.set(work[0].request_id)
                with self.spans.use(work[0].span):
                    results = list(await route.core(items))
            else:
                results = list(await route.core(items))
        finally:
            request_id_var.set("")
        if len(results) != len(items):
            raise RuntimeError(f"core returned {len(results)} results for {len(items)} messages")
        return results

    def _context(self, envelope: Envelope, topic: str = "") -> HandlerContext:
        return HandlerContext(
            self.name,
            topic,
            envelope.headers,
            envelope.content_type,
            request_id=envelope.request_id,
            trace_id=self.spans.trace_id(envelope.span),
            record=envelope.record,
        )

    # --- producing ----------------------------------------------------------------------------

    async def _output_delivery(
        self, route: _Route[Any], envelope: Envelope, outputs: Sequence[Outgoing]
    ) -> Delivery:
        """Send a message's outputs, or its dead letter if one of them cannot fit the limit.

        Every output is encoded and measured before any is sent: a message is published whole
        or not at all."""
        try:
            encoded = [self._encode(o, envelope.content_type) for o in outputs]
        except OutputTooLargeError as exc:
            return await self._dead_letter_delivery(route, envelope, exc)
        with self.spans.use(envelope.span):
            sends = [await self._send(o, body, headers) for o, (body, headers) in encoded]
        key = self.dedupe.key(route.topic, envelope, broadcast=route.broadcast)
        return Delivery(envelope, sends, key)

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
        try:
            sent = await self.broker.publish(
                body,
                topic=self.settings.topic(outgoing.topic),
                key=outgoing.key.encode("utf-8"),
                # The current span (the message's own) becomes the parent.
                headers=inject(headers),
                no_confirm=True,
            )
        except Exception as exc:  # refused at send time (e.g. too large): settled by the caller
            return failed(exc)
        # FastStream's in-memory test broker delivers at once and returns no future.
        return sent if inspect.isawaitable(sent) else asyncio.sleep(0)

    # --- dead letters -------------------------------------------------------------------------

    def dead_letter_message(self, context: HandlerContext, error: AutoGLMError) -> DeadLetter:
        """The dead letter for the message ``context`` describes: its bytes, and why."""
        return _dead_letter_message(self.name, context, error)

    def dead_letter_outgoing(self, context: HandlerContext, error: AutoGLMError) -> Outgoing:
        return _dead_letter_outgoing(self.name, context, error)

    async def _dead_letter_delivery(
        self, route: _Route[Any], envelope: Envelope, error: AutoGLMError, *, mark: bool = True
    ) -> Delivery:
        envelope.span.set_attribute("autoglm.dead_letter.reason", error.reason)
        self.spans.log_about(envelope, logging.WARNING, f"dead-lettered: {error.reason}")
        outgoing = self.dead_letter_outgoing(self._context(envelope), error)
        with self.spans.use(envelope.span):
            send = await self.publish_nowait(outgoing, content_type=envelope.content_type)
        key = (
            self.dedupe.key(route.topic, envelope, broadcast=route.broadcast)
            if envelope.request_id and mark
            else ""
        )
        return Delivery(envelope, [send], key, is_dead_letter=True)
