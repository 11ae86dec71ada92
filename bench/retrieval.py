"""Subgraph-retrieval benchmark: answer recall, subgraph sizes and latency on MetaQA dev questions.

Against a Neo4j holding the full MetaQA KB, for a deterministic sample of each dev split
(``--sample`` per hop, ``random.Random(--seed)``), the question-guided retriever
(``autoglm.graph.retrieval``, settings as configured) retrieves the k-hop subgraph of the
bracketed topic entity (the gold anchor: linking is benchmarked by ``bench/linking.py``), scored
against the question as the graph-builder does.

- **Recall**: the fraction of questions whose gold answers are *all* among the subgraph's nodes
  (and, looser, at least one), at 1, 2 and 3 hops, with the subgraph sizes (nodes, edges:
  median, p90, max), how often caps truncated it, recall per question type, and failures. The
  reasoning model can only find answers that are in the subgraph. The same numbers for a
  bounded breadth-first expansion under the same caps (no question guidance) show what the
  guidance buys.
- **Latency** (hops 2 and 3): ``SubgraphRetriever.retrieve`` per question, sequential calls,
  p50/p99, *cold* (the subgraph is not in Redis: question encoding plus Neo4j queries plus a
  Redis miss and write) and *cached* (a Redis hit), with the per-question cost of the encoder
  (question embedding and path scoring, in-process phrase and word caches warm). The machine
  has two shared cores and Neo4j runs on it: the whole cold-then-cached sequence is run
  ``--repeats`` times on fresh cache namespaces; each statistic is reported as the lowest of
  the runs, every run alongside.

Run it against a stack that holds (or may be given) the KB::

    .venv/bin/python bench/retrieval.py --load-kb-if-missing          # AUTOGLM_* settings
    make bench-retrieval

It writes ``bench/results/retrieval.json`` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from common import git_commit

from autoglm.graph.bulk import load_kb_direct
from autoglm.graph.path_scoring import (
    QuestionEncoding,
    RelationPath,
    RelationPathScorer,
    load_path_scorer,
    scoring_text,
)
from autoglm.graph.questions import guidance_params
from autoglm.graph.retrieval import RetrievalCaps, SubgraphRetriever
from autoglm.graph.store import GraphStore
from autoglm.graph.subgraph_cache import SubgraphCache
from autoglm.nlp.keys import normalize_key
from autoglm.redis_access import async_client
from autoglm.settings import PROJECT_ROOT, Settings

DATA = PROJECT_ROOT.parent / "shared" / "data" / "metaqa"
OUTPUT = PROJECT_ROOT / "bench" / "results" / "retrieval.json"
_TOPIC = re.compile(r"\[([^\]]+)\]")


@dataclass(frozen=True)
class DevQuestion:
    line: int
    text: str  # as in the file, brackets included
    topic: str
    answers: tuple[str, ...]  # entity keys
    qtype: str


def read_dev(data: Path, hops: int) -> list[DevQuestion]:
    qa = (data / f"{hops}hop_dev.txt").read_text(encoding="utf-8").splitlines()
    qtypes = (data / f"{hops}hop_dev_qtype.txt").read_text(encoding="utf-8").splitlines()
    out = []
    for number, (line, qtype) in enumerate(zip(qa, qtypes, strict=True), start=1):
        text, answers = line.split("\t")
        match = _TOPIC.search(text)
        if match is None:
            raise ValueError(f"{hops}hop_dev.txt:{number}: no [topic entity]")
        keys = tuple(normalize_key(a) for a in answers.split("|"))
        out.append(DevQuestion(number, text, match.group(1), keys, qtype))
    return out


def sample(questions: Sequence[DevQuestion], size: int, seed: int) -> list[DevQuestion]:
    """``size`` questions drawn with ``random.Random(seed)``, in file order; all when 0."""
    if size <= 0 or size >= len(questions):
        return list(questions)
    chosen = sorted(random.Random(seed).sample(range(len(questions)), size))
    return [questions[i] for i in chosen]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: Sequence[float], digits: int = 1) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), digits),
        "p90": round(percentile(values, 90), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
        "mean": round(statistics.fmean(values), digits),
    }


def sizes(values: Sequence[int]) -> dict[str, int]:
    return {
        "median": int(percentile(values, 50)),
        "p90": int(percentile(values, 90)),
        "max": max(values),
    }


class TimedScorer(RelationPathScorer):
    """Accumulates the time spent in the encoder and path scoring (per question)."""

    seconds = 0.0

    def encode_question(self, text: str) -> QuestionEncoding:
        started = time.perf_counter()
        try:
            return super().encode_question(text)
        finally:
            self.seconds += time.perf_counter() - started

    def score(self, question: QuestionEncoding, paths: Sequence[RelationPath]) -> list[float]:
        started = time.perf_counter()
        try:
            return super().score(question, paths)
        finally:
            self.seconds += time.perf_counter() - started


def query(question: DevQuestion) -> tuple[list[str], str]:
    """Anchors and scoring text, as the graph-builder makes them for a bracketed question."""
    return [normalize_key(question.topic)], scoring_text(question.text, [question.topic])


async def recall(
    retriever: SubgraphRetriever,
    questions: Sequence[DevQuestion],
    caps: RetrievalCaps,
    guided: bool,
    examples: int,
) -> dict[str, Any]:
    every = some = truncated = 0
    nodes: list[int] = []
    edges: list[int] = []
    latencies: list[float] = []
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    failures: list[dict[str, Any]] = []
    for question in questions:
        anchors, text = query(question)
        started = time.perf_counter()
        subgraph = await retriever.retrieve(anchors, caps, text if guided else None)
        latencies.append((time.perf_counter() - started) * 1000.0)
        keys = {n.key for n in subgraph.nodes}
        found = sum(a in keys for a in question.answers)
        every += found == len(question.answers)
        some += found > 0
        truncated += subgraph.truncated
        nodes.append(len(subgraph.nodes))
        edges.append(len(subgraph.edge_source))
        by_type[question.qtype][0] += 1
        by_type[question.qtype][1] += found == len(question.answers)
        if found < len(question.answers) and len(failures) < examples:
            failures.append(
                {
                    "line": question.line,
                    "question": question.text,
                    "qtype": question.qtype,
                    "answers_found": f"{found}/{len(question.answers)}",
                    "nodes": len(subgraph.nodes),
                    "truncated": subgraph.truncated,
                }
            )
    n = len(questions)
    return {
        "questions": n,
        "recall_all_answers": round(every / n, 4),
        "recall_any_answer": round(some / n, 4),
        "nodes": sizes(nodes),
        "edges": sizes(edges),
        "truncated": round(truncated / n, 4),
        "latency_ms_no_cache": summary(latencies),
        "recall_by_question_type": {
            qtype: {"questions": total, "recall_all_answers": round(ok / total, 4)}
            for qtype, (total, ok) in sorted(by_type.items())
        },
        "failures": failures,
    }


async def latency_run(
    store: GraphStore,
    scorer: TimedScorer,
    settings: Settings,
    questions: dict[int, list[DevQuestion]],
) -> dict[str, Any]:
    """One cold pass and one cached pass per hop count, on a fresh cache namespace."""
    client = async_client(settings)
    cache = SubgraphCache(client, namespace=f"bench-{uuid.uuid4().hex[:8]}:subgraph", ttl_s=600)
    retriever = SubgraphRetriever(
        store, scorer=scorer, cache=cache, guidance=guidance_params(settings)
    )
    version = await store.graph_version()
    out: dict[str, Any] = {}
    try:
        for hops, sampled in questions.items():
            caps = RetrievalCaps(hops, settings.subgraph_max_nodes, settings.subgraph_max_edges)
            timings: dict[str, list[float]] = {"cold": [], "cached": [], "encoder": []}
            for phase in ("cold", "cached"):
                for question in sampled:
                    anchors, text = query(question)
                    scorer.seconds = 0.0
                    started = time.perf_counter()
                    await retriever.retrieve(anchors, caps, text, graph_version=version)
                    timings[phase].append((time.perf_counter() - started) * 1000.0)
                    if phase == "cold":
                        timings["encoder"].append(scorer.seconds * 1000.0)
            out[f"{hops}hop"] = {
                "cold_ms": summary(timings["cold"]),
                "cached_ms": summary(timings["cached"], 2),
                "encoder_and_scoring_ms_per_question": summary(timings["encoder"]),
            }
        hits, misses = cache.stats.hits, cache.stats.misses
        out["cache"] = {"hits": hits, "misses": misses, "errors": cache.stats.errors}
        await client.delete(*[k async for k in client.scan_iter(match=f"{cache.namespace}:*")])
    finally:
        await cache.close()
    return out


async def ensure_kb(store: GraphStore, data: Path, load: bool) -> dict[str, int]:
    expected_entities = sum(1 for line in (data / "kb_entities.txt").open() if line.strip())
    expected_triples = sum(1 for line in (data / "kb.txt").open() if line.strip())
    count = (
        "MATCH (e:Entity) WITH count(e) AS entities "
        "MATCH ()-[r:REL]->() RETURN entities, count(r) AS triples"
    )
    (row,) = await store.run_read(count)
    if (row["entities"], row["triples"]) != (expected_entities, expected_triples) and load:
        await store.ensure_schema()
        await load_kb_direct(store, data / "kb.txt", progress=False)
        (row,) = await store.run_read(count)
    if (row["entities"], row["triples"]) != (expected_entities, expected_triples):
        raise SystemExit(
            f"the graph holds {row['entities']} entities and {row['triples']} relations, the KB "
            f"{expected_entities} and {expected_triples}: load it (--load-kb-if-missing, which "
            "adds to what is there) or point --neo4j-port at a stack that holds only the KB"
        )
    return {"entities": int(row["entities"]), "triples": int(row["triples"])}


async def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sample", type=int, default=500, help="questions per hop; 0 = all")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--hops", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--latency-hops", type=int, nargs="+", default=[2, 3])
    parser.add_argument(
        "--latency-sample", type=int, default=300, help="questions per hop for latency"
    )
    parser.add_argument("--repeats", type=int, default=3, help="latency runs; the best is kept")
    parser.add_argument("--no-unguided", action="store_true", help="skip the BFS comparison")
    parser.add_argument("--examples", type=int, default=10, help="failures kept per hop")
    parser.add_argument("--neo4j-port", type=int, help="default: AUTOGLM_NEO4J_PORT")
    parser.add_argument("--neo4j-password", help="default: AUTOGLM_NEO4J_PASSWORD")
    parser.add_argument("--redis-port", type=int, help="default: AUTOGLM_REDIS_PORT")
    parser.add_argument("--load-kb-if-missing", action="store_true")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {}
    for option, field in (
        ("neo4j_port", "neo4j_port"),
        ("neo4j_password", "neo4j_password"),
        ("redis_port", "redis_port"),
    ):
        if getattr(args, option):
            overrides[field] = getattr(args, option)
    settings = Settings(**overrides)
    store = GraphStore.connect(settings)
    load_before = os.getloadavg()
    try:
        graph = await ensure_kb(store, args.data, args.load_kb_if_missing)
        (component,) = await store.run_read(
            "CALL dbms.components() YIELD name, versions RETURN name, versions[0] AS version"
        )
        started = time.perf_counter()
        base = load_path_scorer(settings)
        load_s = time.perf_counter() - started
        scorer = TimedScorer(
            base.embed,
            lexical_weight=base.lexical_weight,
            word_similarity_floor=base.word_similarity_floor,
            name=base.name,
        )
        guidance = guidance_params(settings)
        guided = SubgraphRetriever(store, scorer=scorer, guidance=guidance)
        unguided = SubgraphRetriever(store)
        # warm up the driver, the query plans and the phrase cache
        warm = sample(read_dev(args.data, 3), 20, args.seed + 1)
        for question in warm:
            anchors, text = query(question)
            await guided.retrieve(anchors, RetrievalCaps(3, 2000, 8000), text)
        result: dict[str, Any] = {
            "benchmark": "question-guided subgraph retrieval on MetaQA dev questions",
            "command": " ".join(
                ["bench/retrieval.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "sample_per_hop": args.sample or "all",
            "seed": args.seed,
            "anchors": "the bracketed topic entity (gold); scoring text without it",
            "recall_all_answers_means": "every gold answer (and at least one) is a subgraph node",
            "caps": {
                "max_nodes": settings.subgraph_max_nodes,
                "max_edges": settings.subgraph_max_edges,
            },
            "retriever": {
                "fingerprint": guided.fingerprint(True),
                "encoder": scorer.name,
                "encoder_device": settings.retrieval_encoder_device,
                "torch_threads": torch.get_num_threads(),
                "encoder_load_s": round(load_s, 2),
                "lexical_weight": scorer.lexical_weight,
                "word_similarity_floor": scorer.word_similarity_floor,
                "margin": guidance.margin,
                "min_keep": guidance.min_keep,
                "beam_width": guidance.beam_width,
                "fanout_penalty": guidance.fanout_penalty,
                "free_branching": guidance.free_branching,
                "expand_all_nodes": guidance.expand_all_nodes,
            },
            "graph": {**graph, "server": f"{component['name']} {component['version']}"},
            "machine": {
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "load_average_at_start": [round(x, 2) for x in load_before],
                "note": "Neo4j and Redis run on the same machine, whose two cores are shared "
                "with other work: timings are noisy; latency is the best of --repeats runs",
            },
            "recall": {},
            "unguided_bfs_same_caps": {},
            "latency": {},
        }
        samples = {h: sample(read_dev(args.data, h), args.sample, args.seed) for h in args.hops}
        for hops, questions in samples.items():
            caps = RetrievalCaps(hops, settings.subgraph_max_nodes, settings.subgraph_max_edges)
            result["recall"][f"{hops}hop"] = await recall(
                guided, questions, caps, True, args.examples
            )
            print(f"{hops}-hop recall: {result['recall'][f'{hops}hop']['recall_all_answers']}")
            if not args.no_unguided:
                bfs = await recall(unguided, questions, caps, False, 0)
                del bfs["failures"], bfs["recall_by_question_type"]
                result["unguided_bfs_same_caps"][f"{hops}hop"] = bfs
        latency_questions = {
            h: sample(read_dev(args.data, h), args.latency_sample, args.seed + 100 + h)
            for h in args.latency_hops
        }
        runs = [
            await latency_run(store, scorer, settings, latency_questions)
            for _ in range(args.repeats)
        ]
        result["latency"] = {
            "questions_per_hop": args.latency_sample,
            "runs": args.repeats,
            "best_of_runs": {
                f"{h}hop": {
                    phase: {
                        stat: min(run[f"{h}hop"][phase][stat] for run in runs)
                        for stat in ("p50", "p90", "p99", "mean")
                    }
                    for phase in ("cold_ms", "cached_ms", "encoder_and_scoring_ms_per_question")
                }
                for h in args.latency_hops
            },
            "best_of_runs_means": "each statistic is the lowest of the runs (noisy shared cores)",
            "each_run": runs,
        }
        result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        await store.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return result


if __name__ == "__main__":
    asyncio.run(main())
