"""Extraction benchmark: WebNLG+ 2020 dev texts to triples, scored with the Text-to-RDF definitions.

(a) **Quality** (no servers): the extractor of ``autoglm.extraction.load_extractor``, given the
relation schema of the *train* split (its 372 predicate names, nothing else), reads the 4,464 dev
texts; its triples, written as WebNLG writes them, are scored against each text's gold triples
with ``autoglm.extraction.scoring`` (Strict / Exact / Partial / Type, SemEval-2013 counts, and
whole-triple match), overall and per category. The candidates and the references go to
``--candidates-dir`` in the challenge's XML format (and the candidates as JSON lines), so that the
challenge's own script can be run on them.

(b) **Throughput**: the dev texts as text documents through the parser service (Kafka in and out,
the service's extraction, acknowledgements), timed from the first publish to the last parsed
document read back, against bare ``extractor.extract`` on the same texts in batches of the
parser's batch size in this process (the approach of ``bench/ingest.py`` for spaCy). Graph-builder
is not running meanwhile. Also says whether the service's triples are the bare extractor's.

(c) **Text to answers**: an emptied graph; the dev texts ingested as free-text documents through
Kafka (parser, graph-builder; no triples given), then one question per distinct (subject,
predicate) of the gold triples, made from the predicate's name by a small template set
(camelCase split: ``leaderName`` -> "what is the leader name of [Aarhus]"), asked through the
whole pipeline as ``autoglm eval`` asks (``PipelineClient``, at most ``--concurrency`` in flight).
Hits@1: the first answer, normalised as the scorer normalises names, is one of the gold objects
of that subject and predicate.

Timed figures are the median of ``--runs`` runs after an untimed warm-up, with min and max and
every run in the JSON. Runs on a stack of its own (ports below; started when not running), never
on a developer's graph: part (c) empties the graph it measures::

    .venv/bin/python bench/extraction.py                 # or: make bench-extraction
    .venv/bin/python bench/extraction.py --only quality  # no servers needed

It writes ``bench/results/extraction.json`` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from common import (
    add_stack_arguments,
    device_name,
    env_of,
    git_commit,
    machine,
    percentile,
    run_on_own_stack,
    versions,
)
from ingest import empty_graph, parsed_documents_reader

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.cli.requests import ingest
from autoglm.cli.services import ServiceManager
from autoglm.contracts import (
    SCHEMA_VERSION,
    DeadLetter,
    Document,
    DocumentFormat,
    ParsedDocument,
    Question,
    Result,
    ResultStatus,
    decode,
)
from autoglm.extraction import load_extractor
from autoglm.extraction.align import find_spans
from autoglm.extraction.schema import Schema
from autoglm.extraction.scoring import headline, normalise_name, score
from autoglm.extraction.types import ExtractedTriple, TextExtractor
from autoglm.extraction.webnlg import (
    Triple,
    WebNLGText,
    from_webnlg_entity,
    is_webnlg_literal,
    predicates,
    read_entries,
    read_texts,
    webnlg_triples,
    write_candidates_xml,
    write_jsonl,
    write_references_xml,
)
from autoglm.graph.store import GraphStore
from autoglm.redis_access import async_client
from autoglm.settings import PROJECT_ROOT, Settings
from services.parser.app import ParserSettings

DATA = PROJECT_ROOT.parent / "shared" / "data" / "webnlg"
OUTPUT = PROJECT_ROOT / "bench" / "results" / "extraction.json"
CANDIDATES_DIR = PROJECT_ROOT / ".stack" / "bench-ext" / "candidates"
PARTS = ("quality", "throughput", "qa")


# -- schema and extraction ------------------------------------------------------------------


def train_schema() -> Schema:
    """The relation schema: the train split's predicate names, nothing else (no descriptions,
    types or examples), so that dev scores say what names alone buy."""
    return Schema.from_names(predicates(read_entries(DATA / "train")), "WebNLG train predicates")


def service_schema(
    settings: ParserSettings, schema: Schema, folder: Path, setting: str
) -> tuple[ParserSettings, str]:
    """The parser service's settings with the same schema (a file of names, one a line, in
    ``setting``), when the service has that setting; and what the service was given."""
    if setting not in type(settings).model_fields:
        return settings, f"the service's own (it has no {setting!r} setting)"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "schema.txt"
    path.write_text("\n".join(schema.names) + "\n", encoding="utf-8")
    return settings.model_copy(update={setting: path}), f"{setting}={path}"


def extract_all(
    extractor: TextExtractor, texts: Sequence[str], batch_size: int, label: str = ""
) -> tuple[list[list[Triple]], float]:
    """WebNLG triples of every text, ``batch_size`` texts a call; and the seconds it took."""
    found: list[list[Triple]] = []
    started = time.perf_counter()
    step = max(1, len(texts) // 10 // batch_size) * batch_size
    for start in range(0, len(texts), batch_size):
        for facts in extractor.extract(texts[start : start + batch_size]):
            found.append(webnlg_triples(facts))
        done = min(len(texts), start + batch_size)
        if label and (done % step < batch_size or done == len(texts)):
            rate = done / (time.perf_counter() - started)
            print(f"  {label}: {done}/{len(texts)} texts, {rate:.1f}/s", file=sys.stderr)
    return found, time.perf_counter() - started


def spread(values: Sequence[float], digits: int = 2) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits) for v in values],
    }


# -- (a) quality ----------------------------------------------------------------------------


def quality_benchmark(
    settings: ParserSettings,
    extractor: TextExtractor,
    texts: Sequence[WebNLGText],
    candidates_dir: Path,
) -> dict[str, Any]:
    print(f"quality: extracting {len(texts)} dev texts", file=sys.stderr)
    candidates, seconds = extract_all(
        extractor, [t.text for t in texts], settings.parser_batch_size, "extract"
    )
    print("quality: scoring", file=sys.stderr)
    started = time.perf_counter()
    report = score([t.triples for t in texts], candidates, [t.category for t in texts])
    scoring_s = time.perf_counter() - started
    write_candidates_xml(candidates_dir / "dev_candidates.xml", texts, candidates)
    write_references_xml(candidates_dir / "dev_references.xml", texts)
    write_jsonl(candidates_dir / "dev_candidates.jsonl", [t.id for t in texts], candidates)
    return {
        "what": "WebNLG+ 2020 dev texts -> triples with the train split's predicate names as "
        "the schema; scored with the WebNLG 2020 Text-to-RDF definitions (see "
        "autoglm/extraction/scoring.py: precision/recall/f1 as the challenge averages them, "
        "micro_* from the summed SemEval counts)",
        "texts": len(texts),
        "f1": headline(report["overall"]),
        "overall": report["overall"],
        "per_category": report["per_category"],
        "texts_without_triples": sum(1 for c in candidates if not c),
        "extraction_s": round(seconds, 2),
        "extraction_texts_per_s": round(len(texts) / seconds, 1),
        "scoring_s": round(scoring_s, 2),
        "candidates": {
            "xml": str(candidates_dir / "dev_candidates.xml"),
            "references_xml": str(candidates_dir / "dev_references.xml"),
            "jsonl": str(candidates_dir / "dev_candidates.jsonl"),
        },
    }


# -- (b) throughput -------------------------------------------------------------------------


def text_document(text: str, source: str) -> Document:
    return Document(
        request_id=new_request_id(),
        schema_version=SCHEMA_VERSION,
        document_id=f"bench:{uuid.uuid4().hex}",
        format=DocumentFormat.DOCUMENT_FORMAT_TEXT,
        text=text,
        source=source,
    )


async def through_parser(
    settings: Settings, texts: Sequence[str], timeout_s: float
) -> tuple[float, dict[int, ParsedDocument]]:
    """Publish every text as a document; read the parsed documents back (``bench/ingest.py``'s
    way: a reader on parsed-documents, positioned at the end before publishing)."""
    documents = [text_document(text, f"dev:{i}") for i, text in enumerate(texts)]
    position = {d.request_id: i for i, d in enumerate(documents)}
    parsed: dict[int, ParsedDocument] = {}
    consumer, _ = await parsed_documents_reader(settings)
    try:
        async with PipelineClient(settings) as client:
            started = time.perf_counter()
            await asyncio.gather(
                *(client.publish(topics.DOCUMENTS, d, key=d.document_id) for d in documents)
            )
            deadline = time.monotonic() + timeout_s
            while len(parsed) < len(documents):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(documents) - len(parsed)} documents never parsed")
                await _read_parsed(consumer, position, parsed)
            return time.perf_counter() - started, parsed
    finally:
        await consumer.stop()


async def _read_parsed(
    consumer: AIOKafkaConsumer, position: dict[str, int], parsed: dict[int, ParsedDocument]
) -> None:
    batches = await consumer.getmany(timeout_ms=1000)
    for records in batches.values():
        for record in records:
            headers = {k: v.decode() for k, v in record.headers or ()}
            document = decode(ParsedDocument, record.value, headers)
            if document.request_id in position:
                parsed[position[document.request_id]] = document


def service_triples(document: ParsedDocument) -> list[Triple]:
    """The parsed document's triples, as ``webnlg_triples`` writes an extractor's."""
    return webnlg_triples(
        ExtractedTriple(
            t.subject,
            t.predicate,
            t.object,
            t.sentence,
            t.start_char,
            t.end_char,
            t.confidence,
            object_literal=t.object_literal,
        )
        for t in document.triples
    )


async def throughput_benchmark(
    settings: ParserSettings,
    manager: ServiceManager,
    extractor: TextExtractor,
    texts: Sequence[WebNLGText],
    runs: int,
) -> dict[str, Any]:
    contents = [t.text for t in texts]
    batch = settings.parser_batch_size
    extract_all(extractor, contents[: 2 * batch], batch)  # warm-up
    bare: list[float] = []
    bare_triples: list[list[Triple]] = []
    for run in range(runs):
        bare_triples, seconds = extract_all(extractor, contents, batch)
        bare.append(seconds)
        print(f"  bare extraction, run {run + 1}: {seconds:.1f} s", file=sys.stderr)
    service: list[float] = []
    parsed: dict[int, ParsedDocument] = {}
    try:
        manager.start(["parser"])
        await through_parser(settings, contents[: 2 * batch], 300.0)  # warm-up
        for run in range(runs):
            seconds, parsed = await through_parser(settings, contents, 900.0)
            service.append(seconds)
            print(f"  parser service, run {run + 1}: {seconds:.1f} s", file=sys.stderr)
    finally:
        manager.stop(["parser"])
    same = sum(
        1
        for i, triples in enumerate(bare_triples)
        if set(service_triples(parsed[i])) == set(triples)
    )
    bare_rate = len(texts) / statistics.median(bare)
    service_rate = len(texts) / statistics.median(service)
    return {
        "what": "WebNLG dev texts as text documents through the parser service (Kafka in and "
        "out, extraction, acknowledgements) vs bare extractor.extract of the same texts in "
        "batches of parser_batch_size in one process",
        "condition": "warm (service running, untimed warm-up batch); graph-builder stopped",
        "documents": len(texts),
        "batch_size": batch,
        "bare_s": spread(bare),
        "bare_docs_per_s": round(bare_rate, 1),
        "service_s": spread(service),
        "service_docs_per_s": round(service_rate, 1),
        "throughput_ratio_service_to_bare": round(service_rate / bare_rate, 2),
        "extractor_version_bare": extractor.version,
        "extractor_versions_service": sorted({d.extractor_version for d in parsed.values()}),
        "documents_with_the_bare_triples": same,
    }


# -- (c) text to answers ---------------------------------------------------------------------

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_PREPOSITIONS = frozenset({"by", "in", "to", "of", "at", "for", "with", "from", "as"})


def relation_words(predicate: str) -> list[str]:
    """``leaderName`` -> [leader, name]; ``associatedBand/associatedMusicalArtist`` -> [...,
    or, ...]; ``LCCN_number`` -> [lccn, number]."""
    text = _CAMEL.sub(r"\1 \2", predicate).replace("_", " ").replace("/", " or ")
    return text.lower().split()


def question_for(subject: str, predicate: str) -> str:
    """A question from the predicate's name alone (no per-item writing), the subject bracketed.

    - ``has ...``: "what does [S] have to its north" / "what does [S] have as deputy";
    - ``is ...`` / ``was ...``: "what is [S] part of";
    - ending in a preposition (a passive or prepositional name): "what is [S] influenced by";
    - anything else, a noun phrase: "what is the runway length of [S]".
    """
    words = relation_words(predicate)
    name = f"[{from_webnlg_entity(subject)}]"
    if words[0] == "has" and len(words) > 1:
        rest = " ".join(words[1:])
        return f"what does {name} have {rest if words[1] == 'to' else 'as ' + rest}"
    if words[0] in ("is", "was") and len(words) > 1:
        return f"what {words[0]} {name} {' '.join(words[1:])}"
    if words[-1] in _PREPOSITIONS:
        return f"what is {name} {' '.join(words)}"
    return f"what is the {' '.join(words)} of {name}"


def qa_items(texts: Sequence[WebNLGText]) -> list[dict[str, Any]]:
    """One question per distinct (subject, predicate) of the texts' gold triples, in first-seen
    order; gold answers are every object the texts give that subject and predicate."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for text in texts:
        for subject, predicate, obj in text.triples:
            item = items.setdefault(
                (subject, predicate),
                {
                    "question": question_for(subject, predicate),
                    "category": text.category,
                    "answers": set(),
                    "literal": False,
                    "stated": False,
                },
            )
            item["answers"].add(normalise_name(obj))
            item["literal"] |= is_webnlg_literal(obj)
            # The goal is set on questions whose answer the text states (in a findable form).
            item["stated"] |= bool(find_spans(text.text, obj))
    return list(items.values())


def _status(reply: Result | DeadLetter | Any | None) -> str:
    if reply is None:
        return "TIMEOUT"
    if isinstance(reply, DeadLetter):
        return f"DEAD_LETTER:{reply.error_type}"
    if isinstance(reply, Result):
        return ResultStatus.Name(reply.status)
    return type(reply).__name__


async def ask_all(
    settings: Settings,
    items: Sequence[dict[str, Any]],
    concurrency: int,
    timeout_s: float,
    quiet: bool = False,
) -> dict[str, Any]:
    """Every question through the pipeline, ``concurrency`` in flight (``autoglm eval``'s way),
    scored against normalised gold names."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    models: set[str] = set()
    hits = {"all": [0, 0], "entity": [0, 0], "literal": [0, 0], "answer_stated": [0, 0]}
    per_category: dict[str, list[int]] = {}
    done = 0
    async with PipelineClient(settings) as client:

        async def one(item: dict[str, Any]) -> None:
            nonlocal done
            async with gate:
                question = Question(
                    request_id=new_request_id(),
                    schema_version=SCHEMA_VERSION,
                    text=item["question"],
                    hops=1,
                    top_k=5,
                )
                client.expect([question.request_id])
                sent = time.perf_counter()
                await client.publish(topics.QUESTIONS, question, key=question.request_id)
                try:
                    reply = await client.reply(question.request_id, timeout_s)
                except TimeoutError:
                    reply = None
                latencies.append(time.perf_counter() - sent)
            status = _status(reply)
            statuses[status] = statuses.get(status, 0) + 1
            hit = False
            if isinstance(reply, Result) and reply.status == ResultStatus.RESULT_STATUS_OK:
                models.add(reply.model_version)
                hit = (
                    bool(reply.answers) and normalise_name(reply.answers[0].name) in item["answers"]
                )
            kinds = ["all", "literal" if item["literal"] else "entity"]
            if item.get("stated"):
                kinds.append("answer_stated")
            for key in kinds:
                hits[key][0] += hit
                hits[key][1] += 1
            tally = per_category.setdefault(item["category"], [0, 0])
            tally[0] += hit
            tally[1] += 1
            done += 1
            if not quiet and (done % 500 == 0 or done == len(items)):
                print(f"  asked {done}/{len(items)}", file=sys.stderr)

        started = time.perf_counter()
        await asyncio.gather(*(one(item) for item in items))
        seconds = time.perf_counter() - started
    return {
        "questions": len(items),
        "hits@1": {k: round(h / n, 4) if n else 0.0 for k, (h, n) in hits.items()},
        "questions_by_answer_kind": {k: n for k, (_, n) in hits.items() if k != "all"},
        "hits@1_per_category": {
            c: round(h / n, 4) for c, (h, n) in sorted(per_category.items()) if n
        },
        "statuses": statuses,
        "seconds": round(seconds, 2),
        "questions_per_second": round(len(items) / seconds, 1) if seconds else 0.0,
        "latency_ms": {
            q: round(1000 * percentile(latencies, float(q[1:])), 1) for q in ("p50", "p95", "p99")
        },
        "concurrency": concurrency,
        "model_versions": sorted(models),
    }


async def flush_caches(settings: Settings) -> None:
    """Empties the benchmark stack's own Redis (never a developer's: see the ports)."""
    client = async_client(settings, timeout_s=60.0)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def qa_benchmark(
    settings: Settings, texts: Sequence[WebNLGText], args: argparse.Namespace
) -> dict[str, Any]:
    items = qa_items(texts)[: args.questions]
    manager = ServiceManager(settings, env=env_of(settings))
    manager.stop()
    store = GraphStore.connect(settings)
    try:
        await empty_graph(store)
        await flush_caches(settings)
        manager.start(["parser", "graph-builder", "inference"])
        documents = [
            Document(
                request_id=new_request_id(),
                schema_version=SCHEMA_VERSION,
                document_id=f"webnlg:dev:{text.id}",
                format=DocumentFormat.DOCUMENT_FORMAT_TEXT,
                text=text.text,
                source=f"webnlg dev {text.id}",
            )
            for text in texts
        ]
        print(f"qa: ingesting {len(documents)} dev texts through Kafka", file=sys.stderr)
        summary = await ingest(settings, documents, 1800.0)
        # Warm-up (encoder loaded, query plans), untimed; then cold caches for the real run.
        await ask_all(settings, items[: args.concurrency], args.concurrency, 300.0, quiet=True)
        await flush_caches(settings)
        print(f"qa: asking {len(items)} questions", file=sys.stderr)
        answers = await ask_all(settings, items, args.concurrency, 300.0)
    finally:
        manager.stop()
        await store.close()
    return {
        "what": "dev texts ingested as free text through Kafka into an emptied graph (parser, "
        "graph-builder), then one question per distinct (subject, predicate) of their gold "
        "triples, from a template per predicate name, through the whole pipeline; Hits@1: the "
        "first answer, normalised as the scorer normalises names, is a gold object",
        "ingest": {
            "documents": summary.documents,
            "seconds": round(summary.seconds, 2),
            "documents_per_second": round(summary.documents / summary.seconds, 1)
            if summary.seconds
            else 0.0,
            "dead_letters": summary.dead_letters,
            "graph_entities": summary.graph_entities,
            "graph_relations": summary.graph_relations,
        },
        "condition": "services warm (untimed warm-up questions), Redis caches flushed before "
        "the timed questions",
        "question_examples": [item["question"] for item in items[:5]],
        **answers,
    }


# -- driver ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=PARTS, help="one part (the others are kept as they were)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs in the throughput part")
    parser.add_argument("--texts", type=int, default=None, help="first N dev texts (default all)")
    parser.add_argument("--questions", type=int, default=None, help="at most N questions")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--candidates-dir", type=Path, default=CANDIDATES_DIR)
    parser.add_argument(
        "--schema-setting",
        default="extraction_schema",
        help="parser setting that takes a schema file: the service gets the train schema too",
    )
    add_stack_arguments(parser, 29000, "bench-ext", OUTPUT)
    return parser.parse_args(argv)


def report_header(extractor: TextExtractor, schema: Schema, texts: int) -> dict[str, Any]:
    commit = git_commit()
    return {
        "benchmark": "extraction",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": commit.endswith("+changes"),
        "device": device_name(),
        "machine": machine(),
        "versions": versions(),
        "data": "WebNLG+ 2020 English dev (texts) and train (schema: predicate names only)",
        "dev_texts": texts,
        "schema_relations": len(schema),
        "extractor_version": extractor.version,
        "timing": "median, min and max of --runs runs after an untimed warm-up",
    }


def keep_earlier_parts(report: dict[str, Any], output: Path) -> None:
    """One part re-measured: keep the others from the earlier report, saying so."""
    if not output.is_file():
        return
    earlier = json.loads(output.read_text(encoding="utf-8"))
    for part in PARTS:
        if part not in report and part in earlier:
            report[part] = earlier[part]
            report.setdefault("earlier_parts", {})[part] = {
                "commit": earlier.get("commit"),
                "date": earlier.get("date"),
            }


def setup(
    args: argparse.Namespace, settings: Settings
) -> tuple[ParserSettings, TextExtractor, Schema, list[WebNLGText]]:
    parser_settings = ParserSettings(**settings.model_dump())
    schema = train_schema()
    texts = read_texts(DATA / "dev")[: args.texts]
    extractor: TextExtractor = load_extractor(parser_settings, schema)
    return parser_settings, extractor, schema, texts


async def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    parser_settings, extractor, schema, texts = setup(args, settings)
    report = report_header(extractor, schema, len(texts))
    if args.only in (None, "quality"):
        report["quality"] = quality_benchmark(
            parser_settings, extractor, texts, args.candidates_dir
        )
    if args.only in (None, "throughput"):
        print("throughput: parser service vs bare extraction", file=sys.stderr)
        # Topics of their own: the graph-builder of part (c) must not find these documents.
        prefix = f"{settings.topic_prefix}parser."
        service_settings = ParserSettings(
            **{
                **parser_settings.model_dump(),
                "topic_prefix": prefix,
                "consumer_group_prefix": prefix,
            }
        )
        service_settings, given = service_schema(
            service_settings, schema, args.candidates_dir.parent, args.schema_setting
        )
        manager = ServiceManager(service_settings, env=env_of(service_settings))
        manager.stop(["parser"])
        report["throughput"] = await throughput_benchmark(
            service_settings, manager, extractor, texts, args.runs
        )
        report["throughput"]["service_schema"] = given
    if args.only in (None, "qa"):
        report["qa"] = await qa_benchmark(settings, texts, args)
    keep_earlier_parts(report, args.output)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.only == "quality":
        # No servers: the quality part reads files and runs the extractor in this process.
        report = asyncio.run(run(args, Settings()))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(report, indent=2, ensure_ascii=False)
        args.output.write_text(text + "\n", encoding="utf-8")
        print(text)
        return report
    return run_on_own_stack(args, run)


if __name__ == "__main__":
    main()
