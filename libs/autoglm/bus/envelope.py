"""One consumed record on its way through the runtime: its bytes, headers, limits and decoding.

Why a seam of its own: everything the runtime may say about a message *before* a core sees it
is decided here, the same way for every service: is it within the size limit, which encoding
it is in (binary protobuf or proto3 JSON), does it decode into the route's type, does it carry
the required fields. Each failure is a ``BadInputError`` with an ``error_type`` that the
dead letter carries (``too_large``, ``content_type``, ``decode``, ``schema``,
``missing_field``).

It also gives each message the two things delivery needs: its request id, and a digest of its
content (the decoded message serialised deterministically, so the same content sent as JSON or
as protobuf has one digest). The digest is stored with the idempotency mark, so a request id
reused for other content is noticed instead of silently skipped. A redriven dead letter carries
an ``autoglm-attempt`` header that makes its idempotency key new (``bus.delivery``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from google.protobuf.message import Message
from opentelemetry.trace import Span

from autoglm.contracts import JSON, decode, require_fields
from autoglm.contracts.codec import content_type_of
from autoglm.errors import BadInputError

ATTEMPT_HEADER = "autoglm-attempt"
"""Set by ``autoglm dead-letters redrive``: a new attempt at a message, under a new idempotency
key (the request id alone would be recognised as done and skipped)."""


@dataclass
class Envelope:
    """One consumed record on its way through the runtime."""

    record: ConsumerRecord[Any, Any]
    body: bytes
    headers: dict[str, str]
    span: Span
    content_type: str = JSON
    request_id: str = ""
    decoded: Message | None = None
    digest: str = ""
    """Digest of the decoded content (see :func:`content_digest`); empty until decoded."""

    @property
    def attempt(self) -> str:
        return self.headers.get(ATTEMPT_HEADER, "")

    def position(self) -> str:
        return f"{self.record.topic}[{self.record.partition}]@{self.record.offset}"


def record_headers(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {
        key: value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        for key, value in record.headers or ()
    }


def content_digest(message: Message) -> str:
    """sha256 (hex, 32 characters) of a message's content, whatever encoding it came in."""
    return hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()[:32]


def decode_envelope(
    envelope: Envelope, message_type: type[Message], required: Sequence[str], max_bytes: int
) -> None:
    """Decode ``envelope`` in place, or raise the ``BadInputError`` that dead-letters it."""
    envelope.content_type = content_type_of(envelope.headers, envelope.body)
    if len(envelope.body) > max_bytes:
        raise BadInputError(
            f"message of {len(envelope.body)} bytes exceeds the limit of {max_bytes}",
            error_type="too_large",
        )
    decoded = decode(message_type, envelope.body, envelope.headers)
    envelope.request_id = getattr(decoded, "request_id", "")
    require_fields(decoded, *required)
    envelope.decoded = decoded
    envelope.digest = content_digest(decoded)


# --- FastStream adapters -----------------------------------------------------------------------


async def raw_body(message: StreamMessage[Any]) -> bytes:
    # Decoding belongs to the runtime (with dead-lettering), not to FastStream's JSON decoder.
    return bytes(message.body)


async def raw_bodies(message: StreamMessage[Any]) -> list[bytes]:
    return [bytes(body) for body in message.body]


def records(message: KafkaMessage) -> list[ConsumerRecord[Any, Any]]:
    raw = message.raw_message
    return list(raw) if isinstance(raw, tuple | list) else [raw]
