"""Direct batched load of a KB file into Neo4j, without Kafka.

The ingest benchmark compares the pipeline with this, and the retrieval benchmark and tests use
it to get the full MetaQA graph quickly. It goes through the same parsing and write code as the
services (``parse_kb_lines``, ``GraphStore.write_documents``), so the graph it builds is the one
the pipeline builds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from autoglm.contracts import DocumentFormat, ParsedDocument
from autoglm.graph.store import DocumentRows, GraphStore
from autoglm.nlp.parsing import parse_kb_lines

DEFAULT_LINES_PER_BATCH = 10_000
"""Triples per transaction; the graph-builder's batches of KB documents are of this size too."""


@dataclass(frozen=True)
class LoadSummary:
    batches: int
    triples: int
    line_errors: int
    graph_version: int
    seconds: float


def kb_batches(path: Path, lines_per_batch: int) -> list[tuple[int, str]]:
    """(first line number, text) chunks of a KB file."""
    lines = path.read_text(encoding="utf-8").split("\n")
    return [
        (start + 1, "\n".join(lines[start : start + lines_per_batch]))
        for start in range(0, len(lines), lines_per_batch)
        if any(line.strip() for line in lines[start : start + lines_per_batch])
    ]


async def load_kb_direct(
    store: GraphStore,
    path: Path,
    lines_per_batch: int = DEFAULT_LINES_PER_BATCH,
    progress: bool = True,
) -> LoadSummary:
    started = time.perf_counter()
    triples = errors = version = 0
    batches = kb_batches(path, lines_per_batch)
    for first_line, text in tqdm(batches, desc="direct load", unit="batch", disable=not progress):
        parsed_triples, line_errors = parse_kb_lines(text, first_line)
        document = ParsedDocument(
            request_id=f"direct:{path.name}:{first_line}",
            document_id=f"direct:{path.name}:{first_line}",
            format=DocumentFormat.DOCUMENT_FORMAT_TRIPLES,
            source=str(path),
            triples=parsed_triples,
            line_errors=line_errors,
        )
        summary = await store.write_documents([DocumentRows.of(document)])
        triples += len(parsed_triples)
        errors += len(line_errors)
        version = summary.graph_version
    return LoadSummary(len(batches), triples, errors, version, time.perf_counter() - started)
