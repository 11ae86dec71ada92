"""A client of the pipeline, as a user would write one: publish requests, collect replies.

It listens to the reply topics (results, graph-commits, dead-letters) from their current end
*before* publishing, so no reply can slip past, and matches replies by request id. Dead letters
about our own requests end the wait with the reason instead of hanging, except those that reject
part of a request only (``errors.PARTIAL_ERROR_TYPES``, e.g. the bad lines of a KB document
whose good lines are written): they are kept in ``partial_rejections`` and the wait goes on for
the request's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from google.protobuf.message import Message

from autoglm import security
from autoglm.bus import topics
from autoglm.contracts import PROTOBUF, DeadLetter, GraphCommit, Result, decode, encode
from autoglm.errors import PARTIAL_ERROR_TYPES, BadInputError
from autoglm.settings import Settings

REPLY_TYPES: dict[str, type[Message]] = {
    topics.RESULTS: Result,
    topics.GRAPH_COMMITS: GraphCommit,
    topics.DEAD_LETTERS: DeadLetter,
}


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass
class PipelineClient:
    settings: Settings
    content_type: str = PROTOBUF
    role: str = security.CLIENT
    """Kafka principal in secure mode: ``client`` (a user), or ``admin`` for operators."""
    _producer: AIOKafkaProducer | None = None
    _consumer: AIOKafkaConsumer | None = None
    _waiting: dict[str, asyncio.Future[Message]] = field(default_factory=dict)
    _early: dict[str, Message] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    partial_rejections: dict[str, list[DeadLetter]] = field(default_factory=dict)
    """Dead letters that rejected part of one of our requests, by request id."""
    _expected: set[str] = field(default_factory=set)
    _partial_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        await topics.ensure_topics(self.settings, role=self.role)
        options = security.kafka_client_options(self.settings, self.role)
        self._producer = AIOKafkaProducer(
            **options,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
        await self._consumer.start()
        partitions: list[TopicPartition] = []
        for name in REPLY_TYPES:
            topic = self.settings.topic(name)
            for partition in self._consumer.partitions_for_topic(topic) or (
                await self._partitions(topic)
            ):
                partitions.append(TopicPartition(topic, partition))
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        # Resolve the end offsets now: a reply published after this point is seen.
        for tp in partitions:
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

    async def _partitions(self, topic: str) -> set[int]:
        assert self._consumer is not None
        await self._consumer._client.force_metadata_update()
        return self._consumer.partitions_for_topic(topic) or {0}

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self._producer:
            await self._producer.stop()
        if self._consumer:
            await self._consumer.stop()

    async def __aenter__(self) -> PipelineClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        prefix_len = len(self.settings.topic_prefix)
        async for record in self._consumer:
            message_type = REPLY_TYPES.get(record.topic[prefix_len:])
            if message_type is None or record.value is None:
                continue
            headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
            try:
                reply = decode(message_type, record.value, headers)
            except BadInputError:
                continue
            request_id = getattr(reply, "request_id", "")
            if not request_id and isinstance(reply, DeadLetter):
                # Undecodable input has no request id: our key (the request id) identifies it.
                request_id = reply.original_key.decode("utf-8", "replace")
            if isinstance(reply, DeadLetter) and reply.error_type in PARTIAL_ERROR_TYPES:
                if request_id in self._expected:
                    self.partial_rejections.setdefault(request_id, []).append(reply)
                    self._partial_arrived.set()
                continue
            future = self._waiting.get(request_id)
            if future is not None and not future.done():
                future.set_result(reply)
            elif request_id:
                self._early[request_id] = reply

    async def publish(
        self, topic: str, message: Message, key: str, headers: dict[str, str] | None = None
    ) -> None:
        """Publish a contract message; ``headers`` may add e.g. a W3C ``traceparent``."""
        body, content_headers = encode(message, self.content_type)
        await self.publish_raw(topic, body, key, {**content_headers, **(headers or {})})

    async def publish_raw(
        self, topic: str, body: bytes, key: str, headers: dict[str, str] | None = None
    ) -> None:
        """Publish bytes as they are (what any other Kafka client could send)."""
        assert self._producer is not None
        await self._producer.send_and_wait(
            self.settings.topic(topic),
            body,
            key=key.encode(),
            headers=[(k, v.encode()) for k, v in (headers or {}).items()],
        )

    def expect(self, request_ids: Iterable[str]) -> None:
        """Register interest in replies before publishing the requests."""
        loop = asyncio.get_running_loop()
        for request_id in request_ids:
            self._waiting.setdefault(request_id, loop.create_future())
            self._expected.add(request_id)

    async def reply(self, request_id: str, timeout_s: float) -> Message:
        """The first reply (result, graph commit or dead letter) for ``request_id``."""
        if request_id in self._early:
            return self._early.pop(request_id)
        future = self._waiting.setdefault(request_id, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._waiting.pop(request_id, None)

    async def await_partial_rejections(self, request_ids: Iterable[str], timeout_s: float) -> None:
        """Wait until each of ``request_ids`` has a partial rejection, or ``timeout_s`` passed.

        For requests whose reply says part of them was rejected: the report of what was
        rejected travels on another topic and may be read after the reply.
        """
        wanted = set(request_ids)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not wanted <= self.partial_rejections.keys():
                    self._partial_arrived.clear()
                    await self._partial_arrived.wait()

    async def replies(
        self, request_ids: Iterable[str], timeout_s: float
    ) -> AsyncIterator[tuple[str, Message]]:
        """Replies as they arrive; raises ``TimeoutError`` if some never come."""
        pending = {asyncio.ensure_future(self._reply_tagged(rid, timeout_s)) for rid in request_ids}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()

    async def _reply_tagged(self, request_id: str, timeout_s: float) -> tuple[str, Message]:
        return request_id, await self.reply(request_id, timeout_s)


@asynccontextmanager
async def pipeline_client(
    settings: Settings, content_type: str = PROTOBUF, role: str = security.CLIENT
) -> AsyncIterator[PipelineClient]:
    client = PipelineClient(settings, content_type, role)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()
