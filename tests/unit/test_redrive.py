"""What ``autoglm dead-letters`` decides without Kafka: what can be redriven, under which
attempt id, and what ``--since`` means."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoglm.bus.redrive import Letter, parse_since, select
from autoglm.contracts import DeadLetter


def _letter(offset: int = 7, **fields: object) -> Letter:
    letter = DeadLetter(source_topic="autoglm.questions", original_value=b"body", **fields)
    return Letter(partition=1, offset=offset, timestamp_ms=1_700_000_000_000, letter=letter)


def test_what_can_be_redriven_and_why_not():
    assert _letter(error_type="processing").why_not_redrivable() is None
    truncated = _letter(original_truncated=True, original_length=2_000_000)
    assert "truncated" in (truncated.why_not_redrivable(error_type_named=True) or "")
    assert "--error-type" in (_letter(error_type="request_id_reused").why_not_redrivable() or "")
    assert _letter(error_type="request_id_reused").why_not_redrivable(True) is None
    no_source = Letter(0, 0, 0, DeadLetter(original_value=b"x"))
    assert "no source topic" in (no_source.why_not_redrivable() or "")


def test_the_attempt_id_is_stable_per_letter_and_new_per_letter():
    assert _letter(7).attempt_id() == _letter(7).attempt_id()  # redriving twice: a replay
    assert _letter(7).attempt_id() != _letter(8).attempt_id()  # a new failure: a new attempt


def test_selection_by_error_type_and_request_id():
    letters = [
        _letter(1, error_type="processing", request_id="a"),
        _letter(2, error_type="too_large", request_id="b"),
    ]
    assert [x.offset for x in select(letters, error_type="processing")] == [1]
    assert [x.offset for x in select(letters, request_id="b")] == [2]
    assert len(select(letters)) == 2


def test_since_takes_relative_and_iso_times():
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now) == datetime(2026, 1, 2, 11, 30, tzinfo=UTC)
    assert parse_since("1d", now) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_since("2026-01-02T10:00") == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday")
