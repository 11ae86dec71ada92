"""``autoglm stack up|status|down``: the local stack from the command line."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoglm.settings import get_settings
from autoglm.stack.base import ServerStatus, StackError
from autoglm.stack.manager import LocalStack

stack_app = typer.Typer(
    help="Run Kafka, Neo4j and Redis as local processes (for machines without Docker).",
    no_args_is_help=True,
)

_STATE_STYLE = {"running": "green", "stopped": "dim", "foreign": "yellow"}


def _table(statuses: list[ServerStatus]) -> Table:
    table = Table("server", "address", "pid", "state", "detail")
    for s in statuses:
        style = _STATE_STYLE.get(s.state, "")
        table.add_row(
            s.name,
            s.address,
            str(s.pid) if s.pid is not None else "-",
            f"[{style}]{s.state}[/{style}]" if style else s.state,
            escape(s.detail),
        )
    return table


def _run(action: Callable[[LocalStack], list[ServerStatus]], busy: str | None = None) -> None:
    stack = LocalStack(get_settings())
    console = Console()
    try:
        if busy is not None:
            with console.status(busy):
                statuses = action(stack)
        else:
            statuses = action(stack)
    except StackError as exc:
        # soft_wrap: a long line stays one line (the message names paths and commands).
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] {escape(str(exc))}", highlight=False
        )
        raise typer.Exit(1) from None
    console.print(_table(statuses))


@stack_app.command()
def up() -> None:
    """Start the servers not running yet and wait until each answers."""
    timeout = get_settings().stack_start_timeout_s
    _run(LocalStack.up, f"Starting Kafka, Neo4j and Redis (waiting up to {timeout:.0f}s)...")


@stack_app.command()
def status() -> None:
    """Show which servers run and whether they answer."""
    _run(LocalStack.status)


@stack_app.command()
def down() -> None:
    """Stop the servers this stack started."""
    _run(LocalStack.down, "Stopping the local stack...")


if __name__ == "__main__":
    stack_app()
