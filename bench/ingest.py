"""Ingest benchmark: the MetaQA KB through Kafka into Neo4j, and the parser service's throughput.

(a) The MetaQA KB (133,582 triples) published with the code of ``autoglm ingest kb`` through the
running parser and graph-builder into an emptied Neo4j graph, timed from the first publish to the
last graph commit; against a direct batched load of the same triples with the same write code
and no Kafka (``autoglm.graph.bulk.load_kb_direct``). Every run is checked: the graph must hold
exactly the entities and triples of the file. Then the same KB once more on the full graph (an
idempotent re-ingest that changes nothing).

(b) Documents of real sentences (made from MetaQA triples, five a document) through the parser
service (publish, spaCy, triple extraction, publish, acknowledgements), timed from the first
publish to the last parsed document read back, against bare ``nlp.pipe`` of the same pipeline on
the same texts in this process. Graph-builder is stopped meanwhile, so that only the parser works.

Everything is warm: the servers and services are started and each measurement is preceded by an
untimed warm-up run; each figure is the best of ``--runs`` runs (the machine is shared, so the
best run is the one least disturbed), and every run is in the JSON.

Runs on a stack of its own (``--stack-dir``, ports below; started when not running), never on a
developer's graph: it empties the graph it measures::

    .venv/bin/python bench/ingest.py        # or: make bench-ingest

It writes ``bench/results/ingest.json`` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from common import add_stack_arguments, env_of, git_commit, machine, run_on_own_stack, versions

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.cli.requests import ingest, kb_documents
from autoglm.cli.services import ServiceManager
from autoglm.contracts import SCHEMA_VERSION, Document, DocumentFormat, ParsedDocument, decode
from autoglm.graph.bulk import DEFAULT_LINES_PER_BATCH, load_kb_direct
from autoglm.graph.store import GraphStore
from autoglm.nlp.messages import parse_document_batch
from autoglm.nlp.parsing import TextParser
from autoglm.settings import PROJECT_ROOT, Settings
from services.graph_builder.app import GraphBuilderSettings
from services.parser.app import ParserSettings

DATA = PROJECT_ROOT.parent / "shared" / "data" / "metaqa"
SAMPLE_KB = PROJECT_ROOT / "samples" / "kb_sample.txt"
OUTPUT = PROJECT_ROOT / "bench" / "results" / "ingest.json"
KB_LINES_PER_DOCUMENT = 500  # what `autoglm ingest kb` publishes by default
KB_GOAL_S = 30.0
PARSER_GOAL_RATIO = 0.8

SENTENCES = {
    "directed_by": "{s} was directed by {o}.",
    "written_by": "The screenplay of {s} was written by {o}.",
    "starred_actors": "{o} starred in {s}.",
    "release_year": "{s} was released in {o}.",
    "in_language": "{s} is a film in {o}.",
    "has_genre": "{s} is a {o} film.",
    "has_tags": "Critics often describe {s} as {o}.",
    "has_imdb_rating": "{s} has an IMDb rating of {o}.",
    "has_imdb_votes": "{s} received {o} votes on IMDb.",
}


def sentence_documents(kb: Path, count: int, per_document: int = 5) -> list[str]:
    """``count`` paragraphs of ``per_document`` sentences, each about one film of the KB."""
    by_film: dict[str, list[str]] = {}
    for line in kb.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            subject, relation, obj = line.split("|")
            by_film.setdefault(subject, []).append(SENTENCES[relation].format(s=subject, o=obj))
    films = [s for s in by_film.values() if len(s) >= per_document]
    # Every k-th film: the whole alphabet, not only titles starting with digits.
    step = max(1, len(films) // count)
    return [" ".join(films[i][:per_document]) for i in range(0, step * count, step)][:count]


async def empty_graph(store: GraphStore) -> None:
    await store.run_write(
        "MATCH (n) WHERE NOT n:GraphMeta CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
    )
    await store.run_write("MATCH (m:GraphMeta) SET m.version = m.version + 1")
    await store.ensure_schema()


async def graph_size(store: GraphStore) -> tuple[int, int]:
    (row,) = await store.run_read(
        "RETURN COUNT { (:Entity) } AS entities, COUNT { ()-[:REL]->() } AS relations"
    )
    return int(row["entities"]), int(row["relations"])


def kb_truth(kb: Path) -> tuple[int, int]:
    entities: set[str] = set()
    triples: set[str] = set()
    for line in kb.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            subject, _, obj = line.split("|")
            entities.update((subject, obj))
            triples.add(line)
    return len(entities), len(triples)


async def kb_benchmark(
    settings: Settings, manager: ServiceManager, kb: Path, runs: int
) -> dict[str, Any]:
    expected = kb_truth(kb)
    store = GraphStore.connect(settings)
    pipeline: list[float] = []
    direct: list[float] = []
    try:
        manager.start(["parser", "graph-builder"])
        # Warm-up, untimed: JIT of both servers, query plans, consumer groups joined.
        await empty_graph(store)
        await ingest(settings, list(kb_documents(SAMPLE_KB, 100)), 300.0)
        await load_kb_direct(store, SAMPLE_KB, progress=False)
        for run in range(runs):
            await empty_graph(store)
            summary = await ingest(settings, list(kb_documents(kb, KB_LINES_PER_DOCUMENT)), 900.0)
            if summary.dead_letters or await graph_size(store) != expected:
                raise SystemExit(f"pipeline run {run}: graph is not the KB: {summary}")
            pipeline.append(summary.seconds)
            print(f"  through Kafka, run {run + 1}: {summary.seconds:.1f} s", file=sys.stderr)
        started = time.perf_counter()
        await ingest(settings, list(kb_documents(kb, KB_LINES_PER_DOCUMENT)), 900.0)
        reingest = time.perf_counter() - started
        for run in range(runs):
            await empty_graph(store)
            loaded = await load_kb_direct(store, kb, progress=False)
            if await graph_size(store) != expected:
                raise SystemExit(f"direct run {run}: graph is not the KB")
            direct.append(loaded.seconds)
            print(f"  direct, run {run + 1}: {loaded.seconds:.1f} s", file=sys.stderr)
        (server,) = await store.run_read(
            "CALL dbms.components() YIELD name, versions RETURN name + ' ' + versions[0] AS v"
        )
    finally:
        manager.stop(["parser", "graph-builder"])
        await store.close()
    best, best_direct = min(pipeline), min(direct)
    return {
        "what": "MetaQA kb.txt into an emptied graph: through Kafka (autoglm ingest kb: "
        f"{KB_LINES_PER_DOCUMENT}-line documents -> parser -> graph-builder -> Neo4j, until the "
        "last graph commit) vs direct batched load with the same write code, no Kafka",
        "condition": "warm (servers and services running, one untimed warm-up ingest); "
        "fresh graph each run",
        "triples": expected[1],
        "entities": expected[0],
        "through_kafka_s": round(best, 2),
        "through_kafka_triples_per_s": round(expected[1] / best),
        "through_kafka_runs_s": [round(s, 2) for s in pipeline],
        "direct_s": round(best_direct, 2),
        "direct_triples_per_s": round(expected[1] / best_direct),
        "direct_runs_s": [round(s, 2) for s in direct],
        "direct_lines_per_transaction": DEFAULT_LINES_PER_BATCH,
        "ratio_kafka_to_direct": round(best / best_direct, 2),
        "reingest_through_kafka_s": round(reingest, 2),
        "reingest_note": "the whole KB again on the full graph: nothing changes, version kept",
        "goal_s": KB_GOAL_S,
        "goal_met": best <= KB_GOAL_S,
        "neo4j_server": server["v"],
    }


async def parsed_documents_reader(
    settings: Settings,
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    topic = settings.topic(topics.PARSED_DOCUMENTS)
    await consumer._client.force_metadata_update()
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or {0}]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)
    return consumer, partitions


async def through_parser(settings: Settings, texts: Sequence[str]) -> float:
    documents = [
        Document(
            request_id=new_request_id(),
            schema_version=SCHEMA_VERSION,
            document_id=f"bench:{uuid.uuid4().hex}",
            format=DocumentFormat.DOCUMENT_FORMAT_TEXT,
            text=text,
        )
        for text in texts
    ]
    waiting = {d.request_id for d in documents}
    consumer, _ = await parsed_documents_reader(settings)
    try:
        async with PipelineClient(settings) as client:
            started = time.perf_counter()
            await asyncio.gather(
                *(client.publish(topics.DOCUMENTS, d, key=d.document_id) for d in documents)
            )
            while waiting:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        headers = {k: v.decode() for k, v in record.headers or ()}
                        waiting.discard(decode(ParsedDocument, record.value, headers).request_id)
            return time.perf_counter() - started
    finally:
        await consumer.stop()


async def parser_benchmark(
    settings: ParserSettings, manager: ServiceManager, kb: Path, documents: int, runs: int
) -> dict[str, Any]:
    texts = sentence_documents(kb, documents)
    parser = TextParser(settings.spacy_model, batch_size=settings.parser_batch_size)
    tokens = sum(len(doc) for doc in parser.nlp.pipe(texts, batch_size=parser.batch_size))
    bare: list[float] = []
    in_process: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        for _doc in parser.nlp.pipe(texts, batch_size=parser.batch_size):
            pass
        bare.append(time.perf_counter() - started)
        messages = [Document(request_id=str(i), text=t) for i, t in enumerate(texts)]
        started = time.perf_counter()
        for start in range(0, len(messages), settings.parser_batch_size):
            parse_document_batch(
                parser, messages[start : start + settings.parser_batch_size], settings
            )
        in_process.append(time.perf_counter() - started)
    service: list[float] = []
    try:
        manager.start(["parser"])
        await through_parser(settings, texts[:200])  # warm-up
        for run in range(runs):
            service.append(await through_parser(settings, texts))
            print(f"  parser service, run {run + 1}: {service[-1]:.1f} s", file=sys.stderr)
    finally:
        manager.stop(["parser"])
    best_bare, best_service = min(bare), min(service)
    ratio = best_bare / best_service
    return {
        "what": "text documents (5 sentences made from MetaQA triples each) through the parser "
        "service (Kafka in and out, spaCy, triple extraction) vs bare nlp.pipe on the same texts",
        "condition": "warm (service running, untimed warm-up batch); graph-builder stopped",
        "documents": len(texts),
        "tokens": tokens,
        "spacy_model": settings.spacy_model,
        "batch_size": settings.parser_batch_size,
        "bare_nlp_pipe_s": round(best_bare, 2),
        "bare_docs_per_s": round(len(texts) / best_bare, 1),
        "bare_runs_s": [round(s, 2) for s in bare],
        "parser_core_in_process_s": round(min(in_process), 2),
        "service_s": round(best_service, 2),
        "service_docs_per_s": round(len(texts) / best_service, 1),
        "service_runs_s": [round(s, 2) for s in service],
        "throughput_ratio_service_to_bare": round(ratio, 2),
        "goal_ratio": PARSER_GOAL_RATIO,
        "goal_met": ratio >= PARSER_GOAL_RATIO,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", type=Path, default=DATA / "kb.txt")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each measurement")
    parser.add_argument("--documents", type=int, default=2000, help="parser benchmark size")
    parser.add_argument("--only", choices=("kb", "parser"), help="one of the two benchmarks")
    add_stack_arguments(parser, 18000, "bench", OUTPUT)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    manager = ServiceManager(settings, env=env_of(settings))
    manager.stop()  # leftovers of an interrupted run
    report: dict[str, Any] = {
        "benchmark": "ingest",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
        "versions": versions(),
        "settings": {
            "parser_batch_size": ParserSettings().parser_batch_size,
            "graph_batch_size": GraphBuilderSettings().graph_batch_size,
            "graph_write_max_triples": GraphBuilderSettings().graph_write_max_triples,
            "kb_lines_per_document": KB_LINES_PER_DOCUMENT,
            "topic_partitions": settings.topic_partitions,
        },
        "timing": f"best of {args.runs} runs, after an untimed warm-up",
    }
    if args.only in (None, "parser"):
        print("parser throughput", file=sys.stderr)
        # Topics of its own: graph-builder, started later, must not find these documents.
        parser_settings = ParserSettings(
            **{**settings.model_dump(), "topic_prefix": f"{settings.topic_prefix}parser."}
        )
        report["parser"] = await parser_benchmark(
            parser_settings,
            ServiceManager(parser_settings, env=env_of(parser_settings)),
            args.kb,
            args.documents,
            args.runs,
        )
    if args.only in (None, "kb"):
        print("MetaQA KB", file=sys.stderr)
        report["kb"] = await kb_benchmark(settings, manager, args.kb, args.runs)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    return run_on_own_stack(args, run)


if __name__ == "__main__":
    main()
