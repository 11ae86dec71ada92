"""The ``autoglm`` command: stack, services, ingest, ask, demo."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoglm.cli.dead_letters import dead_letters_app
from autoglm.cli.evaluate import evaluate, read_qa_file
from autoglm.cli.extraction import extract_command, extractor_app
from autoglm.cli.models import models_app
from autoglm.cli.requests import (
    IngestSummary,
    ask,
    delete_documents,
    ingest,
    kb_documents,
    print_result,
    text_documents,
)
from autoglm.cli.services import ServiceManager
from autoglm.contracts import DeadLetter, to_json_dict
from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.stack.cli import stack_app

app = typer.Typer(
    help="Open-AutoGLM: knowledge-graph question answering over Kafka.", no_args_is_help=True
)
services_app = typer.Typer(
    help="Run the four services as local background processes.", no_args_is_help=True
)
ingest_app = typer.Typer(help="Feed the knowledge graph through Kafka.", no_args_is_help=True)
documents_app = typer.Typer(
    help="Manage what documents contributed to the graph (through Kafka).", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.add_typer(services_app, name="services")
app.add_typer(ingest_app, name="ingest")
app.add_typer(documents_app, name="documents")
app.add_typer(models_app, name="models")
app.add_typer(extractor_app, name="extractor")
app.add_typer(dead_letters_app, name="dead-letters")
app.command("extract")(extract_command)

out = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _services_table(manager: ServiceManager) -> Table:
    table = Table("service", "pid", "state", "log")
    for process in manager.status():
        table.add_row(
            process.name,
            str(process.pid or "-"),
            "running" if process.running else "stopped",
            str(process.log),
        )
    return table


@services_app.command("start")
def services_start(
    names: Annotated[list[str] | None, typer.Argument(help="Services (default: all).")] = None,
) -> None:
    """Start the services (no-op for those already running) and wait until they consume."""
    manager = ServiceManager(Settings())
    try:
        manager.start(names)
    except (RuntimeError, KeyError) as exc:
        _fail(str(exc))
    out.print(_services_table(manager))


@services_app.command("stop")
def services_stop(
    names: Annotated[list[str] | None, typer.Argument(help="Services (default: all).")] = None,
) -> None:
    """Stop services started by `services start` (SIGTERM: in-flight messages finish)."""
    manager = ServiceManager(Settings())
    manager.stop(names)
    out.print(_services_table(manager))


@services_app.command("status")
def services_status() -> None:
    out.print(_services_table(ServiceManager(Settings())))


def _print_summary(summary: IngestSummary) -> None:
    out.print_json(json.dumps(summary.__dict__))


@ingest_app.command("kb")
def ingest_kb(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="subject|rel|object")],
    lines_per_document: Annotated[int, typer.Option(help="KB lines per message.")] = 500,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the commits.")] = 600.0,
) -> None:
    """Publish a KB file; returns when graph-builder has committed all of it."""
    documents = list(kb_documents(file, lines_per_document))
    _print_summary(asyncio.run(ingest(Settings(), documents, timeout)))


@ingest_app.command("text")
def ingest_text(
    path: Annotated[Path, typer.Argument(exists=True, help="A text file or a folder of them.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the commits.")] = 600.0,
) -> None:
    """Publish free-text documents; returns when graph-builder has committed all of them.

    A document's id is ``text:`` and its path below PATH (its file name for a single file):
    ingesting a changed file again replaces what it said before."""
    _print_summary(asyncio.run(ingest(Settings(), list(text_documents(path)), timeout)))


@documents_app.command("delete")
def documents_delete(
    document_ids: Annotated[
        list[str], typer.Argument(help="Document ids, e.g. text:notes.txt (`ingest text` ids).")
    ],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the commits.")] = 120.0,
) -> None:
    """Remove what documents contributed: edges only they supported go, edges other sources
    support stay. Returns when graph-builder has committed; deleting again changes nothing."""
    _print_summary(asyncio.run(ingest(Settings(), delete_documents(document_ids), timeout)))


@app.command("ask")
def ask_command(
    question: Annotated[str, typer.Argument(help="Mark the topic entity as [name] if you can.")],
    hops: Annotated[int, typer.Option(min=0, max=3, help="0: service default.")] = 0,
    top_k: Annotated[int, typer.Option(min=0, max=100, help="0: service default.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 60.0,
) -> None:
    """Publish one question and print the answer, confidence and path when it arrives."""
    try:
        (reply,) = asyncio.run(
            ask(Settings(), [question], hops=hops, top_k=top_k, timeout_s=timeout)
        )
    except TimeoutError:
        _fail(
            f"no answer within {timeout:.0f}s: are the services running? "
            "(`autoglm services status`)"
        )
    if as_json:
        out.print_json(json.dumps(to_json_dict(reply)))
    else:
        print_result(reply, out)
    if isinstance(reply, DeadLetter):
        raise typer.Exit(2)


@app.command("demo")
def demo(
    kb: Annotated[Path, typer.Option(help="KB to ingest.")] = PROJECT_ROOT
    / "samples/kb_sample.txt",
    questions: Annotated[Path, typer.Option(help="Questions (MetaQA format).")] = (
        PROJECT_ROOT / "samples/questions.txt"
    ),
) -> None:
    """Ingest the sample KB and ask the sample questions through Kafka."""
    settings = Settings()
    out.rule("ingesting the sample KB through Kafka")
    _print_summary(asyncio.run(ingest(settings, list(kb_documents(kb, 100)), 300.0)))
    out.rule("asking the sample questions through Kafka")
    rows = [line.split("\t") for line in questions.read_text().splitlines() if line.strip()]
    replies = asyncio.run(ask(settings, [r[0] for r in rows], hops=1, top_k=5, timeout_s=120.0))
    hits = 0
    for row, reply in zip(rows, replies, strict=True):
        print_result(reply, out)
        gold = set(row[1].split("|")) if len(row) > 1 else set()
        if gold:
            out.print(f"   [dim]expected: {escape(', '.join(sorted(gold)))}[/dim]")
            top = (
                reply.answers[0].name if not isinstance(reply, DeadLetter) and reply.answers else ""
            )
            hits += top in gold
    out.rule(f"hits@1 on the sample: {hits}/{len(rows)}")


@app.command("eval")
def eval_command(
    qa: Annotated[
        Path,
        typer.Option(
            "--qa", exists=True, dir_okay=False, help="QA file: question<TAB>answer|answer"
        ),
    ],
    limit: Annotated[int | None, typer.Option(min=1, help="First N questions only.")] = None,
    no_brackets: Annotated[
        bool, typer.Option("--no-brackets", help="Remove [topic] marks: test linking.")
    ] = False,
    hops: Annotated[
        int, typer.Option(min=0, max=3, help="0: from a '<k>hop' file name, else the default.")
    ] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Questions in flight.")] = 64,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one answer.")] = 120.0,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Push a QA file through the pipeline via Kafka; print hits@1/5, errors, throughput and
    latency percentiles as JSON (progress on stderr)."""
    if hops == 0 and (match := re.search(r"([123])hop", qa.name)):
        hops = int(match.group(1))
    try:
        items = read_qa_file(qa, limit, no_brackets)
    except ValueError as exc:
        _fail(str(exc))
    report = asyncio.run(
        evaluate(
            Settings(), items, hops=hops, concurrency=concurrency, timeout_s=timeout, console=err
        )
    )
    report.update({"qa": str(qa), "no_brackets": no_brackets})
    text = json.dumps(report, indent=2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
    print(text)


def _hop_list(text: str) -> tuple[int, ...]:
    try:
        hops = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        hops = ()
    if not hops or any(h not in (1, 2, 3) for h in hops):
        _fail(f"--hops must be a comma-separated list of 1, 2 and 3, not {text!r}")
    return hops


@app.command("train")
def train_command(
    data: Annotated[
        Path, typer.Option(file_okay=False, help="MetaQA folder: kb.txt, {k}hop_dev.txt, ...")
    ] = PROJECT_ROOT.parent / "shared/data/metaqa",
    hops: Annotated[str, typer.Option(help="Which splits, e.g. 1,2,3.")] = "1,2,3",
    epochs: Annotated[int, typer.Option(min=1)] = 6,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: Annotated[float, typer.Option(help="Graph, fusion and head layers.")] = 1e-3,
    encoder_learning_rate: Annotated[
        float, typer.Option(help="Text encoder (0 keeps it frozen).")
    ] = 0.0,
    hidden_dim: Annotated[int, typer.Option(min=8)] = 128,
    validation_fraction: Annotated[float, typer.Option(min=0.01, max=0.9)] = 0.2,
    synthesize: Annotated[
        int, typer.Option(min=0, help="Extra questions per hop synthesized from the KB.")
    ] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Train questions per hop.")] = None,
    validation_limit: Annotated[
        int | None, typer.Option(min=1, help="Validation questions per hop.")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    serve: Annotated[bool, typer.Option(help="Make the new version the serving one.")] = True,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON report here.")] = None,
) -> None:
    """Train the fusion model on MetaQA, register it and print validation Hits@1 per hop.

    Resumable: run the same command again after an interruption and it goes on from the last
    finished epoch (retrieved subgraphs are cached as well)."""
    from autoglm.models.reasoner import ReasonerConfig
    from autoglm.training.loop import TrainConfig
    from autoglm.training.run import TrainRequest, run_training

    if not (data / "kb.txt").is_file():
        _fail(f"{data} holds no kb.txt: pass --data with the MetaQA folder")
    request = TrainRequest(
        data=data,
        hops=_hop_list(hops),
        validation_fraction=validation_fraction,
        synthesize_per_hop=synthesize,
        limit_per_hop=limit,
        validation_limit_per_hop=validation_limit,
        train=TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            encoder_learning_rate=encoder_learning_rate,
            seed=seed,
        ),
        reasoner=ReasonerConfig(hidden_dim=hidden_dim),
        serve=serve,
    )
    try:
        report = run_training(Settings(), request)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for name, value in sorted(report.metrics.items()):
        err.print(f"validation {name}: {100 * value:.2f}")
    text = json.dumps(report.as_dict(), indent=2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
    print(text)


def main() -> None:
    app()
