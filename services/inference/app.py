"""inference service: reasoning-inputs -> results; model-updates -> hot swap.

Reasoning inputs are consumed in batches (up to ``max_batch_size``, waiting at most
``max_batch_wait_ms`` for more once one has arrived) and scored in one forward pass, the
subgraphs collated into one disjoint-union graph. Each batch takes the serving model once, so a
hot swap never splits a batch between versions. Answers are cached in Redis by model and graph
version. Every input is checked before it joins a batch (``serving.check_input``): a bad one is
dead-lettered with the reason and cannot change the answers of the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.bus.service import HandlerContext, Incoming, ItemResult, Outgoing, ServiceRuntime
from autoglm.contracts import (
    HopTiming,
    ModelAction,
    ModelUpdate,
    ReasoningInput,
    Result,
    ResultStatus,
)
from autoglm.errors import BadInputError
from autoglm.models.holder import ModelHolder
from autoglm.models.result_cache import ResultCache, cacheable
from autoglm.models.serving import answer, check_input, load_model, load_serving_model
from autoglm.registry import ModelRegistry
from autoglm.settings import Settings

SERVICE = "inference"
log = logging.getLogger(__name__)


class InferenceSettings(Settings):
    pass


def build(
    settings: InferenceSettings | None = None, *, idempotency: IdempotencyStore | None = None
) -> ServiceRuntime:
    settings = settings or InferenceSettings()
    runtime = ServiceRuntime(SERVICE, settings, idempotency=idempotency)
    holder = ModelHolder(load_serving_model(settings), partial(load_model, settings))
    cache = ResultCache.connect(settings) if settings.result_cache_enabled else None
    if cache is not None:
        runtime.on_shutdown(cache.close)

    @runtime.consume_batch(
        topics.REASONING_INPUTS,
        ReasoningInput,
        max_records=settings.max_batch_size,
        max_wait_ms=settings.max_batch_wait_ms,
        required=("request_id", "question"),
    )
    async def on_inputs(items: Sequence[Incoming[ReasoningInput]]) -> list[ItemResult]:
        model = holder.current  # one version for the whole batch, whatever swaps meanwhile
        checks = [_checked(item.message, settings) for item in items]
        inputs = [item.message for item, error in zip(items, checks, strict=True) if not error]
        cached = await _cached_results(cache, model.version, inputs)
        todo = [i for i, hit in zip(inputs, cached, strict=True) if hit is None]
        # The forward pass is CPU/GPU-bound: keep the event loop (heartbeats, fetches) free.
        computed = iter(await asyncio.to_thread(answer, model, todo) if todo else [])
        valid = iter(zip(inputs, cached, strict=True))
        results: list[ItemResult] = []
        writes = []
        for error in checks:
            if error is not None:
                results.append(error)
                continue
            item, hit = next(valid)
            result = hit if hit is not None else next(computed)
            if hit is None and cache is not None and result.status == ResultStatus.RESULT_STATUS_OK:
                writes.append(cache.put(cache.key(model.version, item), cacheable(result)))
            results.append([Outgoing(topics.RESULTS, result, key=result.request_id)])
        await asyncio.gather(*writes)  # one round of Redis writes for the batch
        return results

    @runtime.consume(topics.MODEL_UPDATES, ModelUpdate, required=("request_id",), broadcast=True)
    async def on_model_update(update: ModelUpdate, ctx: HandlerContext) -> list[Outgoing]:
        if update.action == ModelAction.MODEL_ACTION_ROLLBACK and not update.version:
            # A rollback names no version: serve whatever the registry now points at.
            version = ModelRegistry(settings.model_registry_dir).serving_version()
        else:
            version = update.version
        if not version:
            raise BadInputError("model update names no version", error_type="missing_field")
        if not await holder.swap_to(version):
            raise BadInputError(
                f"model version {version!r} could not be loaded; still serving "
                f"{holder.current.version}",
                error_type="model_unavailable",
            )
        return []

    return runtime


def _checked(item: ReasoningInput, settings: Settings) -> BadInputError | None:
    """Why ``item`` is refused (a dead letter of its own), or None: the input is checked as if a
    stranger wrote it before it can share a batch with others (``serving.check_input``)."""
    try:
        check_input(item, settings)
    except BadInputError as exc:
        return exc
    return None


async def _cached_results(
    cache: ResultCache | None, model_version: str, inputs: Sequence[ReasoningInput]
) -> list[Result | None]:
    if cache is None:
        return [None] * len(inputs)
    started = time.perf_counter()

    async def lookup(item: ReasoningInput) -> Result | None:
        if item.status != ResultStatus.RESULT_STATUS_OK:
            return None
        hit = await cache.get(cache.key(model_version, item))
        if hit is None:
            return None
        hit.request_id = item.request_id
        hit.timings.extend(item.timings)
        hit.timings.append(
            HopTiming(service="inference", milliseconds=(time.perf_counter() - started) * 1000.0)
        )
        return hit

    return list(await asyncio.gather(*(lookup(item) for item in inputs)))
