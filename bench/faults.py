"""Chaos test (issue 11.1): nothing lost or duplicated while services, a broker, Neo4j and Redis
fail under load.

On a stack of its own (three KRaft brokers, topics replicated 3x with min.insync.replicas 2,
Neo4j, Redis; ports 26092-26097, 26687, 26379; folder .stack/bench-faults) it runs two replicas
of parser, graph-builder and inference (no trainer), ingests samples/kb_sample.txt, then
publishes ``--questions`` MetaQA dev questions (1/2/3-hop mixed, half proto3 JSON, half binary)
and ``--documents`` documents (KB chunks of the anchors' facts from kb.txt, and ~10 % free-text
film paragraphs) at a steady pace over ``--window-s`` seconds, while it injects, at seeded
random moments: a SIGKILL of each service replica (restarted after a short pause), a kill -9 of
one broker (brought back with ``stack up``), a restart of Neo4j and one of Redis (SIGTERM, then
``stack up``; ``--hard-redis`` kills Redis with SIGKILL instead, losing what it did not save).

Afterwards, from a plain consumer (no group) that reads the topics from the beginning:
- every question's request id has exactly one Result and every document's one GraphCommit
  (``missing N, duplicated N``: the raw topic, without any dedupe by the reader);
- dead letters by error type (``processing`` ones must be 0);
- the graph holds exactly what was ingested: the set of edges in Neo4j equals the union of the
  documents' parsed triples (and the KB documents' parsed triples equal their input lines);
- the lag of every service group on its input topics returns to 0 (seconds after the feed
  ended and the last fault recovered).

Figures go to bench/results/reliability.json under ``questions_<N>`` (the full run and the
CI-sized run are kept side by side). Exit status 1 when a check fails. Traffic stays on
127.0.0.1; counts and times are bounded (``--deadline-s``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from common import env_of, git_commit, machine, percentile, versions

from autoglm import security
from autoglm.bus import topics
from autoglm.bus.client import PipelineClient
from autoglm.cli.requests import kb_documents
from autoglm.cli.services import ServiceManager
from autoglm.contracts import (
    JSON,
    PROTOBUF,
    SCHEMA_VERSION,
    DeadLetter,
    Document,
    DocumentAction,
    DocumentFormat,
    GraphCommit,
    ParsedDocument,
    Question,
    Result,
    ResultStatus,
    decode,
    encode,
)
from autoglm.errors import BadInputError
from autoglm.settings import PROJECT_ROOT, Settings

DATA = Path(os.environ.get("FAULTS_METAQA_DIR", PROJECT_ROOT.parent / "shared" / "data" / "metaqa"))
SAMPLE_KB = PROJECT_ROOT / "samples" / "kb_sample.txt"
OUTPUT = PROJECT_ROOT / "bench" / "results" / "reliability.json"

SERVICES = ("parser", "graph-builder", "inference")
REPLICAS = tuple(name for s in SERVICES for name in (s, f"{s}.2"))
INPUTS = {
    "parser": (topics.DOCUMENTS, topics.QUESTIONS),
    "graph-builder": (topics.PARSED_DOCUMENTS, topics.PARSED_QUESTIONS),
    "inference": (topics.REASONING_INPUTS,),
}
"""The input topics of each service's consumer group (broadcast routes have groups of their
own per replica and are not counted)."""
READ_TOPICS = (topics.RESULTS, topics.GRAPH_COMMITS, topics.DEAD_LETTERS, topics.PARSED_DOCUMENTS)
KB_LINES_PER_DOCUMENT = 5
TEXT_SHARE = 0.1
LAG_GOAL_S = 60.0


def log(message: str) -> None:
    print(f"[faults {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionItem:
    text: str
    hops: int


ANCHOR = re.compile(r"\[(.+?)\]")


def read_questions(hops: int) -> list[QuestionItem]:
    items = []
    with (DATA / f"{hops}hop_dev.txt").open(encoding="utf-8") as handle:
        for line in handle:
            question = line.split("\t", 1)[0].strip()
            if question:
                items.append(QuestionItem(question, hops))
    return items


def kb_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.count("|") == 2]


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words(
    "Mara Tomas Helena Julien Ada Ivo Lena Rafael Noor Emil Sanna Oskar Ines Kofi Mirela Anselm "
    "Yara Teodor Liv Caspian"
)
LAST = _words(
    "Okafor Brandt Voss Trask Lindqvist Marek Castellan Oyelaran Halvorsen Quill Duarte Renwick "
    "Szabo Achterberg Mbeki Varga"
)
ADJECTIVES = _words(
    "Glass Quiet Northern Hollow Amber Silent Crooked Paper Winter Salt Iron Distant Velvet "
    "Broken Burning Lantern"
)
NOUNS = _words(
    "Orchard Harbor Meridian Lighthouse Canyon Garden Frontier Ballad Archive Mirror Parade Tide "
    "Cathedral Station Summer"
)
COUNTRIES = ("Canadian", "French", "Norwegian", "Brazilian", "Polish", "Kenyan", "Irish")
GENRES = ("drama", "comedy", "thriller", "documentary", "mystery")
LANGUAGES = ("French", "English", "Norwegian", "Portuguese", "Polish", "Swahili")


def film_paragraph(rng: random.Random, title: str) -> str:
    """A short film paragraph about people and a title no KB line names (fictional)."""

    def person() -> str:
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"

    cast = [person() for _ in range(3)]
    return (
        f"{title} is a {rng.randint(1960, 2023)} {rng.choice(COUNTRIES)} "
        f"{rng.choice(GENRES)} film directed by {person()} and written by {person()}. "
        f"It stars {cast[0]}, {cast[1]} and {cast[2]}. "
        f"The film was released in {rng.choice(LANGUAGES)}."
    )


def build_inputs(
    rng: random.Random, n_questions: int, n_documents: int
) -> tuple[list[Question], list[Document], list[str]]:
    """Questions (half about entities the graph will hold), KB documents about the anchors of
    those questions, text documents; and the KB lines the KB documents carry."""
    pools = {hops: read_questions(hops) for hops in (1, 2, 3)}
    sample_entities = {p for line in kb_lines(SAMPLE_KB) for p in line.split("|")[::2]}
    n_text = max(1, round(n_documents * TEXT_SHARE)) if n_documents else 0
    n_kb = n_documents - n_text

    # KB documents: the facts of anchors of dev questions (up to 5 lines each, from kb.txt).
    by_entity: dict[str, list[str]] = defaultdict(list)
    all_anchors = sorted(
        {m.group(1) for pool in pools.values() for q in pool if (m := ANCHOR.search(q.text))}
    )
    chosen = set(rng.sample(all_anchors, min(n_kb * 3, len(all_anchors))))
    for line in kb_lines(DATA / "kb.txt"):
        subject, _, obj = line.split("|")
        for entity in (subject, obj):
            if entity in chosen and len(by_entity[entity]) < KB_LINES_PER_DOCUMENT:
                by_entity[entity].append(line)
    anchors = rng.sample(sorted(by_entity), min(n_kb, len(by_entity)))
    documents: list[Document] = []
    lines: list[str] = []
    for anchor in anchors:
        chunk = "\n".join(by_entity[anchor])
        lines.extend(by_entity[anchor])
        digest = hashlib.sha1(chunk.encode()).hexdigest()[:16]
        documents.append(
            Document(
                request_id=f"faults-d-{uuid.uuid4().hex}",
                schema_version=SCHEMA_VERSION,
                document_id=f"kb:faults:{digest}",
                format=DocumentFormat.DOCUMENT_FORMAT_TRIPLES,
                text=chunk,
                source="faults",
                first_line=1,
            )
        )
    titles = rng.sample([f"The {a} {n}" for a in ADJECTIVES for n in NOUNS], n_text)
    for number, title in enumerate(titles):
        documents.append(
            Document(
                request_id=f"faults-d-{uuid.uuid4().hex}",
                schema_version=SCHEMA_VERSION,
                document_id=f"text:faults-{number:03d}.txt",
                format=DocumentFormat.DOCUMENT_FORMAT_TEXT,
                text=film_paragraph(rng, title),
                source="faults",
                action=DocumentAction.DOCUMENT_ACTION_UPSERT,
            )
        )

    # Questions: half about the graph's entities (they reach inference), half any dev question.
    known = sample_entities | set(anchors)
    questions: list[Question] = []
    per_hop = [n_questions // 3 + (1 if h < n_questions % 3 else 0) for h in range(3)]
    for hops, count in zip((1, 2, 3), per_hop, strict=True):
        pool = pools[hops]
        about_graph = [q for q in pool if (m := ANCHOR.search(q.text)) and m.group(1) in known]
        picked = rng.sample(about_graph, min(count // 2, len(about_graph)))
        picked += rng.sample(pool, count - len(picked))
        for item in picked:
            questions.append(
                Question(
                    request_id=f"faults-q-{uuid.uuid4().hex}",
                    schema_version=SCHEMA_VERSION,
                    text=item.text,
                    hops=item.hops,
                )
            )
    return questions, documents, lines


# --- faults ---------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # sigkill-service, kill9-broker, restart-neo4j, restart-redis
    target: str
    at_s: float
    down_s: float
    injected_at_s: float | None = None
    back_at_s: float | None = None
    ready_at_s: float | None = None
    error: str | None = None

    def report(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "planned_at_s": round(self.at_s, 1),
            "injected_at_s": _round(self.injected_at_s),
            "restarted_at_s": _round(self.back_at_s),
            "ready_at_s": _round(self.ready_at_s),
            "error": self.error,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def plan_faults(rng: random.Random, window_s: float, hard_redis: bool) -> list[Fault]:
    def moment() -> float:
        return rng.uniform(0.1, 0.8) * window_s

    faults = [Fault("sigkill-service", name, moment(), rng.uniform(0.5, 3.0)) for name in REPLICAS]
    faults.append(Fault("kill9-broker", f"kafka-{rng.randint(1, 3)}", moment(), rng.uniform(5, 20)))
    faults.append(Fault("restart-neo4j", "neo4j", moment(), 0.0))
    faults.append(Fault("kill9-redis" if hard_redis else "restart-redis", "redis", moment(), 0.0))
    return sorted(faults, key=lambda f: f.at_s)


class Injector:
    def __init__(self, settings: Settings, manager: ServiceManager, started: float) -> None:
        self.settings = settings
        self.manager = manager
        self.started = started

    def now(self) -> float:
        return time.monotonic() - self.started

    async def run(self, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, fault.at_s - self.now()))
        try:
            await asyncio.to_thread(self._inject, fault)
        except Exception as exc:  # reported: the run goes on, the check says what failed
            fault.error = f"{type(exc).__name__}: {exc}"
            log(f"fault {fault.kind} {fault.target} failed: {fault.error}")

    def _inject(self, fault: Fault) -> None:
        from autoglm.stack import LocalStack
        from autoglm.stack.procs import is_alive, read_pid_file

        log(f"inject {fault.kind} {fault.target}")
        if fault.kind == "sigkill-service":
            fault.injected_at_s = self.now()
            self.manager.kill(fault.target)
            time.sleep(fault.down_s)
            fault.back_at_s = self.now()
            self.manager.start([fault.target], timeout_s=600)
        elif fault.kind in ("kill9-broker", "kill9-redis"):
            kind = "kafka" if fault.kind == "kill9-broker" else "redis"
            stack = LocalStack(self.settings, only={kind})
            record = read_pid_file(stack.paths.pid_file(fault.target))
            if record is None:
                raise RuntimeError(f"{fault.target} has no pid file")
            fault.injected_at_s = self.now()
            os.kill(record.pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while is_alive(record.process) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(fault.down_s)
            fault.back_at_s = self.now()
            stack.up()
        else:
            stack = LocalStack(self.settings, only={fault.target})
            fault.injected_at_s = self.now()
            stack.down()
            fault.back_at_s = self.now()
            stack.up()
        fault.ready_at_s = self.now()
        took = fault.ready_at_s - (fault.injected_at_s or 0.0)
        log(f"recovered {fault.kind} {fault.target} in {took:.1f}s")


# --- reading the outcome --------------------------------------------------------------------


@dataclass
class Outcome:
    results: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    """request id -> (broker timestamp ms, status) of every Result record."""
    commits: dict[str, int] = field(default_factory=Counter)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    parsed: dict[str, list[frozenset[tuple[str, str, str]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    committed_triples: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    """document id -> the ``triples`` of each GraphCommit (one value when consistent)."""
    undecodable: int = 0


def _headers(record: Any) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}


class Reader:
    """A plain consumer (no group, nothing committed) of the reply topics from the start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outcome = Outcome()
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        options = security.kafka_client_options(self.settings, security.ADMIN)
        self.consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(self.settings.topic(t), p)
            for t in READ_TOPICS
            for p in sorted(self.consumer.partitions_for_topic(self.settings.topic(t)) or {0})
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        self.task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()

    async def _read(self) -> None:
        assert self.consumer is not None
        prefix = len(self.settings.topic_prefix)
        out = self.outcome
        while True:
            batches = await self.consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batches.items():
                name = tp.topic[prefix:]
                for record in records:
                    if record.value is None:
                        continue
                    headers = _headers(record)
                    try:
                        if name == topics.RESULTS:
                            result = decode(Result, record.value, headers)
                            out.results[result.request_id].append(
                                (record.timestamp, int(result.status))
                            )
                        elif name == topics.GRAPH_COMMITS:
                            commit = decode(GraphCommit, record.value, headers)
                            out.commits[commit.request_id] += 1
                            out.committed_triples[commit.document_id].add(commit.triples)
                        elif name == topics.DEAD_LETTERS:
                            out.dead_letters.append(decode(DeadLetter, record.value, headers))
                        else:
                            parsed = decode(ParsedDocument, record.value, headers)
                            out.parsed[parsed.document_id].append(
                                frozenset(
                                    (t.subject, t.predicate, t.object) for t in parsed.triples
                                )
                            )
                    except BadInputError:
                        out.undecodable += 1


class RssSampler:
    """Peak resident memory of every service process, sampled once a second from /proc."""

    def __init__(self, manager: ServiceManager) -> None:
        self.manager = manager
        self.peak_mib: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._sample())

    async def stop(self) -> dict[str, float]:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        return {k: round(v, 1) for k, v in sorted(self.peak_mib.items())}

    def _read(self) -> None:
        for status in self.manager.status():
            if not status.running or status.pid is None:
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{status.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        mib = int(line.split()[1]) / 1024
                        self.peak_mib[status.name] = max(self.peak_mib.get(status.name, 0), mib)

    async def _sample(self) -> None:
        while True:
            await asyncio.to_thread(self._read)
            await asyncio.sleep(1.0)


async def group_lag(settings: Settings, admin: AIOKafkaAdminClient, probe: AIOKafkaConsumer) -> int:
    """Messages not yet committed by the service groups on their input topics."""
    total = 0
    for service, names in INPUTS.items():
        committed = await admin.list_consumer_group_offsets(settings.group(service))
        partitions = [
            TopicPartition(settings.topic(n), p)
            for n in names
            for p in sorted(probe.partitions_for_topic(settings.topic(n)) or {0})
        ]
        ends = await probe.end_offsets(partitions)
        for tp in partitions:
            done = committed.get(tp)
            total += max(
                0, ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
            )
    return total


async def wait_for_zero_lag(settings: Settings, since: float, timeout_s: float) -> float | None:
    """Seconds from ``since`` (monotonic) until the lag is 0; None when it is not within
    ``timeout_s`` from now."""
    options = security.kafka_client_options(settings, security.ADMIN)
    admin = AIOKafkaAdminClient(**options)
    probe = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    await admin.start()
    await probe.start()
    try:
        await probe._client.force_metadata_update()
        deadline = time.monotonic() + timeout_s
        last = -1
        while time.monotonic() < deadline:
            try:
                lag = await group_lag(settings, admin, probe)
            except Exception as exc:  # a broker coming back: try again
                log(f"lag probe failed: {exc!r}")
                lag = -1
            if lag == 0:
                return time.monotonic() - since
            if lag != last:
                log(f"consumer lag {lag}")
                last = lag
            await asyncio.sleep(1.0)
        return None
    finally:
        await probe.stop()
        await admin.close()


async def graph_edges(settings: Settings) -> dict[str, Any]:
    from autoglm.graph.store import GraphStore

    store = GraphStore.connect(settings)
    try:
        rows = await store.run_read(
            "MATCH (s:Entity)-[r]->(o:Entity) WHERE type(r) IN ['REL', 'OPEN_REL'] "
            "RETURN s.name AS s, r.type AS p, o.name AS o, r.sources AS sources"
        )
        documents = await store.run_read("MATCH (d:Document) RETURN d.id AS id, d.ref AS ref")
        (counts,) = await store.run_read(
            "RETURN COUNT { (:Entity) } AS entities, COUNT { (:Document) } AS documents"
        )
    finally:
        await store.close()
    edges = [(str(r["s"]), str(r["p"]), str(r["o"])) for r in rows]
    by_ref: dict[int, set[tuple[str, str, str]]] = defaultdict(set)
    for row, edge in zip(rows, edges, strict=True):
        for ref in row["sources"] or ():
            by_ref[int(ref)].add(edge)
    return {
        "edges": edges,
        "edges_by_document": {
            str(d["id"]): by_ref.get(int(d["ref"]), set())
            for d in documents
            if d["ref"] is not None
        },
        "entities": int(counts["entities"]),
        "documents": int(counts["documents"]),
    }


# --- the run --------------------------------------------------------------------------------


async def reset_stores(settings: Settings) -> None:
    """Empty this stack's own graph and Redis (never a developer's: see the ports)."""
    from autoglm.graph.store import GraphStore
    from autoglm.redis_access.client import async_client

    store = GraphStore.connect(settings)
    try:
        await store.run_write(
            "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
        )
    finally:
        await store.close()
    client = async_client(settings, timeout_s=60.0)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def ingest_sample(settings: Settings) -> list[Document]:
    documents = list(kb_documents(SAMPLE_KB, 50))
    await ingest(settings, documents)
    return documents


async def ingest(settings: Settings, documents: list[Document]) -> None:
    async with PipelineClient(settings) as client:
        client.expect(d.request_id for d in documents)
        for document in documents:
            await client.publish(topics.DOCUMENTS, document, key=document.document_id)
        async for _, reply in client.replies([d.request_id for d in documents], 300.0):
            if not isinstance(reply, GraphCommit):
                raise RuntimeError(f"document not ingested: {reply}")


async def ask(settings: Settings, questions: list[Question], concurrency: int) -> list[float]:
    """Latency of each question asked alone (at most ``concurrency`` in flight)."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    async with PipelineClient(settings) as client:
        client.expect(q.request_id for q in questions)

        async def one(question: Question) -> None:
            async with gate:
                began = time.monotonic()
                await client.publish(topics.QUESTIONS, question, key=question.request_id)
                await client.reply(question.request_id, 600.0)
                latencies.append(time.monotonic() - began)

        await asyncio.gather(*(one(q) for q in questions))
    return latencies


def latency_figures(latencies: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(latencies, 50), 2),
        "p95": round(percentile(latencies, 95), 2),
        "max": round(max(latencies, default=0.0), 2),
    }


async def overload(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Issue 11.5: ``--questions`` published at once (no faults). Peak RSS of every service,
    nothing lost or duplicated, latency of questions asked alone before and after."""
    rng = random.Random(args.seed)
    questions, documents, _ = build_inputs(rng, args.questions + 2 * args.probes, args.documents)
    rng.shuffle(questions)
    before_q, after_q = questions[: args.probes], questions[args.probes : 2 * args.probes]
    burst = questions[2 * args.probes :]

    await reset_stores(settings)
    manager = ServiceManager(settings, env=env_of(settings))
    manager.stop()
    log(f"starting {', '.join(REPLICAS)}")
    await asyncio.to_thread(manager.start, list(REPLICAS), 600.0)
    reader = Reader(settings)
    sampler = RssSampler(manager)
    try:
        log("ingesting the sample KB and the documents")
        await ingest_sample(settings)
        await ingest(settings, documents)
        await reader.start()
        sampler.start()
        log(f"{len(before_q)} questions asked alone")
        before = await ask(settings, before_q, args.probe_concurrency)
        log(f"publishing {len(burst)} questions at once")
        started = time.monotonic()
        sent_at: dict[str, float] = {}
        send_stats = await feed(settings, [("question", q) for q in burst], 0.0, started, sent_at)
        publish_s = time.monotonic() - started
        log(f"published in {publish_s:.1f}s: {send_stats}")
        expected = {q.request_id for q in burst}
        out = reader.outcome
        deadline = time.monotonic() + args.settle_timeout_s
        reported = time.monotonic()
        while time.monotonic() < deadline and not expected <= out.results.keys():
            await asyncio.sleep(1.0)
            if time.monotonic() - reported > 30:
                done = len(expected & out.results.keys())
                log(f"{done}/{len(expected)} answered after {time.monotonic() - started:.0f}s")
                reported = time.monotonic()
        drain_s = time.monotonic() - started
        log(f"{len(expected & out.results.keys())}/{len(expected)} answered in {drain_s:.1f}s")
        after = await ask(settings, after_q, args.probe_concurrency)
        lag_s = await wait_for_zero_lag(settings, time.monotonic(), LAG_GOAL_S)
        await asyncio.sleep(args.quiet_s)
        peak_rss = await sampler.stop()
    finally:
        await sampler.stop()
        await reader.stop()
        manager.stop()

    counts = {rid: len(out.results.get(rid, ())) for rid in expected}
    dead_by_type = Counter(d.error_type for d in out.dead_letters)
    latencies = [
        out.results[rid][0][0] / 1000 - (time.time() - time.monotonic() + sent_at[rid])
        for rid in expected
        if out.results.get(rid) and rid in sent_at
    ]
    before_fig, after_fig = latency_figures(before), latency_figures(after)
    checks = {
        "no_missing_results": all(c > 0 for c in counts.values()),
        "no_duplicated_results": all(c <= 1 for c in counts.values()),
        "no_processing_dead_letters": dead_by_type.get("processing", 0) == 0,
        "peak_rss_bounded": max(peak_rss.values(), default=0.0) <= args.rss_limit_mib,
        "latency_recovers": after_fig["p50"] <= 2 * before_fig["p50"] + 0.5,
        "lag_zero_after": lag_s is not None,
        "every_send_acknowledged": send_stats["send_failures"] == 0,
    }
    return {
        "mode": "overload (issue 11.5): no faults",
        "questions": len(burst),
        "documents_ingested_first": len(documents),
        "seed": args.seed,
        "publishing": send_stats,
        "publish_s": round(publish_s, 1),
        "drain_s": round(drain_s, 1),
        "questions_per_second": round(len(expected & out.results.keys()) / drain_s, 1),
        "missing": sum(1 for c in counts.values() if c == 0),
        "duplicated": sum(c - 1 for c in counts.values() if c > 1),
        "burst_latency_s": latency_figures(latencies),
        "latency_alone_before_s": before_fig,
        "latency_alone_after_s": after_fig,
        "lag_zero_s_after_probes": None if lag_s is None else round(lag_s, 1),
        "peak_rss_mib": peak_rss,
        "rss_limit_mib": args.rss_limit_mib,
        "dead_letters_by_type": dict(dead_by_type),
        "checks": checks,
        "passed": all(checks.values()),
    }


async def feed(
    settings: Settings,
    items: list[tuple[str, Any]],
    window_s: float,
    started: float,
    sent_at: dict[str, float],
) -> dict[str, int]:
    """Publish ``items`` evenly over ``window_s`` (acks=all, idempotent producer); a send that
    fails is published again (same bytes), as a client would."""
    producer = AIOKafkaProducer(
        **security.kafka_client_options(settings, security.CLIENT),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=30_000,
    )
    await producer.start()
    stats = {"published": 0, "send_retries": 0, "send_failures": 0}

    async def send(topic: str, body: bytes, key: str, headers: dict[str, str], rid: str) -> None:
        for attempt in range(6):
            try:
                future = await producer.send(
                    settings.topic(topic),
                    body,
                    key=key.encode(),
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
                await future
                stats["published"] += 1
                return
            except Exception as exc:
                stats["send_retries"] += 1
                log(f"send of {rid} failed ({exc!r}), attempt {attempt + 1}")
                await asyncio.sleep(2.0)
        stats["send_failures"] += 1

    pending = []
    counts: Counter[str] = Counter()
    try:
        for index, (kind, message) in enumerate(items):
            due = started + window_s * index / max(1, len(items))
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            # Half of each kind in proto3 JSON, half in binary protobuf.
            content_type = JSON if counts[kind] % 2 == 0 else PROTOBUF
            counts[kind] += 1
            body, headers = encode(message, content_type)
            topic, key = (
                (topics.QUESTIONS, message.request_id)
                if kind == "question"
                else (topics.DOCUMENTS, message.document_id)
            )
            sent_at[message.request_id] = time.monotonic()
            pending.append(asyncio.create_task(send(topic, body, key, headers, message.request_id)))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return stats


async def scenario(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    rng = random.Random(args.seed)
    questions, documents, chaos_lines = build_inputs(rng, args.questions, args.documents)
    faults = plan_faults(rng, args.window_s, args.hard_redis)
    items: list[tuple[str, Any]] = [("question", q) for q in questions]
    items += [("document", d) for d in documents]
    rng.shuffle(items)

    await reset_stores(settings)
    manager = ServiceManager(settings, env=env_of(settings))
    manager.stop()
    log(f"starting {', '.join(REPLICAS)}")
    t = time.monotonic()
    await asyncio.to_thread(manager.start, list(REPLICAS), 600.0)
    services_start_s = time.monotonic() - t
    reader = Reader(settings)
    try:
        log("ingesting the sample KB")
        sample_documents = await ingest_sample(settings)
        await reader.start()
        sampler = RssSampler(manager)
        sampler.start()
        log(
            f"feeding {len(questions)} questions and {len(documents)} documents over "
            f"{args.window_s:.0f}s; faults at "
            + ", ".join(f"{f.at_s:.0f}s {f.kind} {f.target}" for f in faults)
        )
        started = time.monotonic()
        started_wall = time.time()
        injector = Injector(settings, manager, started)
        sent_at: dict[str, float] = {}
        fault_tasks = [asyncio.create_task(injector.run(f)) for f in faults]
        send_stats = await feed(settings, items, args.window_s, started, sent_at)
        feed_s = time.monotonic() - started
        log(f"feed done in {feed_s:.1f}s: {send_stats}")
        await asyncio.gather(*fault_tasks)
        settled_at = time.monotonic()
        log(f"all faults recovered at {settled_at - started:.1f}s")

        expected_q = {q.request_id for q in questions}
        expected_d = {d.request_id for d in documents}
        out = reader.outcome
        deadline = settled_at + args.settle_timeout_s
        while time.monotonic() < deadline:
            if expected_q <= out.results.keys() and expected_d <= out.commits.keys():
                break
            await asyncio.sleep(1.0)
        all_replies_s = time.monotonic() - started
        lag_s = await wait_for_zero_lag(
            settings, settled_at, max(LAG_GOAL_S, deadline - time.monotonic())
        )
        log(f"lag 0 after {lag_s}s" if lag_s is not None else "lag not back to 0")
        # Anything a last redelivery publishes shows up now: read until quiet.
        await asyncio.sleep(args.quiet_s)
        elapsed_s = time.monotonic() - started

        graph = await graph_edges(settings)
        peak_rss = await sampler.stop()
    finally:
        await reader.stop()
        manager.stop()

    # Questions and documents: exactly one reply each, on the raw topics.
    q_counts = {rid: len(out.results.get(rid, ())) for rid in expected_q}
    d_counts = {rid: out.commits.get(rid, 0) for rid in expected_d}
    missing_q = sum(1 for c in q_counts.values() if c == 0)
    duplicated_q = sum(c - 1 for c in q_counts.values() if c > 1)
    missing_d = sum(1 for c in d_counts.values() if c == 0)
    duplicated_d = sum(c - 1 for c in d_counts.values() if c > 1)
    dead_by_type = Counter(d.error_type for d in out.dead_letters)
    dead_by_service = Counter(f"{d.service}:{d.error_type}" for d in out.dead_letters)
    our_ids = expected_q | expected_d
    dead_ours = Counter(d.error_type for d in out.dead_letters if d.request_id in our_ids)
    statuses = Counter(
        ResultStatus.Name(out.results[rid][0][1]) for rid in expected_q if out.results.get(rid)
    )
    latencies = [
        out.results[rid][0][0] / 1000 - (time.time() - time.monotonic() + sent_at[rid])
        for rid in expected_q
        if out.results.get(rid) and rid in sent_at
    ]

    # The graph. KB documents: the edges they support are exactly their input lines. Every
    # document (KB and text): the edges whose sources name it are as many as the triples its
    # GraphCommit reported (text names go through entity resolution against the graph, so a
    # text's parsed names need not be its nodes' names). No edge without a source document.
    ingested_ids = {d.document_id for d in documents} | {d.document_id for d in sample_documents}
    inconsistent = [doc for doc, copies in out.parsed.items() if len(set(copies)) > 1]
    unparsed = sorted(doc for doc in ingested_ids if doc not in out.parsed)
    kb_input = {tuple(line.split("|")) for line in chaos_lines + kb_lines(SAMPLE_KB)}
    kb_ids = {
        d.document_id for d in documents if d.format == DocumentFormat.DOCUMENT_FORMAT_TRIPLES
    }
    kb_ids |= {d.document_id for d in sample_documents}
    kb_parsed: set[tuple[str, str, str]] = set()
    for doc in kb_ids:
        for copy in out.parsed.get(doc, [])[:1]:
            kb_parsed |= copy
    by_document = graph["edges_by_document"]
    kb_graph: set[tuple[str, str, str]] = set()
    for doc in kb_ids:
        kb_graph |= by_document.get(doc, set())
    graph_set = set(graph["edges"])
    sourced: set[tuple[str, str, str]] = set()
    for doc_edges in by_document.values():
        sourced |= doc_edges
    missing_edges = sorted(kb_input - kb_graph)
    extra_edges = sorted(kb_graph - kb_input)
    unsourced = sorted(graph_set - sourced)
    count_mismatch = {
        doc: {
            "graph": len(by_document.get(doc, ())),
            "committed": sorted(out.committed_triples[doc]),
        }
        for doc in sorted(ingested_ids)
        if out.committed_triples.get(doc) != {len(by_document.get(doc, ()))}
    }
    text_ids = ingested_ids - kb_ids
    text_edges: set[tuple[str, str, str]] = set()
    for doc in text_ids:
        text_edges |= by_document.get(doc, set())
    expected_edges = kb_input | text_edges
    expected_entities = {e for s, _, o in expected_edges for e in (s, o)}

    checks = {
        "no_missing_results": missing_q == 0 and missing_d == 0,
        "no_duplicated_results": duplicated_q == 0 and duplicated_d == 0,
        "no_processing_dead_letters": dead_by_type.get("processing", 0) == 0,
        "graph_equals_ingested": not missing_edges
        and not extra_edges
        and not unsourced
        and not count_mismatch
        and not unparsed
        and graph["documents"] == len(ingested_ids)
        and len(graph["edges"]) == len(graph_set),
        "kb_parsed_equals_input": kb_parsed == kb_input,
        "lag_zero_within_60s": lag_s is not None and lag_s <= LAG_GOAL_S,
        "every_fault_injected": all(f.error is None and f.ready_at_s is not None for f in faults),
        "every_send_acknowledged": send_stats["send_failures"] == 0,
    }
    return {
        "questions": len(questions),
        "questions_json": (len(questions) + 1) // 2,
        "documents": len(documents),
        "documents_text": sum(
            1 for d in documents if d.format == DocumentFormat.DOCUMENT_FORMAT_TEXT
        ),
        "seed": args.seed,
        "window_s": args.window_s,
        "services_start_s": round(services_start_s, 1),
        "elapsed_s": round(elapsed_s, 1),
        "feed_s": round(feed_s, 1),
        "all_replies_s": round(all_replies_s, 1),
        "faults_recovered_at_s": round(settled_at - started, 1),
        "faults": [f.report() for f in faults],
        "publishing": send_stats,
        "missing": missing_q,
        "duplicated": duplicated_q,
        "question_ids_with_duplicates": sum(1 for c in q_counts.values() if c > 1),
        "duplicate_examples": {
            rid: {
                "published_at_s": round(sent_at[rid] - started, 1) if rid in sent_at else None,
                "results_at_s": [round(ts / 1000 - started_wall, 1) for ts, _ in out.results[rid]],
                "statuses": [ResultStatus.Name(st) for _, st in out.results[rid]],
            }
            for rid in sorted(r for r, c in q_counts.items() if c > 1)[:12]
        },
        "documents_missing": missing_d,
        "documents_duplicated": duplicated_d,
        "result_statuses": dict(statuses),
        "latency_s": {
            "p50": round(percentile(latencies, 50), 2),
            "p95": round(percentile(latencies, 95), 2),
            "max": round(max(latencies, default=0.0), 2),
        },
        "lag_recovery_s": None if lag_s is None else round(lag_s, 1),
        "peak_rss_mib": peak_rss,
        "dead_letters_by_type": dict(dead_by_type),
        "dead_letters_by_service": dict(dead_by_service),
        "dead_letters_of_fed_requests": dict(dead_ours),
        "undecodable_records": out.undecodable,
        "graph": {
            "edges": len(graph["edges"]),
            "distinct_edges": len(graph_set),
            "expected_edges": len(expected_edges),
            "kb_edges_in_graph": len(kb_graph),
            "text_edges_in_graph": len(text_edges),
            "kb_lines_missing_in_graph": len(missing_edges),
            "kb_edges_not_in_input": len(extra_edges),
            "edges_without_source_document": len(unsourced),
            "documents_whose_edges_differ_from_their_commit": len(count_mismatch),
            "missing_edge_examples": [list(e) for e in missing_edges[:5]],
            "extra_edge_examples": [list(e) for e in extra_edges[:5]],
            "unsourced_edge_examples": [list(e) for e in unsourced[:5]],
            "count_mismatch_examples": dict(list(count_mismatch.items())[:5]),
            "entities": graph["entities"],
            "entities_named_by_expected_edges": len(expected_entities),
            "documents": graph["documents"],
            "documents_ingested": len(ingested_ids),
            "documents_never_parsed": unparsed[:5],
            "documents_parsed_differently_on_redelivery": inconsistent[:5],
            "kb_lines_input": len(kb_input),
            "kb_triples_parsed": len(kb_parsed),
        },
        "checks": checks,
        "passed": all(checks.values()),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--window-s",
        type=float,
        default=None,
        help="feed duration; faults fall in it (default: 150 s + 0.1 s per question)",
    )
    parser.add_argument("--settle-timeout-s", type=float, default=600.0)
    parser.add_argument("--quiet-s", type=float, default=10.0)
    parser.add_argument(
        "--overload",
        action="store_true",
        help="issue 11.5 instead: publish --questions at once, no faults (peak RSS, latency)",
    )
    parser.add_argument("--probes", type=int, default=40, help="overload: questions asked alone")
    parser.add_argument("--probe-concurrency", type=int, default=4)
    parser.add_argument("--rss-limit-mib", type=float, default=4096.0)
    parser.add_argument("--hard-redis", action="store_true", help="SIGKILL Redis, not SIGTERM")
    parser.add_argument("--kafka-port", type=int, default=26092)
    parser.add_argument("--kafka-controller-port", type=int, default=26093)
    parser.add_argument("--neo4j-port", type=int, default=26687)
    parser.add_argument("--redis-port", type=int, default=26379)
    parser.add_argument("--neo4j-password", default="autoglm-faults-secret")
    parser.add_argument("--stack-dir", type=Path, default=PROJECT_ROOT / ".stack" / "bench-faults")
    parser.add_argument("--keep-stack", action="store_true")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if args.window_s is None:
        args.window_s = 150.0 + 0.1 * args.questions
    return args


def bundled_registry(root: Path) -> Path:
    """A registry of this run that serves the checkpoint kept in samples/model."""
    from autoglm.registry import BUILTIN_VERSION, ModelRegistry

    registry = ModelRegistry(root)
    if registry.serving_version() != BUILTIN_VERSION:
        return root
    versions_ = sorted(p for p in (PROJECT_ROOT / "samples" / "model").iterdir() if p.is_dir())
    registry.set_serving(registry.import_version(versions_[-1]).version)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    from autoglm.stack import LocalStack

    args = parse_args(argv)
    prefix = f"faults-{uuid.uuid4().hex[:8]}."
    settings = Settings(
        kafka_brokers=3,
        kafka_port=args.kafka_port,
        kafka_controller_port=args.kafka_controller_port,
        neo4j_port=args.neo4j_port,
        redis_port=args.redis_port,
        neo4j_password=args.neo4j_password,
        stack_dir=args.stack_dir,
        topic_prefix=prefix,
        consumer_group_prefix=prefix,
        device="cpu",
        trace_exporter="none",
        model_registry_dir=bundled_registry(args.stack_dir / "models"),
    )
    stack = LocalStack(settings)
    started = time.monotonic()
    log("stack up: 3 brokers, Neo4j, Redis")
    statuses = stack.up()
    for status in statuses:
        log(f"  {status.name} {status.state} {status.detail}")
    report: dict[str, Any] = {
        "benchmark": "reliability (chaos test, issue 11.1)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": os.environ.get("FAULTS_COMMIT") or git_commit(),
        "machine": machine(),
        "versions": versions(),
        "stack": {
            "kafka_brokers": settings.kafka_brokers,
            "replication_factor": settings.topic_replication_factor,
            "min_insync_replicas": settings.topic_min_isr,
            "partitions": settings.topic_partitions,
            "service_replicas": list(REPLICAS),
            "redis_restart": "SIGKILL" if args.hard_redis else "SIGTERM (saves its RDB)",
            "neo4j_restart": "SIGTERM, then stack up",
        },
    }
    try:
        run = overload if args.overload else scenario
        report.update(asyncio.run(run(args, stack.settings)))
    finally:
        if not args.keep_stack:
            stack.down()
    report["total_s"] = round(time.monotonic() - started, 1)
    key = f"{'overload' if args.overload else 'questions'}_{args.questions}"
    merged: dict[str, Any] = {}
    if args.output.is_file():
        with contextlib.suppress(ValueError):
            merged = json.loads(args.output.read_text(encoding="utf-8"))
    merged[key] = report
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(
        json.dumps({k: v for k, v in report.items() if k not in ("machine", "versions")}, indent=2)
    )
    if args.overload:
        print(
            f"missing {report['missing']}, duplicated {report['duplicated']}; "
            f"peak RSS {report['peak_rss_mib']} MiB; latency alone p50 "
            f"{report['latency_alone_before_s']['p50']} s before, "
            f"{report['latency_alone_after_s']['p50']} s after"
        )
    else:
        print(
            f"missing {report['missing']}, duplicated {report['duplicated']} "
            f"(documents: missing {report['documents_missing']}, "
            f"duplicated {report['documents_duplicated']}); "
            f"processing dead letters {report['dead_letters_by_type'].get('processing', 0)}; "
            f"lag back to 0 in {report['lag_recovery_s']} s; "
            f"graph {'equals' if report['checks']['graph_equals_ingested'] else 'DIFFERS from'} "
            f"what was ingested"
        )
    failed = [name for name, ok in report["checks"].items() if not ok]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
