"""Inference core: reasoning inputs in, results out. No Kafka here.

A reasoning input is checked as if a stranger wrote it (:func:`check_input`): reasoning-inputs is
an internal topic, but anything that reaches Kafka can write it, and a batch collates several
subgraphs into one graph, so an index out of range would mark nodes of *another* request as
anchors or wire its edges into them. A bad input is refused alone, with the reason (a dead
letter), and never reaches the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch

from autoglm.contracts import SCHEMA_VERSION, HopTiming, ReasoningInput, Result, ResultStatus
from autoglm.contracts.bounds import check_hops, check_top_k
from autoglm.errors import BadInputError
from autoglm.models.base import AnswerModel
from autoglm.models.encoding_cache import EncodingCache
from autoglm.models.fusion_model import FusionAnswerModel, FusionModule, load_weights
from autoglm.models.reasoner import ReasonerConfig
from autoglm.models.text_encoder import TextEncoder
from autoglm.models.zero_shot import ZeroShotPathScorer
from autoglm.registry import BUILTIN_VERSION, ModelLoadError, ModelRegistry
from autoglm.settings import Settings

log = logging.getLogger(__name__)


def select_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def load_model(settings: Settings, version: str) -> AnswerModel:
    """A registered version, ready to predict on the configured device.

    Raises ``ModelLoadError`` (fatal) for a version that is missing, corrupt or not loadable.
    """
    registry = ModelRegistry(settings.model_registry_dir)
    device = select_device(settings.device)
    encoder = TextEncoder(settings.text_encoder_path or None)
    if version == BUILTIN_VERSION:
        return ZeroShotPathScorer(encoder.to(device))
    entry = registry.get(version) if version in {v.version for v in registry.versions()} else None
    if entry is None:
        raise ModelLoadError(
            f"model version {version!r} is not in the registry", error_type="model_missing"
        )
    if entry.kind != "fusion":
        raise ModelLoadError(
            f"{version}: unknown model kind {entry.kind!r}", error_type="model_kind"
        )
    try:
        config = ReasonerConfig(**entry.meta["reasoner_config"])
    except (KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"{version}: meta.json lacks a valid reasoner_config: {exc}", error_type="model_corrupt"
        ) from exc
    module = FusionModule(encoder, config)
    try:
        load_weights(module, registry.load_weights(version))
    except RuntimeError as exc:  # shapes or names that do not fit the architecture
        raise ModelLoadError(
            f"{version}: weights do not fit the model: {exc}", error_type="model_corrupt"
        ) from exc
    if settings.encoding_cache_enabled:
        fine_tuned = entry.meta.get("text_encoder") == "fine-tuned"
        encoder_id = version if fine_tuned else f"pretrained:{settings.text_encoder_path or ''}"
        module.encoding_cache = EncodingCache.connect(settings, encoder_id)
    return FusionAnswerModel(version, module.to(device), float(entry.meta.get("temperature", 1.0)))


def load_serving_model(settings: Settings) -> AnswerModel:
    """The registry's serving version. If it cannot be loaded (a corrupt or missing checkpoint)
    the service still starts, on the built-in model, and says so loudly: every result names the
    model version that produced it, and ``autoglm models promote`` fixes it without a restart."""
    registry = ModelRegistry(settings.model_registry_dir)
    for broken in registry.broken():
        log.warning(
            "model version skipped: it cannot be read",
            extra={"version": broken.version, "error": broken.reason},
        )
    version = registry.serving_version()
    try:
        return load_model(settings, version)
    except ModelLoadError as exc:
        if version == BUILTIN_VERSION:
            raise
        log.error(
            "serving version cannot be loaded; serving the built-in model until a version is "
            "promoted",
            extra={"version": version, "error": exc.reason, "fallback": BUILTIN_VERSION},
        )
        return load_model(settings, BUILTIN_VERSION)


def check_input(item: ReasoningInput, settings: Settings) -> None:
    """Raise ``BadInputError`` (with the reason) unless ``item`` is safe to batch and answer:
    hops and top_k within bounds, a question no longer than a question may be, a subgraph within
    the caps whose edge arrays have one length and whose node, relation and anchor indices all
    point inside it, names no longer than an entity name may be."""
    check_hops(item.hops, settings)
    check_top_k(item.top_k, settings)
    question = item.question
    for text in (question.normalized_text, question.question.text):
        if len(text) > settings.max_question_chars:
            raise BadInputError(
                f"question of {len(text)} characters exceeds the limit of "
                f"{settings.max_question_chars}",
                error_type="too_large",
            )
    graph = item.subgraph
    nodes, edges = len(graph.nodes), len(graph.edge_source)
    if nodes > settings.subgraph_max_nodes or edges > settings.subgraph_max_edges:
        raise BadInputError(
            f"subgraph of {nodes} nodes and {edges} edges is over the caps "
            f"({settings.subgraph_max_nodes} nodes, {settings.subgraph_max_edges} edges)",
            error_type="subgraph_over_caps",
        )
    relations = len(graph.relation_types)
    if relations > max(1, settings.subgraph_max_edges) or len(graph.anchor_indices) > max(
        1, settings.subgraph_max_nodes
    ):
        raise BadInputError(
            f"subgraph lists {relations} relation types and {len(graph.anchor_indices)} anchors, "
            f"more than the caps allow",
            error_type="subgraph_over_caps",
        )
    if len(graph.edge_target) != edges or len(graph.edge_relation) != edges:
        raise BadInputError(
            f"subgraph edge arrays differ in length: {edges} sources, "
            f"{len(graph.edge_target)} targets, {len(graph.edge_relation)} relations",
            error_type="invalid_subgraph",
        )
    for what, indices, size in (
        ("edge source", graph.edge_source, nodes),
        ("edge target", graph.edge_target, nodes),
        ("edge relation", graph.edge_relation, relations),
        ("anchor", graph.anchor_indices, nodes),
    ):
        if indices and (min(indices) < 0 or max(indices) >= size):
            bad = next(i for i in indices if not 0 <= i < size)
            raise BadInputError(
                f"subgraph {what} index {bad} is out of range (0 to {size - 1})",
                error_type="invalid_subgraph",
            )
    limit = settings.max_entity_chars
    if any(len(n.key) > limit or len(n.name) > limit for n in graph.nodes) or any(
        len(r) > limit for r in graph.relation_types
    ):
        raise BadInputError(
            f"subgraph holds a node key or name or a relation type over {limit} characters",
            error_type="too_large",
        )


def answer(model: AnswerModel, inputs: Sequence[ReasoningInput]) -> list[Result]:
    """Results for a batch; inputs graph-builder already marked unanswerable pass through."""
    started = time.perf_counter()
    answerable = [i for i in inputs if i.status == ResultStatus.RESULT_STATUS_OK]
    predictions = (
        dict(zip((i.request_id for i in answerable), model.predict(answerable), strict=True))
        if answerable
        else {}
    )
    per_item_ms = (time.perf_counter() - started) * 1000.0 / max(1, len(inputs))
    results = []
    for item in inputs:
        result = Result(
            request_id=item.request_id,
            schema_version=SCHEMA_VERSION,
            status=item.status,
            error=item.error,
            question=item.question.question.text,
            model_version=model.version,
            graph_version=item.graph_version,
            hops=item.hops,
        )
        result.linking.CopyFrom(item.linking)
        result.timings.extend(item.timings)
        prediction = predictions.get(item.request_id)
        if prediction is not None:
            result.answers.extend(prediction.answers)
            result.confidence = prediction.confidence
            result.reasoning_path.extend(prediction.reasoning_path)
            if not prediction.answers:
                result.status = ResultStatus.RESULT_STATUS_EMPTY_SUBGRAPH
                result.error = "no candidate answer in the retrieved subgraph"
        result.timings.append(HopTiming(service="inference", milliseconds=per_item_ms))
        results.append(result)
    return results
