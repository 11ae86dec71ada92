"""`autoglm models`: the model registry (list, show, import, promote, rollback).

``promote`` and ``rollback`` move the serving pointer in the registry and publish a model update,
so running inference replicas switch within seconds; a replica started later reads the pointer.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.contracts import SCHEMA_VERSION, ModelAction, ModelUpdate
from autoglm.registry import ModelLoadError, ModelRegistry
from autoglm.security import ADMIN
from autoglm.settings import PROJECT_ROOT, Settings

BUNDLED_MODEL = PROJECT_ROOT / "samples" / "model"
"""A small trained checkpoint kept in the repository (the trained layers, not the encoder), so
that a fresh installation answers with a trained model without training first."""

models_app = typer.Typer(help="The versioned model registry.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _registry() -> ModelRegistry:
    return ModelRegistry(Settings().model_registry_dir)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


async def publish_update(settings: Settings, action: ModelAction, version: str) -> None:
    update = ModelUpdate(
        request_id=new_request_id(), schema_version=SCHEMA_VERSION, action=action, version=version
    )
    # An operator's act: in secure mode only the services and operators may write model updates.
    async with PipelineClient(settings, role=ADMIN) as client:
        await client.publish(topics.MODEL_UPDATES, update, key="serving")


def _announce(action: ModelAction, version: str, notify: bool) -> None:
    if not notify:
        return
    try:
        asyncio.run(publish_update(Settings(), action, version))
    except Exception as exc:  # Kafka down: the pointer moved; replicas read it at start
        err.print(f"[yellow]warning:[/yellow] model update not published ({exc})")
    else:
        out.print("model update published: running inference services switch now")


@models_app.command("list")
def list_models() -> None:
    """Every registered version, the serving one marked."""
    registry = _registry()
    serving = registry.serving_version()
    table = Table("", "version", "kind", "parent", "hits@1", "created")
    for version in registry.versions():
        metrics = version.meta.get("metrics", {})
        hits = metrics.get("hits@1")
        table.add_row(
            "*" if version.version == serving else "",
            version.version,
            version.kind,
            version.parent or "",
            f"{100 * hits:.2f}" if isinstance(hits, float) else "",
            str(version.meta.get("created_at", "")),
        )
    out.print(table)
    for broken in registry.broken():
        err.print(f"[yellow]broken, skipped:[/yellow] {broken.version}: {broken.reason}")


@models_app.command("show")
def show_model(version: Annotated[str, typer.Argument()]) -> None:
    """A version's metadata (lineage, data, hyper-parameters, metrics) as JSON."""
    try:
        entry = _registry().get(version)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    meta = {k: v for k, v in entry.meta.items() if k != "history"}
    print(json.dumps({"version": entry.version, **meta}, indent=2, default=str))


@models_app.command("import")
def import_model(
    path: Annotated[Path, typer.Argument(file_okay=False)] = BUNDLED_MODEL,
    serve: Annotated[bool, typer.Option(help="Make it the serving version.")] = False,
    if_untrained: Annotated[
        bool, typer.Option(help="Only when no trained version serves yet.")
    ] = False,
) -> None:
    """Copy a version directory (by default the bundled checkpoint) into the registry."""
    registry = _registry()
    if path == BUNDLED_MODEL and path.is_dir():
        candidates = sorted(p for p in path.iterdir() if (p / "meta.json").is_file())
        if not candidates:
            _fail(f"no model version under {path}")
        path = candidates[-1]
    if if_untrained and registry.get(registry.serving_version()).path is not None:
        out.print(f"serving {registry.serving_version()} already; nothing imported")
        return
    try:
        entry = registry.import_version(path)
    except ModelLoadError as exc:
        _fail(exc.reason)
    if serve:
        registry.set_serving(entry.version)
    out.print(f"imported {entry.version}" + (" (serving)" if serve else ""))


@models_app.command("promote")
def promote(
    version: Annotated[str, typer.Argument()],
    notify: Annotated[bool, typer.Option(help="Publish a model update.")] = True,
) -> None:
    """Serve ``version``; running inference services load it beside the old one and switch."""
    registry = _registry()
    try:
        registry.set_serving(version)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    out.print(f"serving {version}")
    _announce(ModelAction.MODEL_ACTION_PROMOTE, version, notify)


@models_app.command("rollback")
def rollback(
    notify: Annotated[bool, typer.Option(help="Publish a model update.")] = True,
) -> None:
    """Serve the previously serving version again."""
    try:
        version = _registry().rollback()
    except KeyError as exc:
        _fail(str(exc.args[0]))
    out.print(f"rolled back: serving {version}")
    _announce(ModelAction.MODEL_ACTION_ROLLBACK, version, notify)
