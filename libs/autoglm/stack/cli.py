"""``autoglm stack up|status|down``: the local stack from the command line."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoglm.settings import Settings, get_settings
from autoglm.stack.base import ServerStatus, StackError
from autoglm.stack.manager import LocalStack, stack_shape

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


_BROKERS_HELP = (
    "Kafka brokers (KRaft nodes, each a broker and a controller voter); default: "
    "AUTOGLM_KAFKA_BROKERS, or for status/down what the last `stack up` started."
)


_SECURE_HELP = (
    "TLS and authentication everywhere: Kafka SASL_SSL (SCRAM-SHA-512) with ACLs, Neo4j Bolt "
    "over TLS, Redis over TLS with an ACL user; certificates and passwords are generated under "
    "the stack folder. Default: AUTOGLM_SECURE, or for status/down what the last up started."
)


def _settings(brokers: int | None, recorded: bool, secure: bool | None = None) -> Settings:
    """The settings with the command's options applied; ``recorded``: options not given are
    taken from what the last `stack up` of the folder recorded (for status and down)."""
    settings = get_settings()
    update: dict[str, object] = stack_shape(settings.stack_dir) if recorded else {}
    if brokers is not None:
        update["kafka_brokers"] = brokers
    if secure is not None:
        update["secure"] = secure
    return settings.model_copy(update=update) if update else settings


def _run(
    action: Callable[[LocalStack], list[ServerStatus]],
    busy: str | None = None,
    settings: Settings | None = None,
) -> None:
    stack = LocalStack(settings or get_settings())
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


BrokersOption = typer.Option(None, "--brokers", min=1, max=9, help=_BROKERS_HELP)
SecureOption = typer.Option(None, "--secure/--plain", help=_SECURE_HELP)


@stack_app.command()
def up(brokers: int | None = BrokersOption, secure: bool | None = SecureOption) -> None:
    """Start the servers not running yet and wait until each answers."""
    settings = _settings(brokers, recorded=False, secure=secure)
    timeout = settings.stack_start_timeout_s
    busy = f"Starting Kafka, Neo4j and Redis (waiting up to {timeout:.0f}s)..."
    _run(LocalStack.up, busy, settings)
    if settings.secure and not get_settings().secure:
        Console(stderr=True).print(
            "clients need [bold]AUTOGLM_SECURE=true[/bold] (passwords and the CA are read from "
            f"{settings.stack_dir})",
            highlight=False,
        )


@stack_app.command()
def status(brokers: int | None = BrokersOption, secure: bool | None = SecureOption) -> None:
    """Show which servers run and whether they answer."""
    _run(LocalStack.status, settings=_settings(brokers, recorded=True, secure=secure))


@stack_app.command()
def down(brokers: int | None = BrokersOption, secure: bool | None = SecureOption) -> None:
    """Stop the servers this stack started."""
    settings = _settings(brokers, recorded=True, secure=secure)
    _run(LocalStack.down, "Stopping the local stack...", settings)


if __name__ == "__main__":
    stack_app()
