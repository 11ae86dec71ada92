"""Every message a service publishes fits the size limit, or is not published at all.

The producer refuses a record over its ``max_request_size`` at send time. Before this module, an
oversize output (a dead letter carrying an 800 KB body as base64, a large Result) made the send
raise, the batch was refetched and failed again, forever: one bad message stopped a partition.
Now every output is encoded and measured before anything of its message is sent:

- a dead letter keeps the first bytes of the original that fit, with the full length and a flag
  (``original_length``, ``original_truncated``); its other free-text fields are capped;
- a Result drops its lowest-ranked answers (then their paths) and says why in ``trimmed``;
- anything else over the limit raises :class:`OutputTooLargeError`, a bad-input error of the
  message that produced it, which is then dead-lettered in its place.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from autoglm.contracts import JSON, DeadLetter, Result, encode
from autoglm.errors import BadInputError

OUTPUT_TOO_LARGE = "output_too_large"

# Free-text fields of a dead letter that a hostile input can make large.
_MAX_REASON_CHARS = 4_000
_MAX_HEADER_CHARS = 1_024
_MAX_HEADERS = 64
_MAX_KEY_BYTES = 1_024


class OutputTooLargeError(BadInputError):
    """What a message produced cannot be published within the size limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_type=OUTPUT_TOO_LARGE)


Encoded = tuple[bytes, dict[str, str]]


def encode_within(message: Message, content_type: str, limit: int) -> Encoded:
    """Encode ``message`` in at most ``limit`` bytes, shortening it where that is allowed."""
    body, headers = encode(message, content_type)
    if len(body) <= limit:
        return body, headers
    shrink = _SHRINKERS.get(message.DESCRIPTOR.full_name)
    if shrink is None:
        raise OutputTooLargeError(
            f"{message.DESCRIPTOR.name} of {len(body)} bytes exceeds the limit of {limit} bytes"
        )
    shorter = type(message)()
    shorter.CopyFrom(message)
    return shrink(shorter, content_type, limit)


def _truncate_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shrink_dead_letter(message: Message, content_type: str, limit: int) -> Encoded:
    assert isinstance(message, DeadLetter)
    letter = message
    original = bytes(letter.original_value)
    if not letter.original_length:
        letter.original_length = len(original)
    letter.reason = _truncate_text(letter.reason, _MAX_REASON_CHARS)
    letter.original_key = bytes(letter.original_key)[:_MAX_KEY_BYTES]
    headers = dict(letter.original_headers)
    letter.original_headers.clear()
    for name in sorted(headers)[:_MAX_HEADERS]:
        letter.original_headers[name[:_MAX_HEADER_CHARS]] = _truncate_text(
            headers[name], _MAX_HEADER_CHARS
        )
    letter.original_value = b""
    letter.original_truncated = True
    overhead = len(encode(letter, content_type)[0])
    # JSON carries bytes as base64 (4 characters per 3 bytes); keep a margin for the padding.
    room = max(0, limit - overhead - 16)
    keep = room * 3 // 4 if content_type == JSON else room
    while True:
        letter.original_value = original[:keep]
        letter.original_truncated = keep < len(original)
        body, encoded_headers = encode(letter, content_type)
        if len(body) <= limit or keep == 0:
            break
        keep = max(0, keep - (len(body) - limit) - 16)
    if len(body) > limit:
        raise OutputTooLargeError(f"dead letter of {len(body)} bytes exceeds {limit} bytes")
    return body, encoded_headers


def _shrink_result(message: Message, content_type: str, limit: int) -> Encoded:
    assert isinstance(message, Result)
    result = message
    full = len(result.answers)
    # Answers are ranked: the tail goes first. Then the paths of what is left, last first.
    while len(result.answers) > 1:
        del result.answers[len(result.answers) // 2 :]
        if len(encode(result, content_type)[0]) <= limit:
            break
    for answer in reversed(result.answers):
        if len(encode(result, content_type)[0]) <= limit:
            break
        del answer.path[:]
    if len(encode(result, content_type)[0]) > limit:
        del result.reasoning_path[:]
    result.trimmed = (
        f"shortened to fit the {limit}-byte message limit: {len(result.answers)} of {full} "
        "answers kept" + ("" if result.reasoning_path else ", reasoning path left out")
    )
    body, headers = encode(result, content_type)
    if len(body) > limit:
        raise OutputTooLargeError(f"Result of {len(body)} bytes exceeds {limit} bytes even trimmed")
    return body, headers


_SHRINKERS: dict[str, Callable[[Message, str, int], Encoded]] = {
    DeadLetter.DESCRIPTOR.full_name: _shrink_dead_letter,
    Result.DESCRIPTOR.full_name: _shrink_result,
}
