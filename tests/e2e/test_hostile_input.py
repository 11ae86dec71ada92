"""Bodies that once stopped question answering (issue 11): on the running services, each gets one
clear reply and questions published with or after them are answered as usual."""

from __future__ import annotations

import asyncio

import pytest

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.contracts import JSON, DeadLetter, Question, Result, ResultStatus, encode

pytestmark = pytest.mark.e2e


async def test_oversize_and_invalid_bodies_get_a_dead_letter_and_block_nothing(
    stack_settings, sample_graph
):
    # An 800 KB body of invalid JSON: its dead letter (base64 in JSON) once exceeded the
    # producer's limit, the batch was refetched forever and nothing behind it was answered.
    poison = {
        f"bad-json-{new_request_id()}": b'{"requestId": "' + b"x" * 790_000,
        f"too-large-{new_request_id()}": b'{"requestId": "big", "text": "'
        + b"y" * (1_000_100 - 33)
        + b'"}',
    }
    questions = [
        Question(request_id=new_request_id(), text="what language is [The Sorrow and the Pity] in")
        for _ in range(3)
    ]
    async with PipelineClient(stack_settings, JSON) as client:
        client.expect([*poison, *(q.request_id for q in questions)])
        await client.publish(topics.QUESTIONS, questions[0], key=questions[0].request_id)
        for key, body in poison.items():
            await client.publish_raw(topics.QUESTIONS, body, key, {"content-type": JSON})
        for question in questions[1:]:
            await client.publish(topics.QUESTIONS, question, key=question.request_id)
        letters = await asyncio.gather(*(client.reply(key, 30.0) for key in poison))
        results = await asyncio.gather(*(client.reply(q.request_id, 60.0) for q in questions))
    for body, letter in zip(poison.values(), letters, strict=True):
        assert isinstance(letter, DeadLetter), letter
        assert letter.service == "parser"
        assert letter.original_length == len(body)
        assert body.startswith(letter.original_value)
        assert len(encode(letter, JSON)[0]) <= stack_settings.max_message_bytes
    assert letters[0].error_type == "schema" and letters[1].error_type == "too_large"
    assert letters[1].original_truncated
    for result in results:
        assert isinstance(result, Result), result
        assert result.status == ResultStatus.RESULT_STATUS_OK, result.error
        assert result.answers[0].name == "German"
