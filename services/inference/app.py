"""inference service: reasoning-inputs -> results."""

from __future__ import annotations

import asyncio

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.bus.service import HandlerContext, Outgoing, ServiceRuntime
from autoglm.contracts import ReasoningInput
from autoglm.models.serving import answer, load_serving_model
from autoglm.settings import Settings

SERVICE = "inference"


class InferenceSettings(Settings):
    pass


def build(
    settings: InferenceSettings | None = None, *, idempotency: IdempotencyStore | None = None
) -> ServiceRuntime:
    settings = settings or InferenceSettings()
    runtime = ServiceRuntime(SERVICE, settings, idempotency=idempotency)
    model = load_serving_model(settings)

    @runtime.consume(topics.REASONING_INPUTS, ReasoningInput, required=("request_id", "question"))
    async def on_input(item: ReasoningInput, ctx: HandlerContext) -> list[Outgoing]:
        # The forward pass is CPU/GPU-bound: keep the event loop (heartbeats, fetches) free.
        (result,) = await asyncio.to_thread(answer, model, [item])
        return [Outgoing(topics.RESULTS, result, key=item.request_id)]

    return runtime
