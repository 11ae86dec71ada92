"""``autoglm dead-letters tail | redrive``: read what the services rejected, and try it again.

A thin command over ``autoglm.bus.redrive``: ``tail`` prints one line per dead letter (time,
service, source topic, error type, reason, request id, original length and whether it was
truncated), ``--json`` one JSON object per line; ``redrive`` publishes the originals again
after a fix, each under a new attempt id so that idempotency does not swallow it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from autoglm.bus.redrive import Letter, parse_since, read_dead_letters, redrive, select
from autoglm.settings import Settings

dead_letters_app = typer.Typer(
    help="Read the dead-letter topic and redrive letters after a fix.", no_args_is_help=True
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_REASON_CHARS = 160


def _letters(since: str | None) -> list[Letter]:
    try:
        moment = parse_since(since) if since else None
    except ValueError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    return asyncio.run(read_dead_letters(Settings(), moment))


def _line(letter: Letter) -> str:
    s = letter.summary()
    reason = " ".join(s["reason"].split())
    if len(reason) > _REASON_CHARS:
        reason = reason[: _REASON_CHARS - 1] + "…"
    size = f"{s['length']} B" + (" truncated" if s["truncated"] else "")
    return "  ".join(
        [
            s["time"],
            s["service"] or "-",
            s["topic"] or "-",
            s["error_type"] or "-",
            reason or "-",
            f"request={s['request_id'] or '-'}",
            size,
        ]
    )


@dead_letters_app.command("tail")
def tail(
    since: Annotated[
        str | None, typer.Option(help="Only letters from then on: 30m, 2h, 1d or an ISO time.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print the dead letters, oldest first: one line each."""
    for letter in _letters(since):
        if as_json:
            print(json.dumps(letter.summary(), ensure_ascii=False))
        else:
            out.print(escape(_line(letter)))


@dead_letters_app.command("redrive")
def redrive_command(
    error_type: Annotated[
        str | None, typer.Option(help="Only letters of this error type, e.g. processing.")
    ] = None,
    request_id: Annotated[str | None, typer.Option(help="Only letters of this request id.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only letters from then on: 30m, 2h, 1d or an ISO time.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be redriven; publish nothing.")
    ] = False,
) -> None:
    """Publish the original bytes of dead letters to their source topic again, with their key
    and headers plus a new autoglm-attempt header (the service processes them again)."""
    chosen = select(_letters(since), error_type=error_type, request_id=request_id)
    report = asyncio.run(
        redrive(Settings(), chosen, error_type_named=error_type is not None, dry_run=dry_run)
    )
    verb = "would redrive" if dry_run else "redriven"
    for letter, attempt in report.redriven:
        out.print(escape(f"{verb}: {_line(letter)}  attempt={attempt}"))
    for letter, why in report.refused:
        err.print(escape(f"not redriven: {_line(letter)}: {why}"))
    err.print(f"{len(report.redriven)} {verb}, {len(report.refused)} not redriven")
    if report.refused and not report.redriven:
        raise typer.Exit(1)
