"""Hot swap: load beside, switch atomically, keep serving when a version cannot load."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from autoglm.contracts import ReasoningInput
from autoglm.models.base import Prediction
from autoglm.models.holder import ModelHolder
from autoglm.registry import ModelLoadError


class VersionedModel:
    def __init__(self, version: str) -> None:
        self.version = version

    def predict(self, inputs: Sequence[ReasoningInput]) -> list[Prediction]:
        return [Prediction(answers=[], confidence=0.0) for _ in inputs]


async def test_batches_keep_their_version_while_the_new_one_loads():
    release = threading.Event()

    def slow_loader(version: str) -> VersionedModel:
        release.wait(5)  # loading takes a while
        return VersionedModel(version)

    holder = ModelHolder(VersionedModel("v1"), slow_loader)
    swap = asyncio.create_task(holder.swap_to("v2"))
    await asyncio.sleep(0.05)
    in_flight = holder.current  # a batch starting during the load gets the old, whole model
    assert in_flight.version == "v1"
    release.set()
    assert await swap
    assert holder.current.version == "v2"
    assert in_flight.version == "v1"


async def test_failed_load_keeps_serving_the_old_version():
    def broken_loader(version: str) -> VersionedModel:
        raise ModelLoadError(f"{version}: corrupt", error_type="model_corrupt")

    holder = ModelHolder(VersionedModel("v1"), broken_loader)
    assert not await holder.swap_to("v2")
    assert holder.current.version == "v1"


async def test_swapping_to_the_serving_version_is_a_no_op():
    calls: list[str] = []
    holder = ModelHolder(VersionedModel("v1"), lambda v: calls.append(v) or VersionedModel(v))
    assert await holder.swap_to("v1")
    assert calls == []
