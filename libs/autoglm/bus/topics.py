"""Every topic of the system, in one place. Names are logical: ``Settings.topic`` prefixes them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    TopicAlreadyExistsError,
    for_code,
)

from autoglm import security
from autoglm.settings import Settings

DOCUMENTS = "documents"
PARSED_DOCUMENTS = "parsed-documents"
GRAPH_COMMITS = "graph-commits"
QUESTIONS = "questions"
PARSED_QUESTIONS = "parsed-questions"
REASONING_INPUTS = "reasoning-inputs"
RESULTS = "results"
FEEDBACK = "feedback"
TRAINING_EXAMPLES = "training-examples"
MODEL_UPDATES = "model-updates"
DEAD_LETTERS = "dead-letters"

ALL_TOPICS = (
    DOCUMENTS,
    PARSED_DOCUMENTS,
    GRAPH_COMMITS,
    QUESTIONS,
    PARSED_QUESTIONS,
    REASONING_INPUTS,
    RESULTS,
    FEEDBACK,
    TRAINING_EXAMPLES,
    MODEL_UPDATES,
    DEAD_LETTERS,
)

# Model updates are broadcast to every inference replica; one partition keeps them ordered.
SINGLE_PARTITION_TOPICS = frozenset({MODEL_UPDATES})

log = logging.getLogger(__name__)


async def ensure_topics(
    settings: Settings, timeout_s: float = 60.0, role: str = security.CLIENT
) -> None:
    """Create every topic that does not exist yet (idempotent, safe to race with replicas).

    ``role``: the Kafka principal it connects as in secure mode (a service's name; only
    services may create topics there, see ``autoglm.security``).

    Topics get ``settings.topic_replication_factor`` replicas and ``min.insync.replicas``
    ``settings.topic_min_isr``: on three brokers an acks=all write survives losing one.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(**security.kafka_client_options(settings, role))
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            await admin.close()
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1.0)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=settings.topic(name),
                num_partitions=1 if name in SINGLE_PARTITION_TOPICS else settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs={"min.insync.replicas": str(settings.topic_min_isr)},
            )
            for name in ALL_TOPICS
            if settings.topic(name) not in existing
        ]
        if missing:
            # Another replica may win the race to create them.
            with contextlib.suppress(TopicAlreadyExistsError):
                response = await admin.create_topics(missing)
                _raise_topic_errors(response.to_object())
            log.info("created topics", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()


def _raise_topic_errors(response: dict[str, Any]) -> None:
    """aiokafka returns per-topic errors instead of raising: raise the first real one (too few
    brokers for the replication factor, not authorized, ...); already existing is fine."""
    for topic in response.get("topic_errors") or []:
        code = topic.get("error_code", 0)
        if code and for_code(code) is not TopicAlreadyExistsError:
            message = topic.get("error_message") or ""
            raise for_code(code)(f"creating topic {topic.get('topic')}: {message}".strip())
