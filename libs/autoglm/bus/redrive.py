"""Dead letters read back and redriven: what ``autoglm dead-letters tail`` and ``redrive`` do.

A dead letter is only useful if someone can act on it. :func:`read_dead_letters` reads the
dead-letter topic (all of it, or from a time on) as a plain consumer that commits nothing.
:func:`redrive` publishes the original bytes of chosen letters to their source topic again,
with their original key and headers plus an ``autoglm-attempt`` header: the consuming service
makes that part of the idempotency key, so the message is processed again instead of being
skipped as done (its first try was marked done when it was dead-lettered). The attempt id is
derived from the dead letter's own position, so redriving the same letters twice publishes the
same attempts and the second run is skipped as a replay; a redriven message that fails again
makes a new dead letter, at a new position, that can be redriven in turn.

Not redriven, and said so: a letter whose original was truncated to fit the message limit (its
bytes are not all there), one without a source topic, and, unless asked for by
``--error-type``, a request id reused for other content (redriving it would answer one request
id twice) and partial rejections (the rest of their message was processed).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from autoglm import security
from autoglm.bus import topics
from autoglm.bus.dead_letters import REQUEST_ID_REUSED
from autoglm.bus.envelope import ATTEMPT_HEADER
from autoglm.contracts import DeadLetter, decode
from autoglm.errors import PARTIAL_ERROR_TYPES, BadInputError
from autoglm.settings import Settings

ONLY_WHEN_NAMED = frozenset({REQUEST_ID_REUSED, *PARTIAL_ERROR_TYPES})
"""Error types redriven only when ``--error-type`` names them."""


@dataclass(frozen=True)
class Letter:
    """One dead letter as read back, with where it lies on the dead-letter topic."""

    partition: int
    offset: int
    timestamp_ms: int
    letter: DeadLetter

    @property
    def time(self) -> datetime:
        failed = self.letter.failed_at
        if failed.seconds or failed.nanos:
            return failed.ToDatetime(tzinfo=UTC)
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def position(self) -> str:
        return f"{self.partition}@{self.offset}"

    def summary(self) -> dict[str, Any]:
        """What ``tail`` shows of a letter (never its headers or body)."""
        letter = self.letter
        return {
            "time": self.time.isoformat(timespec="seconds"),
            "service": letter.service,
            "topic": letter.source_topic,
            "source": f"{letter.source_partition}@{letter.source_offset}",
            "error_type": letter.error_type,
            "reason": letter.reason,
            "request_id": letter.request_id,
            "length": int(letter.original_length or len(letter.original_value)),
            "truncated": letter.original_truncated,
            "dead_letter": self.position,
        }

    def attempt_id(self) -> str:
        """The redrive attempt of this letter: the same for every redrive of it."""
        where = f"{self.letter.source_topic}|{self.partition}|{self.offset}"
        return "redrive-" + hashlib.sha256(where.encode()).hexdigest()[:16]

    def why_not_redrivable(self, error_type_named: bool = False) -> str | None:
        letter = self.letter
        if letter.original_truncated:
            return (
                f"the original was truncated to fit the dead letter ({len(letter.original_value)}"
                f" of {letter.original_length} bytes kept): it cannot be redriven, publish it "
                "again from its source"
            )
        if not letter.source_topic:
            return "the dead letter names no source topic"
        if letter.error_type in ONLY_WHEN_NAMED and not error_type_named:
            return f"{letter.error_type} letters are redriven only with --error-type"
        return None


async def read_dead_letters(settings: Settings, since: datetime | None = None) -> list[Letter]:
    """Every dead letter (from ``since`` on), in order per partition, oldest partition first."""
    topic = settings.topic(topics.DEAD_LETTERS)
    # An operator's tool: in secure mode it connects as the admin principal (autoglm.security).
    consumer = AIOKafkaConsumer(
        **security.kafka_client_options(settings, security.ADMIN), enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        if since is not None:
            found = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else ends[tp])
        ends = await consumer.end_offsets(partitions)
        letters: list[Letter] = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            batch = await consumer.getmany(*partitions, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp] or record.value is None:
                        continue
                    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
                    try:
                        letter = decode(DeadLetter, record.value, headers)
                    except BadInputError:
                        continue  # not a dead letter: someone else's message on the topic
                    letters.append(Letter(tp.partition, record.offset, record.timestamp, letter))
        return sorted(letters, key=lambda x: (x.time, x.partition, x.offset))
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    known = consumer.partitions_for_topic(topic)
    if not known:
        await consumer._client.force_metadata_update()
        known = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(known or ())]


def select(
    letters: Iterable[Letter], *, error_type: str | None = None, request_id: str | None = None
) -> list[Letter]:
    return [
        x
        for x in letters
        if (error_type is None or x.letter.error_type == error_type)
        and (request_id is None or x.letter.request_id == request_id)
    ]


@dataclass
class RedriveReport:
    redriven: list[tuple[Letter, str]] = field(default_factory=list)
    """Each letter redriven (or that would be, on a dry run) and its attempt id."""
    refused: list[tuple[Letter, str]] = field(default_factory=list)
    """Each letter that cannot be redriven, and why."""


async def redrive(
    settings: Settings,
    letters: Sequence[Letter],
    *,
    error_type_named: bool = False,
    dry_run: bool = False,
) -> RedriveReport:
    """Publish the originals of ``letters`` to their source topics again (see the module)."""
    report = RedriveReport()
    for letter in letters:
        why = letter.why_not_redrivable(error_type_named)
        if why is None:
            report.redriven.append((letter, letter.attempt_id()))
        else:
            report.refused.append((letter, why))
    if dry_run or not report.redriven:
        return report
    producer = AIOKafkaProducer(
        # Redriving writes internal topics: only an operator (admin in secure mode) may.
        **security.kafka_client_options(settings, security.ADMIN),
        acks="all",
        enable_idempotence=True,
        max_request_size=settings.max_message_bytes + 64 * 1024,
    )
    await producer.start()
    try:
        sends = []
        for letter, attempt in report.redriven:
            original = letter.letter
            headers = {**original.original_headers, ATTEMPT_HEADER: attempt}
            sends.append(
                await producer.send(
                    original.source_topic,
                    bytes(original.original_value),
                    key=bytes(original.original_key) or None,
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
            )
        for sent in sends:
            await sent
    finally:
        await producer.stop()
    return report


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``1d`` ago, or an ISO 8601 time (UTC when it has no offset)."""
    match = _RELATIVE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(
            f"--since takes 30m, 2h, 1d or an ISO time like 2025-01-31T12:00, not {text!r}"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
