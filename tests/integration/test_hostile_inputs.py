"""Internal topics read as if a stranger wrote them: parser, graph-builder and inference, each a
real process on the real Kafka (Neo4j, Redis), fed forged messages batched with benign ones.

Each forged message gets exactly one dead letter that says what is wrong, the benign ones
batched with it are handled as if they had come alone (inference: the same answers, within
1e-4), and nothing a forged message carries reaches another request of its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import Message

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.cli.services import ServiceManager
from autoglm.contracts import (
    JSON,
    SCHEMA_VERSION,
    DeadLetter,
    ParsedQuestion,
    Question,
    ReasoningInput,
    Result,
    ResultStatus,
    decode,
)
from autoglm.models.serving import load_model
from autoglm.registry import ModelRegistry
from tests.integration.test_hot_swap import reasoning_input, register_random_version
from tests.stack_fixtures import isolated_settings, settings_env

pytestmark = pytest.mark.integration

UINT32_MAX = 2**32 - 1


async def topic_records(settings: Any, name: str, message_type: type[Message]) -> list[Any]:
    """Every message on a topic (read from the start to the current end)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        topic = settings.topic(name)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[Any] = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            batch = await consumer.getmany(*partitions, timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers or ()}
                    found.append(decode(message_type, record.value, headers))
        return found
    finally:
        await consumer.stop()


async def dead_letters_by_id(settings: Any) -> dict[str, list[DeadLetter]]:
    letters: dict[str, list[DeadLetter]] = {}
    for letter in await topic_records(settings, topics.DEAD_LETTERS, DeadLetter):
        key = letter.request_id or letter.original_key.decode("utf-8", "replace")
        letters.setdefault(key, []).append(letter)
    return letters


async def publish_burst(
    client: PipelineClient, topic: str, messages: Sequence[Any], content_type: str | None = None
) -> None:
    """One burst, so that forged and benign messages share consumer batches."""
    for message in messages:
        if content_type == JSON:
            from autoglm.contracts import encode

            body, headers = encode(message, JSON)
            await client.publish_raw(topic, body, message.request_id, headers)
        else:
            await client.publish(topic, message, key=message.request_id)


# --- inference: reasoning-inputs -------------------------------------------------------------


def forged_inputs() -> list[tuple[ReasoningInput, str]]:
    """Reasoning inputs no graph-builder writes, each with the words its refusal must say."""
    cases: list[tuple[ReasoningInput, str]] = []

    def forge(words: str, **changes: Any) -> ReasoningInput:
        item = reasoning_input(500 + len(cases))
        item.request_id = new_request_id()
        for name, value in changes.items():
            setattr(item, name, value)
        cases.append((item, words))
        return item

    spill = forge("anchor index")  # node 0 of the *next* subgraph once batched
    spill.subgraph.anchor_indices.append(len(spill.subgraph.nodes))
    negative = forge("anchor index -1")
    negative.subgraph.anchor_indices[:] = [-1]
    forge(f"hops must be 1 to 3; got {UINT32_MAX}", hops=UINT32_MAX)
    forge(f"top_k must be 1 to 100; got {UINT32_MAX}", top_k=UINT32_MAX)
    ragged = forge("edge arrays differ in length")
    ragged.subgraph.edge_target.append(0)
    relation = forge("edge relation index")
    relation.subgraph.edge_relation[0] = len(relation.subgraph.relation_types)
    target = forge("edge target index -5")
    target.subgraph.edge_target[1] = -5
    return cases


async def test_inference_refuses_forged_inputs_alone(
    stack_settings, tmp_path, unique, text_encoder
):
    settings = isolated_settings(
        stack_settings, tmp_path, f"hostile-inf-{unique}.", max_batch_size=16
    )
    registry = ModelRegistry(settings.model_registry_dir)
    version = register_random_version(registry, text_encoder, seed=3)
    registry.set_serving(version)
    benign = [reasoning_input(n) for n in range(24)]
    forged = forged_inputs()
    alone = load_model(settings, version).predict(benign)  # each input's own answer

    # Forged and benign interleaved: every batch holds both.
    stream: list[ReasoningInput] = []
    for n, item in enumerate(benign):
        stream.append(item)
        if n % 3 == 0 and forged[n // 3 :]:
            stream.append(forged[n // 3][0])
    stream += [f for f, _ in forged[len(benign) // 3 :]]
    assert {f.request_id for f, _ in forged} <= {s.request_id for s in stream}

    manager = ServiceManager(settings, env=settings_env(settings))
    manager.start(["inference"])
    try:
        async with PipelineClient(settings) as client:
            client.expect(s.request_id for s in stream)
            await publish_burst(client, topics.REASONING_INPUTS, stream)
            replies = {
                rid: reply
                async for rid, reply in client.replies([s.request_id for s in stream], 120.0)
            }
            await asyncio.sleep(1.0)  # anything duplicated would be there by now
            letters = await dead_letters_by_id(settings)
            results = await topic_records(settings, topics.RESULTS, Result)
    finally:
        manager.stop(["inference"])

    for item, words in forged:
        reply = replies[item.request_id]
        assert isinstance(reply, DeadLetter), f"{words}: {reply}"
        assert words in reply.reason and reply.service == "inference"
        assert len(letters[item.request_id]) == 1
    counts: dict[str, int] = {}
    for result in results:
        counts[result.request_id] = counts.get(result.request_id, 0) + 1
    for item, expected in zip(benign, alone, strict=True):
        result = replies[item.request_id]
        assert isinstance(result, Result) and result.status == ResultStatus.RESULT_STATUS_OK
        assert counts[item.request_id] == 1
        assert [a.key for a in result.answers] == [a.key for a in expected.answers]
        for got, want in zip(result.answers, expected.answers, strict=True):
            assert got.probability == pytest.approx(want.probability, abs=1e-4)


# --- parser: questions ---------------------------------------------------------------------------


async def test_parser_bounds_hops_and_top_k(stack_settings, tmp_path, unique):
    settings = isolated_settings(stack_settings, tmp_path, f"hostile-parse-{unique}.")
    benign = [
        Question(request_id=new_request_id(), text=f"who directed [Jaws] {n}", hops=1, top_k=5)
        for n in range(6)
    ]
    forged = [
        (
            Question(
                request_id=new_request_id(), text="who directed [Jaws]", hops=3, top_k=UINT32_MAX
            ),
            f"top_k must be 1 to 100, or 0 for the default; got {UINT32_MAX}",
        ),
        (
            Question(request_id=new_request_id(), text="who directed [Jaws]", hops=UINT32_MAX),
            "hops must be 1 to 3, or 0 for the default",
        ),
        (
            Question(request_id=new_request_id(), text="who directed [Jaws]", hops=4),
            "hops must be 1 to 3, or 0 for the default",
        ),
    ]
    stream = [benign[0], forged[0][0], *benign[1:3], forged[1][0], forged[2][0], *benign[3:]]
    manager = ServiceManager(settings, env=settings_env(settings))
    manager.start(["parser"])
    try:
        async with PipelineClient(settings) as client:
            client.expect(q.request_id for q, _ in forged)
            await publish_burst(client, topics.QUESTIONS, stream, content_type=JSON)
            for question, words in forged:
                reply = await client.reply(question.request_id, 30.0)
                assert isinstance(reply, DeadLetter) and words in reply.reason
            parsed = await _wait_for(
                settings, topics.PARSED_QUESTIONS, ParsedQuestion, {q.request_id for q in benign}
            )
            letters = await dead_letters_by_id(settings)
    finally:
        manager.stop(["parser"])
    assert all(len(letters[q.request_id]) == 1 for q, _ in forged)
    assert sorted(p.request_id for p in parsed) == sorted(q.request_id for q in benign)


async def _wait_for(
    settings: Any, name: str, message_type: type[Message], ids: set[str], timeout_s: float = 60.0
) -> list[Any]:
    """The messages of ``ids`` on a topic, once all are there (fails after ``timeout_s``)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = [
            m for m in await topic_records(settings, name, message_type) if m.request_id in ids
        ]
        if {m.request_id for m in found} == ids or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)


# --- graph-builder: parsed-questions ---------------------------------------------------------


async def test_graph_builder_refuses_forged_parsed_questions(
    stack_settings, tmp_path, unique, graph_store
):
    settings = isolated_settings(
        stack_settings,
        tmp_path,
        f"hostile-gb-{unique}.",
        retrieval_guided=False,
        subgraph_cache_enabled=False,
    )

    def parsed(hops: int = 1, top_k: int = 0, text: str = "who directed Jaws") -> ParsedQuestion:
        return ParsedQuestion(
            request_id=new_request_id(),
            schema_version=SCHEMA_VERSION,
            question=Question(text=text, hops=hops, top_k=top_k),
            normalized_text=text,
        )

    benign = [parsed() for _ in range(6)]
    forged = [
        (parsed(hops=UINT32_MAX), "hops must be 1 to 3, or 0 for the default"),
        (parsed(top_k=UINT32_MAX), "top_k must be 1 to 100, or 0 for the default"),
        (parsed(text="x" * 5_000), "5000 characters"),
    ]
    stream = [benign[0], forged[0][0], *benign[1:3], forged[1][0], forged[2][0], *benign[3:]]
    manager = ServiceManager(settings, env=settings_env(settings))
    manager.start(["graph-builder"])
    try:
        async with PipelineClient(settings) as client:
            client.expect(q.request_id for q, _ in forged)
            await publish_burst(client, topics.PARSED_QUESTIONS, stream)
            for question, words in forged:
                reply = await client.reply(question.request_id, 60.0)
                assert isinstance(reply, DeadLetter) and words in reply.reason, reply
            grounded = await _wait_for(
                settings,
                topics.REASONING_INPUTS,
                ReasoningInput,
                {q.request_id for q in benign},
            )
            letters = await dead_letters_by_id(settings)
    finally:
        manager.stop(["graph-builder"])
    assert all(len(letters[q.request_id]) == 1 for q, _ in forged)
    assert sorted(g.request_id for g in grounded) == sorted(q.request_id for q in benign)
    assert all(g.hops == 1 and g.top_k == 5 for g in grounded)


# --- inference: the answer cache -------------------------------------------------------------


async def test_a_forged_input_does_not_set_the_answer_others_get(
    stack_settings, tmp_path, unique, text_encoder
):
    """A forged reasoning input asks a question others ask, over a subgraph of its own making
    (every candidate answer renamed). Its answer is cached (real Redis), but the genuine
    question asked afterwards gets the answer of its own subgraph, not the cached one."""
    settings = isolated_settings(
        stack_settings, tmp_path, f"hostile-cache-{unique}.", result_cache_enabled=True
    )
    registry = ModelRegistry(settings.model_registry_dir)
    version = register_random_version(registry, text_encoder, seed=4)
    registry.set_serving(version)
    genuine = reasoning_input(7)
    forged = ReasoningInput()
    forged.CopyFrom(genuine)
    forged.request_id = new_request_id()
    anchors = set(forged.subgraph.anchor_indices)
    for index, node in enumerate(forged.subgraph.nodes):
        if index not in anchors:
            node.key = node.name = f"Forged {node.key}"
    (expected,) = load_model(settings, version).predict([genuine])

    manager = ServiceManager(settings, env=settings_env(settings))
    manager.start(["inference"])
    try:
        async with PipelineClient(settings) as client:
            client.expect([forged.request_id])
            await client.publish(topics.REASONING_INPUTS, forged, key=forged.request_id)
            first = await client.reply(forged.request_id, 60.0)
            assert isinstance(first, Result) and first.answers[0].key.startswith("Forged ")
            replies = []
            for _ in range(2):  # the second is served from the cache the first one filled
                asked = ReasoningInput()
                asked.CopyFrom(genuine)
                asked.request_id = new_request_id()
                client.expect([asked.request_id])
                await client.publish(topics.REASONING_INPUTS, asked, key=asked.request_id)
                replies.append(await client.reply(asked.request_id, 60.0))
    finally:
        manager.stop(["inference"])
    for reply in replies:
        assert isinstance(reply, Result) and reply.status == ResultStatus.RESULT_STATUS_OK
        assert [a.key for a in reply.answers] == [a.key for a in expected.answers]
