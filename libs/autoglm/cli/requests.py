"""CLI requests through Kafka: ingest documents, ask questions, print what comes back."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.contracts import (
    SCHEMA_VERSION,
    DeadLetter,
    Document,
    DocumentAction,
    DocumentFormat,
    Evidence,
    GraphCommit,
    PathEdge,
    Question,
    Result,
    ResultStatus,
)
from autoglm.settings import Settings

err = Console(stderr=True)


PUBLISH_WINDOW = 64
"""Documents published at once: the producer batches them, instead of a round trip each."""
LATE_REPORT_WAIT_S = 5.0
"""How long to wait, after the last commit, for a bad-line report not read yet."""


@dataclass
class IngestSummary:
    documents: int = 0
    entities: int = 0
    """Distinct entities of each committed document, summed over the documents."""
    relations: int = 0
    """Distinct relations of each committed document, summed over the documents."""
    graph_entities: int = 0
    """Entities in the whole graph after the last commit."""
    graph_relations: int = 0
    """Relations in the whole graph after the last commit."""
    removed_relations: int = 0
    """Relations removed because the documents replaced or deleted were their only source."""
    line_errors: int = 0
    dead_letters: int = 0
    graph_version: int = 0
    seconds: float = 0.0


def kb_documents(path: Path, lines_per_document: int) -> Iterator[Document]:
    """Split a KB file into documents whose ids depend only on their content."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        lines = handle.read().split("\n")
    for start in range(0, len(lines), lines_per_document):
        chunk = "\n".join(lines[start : start + lines_per_document])
        if not chunk.strip():
            continue
        digest = hashlib.sha1(chunk.encode()).hexdigest()[:16]
        yield Document(
            request_id=new_request_id(),
            schema_version=SCHEMA_VERSION,
            document_id=f"kb:{path.name}:{digest}",
            format=DocumentFormat.DOCUMENT_FORMAT_TRIPLES,
            text=chunk,
            source=str(path),
            first_line=start + 1,
        )


def text_documents(path: Path) -> Iterator[Document]:
    """One document per file. Its id is the file's path below ``path`` (its name, for a single
    file), so ingesting a changed file again replaces what it said before; every ingest is a
    new request (a new request id), and an unchanged file changes nothing in the graph."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        text = file.read_text(encoding="utf-8", errors="replace")
        name = file.relative_to(path).as_posix() if path.is_dir() else file.name
        yield Document(
            request_id=new_request_id(),
            schema_version=SCHEMA_VERSION,
            document_id=text_document_id(name),
            format=DocumentFormat.DOCUMENT_FORMAT_TEXT,
            text=text,
            source=str(file),
            action=DocumentAction.DOCUMENT_ACTION_UPSERT,
        )


def text_document_id(name: str) -> str:
    return f"text:{name}"


def delete_documents(document_ids: Sequence[str]) -> list[Document]:
    """Requests that remove what each document contributed to the graph."""
    return [
        Document(
            request_id=new_request_id(),
            schema_version=SCHEMA_VERSION,
            document_id=document_id,
            action=DocumentAction.DOCUMENT_ACTION_DELETE,
        )
        for document_id in document_ids
    ]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


async def ingest(
    settings: Settings, documents: Sequence[Document], timeout_s: float
) -> IngestSummary:
    """Publish documents and return once graph-builder has committed every one of them.

    A document rejected whole counts in ``dead_letters``; the bad lines of a KB document whose
    good lines were written are reported line by line and count in ``line_errors``.
    """
    summary = IngestSummary()
    started = time.perf_counter()
    async with PipelineClient(settings) as client:
        ids = [d.request_id for d in documents]
        client.expect(ids)
        with _progress() as progress:
            sent = progress.add_task("published", total=len(documents))
            committed = progress.add_task("committed", total=len(documents))
            for start in range(0, len(documents), PUBLISH_WINDOW):
                window = documents[start : start + PUBLISH_WINDOW]
                await asyncio.gather(
                    *(client.publish(topics.DOCUMENTS, d, key=d.document_id) for d in window)
                )
                progress.advance(sent, len(window))
            with_bad_lines = []
            async for request_id, reply in client.replies(ids, timeout_s):
                summary.documents += 1
                if isinstance(reply, GraphCommit):
                    summary.entities += reply.entities
                    summary.relations += reply.triples
                    summary.removed_relations += reply.triples_removed
                    summary.line_errors += reply.line_errors
                    if reply.graph_version >= summary.graph_version:
                        summary.graph_version = reply.graph_version
                        summary.graph_entities = reply.graph_entities
                        summary.graph_relations = reply.graph_relations
                    if reply.line_errors:
                        with_bad_lines.append(request_id)
                elif isinstance(reply, DeadLetter):
                    summary.dead_letters += 1
                    err.print(
                        f"[red]rejected[/red] {reply.request_id}: {escape(reply.reason)}",
                        soft_wrap=True,
                    )
                progress.advance(committed)
        summary.seconds = time.perf_counter() - started
        await _report_bad_lines(client, documents, with_bad_lines)
    return summary


async def _report_bad_lines(
    client: PipelineClient, documents: Sequence[Document], request_ids: Sequence[str]
) -> None:
    await client.await_partial_rejections(request_ids, LATE_REPORT_WAIT_S)
    sources = {d.request_id: d.source for d in documents}
    for request_id in request_ids:
        for letter in client.partial_rejections.get(request_id, []):
            source = escape(sources.get(request_id) or request_id)
            err.print(
                f"[yellow]bad lines[/yellow] in {source}: {escape(letter.reason)}", soft_wrap=True
            )


async def ask(
    settings: Settings, texts: Sequence[str], *, hops: int, top_k: int, timeout_s: float
) -> list[Result | DeadLetter]:
    questions = [
        Question(
            request_id=new_request_id(),
            schema_version=SCHEMA_VERSION,
            text=text,
            hops=hops,
            top_k=top_k,
        )
        for text in texts
    ]
    replies: dict[str, Result | DeadLetter] = {}
    async with PipelineClient(settings) as client:
        client.expect(q.request_id for q in questions)
        for question in questions:
            await client.publish(topics.QUESTIONS, question, key=question.request_id)
        async for request_id, reply in client.replies([q.request_id for q in questions], timeout_s):
            assert isinstance(reply, Result | DeadLetter)
            replies[request_id] = reply
    return [replies[q.request_id] for q in questions]


def print_result(reply: Result | DeadLetter, console: Console) -> None:
    # Questions and names contain [brackets]: never let rich read them as markup.
    if isinstance(reply, DeadLetter):
        console.print(f"[red]rejected by {reply.service}[/red]: {escape(reply.reason)}")
        return
    console.print(f"[bold]Q:[/bold] {escape(reply.question)}")
    if reply.status != ResultStatus.RESULT_STATUS_OK:
        status = ResultStatus.Name(reply.status)
        console.print(f"   [yellow]{status}[/yellow]: {escape(reply.error)}")
        return
    answers = ", ".join(f"{escape(a.name)} ({a.probability:.2f})" for a in reply.answers)
    console.print(
        f"   [green]A:[/green] {answers}   [dim]confidence {reply.confidence:.2f}, "
        f"model {reply.model_version}, graph v{reply.graph_version}[/dim]"
    )
    if reply.reasoning_path:
        path = " ; ".join(
            f"{e.source_name} -[{e.relation}]-> {e.target_name}" for e in reply.reasoning_path
        )
        console.print(f"   path: {escape(path)}")
        for edge in reply.reasoning_path:
            for evidence in edge.evidence:
                line = escape(evidence_line(edge, evidence))
                console.print(f"   [dim]{line}[/dim]", soft_wrap=True)
    timings = ", ".join(f"{t.service} {t.milliseconds:.0f} ms" for t in reply.timings)
    console.print(f"   [dim]{timings}[/dim]")


def evidence_line(edge: PathEdge, evidence: Evidence) -> str:
    """Where a text-derived path edge was read: its sentence, document and extractor."""
    sentence = " ".join(evidence.text.split())
    return (
        f'{edge.relation}: "{sentence}" ({evidence.document_id}, sentence '
        f"{evidence.sentence + 1}, chars {evidence.start_char}-{evidence.end_char}, "
        f"{evidence.extractor_version or 'extractor ?'}, confidence {evidence.confidence:.2f})"
    )
