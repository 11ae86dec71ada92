"""Entity-linking benchmark: MetaQA dev questions with the brackets removed.

For a deterministic sample of each dev split (``--sample`` per hop, ``--seed``), the question is
stripped of its brackets, parsed by the parser's own code (spaCy NER, as the parser service
does), and linked by ``EntityLinker.link(mentions, text=normalized_text)`` against a Neo4j that
holds the full MetaQA KB. The bracketed entity is the gold anchor; a case variant of it counts as
correct (MetaQA holds "War" and "war" as two entities that a reader cannot tell apart).

Figures per hop: top-anchor accuracy, gold among the anchors, ambiguous (no anchor, candidates
reported), unlinked (no anchor, no candidate), wrong (an anchor, not the gold), questions with
anchors from more than one span, and the linking latency per question (sequential calls, so it
is the latency of one question, not throughput; Neo4j round trips dominate it). Parsing time
is reported apart. Sections: ``cased`` (the dev questions as written); ``lowercase`` (the same
questions in lower case, a user who does not capitalise, where the case that separates "Fall"
the film from "fall under" is gone); with ``--ablation``, ``cased_without_question_words`` (the
linker with spaCy's stop words only, without the question words mined from MetaQA).

Run against the test stack of the linking work (see the module's ``--help``)::

    .venv/bin/python bench/linking.py --neo4j-port 23687 --neo4j-password autoglm-test-secret \
        --load-kb-if-missing --sample 0 --ablation   # 0 = every question (~20 min, 2 cores)

It writes ``bench/results/linking.json`` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autoglm.graph.bulk import load_kb_direct
from autoglm.graph.linking import EntityLinker
from autoglm.graph.store import GraphStore
from autoglm.nlp.keys import lookup_key
from autoglm.nlp.parsing import BRACKET_PATTERN, ParsedQuestionText, TextParser, strip_brackets
from autoglm.settings import PROJECT_ROOT, Settings

DATA = PROJECT_ROOT.parent / "shared" / "data" / "metaqa"
OUTPUT = PROJECT_ROOT / "bench" / "results" / "linking.json"


@dataclass(frozen=True)
class DevQuestion:
    line: int
    text: str  # brackets removed
    gold: str


def read_dev(path: Path) -> list[DevQuestion]:
    questions = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            question = line.split("\t", 1)[0]
            match = BRACKET_PATTERN.search(question)
            if match is None:
                raise ValueError(f"{path}:{number}: no [topic entity]")
            questions.append(DevQuestion(number, strip_brackets(question), match.group(1)))
    return questions


def sample(questions: Sequence[DevQuestion], size: int, seed: int) -> list[DevQuestion]:
    """``size`` questions drawn with ``random.Random(seed)``, in file order; all when 0."""
    if size <= 0 or size >= len(questions):
        return list(questions)
    chosen = sorted(random.Random(seed).sample(range(len(questions)), size))
    return [questions[i] for i in chosen]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


async def evaluate(
    linker: EntityLinker,
    questions: Sequence[DevQuestion],
    parsed: Sequence[ParsedQuestionText],
    *,
    parse_ms: float,
    examples: int,
) -> dict[str, Any]:
    counts = dict.fromkeys(
        ("top_correct", "gold_in_anchors", "ambiguous", "gold_in_ambiguous", "unlinked", "wrong"),
        0,
    )
    counts["multi_span_anchors"] = 0
    latencies: list[float] = []
    failures: list[dict[str, Any]] = []
    for question, parsed_question in zip(questions, parsed, strict=True):
        gold = lookup_key(question.gold)
        started = time.perf_counter()
        report = await linker.link(parsed_question.mentions, text=parsed_question.normalized_text)
        latencies.append((time.perf_counter() - started) * 1000.0)
        outcome = None
        if report.anchors:
            if lookup_key(report.anchors[0].key) == gold:
                counts["top_correct"] += 1
            else:
                counts["wrong"] += 1
                outcome = "wrong"
            counts["gold_in_anchors"] += any(lookup_key(a.key) == gold for a in report.anchors)
            counts["multi_span_anchors"] += len({a.mention for a in report.anchors}) > 1
        elif report.ambiguous_candidates:
            counts["ambiguous"] += 1
            counts["gold_in_ambiguous"] += any(
                lookup_key(c.key) == gold for c in report.ambiguous_candidates
            )
            outcome = "ambiguous"
        else:
            counts["unlinked"] += 1
            outcome = "unlinked"
        if outcome and len(failures) < examples:
            failures.append(
                {
                    "line": question.line,
                    "question": parsed_question.normalized_text,
                    "gold": question.gold,
                    "outcome": outcome,
                    "anchors": [a.key for a in report.anchors][:5],
                    "ambiguous": [
                        [c.mention, c.key, round(c.score, 2)]
                        for c in report.ambiguous_candidates[:5]
                    ],
                }
            )
    n = len(questions)
    rate = {name: round(value / n, 4) for name, value in counts.items()}
    return {
        "questions": n,
        "top_anchor_accuracy": rate["top_correct"],
        "gold_in_anchors": rate["gold_in_anchors"],
        "ambiguous": rate["ambiguous"],
        "gold_in_ambiguous_candidates": rate["gold_in_ambiguous"],
        "unlinked": rate["unlinked"],
        "wrong_top_anchor": rate["wrong"],
        "multi_span_anchors": rate["multi_span_anchors"],
        "counts": counts,
        "link_latency_ms": {
            "mean": round(statistics.fmean(latencies), 3),
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(percentile(latencies, 95), 3),
            "p99": round(percentile(latencies, 99), 3),
            "max": round(max(latencies), 3),
        },
        "parse_ms_per_question": round(parse_ms, 3),
        "failures": failures,
    }


async def ensure_kb(store: GraphStore, kb: Path, entities: Path, load: bool) -> int:
    expected = sum(1 for line in entities.open(encoding="utf-8") if line.strip())
    (row,) = await store.run_read("MATCH (e:Entity) RETURN count(e) AS n")
    if row["n"] != expected and load:
        await store.ensure_schema()
        await load_kb_direct(store, kb, progress=False)
        (row,) = await store.run_read("MATCH (e:Entity) RETURN count(e) AS n")
    if row["n"] != expected:
        raise SystemExit(
            f"the graph holds {row['n']} entities, the KB {expected}: load it "
            "(--load-kb-if-missing) or point --neo4j-port at a stack that has it"
        )
    return int(row["n"])


async def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sample", type=int, default=1000, help="questions per hop; 0 = all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hops", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--no-lowercase", action="store_true", help="skip the lower-case run")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also link the cased questions without the mined question words (stop words only)",
    )
    parser.add_argument("--examples", type=int, default=10, help="failures kept per hop")
    parser.add_argument("--neo4j-port", type=int, help="default: AUTOGLM_NEO4J_PORT")
    parser.add_argument("--neo4j-password", help="default: AUTOGLM_NEO4J_PASSWORD")
    parser.add_argument("--load-kb-if-missing", action="store_true")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {}
    if args.neo4j_port:
        overrides["neo4j_port"] = args.neo4j_port
    if args.neo4j_password:
        overrides["neo4j_password"] = args.neo4j_password
    settings = Settings(**overrides)
    store = GraphStore.connect(settings)
    try:
        entities = await ensure_kb(
            store, args.data / "kb.txt", args.data / "kb_entities.txt", args.load_kb_if_missing
        )
        (component,) = await store.run_read(
            "CALL dbms.components() YIELD name, versions RETURN name, versions[0] AS version"
        )
        linker = EntityLinker.from_settings(store, settings)
        text_parser = TextParser(settings.spacy_model)
        await linker.link([], text="warm up the driver and the query plans")
        result: dict[str, Any] = {
            "benchmark": "entity linking of MetaQA dev questions with the brackets removed",
            "command": " ".join(
                ["bench/linking.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "sample_per_hop": args.sample or "all",
            "seed": args.seed,
            "correct_if": "top anchor's case-folded key equals the bracketed entity's",
            "linker": {
                "max_span_tokens": linker.max_span_tokens,
                "ambiguity_margin": linker.margin,
                "secondary_min_score": linker.secondary_min_score,
                "fulltext_candidates": linker.fulltext_candidates,
                "spacy_model": settings.spacy_model,
            },
            "graph": {
                "entities": entities,
                "server": f"{component['name']} {component['version']}",
            },
            "machine": {
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "note": "Neo4j runs on the same machine; timings are noisy on shared cores",
            },
            "question_words": {
                "count": len(linker.question_words),
                "source": "words outside the brackets of the MetaQA dev questions that are not "
                "spaCy stop words; the same 79 when mined from the train part of the dev split "
                "alone (is_validation(question, 0.2) false), so the validation part is not "
                "tuned on",
            },
        }
        plain = EntityLinker.from_settings(store, settings)
        plain.question_words = frozenset()
        for hops in args.hops:
            questions = sample(read_dev(args.data / f"{hops}hop_dev.txt"), args.sample, args.seed)
            runs = [("cased", False, linker)]
            if args.ablation:
                runs.append(("cased_without_question_words", False, plain))
            if not args.no_lowercase:
                runs.append(("lowercase", True, linker))
            parses: dict[bool, tuple[list[ParsedQuestionText], float]] = {}
            for section, lowercase, section_linker in runs:
                if lowercase not in parses:
                    texts = [q.text.lower() if lowercase else q.text for q in questions]
                    started = time.perf_counter()
                    parses[lowercase] = (
                        text_parser.parse_questions(texts),
                        (time.perf_counter() - started) * 1000.0 / max(1, len(texts)),
                    )
                parsed, parse_ms = parses[lowercase]
                print(f"{hops}-hop {section}: {len(questions)} questions", file=sys.stderr)
                result.setdefault(section, {})[f"{hops}hop"] = await evaluate(
                    section_linker, questions, parsed, parse_ms=parse_ms, examples=args.examples
                )
    finally:
        await store.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return result


if __name__ == "__main__":
    asyncio.run(main())
