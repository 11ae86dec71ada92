"""`autoglm train`: MetaQA questions -> subgraphs -> fusion model -> registered version.

Data (the original MetaQA train questions are not available here): each dev split is cut in two
by a hash of the question text (``is_validation``); the larger part trains, the rest validates.
Optionally, more training questions are synthesized from the KB with the templates of the train
part, drawn with the question-type frequencies of MetaQA's train split. Subgraphs come from the KB
file through the graph-builder's retrieval code (see ``autoglm.training.samples``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autoglm.models.fusion_model import FusionModule, config_meta, weights_of
from autoglm.models.reasoner import ReasonerConfig
from autoglm.models.serving import select_device
from autoglm.models.text_encoder import TextEncoder
from autoglm.registry import ModelRegistry, ModelVersion
from autoglm.settings import Settings
from autoglm.training.loop import (
    History,
    QASample,
    ReasonerTraining,
    TrainConfig,
    calibrate_temperature,
    plot_history,
    seed_everything,
)
from autoglm.training.metaqa import (
    KnowledgeBase,
    QAExample,
    labelled_part,
    mine_templates,
    read_qa,
    split_dev,
    synthesize,
    type_frequencies,
)
from autoglm.training.samples import (
    SampleCache,
    SampleCaps,
    answer_recall,
    cached_samples,
    kb_retriever,
)


@dataclass(frozen=True)
class TrainRequest:
    data: Path
    hops: tuple[int, ...] = (1, 2, 3)
    validation_fraction: float = 0.2
    synthesize_per_hop: int = 0
    limit_per_hop: int | None = None  # train questions per hop (quick runs, tests)
    train_fraction: float = 1.0  # a deterministic share of the train part (labelled_part)
    validation_limit_per_hop: int | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    reasoner: ReasonerConfig = field(default_factory=ReasonerConfig)
    serve: bool = True
    progress: bool = True


@dataclass
class TrainReport:
    version: str
    metrics: dict[str, float]
    samples: dict[str, int]
    answer_recall: dict[str, float]
    temperature: float
    seconds: float
    curves: str
    serving: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def load_examples(
    request: TrainRequest, kb: KnowledgeBase | None
) -> tuple[list[QAExample], list[QAExample]]:
    train: list[QAExample] = []
    validation: list[QAExample] = []
    for hops in request.hops:
        qa = request.data / f"{hops}hop_dev.txt"
        qtypes = request.data / f"{hops}hop_dev_qtype.txt"
        for path in (qa, qtypes):
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing (expected MetaQA dev files)")
        hop_train, hop_validation = split_dev(
            read_qa(qa, qtypes, hops), request.validation_fraction
        )
        if request.train_fraction < 1.0:
            hop_train = labelled_part(hop_train, request.train_fraction)[0]
        hop_train = hop_train[: request.limit_per_hop]
        hop_validation = hop_validation[: request.validation_limit_per_hop]
        if request.synthesize_per_hop and kb is not None:
            frequencies = request.data / f"{hops}hop_train_qtype.txt"
            weights = (
                type_frequencies(frequencies) if frequencies.is_file() else type_frequencies(qtypes)
            )
            known = {e.question for e in hop_train} | {e.question for e in hop_validation}
            extra = synthesize(
                kb,
                mine_templates(hop_train),
                weights,
                request.synthesize_per_hop,
                hops,
                seed=request.train.seed + hops,
            )
            hop_train += [e for e in extra if e.question not in known]
        train += hop_train
        validation += hop_validation
    return train, validation


def per_hop_counts(samples: Sequence[QASample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sample in samples:
        counts[f"{sample.hops}hop"] = counts.get(f"{sample.hops}hop", 0) + 1
    return counts


def per_hop_recall(samples: Sequence[QASample]) -> dict[str, float]:
    hops = sorted({s.hops for s in samples})
    return {f"{h}hop": answer_recall([s for s in samples if s.hops == h]) for h in hops}


def run_training(settings: Settings, request: TrainRequest) -> TrainReport:
    started = time.perf_counter()
    seed_everything(request.train.seed)
    kb_path = request.data / "kb.txt"
    if not kb_path.is_file():
        raise FileNotFoundError(f"{kb_path} is missing (the MetaQA KB)")
    kb = KnowledgeBase.from_file(kb_path) if request.synthesize_per_hop else None
    train_examples, validation_examples = load_examples(request, kb)

    retriever = kb_retriever(settings, kb_path)
    caps = SampleCaps(settings.subgraph_max_nodes, settings.subgraph_max_edges)
    data_key = (
        f"{file_digest(kb_path)}|{retriever.fingerprint(True)}|{caps}|"
        f"{request.validation_fraction}|{request.synthesize_per_hop}|{request.limit_per_hop}|"
        f"{request.validation_limit_per_hop}|{request.hops}|{request.train.seed}"
        f"|{request.train_fraction}"
    )
    cache = SampleCache(settings.model_registry_dir / "cache", data_key)
    train = cached_samples(cache, "train", retriever, train_examples, caps, request.progress)
    validation = cached_samples(
        cache, "validation", retriever, validation_examples, caps, request.progress
    )
    del retriever  # the KB and the scorer: memory training needs

    device = select_device(settings.device)
    encoder = TextEncoder(settings.text_encoder_path or None)
    questions = {s.question for s in train} | {s.question for s in validation}
    module = FusionModule(encoder, request.reasoner, token_cache_size=len(questions))
    run_key = hashlib.sha256(
        json.dumps([cache.fingerprint, asdict(request.train), asdict(request.reasoner)]).encode()
    ).hexdigest()[:16]
    training = ReasonerTraining(
        module,
        request.train,
        device,
        state_path=settings.model_registry_dir / "cache" / f"train-state-{run_key}.pt",
    )
    training.resume()
    history = training.fit(train, validation, progress=request.progress)
    temperature = calibrate_temperature(training, validation)
    metrics = history.validation[-1] if history.validation else training.evaluate(validation)

    registry = ModelRegistry(settings.model_registry_dir)
    version = register_version(
        registry,
        module,
        temperature=temperature,
        metrics=metrics,
        history=history,
        data={
            "source": str(request.data),
            "kb_sha256_16": file_digest(kb_path),
            "train": per_hop_counts(train),
            "validation": per_hop_counts(validation),
            "split": f"dev questions with is_validation(question, {request.validation_fraction})"
            " validate, the rest train",
            "synthesized_per_hop": request.synthesize_per_hop,
            "train_fraction": request.train_fraction,
            "samples_fingerprint": cache.fingerprint,
        },
        hyper_parameters={"train": asdict(request.train), "device": str(device)},
        include_encoder=request.train.encoder_learning_rate > 0,
    )
    curves = version.path / "curves.png" if version.path else Path("curves.png")
    plot_history(history, curves)
    if request.serve:
        registry.set_serving(version.version)
    return TrainReport(
        version=version.version,
        metrics=metrics,
        samples={
            **{f"train/{k}": v for k, v in per_hop_counts(train).items()},
            **{f"validation/{k}": v for k, v in per_hop_counts(validation).items()},
        },
        answer_recall=per_hop_recall(validation),
        temperature=temperature,
        seconds=time.perf_counter() - started,
        curves=str(curves),
        serving=request.serve,
    )


def register_version(
    registry: ModelRegistry,
    module: FusionModule,
    *,
    temperature: float,
    metrics: dict[str, float],
    history: History,
    data: dict[str, Any],
    hyper_parameters: dict[str, Any],
    include_encoder: bool,
    parent: str | None = None,
) -> ModelVersion:
    """Stores the trained layers (and the encoder when it was fine-tuned) with their lineage."""
    return registry.register(
        weights_of(module, include_encoder=include_encoder),
        {
            "temperature": temperature,
            "reasoner_config": config_meta(module.reasoner.config),
            "metrics": metrics,
            "history": asdict(history),
            "data": data,
            "hyper_parameters": hyper_parameters,
            "text_encoder": "fine-tuned" if include_encoder else "pretrained (not stored)",
        },
        parent=parent,
    )
