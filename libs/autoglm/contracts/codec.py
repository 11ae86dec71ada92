"""Binary and canonical-JSON codecs for the proto3 messages, chosen by the content-type header.

Any Kafka client can talk to the services: binary protobuf with ``application/x-protobuf`` (our
default), or the canonical proto3 JSON mapping with ``application/json``. A message without a
content-type header is sniffed: JSON objects start with ``{``, which no message of ours encodes to
as binary (field 1 is always a string, tag byte 0x0a).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from autoglm.errors import BadInputError

CONTENT_TYPE_HEADER = "content-type"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SCHEMA_VERSION = 1

_PROTOBUF_ALIASES = {PROTOBUF, "application/protobuf", "application/vnd.google.protobuf"}

M = TypeVar("M", bound=Message)


def content_type_of(headers: dict[str, str] | None, body: bytes) -> str:
    """The encoding of a message: its content-type header, else a sniff of the body."""
    declared = (headers or {}).get(CONTENT_TYPE_HEADER, "").split(";")[0].strip().lower()
    if declared in _PROTOBUF_ALIASES:
        return PROTOBUF
    if declared == JSON or declared.endswith("+json"):
        return JSON
    if declared and declared not in ("text/plain", "application/octet-stream"):
        raise BadInputError(f"unsupported content-type {declared!r}", error_type="content_type")
    return JSON if body.lstrip()[:1] == b"{" else PROTOBUF


def decode(message_type: type[M], body: bytes, headers: dict[str, str] | None = None) -> M:
    """Decode ``body`` into ``message_type``; any problem raises ``BadInputError``."""
    content_type = content_type_of(headers, body)
    message = message_type()
    if content_type == JSON:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInputError(f"body is not valid UTF-8: {exc}", error_type="decode") from exc
        try:
            json_format.Parse(text, message, ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise BadInputError(
                f"not a valid {message_type.DESCRIPTOR.name} in proto3 JSON: {exc}",
                error_type="schema",
            ) from exc
    else:
        try:
            message.ParseFromString(body)
        except (DecodeError, RuntimeWarning) as exc:
            raise BadInputError(
                f"not a valid binary {message_type.DESCRIPTOR.name}: {exc}", error_type="decode"
            ) from exc
        # Binary protobuf has no self-description: junk can parse as unknown fields only.
        if len(UnknownFieldSet(message)) > 0:
            raise BadInputError(
                f"binary {message_type.DESCRIPTOR.name} carries unknown fields", error_type="schema"
            )
    return message


def encode(message: Message, content_type: str = PROTOBUF) -> tuple[bytes, dict[str, str]]:
    """Encode ``message``; returns the body and the headers that describe it."""
    if content_type == JSON:
        body = json_format.MessageToJson(message, indent=None).encode("utf-8")
    else:
        body = message.SerializeToString(deterministic=True)
        content_type = PROTOBUF
    return body, {CONTENT_TYPE_HEADER: content_type}


def to_json_dict(message: Message) -> dict[str, Any]:
    """The canonical proto3 JSON mapping of a message, as Python objects."""
    result: dict[str, Any] = json.loads(json_format.MessageToJson(message))
    return result


def require_fields(message: Message, *names: str) -> None:
    """Reject a message whose required (non-empty) fields are missing.

    proto3 has no required fields, so each consumer states what it needs.
    """
    missing = [name for name in names if not _has_value(message, name)]
    if missing:
        raise BadInputError(
            f"{message.DESCRIPTOR.name} is missing required field(s): {', '.join(missing)}",
            error_type="missing_field",
        )
    version = getattr(message, "schema_version", SCHEMA_VERSION)
    if version not in (0, SCHEMA_VERSION):
        raise BadInputError(
            f"unsupported schema_version {version} (this service speaks {SCHEMA_VERSION})",
            error_type="schema_version",
        )


def _has_value(message: Message, dotted: str) -> bool:
    target: Any = message
    for part in dotted.split("."):
        field = target.DESCRIPTOR.fields_by_name[part]
        if field.message_type is not None and not field.is_repeated and not target.HasField(part):
            return False
        target = getattr(target, part)
    if isinstance(target, str):
        return bool(target.strip())
    return bool(target) if not isinstance(target, Message) else True
