"""A request through every hop of the running services, on the real Kafka, Neo4j and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.contracts import (
    JSON,
    DeadLetter,
    Question,
    Result,
    ResultStatus,
    decode,
)
from autoglm.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

QUESTIONS = {
    "who was the director of [Inseparable]": "Dayyan Eng",
    "what year was the film [Cast Away] released": "2000",
    "what language is [The Sorrow and the Pity] in": "German",
}


async def _ask(settings, texts, content_type="application/x-protobuf", headers=None):
    questions = [Question(request_id=new_request_id(), text=t, hops=1) for t in texts]
    async with PipelineClient(settings, content_type) as client:
        client.expect(q.request_id for q in questions)
        for question in questions:
            await client.publish(
                topics.QUESTIONS, question, key=question.request_id, headers=headers
            )
        replies = {
            rid: reply
            async for rid, reply in client.replies([q.request_id for q in questions], 90.0)
        }
    return [replies[q.request_id] for q in questions]


async def test_question_flows_through_every_hop(stack_settings, sample_graph):
    results = await _ask(stack_settings, list(QUESTIONS))
    for text, result in zip(QUESTIONS, results, strict=True):
        assert isinstance(result, Result), result
        assert result.status == ResultStatus.RESULT_STATUS_OK, result.error
        assert result.question == text
        assert result.answers[0].name == QUESTIONS[text]
        assert result.reasoning_path and result.graph_version >= sample_graph
        assert [t.service for t in result.timings] == ["parser", "graph-builder", "inference"]
        assert result.model_version


async def test_unknown_entity_gets_a_clear_status(stack_settings, sample_graph):
    (result,) = await _ask(stack_settings, ["who directed [No Such Film Anywhere]"])
    assert result.status == ResultStatus.RESULT_STATUS_ENTITY_NOT_IN_GRAPH
    assert "No Such Film Anywhere" in result.error


async def test_plain_json_from_kcat_gets_a_result(stack_settings, sample_graph):
    assert shutil.which("kcat"), "kcat is installed by `make setup`"
    request_id = new_request_id()
    payload = json.dumps({"requestId": request_id, "text": "who was the director of [Inseparable]"})
    async with PipelineClient(stack_settings) as client:
        client.expect([request_id])
        proc = await asyncio.create_subprocess_exec(
            "kcat",
            "-P",
            "-b",
            stack_settings.kafka_bootstrap,
            "-t",
            stack_settings.topic(topics.QUESTIONS),
            "-k",
            request_id,
            "-H",
            "content-type=application/json",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, stderr = await proc.communicate(payload.encode() + b"\n")
        assert proc.returncode == 0, stderr
        reply = await client.reply(request_id, 90.0)
    assert isinstance(reply, Result)
    assert reply.answers[0].name == "Dayyan Eng"


BAD_INPUTS = [
    (topics.QUESTIONS, "parser", b"\xff\xfe\x00 not a message", {}),
    (topics.QUESTIONS, "parser", b'{"requestId": "%s"}', {"content-type": JSON}),
    (
        topics.DOCUMENTS,
        "parser",
        b'{"requestId": "%s", "text": "", "format": "DOCUMENT_FORMAT_TEXT"}',
        {"content-type": JSON},
    ),
    (
        topics.PARSED_QUESTIONS,
        "graph-builder",
        b'{"requestId": "%s", "wrongField": 1}',
        {"content-type": JSON},
    ),
    (topics.PARSED_DOCUMENTS, "graph-builder", b"\x0a\x02\xc3\x28", {}),
    (topics.REASONING_INPUTS, "inference", b'{"requestId": "%s"}', {"content-type": JSON}),
    (
        topics.FEEDBACK,
        "trainer",
        b'{"requestId": "%s", "targetRequestId": "nope", "wrong": true}',
        {"content-type": JSON},
    ),
]


async def test_bad_input_at_every_hop_is_dead_lettered(stack_settings, sample_graph):
    async with PipelineClient(stack_settings) as client:
        expected = []
        for topic, service, template, headers in BAD_INPUTS:
            request_id = new_request_id()
            body = template.replace(b"%s", request_id.encode()) if b"%s" in template else template
            client.expect([request_id])
            await client.publish_raw(topic, body, key=request_id, headers=headers)
            expected.append((request_id, service, body))
        letters = {
            rid: reply async for rid, reply in client.replies([rid for rid, _, _ in expected], 60.0)
        }
    for request_id, service, body in expected:
        letter = letters[request_id]
        assert isinstance(letter, DeadLetter), letter
        assert letter.service == service
        assert letter.original_value == body
        assert letter.reason and len(letter.trace_id) == 32
    # and every service is still consuming
    (result,) = await _ask(stack_settings, ["who was the director of [Inseparable]"])
    assert isinstance(result, Result) and result.answers[0].name == "Dayyan Eng"


async def test_one_trace_spans_every_hop_in_order(stack_settings, sample_graph, otlp_receiver):
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    (result,) = await _ask(
        stack_settings,
        ["what year was the film [Cast Away] released"],
        headers={"traceparent": traceparent},
    )
    assert isinstance(result, Result)
    wanted = ("parser", "graph-builder", "inference")
    for _ in range(100):  # the exporters batch every 0.5 s
        spans = otlp_receiver.trace(trace_id)
        if {s.service for s in spans} >= set(wanted):
            break
        await asyncio.sleep(0.1)
    by_id = {s.span_id: s for s in spans}

    def ancestors(span):
        chain = []
        while span.parent_id in by_id:
            span = by_id[span.parent_id]
            chain.append(span.service)
        return chain

    # The span of each hop's own work, child of its consumer span.
    work = {s.service: s for s in spans if s.name.startswith(f"{s.service}.")}
    assert set(work) >= set(wanted), [(s.service, s.name) for s in spans]
    assert "graph-builder" in ancestors(work["inference"])
    assert "parser" in ancestors(work["graph-builder"])
    chain = ancestors(work["inference"])
    assert chain.index("graph-builder") < chain.index("parser")


async def test_restart_mid_stream_answers_every_request_once(
    stack_settings, sample_graph, services
):
    texts = [t for t in QUESTIONS] * 10
    questions = [Question(request_id=new_request_id(), text=t, hops=1) for t in texts]
    ids = [q.request_id for q in questions]
    async with PipelineClient(stack_settings) as client:
        client.expect(ids)
        for n, question in enumerate(questions):
            await client.publish(topics.QUESTIONS, question, key=question.request_id)
            if n == len(questions) // 3:
                # Kill graph-builder without warning while requests are in flight.
                await asyncio.to_thread(services.kill, "graph-builder")
        await asyncio.to_thread(services.start, ["graph-builder"])
        replies = {rid: reply async for rid, reply in client.replies(ids, 120.0)}
    assert all(
        isinstance(r, Result) and r.status == ResultStatus.RESULT_STATUS_OK
        for r in replies.values()
    )
    # Read the whole results topic back: every request id exactly once.
    consumer = AIOKafkaConsumer(
        stack_settings.topic(topics.RESULTS),
        bootstrap_servers=stack_settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    counts: Counter[str] = Counter()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        while batches:
            for records in batches.values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    counts[decode(Result, record.value, headers).request_id] += 1
            batches = await consumer.getmany(timeout_ms=2000)
    finally:
        await consumer.stop()
    assert {rid: counts[rid] for rid in ids} == dict.fromkeys(ids, 1)


async def test_eval_command_prints_the_report(stack_env, sample_graph, tmp_path):
    output = tmp_path / "eval.json"
    proc = await asyncio.create_subprocess_exec(
        str(PROJECT_ROOT / ".venv" / "bin" / "autoglm"),
        "eval",
        "--qa",
        str(PROJECT_ROOT / "samples" / "questions.txt"),
        "--hops",
        "1",
        "--output",
        str(output),
        env={**os.environ, **stack_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, stderr.decode()
    report = json.loads(stdout)
    assert report == json.loads(output.read_text())
    assert report["count"] == 13 and report["errors"] == 0
    assert report["hits@1"] >= 0.6 and report["hits@5"] >= report["hits@1"]
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert report["questions_per_second"] > 0
