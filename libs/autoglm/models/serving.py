"""Inference core: reasoning inputs in, results out. No Kafka here."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from autoglm.contracts import SCHEMA_VERSION, HopTiming, ReasoningInput, Result, ResultStatus
from autoglm.errors import FatalError
from autoglm.models.base import AnswerModel
from autoglm.models.text_encoder import TextEncoder
from autoglm.models.zero_shot import ZeroShotPathScorer
from autoglm.registry import BUILTIN_VERSION, ModelRegistry
from autoglm.settings import Settings


def select_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def load_serving_model(settings: Settings) -> AnswerModel:
    registry = ModelRegistry(settings.model_registry_dir)
    version = registry.serving_version()
    if version != BUILTIN_VERSION:
        raise FatalError(
            f"serving version {version!r} needs the fusion model, which this build cannot load"
        )
    encoder = TextEncoder(settings.text_encoder_path or None).to(select_device(settings.device))
    return ZeroShotPathScorer(encoder)


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
