"""Inference benchmark: dynamic batching in the inference service, and the whole pipeline.

(a) **Service**: real MetaQA reasoning inputs (validation questions, subgraphs retrieved from the
KB by the graph-builder's retriever) published straight to ``reasoning-inputs`` with
``--concurrency`` requests in flight, answered by the inference service (a real process on the
real Kafka, answer cache off) with ``max_batch_size`` 1 and then ``--batch-size``. Throughput is
answered requests per second after an untimed warm-up; latency is publish to result.

(b) **Pipeline**: ``autoglm eval``'s code on the validation part of each dev split (the part
training never saw), questions through parser, graph-builder (entity linking and retrieval on
the full MetaQA graph in Neo4j) and inference, with the brackets kept and removed. Reports
Hits@1, errors, questions per second and latency per hop.

The serving version of ``--registry`` (a trained model) is what is measured. Runs on a stack of
its own (ports below; started when not running; the KB is loaded when the graph lacks it)::

    .venv/bin/python bench/inference.py          # or: make bench-inference

It writes ``bench/results/inference.json`` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from rich.console import Console

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.cli.evaluate import QAItem, evaluate
from autoglm.cli.services import ServiceManager
from autoglm.contracts import (
    SCHEMA_VERSION,
    ParsedQuestion,
    Question,
    ReasoningInput,
    Result,
    ResultStatus,
)
from autoglm.graph.bulk import load_kb_direct
from autoglm.graph.store import GraphStore
from autoglm.nlp.parsing import strip_brackets
from autoglm.redis_access import async_client
from autoglm.registry import ModelRegistry
from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.training.metaqa import QAExample, read_qa, split_dev
from autoglm.training.samples import SampleCaps, kb_retriever, retrieve_samples

DATA = PROJECT_ROOT.parent / "shared" / "data" / "metaqa"
OUTPUT = PROJECT_ROOT / "bench" / "results" / "inference.json"
BATCHING_GOAL = 4.0
PIPELINE_GOAL_QPS = 100.0


def validation_examples(hops: int, fraction: float, limit: int | None) -> list[QAExample]:
    examples = read_qa(DATA / f"{hops}hop_dev.txt", DATA / f"{hops}hop_dev_qtype.txt", hops)
    return split_dev(examples, fraction)[1][:limit]


def reasoning_inputs(settings: Settings, examples: Sequence[QAExample]) -> list[ReasoningInput]:
    retriever = kb_retriever(settings, DATA / "kb.txt")
    caps = SampleCaps(settings.subgraph_max_nodes, settings.subgraph_max_edges)
    samples = retrieve_samples(retriever, examples, caps, "retrieve inputs")
    inputs = []
    for example, sample in zip(examples, samples, strict=True):
        inputs.append(
            ReasoningInput(
                schema_version=SCHEMA_VERSION,
                question=ParsedQuestion(
                    normalized_text=sample.question, question=Question(text=example.question)
                ),
                hops=example.hops,
                top_k=5,
                status=ResultStatus.RESULT_STATUS_OK,
                subgraph=sample.subgraph,
                graph_version=1,
            )
        )
    return inputs


async def drive(
    settings: Settings, inputs: Sequence[ReasoningInput], concurrency: int
) -> dict[str, Any]:
    """Every input published once (fresh request ids), ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    versions_seen: set[str] = set()
    errors = 0
    async with PipelineClient(settings) as client:

        async def one(template: ReasoningInput) -> None:
            nonlocal errors
            item = ReasoningInput()
            item.CopyFrom(template)
            item.request_id = new_request_id()
            async with gate:
                client.expect([item.request_id])
                sent = time.perf_counter()
                await client.publish(topics.REASONING_INPUTS, item, key=item.request_id)
                reply = await client.reply(item.request_id, 300.0)
                latencies.append(time.perf_counter() - sent)
            if isinstance(reply, Result) and reply.status == ResultStatus.RESULT_STATUS_OK:
                versions_seen.add(reply.model_version)
            else:
                errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(item) for item in inputs))
        seconds = time.perf_counter() - started
    return {
        "requests": len(inputs),
        "errors": errors,
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(inputs) / seconds, 2),
        "latency_ms": {
            q: round(1000 * percentile(latencies, float(q[1:])), 1) for q in ("p50", "p95", "p99")
        },
        "model_versions": sorted(versions_seen),
    }


async def service_benchmark(
    settings: Settings, inputs: Sequence[ReasoningInput], args: argparse.Namespace
) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for batch_size in (1, args.batch_size):
        prefix = f"{settings.topic_prefix}b{batch_size}."
        run_settings = settings.model_copy(
            update={
                "topic_prefix": prefix,
                "consumer_group_prefix": prefix,
                "max_batch_size": batch_size,
                "result_cache_enabled": False,
            }
        )
        manager = ServiceManager(run_settings, env=env_of(run_settings))
        manager.stop(["inference"])
        manager.start(["inference"])
        try:
            print(f"batch size {batch_size}: warm-up", file=sys.stderr)
            await drive(run_settings, inputs[: args.concurrency], args.concurrency)
            print(f"batch size {batch_size}: {len(inputs)} requests", file=sys.stderr)
            runs[f"max_batch_size_{batch_size}"] = await drive(
                run_settings, inputs, args.concurrency
            )
        finally:
            manager.stop(["inference"])
    one = runs["max_batch_size_1"]["requests_per_second"]
    many = runs[f"max_batch_size_{args.batch_size}"]["requests_per_second"]
    return {
        "concurrency": args.concurrency,
        "max_batch_wait_ms": settings.max_batch_wait_ms,
        "inputs": "MetaQA 1-hop validation questions with their retrieved subgraphs",
        **runs,
        "speedup": round(many / one, 2),
        "goal_speedup": BATCHING_GOAL,
    }


async def ensure_kb(settings: Settings) -> dict[str, int]:
    store = GraphStore.connect(settings)
    try:
        await store.ensure_schema()
        query = "RETURN COUNT { (:Entity) } AS entities, COUNT { ()-[:REL]->() } AS relations"
        (row,) = await store.run_read(query)
        if int(row["relations"]) == 0:
            await load_kb_direct(store, DATA / "kb.txt")
            (row,) = await store.run_read(query)
        return {"entities": int(row["entities"]), "relations": int(row["relations"])}
    finally:
        await store.close()


async def flush_caches(settings: Settings) -> None:
    """Empties the benchmark stack's own Redis (never a developer's: see the ports)."""
    client = async_client(settings, timeout_s=60.0)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def pipeline_benchmark(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    graph = await ensure_kb(settings)
    manager = ServiceManager(settings, env=env_of(settings))
    manager.stop()
    manager.start()
    console = Console(stderr=True)
    report: dict[str, Any] = {
        "graph": graph,
        "concurrency": args.concurrency,
        "caches": "Redis flushed before each run: subgraph, encoding and answer caches cold",
    }
    try:
        warm = [QAItem(e.question, frozenset(e.answers)) for e in validation_examples(1, 0.2, 64)]
        await evaluate(
            settings, warm, hops=1, concurrency=args.concurrency, timeout_s=300, console=console
        )
        for hops in args.hops:
            examples = validation_examples(hops, args.validation_fraction, args.eval_questions)
            for brackets in (True, False):
                items = [
                    QAItem(
                        e.question if brackets else strip_brackets(e.question),
                        frozenset(e.answers),
                    )
                    for e in examples
                ]
                name = f"{hops}hop" + ("" if brackets else "_no_brackets")
                # Cold caches: the no-brackets run asks the same questions again, and its
                # subgraphs, encodings and answers would otherwise all be cache hits.
                await flush_caches(settings)
                print(f"pipeline {name}: {len(items)} questions", file=sys.stderr)
                report[name] = await evaluate(
                    settings,
                    items,
                    hops=hops,
                    concurrency=args.concurrency,
                    timeout_s=300,
                    console=console,
                )
    finally:
        manager.stop()
    report["goal_1hop_questions_per_second"] = PIPELINE_GOAL_QPS
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=Path, default=PROJECT_ROOT / "models")
    parser.add_argument("--requests", type=int, default=1024, help="service benchmark size")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hops", type=lambda t: [int(h) for h in t.split(",")], default=[1, 2, 3])
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument(
        "--eval-questions", type=int, default=None, help="per hop (default: all validation)"
    )
    parser.add_argument("--only", choices=("service", "pipeline"))
    add_stack_arguments(parser, 28000, "bench-inf", OUTPUT)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    registry = ModelRegistry(settings.model_registry_dir)
    serving = registry.get(registry.serving_version())
    if serving.path is None:
        raise SystemExit(f"{args.registry} serves no trained model: run `autoglm train` first")
    report: dict[str, Any] = {
        "benchmark": "inference",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "device": device_name(),
        "machine": machine(),
        "versions": versions(),
        "model": {
            "version": serving.version,
            "validation_metrics_at_training": serving.meta.get("metrics", {}),
        },
    }
    if args.only in (None, "service"):
        examples = validation_examples(1, args.validation_fraction, None)
        # Retrieval runs its own event loop: off this one.
        inputs = await asyncio.to_thread(
            reasoning_inputs, settings, (examples * 4)[: args.requests]
        )
        report["service"] = await service_benchmark(settings, inputs, args)
    if args.only in (None, "pipeline"):
        report["pipeline"] = await pipeline_benchmark(settings, args)
    if args.only and args.output.is_file():
        # One part re-measured: keep the other from the earlier report, saying so.
        earlier = json.loads(args.output.read_text(encoding="utf-8"))
        for part in ("service", "pipeline"):
            if part not in report and part in earlier:
                report[part] = earlier[part]
                report.setdefault("earlier_parts", {})[part] = {
                    "commit": earlier.get("commit"),
                    "date": earlier.get("date"),
                }
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    return run_on_own_stack(args, run, model_registry_dir=args.registry)


if __name__ == "__main__":
    main()
