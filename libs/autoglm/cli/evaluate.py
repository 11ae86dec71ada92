"""`autoglm eval`: a MetaQA-format QA file through the whole pipeline via Kafka.

Questions are published with at most ``concurrency`` in flight, as a fleet of users would, so
latency is the time one question spends in the pipeline and not in a queue we made ourselves.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.contracts import SCHEMA_VERSION, DeadLetter, Question, Result, ResultStatus
from autoglm.nlp.parsing import strip_brackets
from autoglm.settings import Settings


@dataclass(frozen=True)
class QAItem:
    question: str
    answers: frozenset[str]


def read_qa_file(path: Path, limit: int | None, no_brackets: bool) -> list[QAItem]:
    items = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            question, tab, answers = line.rstrip("\n").partition("\t")
            if not tab:
                raise ValueError(f"{path}:{number}: expected 'question<TAB>answer|answer'")
            text = strip_brackets(question) if no_brackets else question
            items.append(QAItem(text, frozenset(a for a in answers.split("|") if a)))
            if limit is not None and len(items) >= limit:
                break
    return items


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def evaluate(
    settings: Settings,
    items: list[QAItem],
    *,
    hops: int,
    concurrency: int,
    timeout_s: float,
    console: Console,
) -> dict[str, Any]:
    hits1 = hits5 = errors = 0
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    async with PipelineClient(settings) as client:

        async def one(item: QAItem) -> None:
            nonlocal hits1, hits5, errors
            async with gate:
                question = Question(
                    request_id=new_request_id(),
                    schema_version=SCHEMA_VERSION,
                    text=item.question,
                    hops=hops,
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
            if not isinstance(reply, Result) or reply.status != ResultStatus.RESULT_STATUS_OK:
                errors += 1
            else:
                names = [a.name for a in reply.answers]
                hits1 += bool(names) and names[0] in item.answers
                hits5 += any(n in item.answers for n in names[:5])
            progress.advance(task)

        with progress:
            task = progress.add_task("questions", total=len(items))
            started = time.perf_counter()
            await asyncio.gather(*(one(item) for item in items))
            seconds = time.perf_counter() - started
    count = len(items)
    return {
        "count": count,
        "hits@1": hits1 / count if count else 0.0,
        "hits@5": hits5 / count if count else 0.0,
        "errors": errors,
        "statuses": statuses,
        "seconds": seconds,
        "questions_per_second": count / seconds if seconds else 0.0,
        "latency_ms": {
            "p50": 1000 * percentile(latencies, 50),
            "p95": 1000 * percentile(latencies, 95),
            "p99": 1000 * percentile(latencies, 99),
        },
        "concurrency": concurrency,
    }


def _status(reply: Result | DeadLetter | Any | None) -> str:
    if reply is None:
        return "TIMEOUT"
    if isinstance(reply, DeadLetter):
        return f"DEAD_LETTER:{reply.error_type}"
    if isinstance(reply, Result):
        return ResultStatus.Name(reply.status)
    return type(reply).__name__
