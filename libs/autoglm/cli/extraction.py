"""`autoglm extract` (a dry run of text extraction) and `autoglm extractor` (train, list).

``extract`` runs the very extractor the parser service runs (``load_extractor``: the serving
version, the schema setting or ``--schema``) and prints what would be written to the graph,
touching neither Kafka nor Neo4j.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from autoglm.settings import PROJECT_ROOT, Settings

extractor_app = typer.Typer(
    help="The text extractor: train and list versions.", no_args_is_help=True
)
err = Console(stderr=True)
out = Console()

FORMATS = ("jsonl", "webnlg")


def _fail(message: str, hint: str = "") -> None:
    err.print(f"[red]error:[/red] {message}" + (f" ({hint})" if hint else ""), highlight=False)
    raise typer.Exit(1)


def read_inputs(path: Path) -> list[tuple[str, str]]:
    """``(id, text)`` pairs: JSONL records with ``id`` and ``text``, or one text per line (its
    id is its line number)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if records and all(line.lstrip().startswith("{") for _, line in records):
        inputs = []
        for number, line in records:
            try:
                record = json.loads(line)
                inputs.append((str(record.get("id", number)), str(record["text"])))
            except (ValueError, KeyError, AttributeError) as exc:
                raise ValueError(f'{path}:{number}: a JSONL line needs a "text" ({exc})') from exc
        return inputs
    return [(str(number), line) for number, line in records]


def _batches(items: list[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def extract_command(
    file: Annotated[Path, typer.Argument(help="One text per line, or JSONL with id and text.")],
    schema: Annotated[
        Path | None,
        typer.Option(
            help="Relation schema: names one per line, or YAML/JSON (default: the setting)."
        ),
    ] = None,
    format: Annotated[
        str, typer.Option(help="Output: jsonl or webnlg (candidates XML).")
    ] = "jsonl",
) -> None:
    """Print the triples extraction would write, per text, without touching the graph."""
    if format not in FORMATS:
        _fail(f"unknown format {format!r}", "use jsonl or webnlg")
    if not file.is_file():
        _fail(f"{file} is not a file", "give a text file, one text per line")
    from autoglm.errors import AutoGLMError
    from autoglm.extraction import load_extractor
    from autoglm.extraction.schema import load_schema
    from autoglm.extraction.webnlg import WebNLGText, candidates_xml, webnlg_triples

    try:
        inputs = read_inputs(file)
        extractor = load_extractor(Settings(), load_schema(schema) if schema else None)
    except (ValueError, AutoGLMError) as exc:
        _fail(str(getattr(exc, "reason", exc)))
    results = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("extracting", total=len(inputs))
        for batch in _batches(inputs, 64):
            results += extractor.extract([text for _, text in batch])
            progress.advance(task, len(batch))
    if format == "jsonl":
        for (text_id, _), facts in zip(inputs, results, strict=True):
            triples = [[f.subject, f.relation, f.object] for f in facts]
            sys.stdout.write(json.dumps({"id": text_id, "triples": triples}, ensure_ascii=False))
            sys.stdout.write("\n")
        return
    texts = [
        WebNLGText(text_id, "", f"Id{n}", "Id1", len(facts), text, ())
        for n, ((text_id, text), facts) in enumerate(zip(inputs, results, strict=True), 1)
    ]
    sys.stdout.write(candidates_xml(texts, [webnlg_triples(facts) for facts in results]))


@extractor_app.command("train")
def train_command(
    webnlg: Annotated[Path, typer.Option(help="WebNLG 2020 folder with train/.")] = (
        PROJECT_ROOT.parent / "shared" / "data" / "webnlg"
    ),
    kb: Annotated[Path, typer.Option(help="Movie KB for synthetic film texts.")] = (
        PROJECT_ROOT.parent / "shared" / "data" / "metaqa" / "kb.txt"
    ),
    synthetic: Annotated[int, typer.Option(help="Synthetic film texts (0: none).")] = 4000,
    epochs: Annotated[int, typer.Option(min=1)] = 4,
    limit: Annotated[int, typer.Option(help="Use only this many WebNLG texts (0: all).")] = 0,
    bundle: Annotated[
        Path | None, typer.Option(help="Also write the version as files here (samples/extractor).")
    ] = None,
) -> None:
    """Train the extractor on WebNLG train (+ synthetic film texts); register it and serve it."""
    from autoglm.extraction.run import ExtractorTrainRequest, train_extractor

    if not (webnlg / "train").is_dir():
        _fail(f"{webnlg / 'train'} is missing", "pass --webnlg DIR holding train/")
    if synthetic and not kb.is_file():
        _fail(f"{kb} is missing", "pass --kb FILE or --synthetic 0")
    request = ExtractorTrainRequest(webnlg, kb, synthetic, epochs, limit, bundle)
    version, report = train_extractor(Settings(), request, err)
    out.print(f"extractor {version} registered and serving; held-out: {report}")


@extractor_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Registered extractor versions and which one serves."""
    from autoglm.extraction.store import BUNDLED_EXTRACTOR, extractor_registry

    registry = extractor_registry(Settings())
    serving = registry.serving_version()
    rows = [
        {
            "version": v.version,
            "serving": v.version == serving,
            "created_at": v.meta.get("created_at", ""),
            "held_out_exact_f1": v.meta.get("held_out", {}).get("exact"),
        }
        for v in registry.versions()
        if v.path is not None
    ]
    if not any(r["serving"] for r in rows):
        meta = json.loads((BUNDLED_EXTRACTOR / "meta.json").read_text())
        rows.append(
            {
                "version": meta.get("version", "bundled"),
                "serving": True,
                "created_at": meta.get("created_at", ""),
                "held_out_exact_f1": meta.get("held_out", {}).get("exact"),
            }
        )
    if as_json:
        out.print_json(data=rows)
        return
    table = Table("version", "serving", "created", "held-out exact F1")
    for row in rows:
        table.add_row(
            str(row["version"]),
            "*" if row["serving"] else "",
            str(row["created_at"]),
            str(row["held_out_exact_f1"]),
        )
    out.print(table)
