"""Dead letters: what a service publishes about a message it will not process, and why.

A dead letter carries everything needed to act on it later (``autoglm dead-letters tail`` and
``redrive``, ``autoglm.bus.redrive``): the original key, bytes and headers exactly as received,
where they were read (topic, partition, offset), the service, a human-readable reason and a
machine-readable ``error_type``, the trace id of the failed hop and the time. A dead letter must
fit the message limit itself: ``bus.limits`` shortens an oversize original to its first bytes
and says how long it was (``original_length``, ``original_truncated``), so such a letter can be
read but not redriven.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from autoglm.bus import topics
from autoglm.bus.handlers import HandlerContext, Outgoing
from autoglm.contracts import DeadLetter
from autoglm.errors import AutoGLMError

REQUEST_ID_REUSED = "request_id_reused"
"""Error type of a message whose request id was processed before with other content."""


def dead_letter_message(service: str, context: HandlerContext, error: AutoGLMError) -> DeadLetter:
    """The dead letter for the message ``context`` describes: its bytes, and why."""
    record = context.record
    failed_at = Timestamp()
    failed_at.GetCurrentTime()
    original = bytes(getattr(record, "value", None) or b"")
    letter = DeadLetter(
        request_id=context.request_id,
        schema_version=1,
        service=service,
        source_topic=getattr(record, "topic", "") or "",
        source_partition=getattr(record, "partition", -1),
        source_offset=getattr(record, "offset", -1),
        original_key=getattr(record, "key", None) or b"",
        original_value=original,
        original_length=len(original),
        reason=error.reason,
        error_type=error.error_type,
        trace_id=context.trace_id,
        failed_at=failed_at,
    )
    letter.original_headers.update(context.headers)
    return letter


def dead_letter_outgoing(service: str, context: HandlerContext, error: AutoGLMError) -> Outgoing:
    letter = dead_letter_message(service, context, error)
    key = letter.request_id or letter.original_key.decode("utf-8", "replace")
    return Outgoing(topics.DEAD_LETTERS, letter, key=key)
