"""Hot swap under load: the inference service (a real process on the real Kafka) switches model
versions while requests stream in; none is dropped, failed or answered by a half-loaded model."""

from __future__ import annotations

import asyncio

import pytest
import torch

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.cli.models import publish_update
from autoglm.cli.services import ServiceManager
from autoglm.contracts import (
    SCHEMA_VERSION,
    DeadLetter,
    ModelAction,
    ParsedQuestion,
    Question,
    ReasoningInput,
    Result,
    ResultStatus,
)
from autoglm.models.fusion_model import FusionModule, config_meta, weights_of
from autoglm.models.reasoner import ReasonerConfig
from autoglm.models.serving import load_model
from autoglm.registry import ModelRegistry
from tests.stack_fixtures import isolated_settings, settings_env
from tests.unit.test_reasoner import FILM_FACTS, subgraph

FILMS = sorted({s for s, _, _ in FILM_FACTS})
CONFIG = ReasonerConfig(hidden_dim=32, heads=8, fusion_heads=4, dropout=0.0)


def register_random_version(registry: ModelRegistry, encoder, seed: int) -> str:
    """A whole, loadable version whose answers differ from another seed's."""
    torch.manual_seed(seed)
    module = FusionModule(encoder, CONFIG)
    meta = {"temperature": 1.0, "reasoner_config": config_meta(CONFIG), "seed": seed}
    return registry.register(weights_of(module, include_encoder=False), meta).version


def reasoning_input(n: int) -> ReasoningInput:
    film = FILMS[n % len(FILMS)]
    text = f"question {n}: who directed {film}"  # distinct texts: no answer is served from cache
    return ReasoningInput(
        request_id=new_request_id(),
        schema_version=SCHEMA_VERSION,
        question=ParsedQuestion(normalized_text=text, question=Question(text=text)),
        hops=1,
        top_k=3,
        status=ResultStatus.RESULT_STATUS_OK,
        subgraph=subgraph(film),
        graph_version=1,
    )


@pytest.fixture
def swap_settings(stack_settings, tmp_path, unique):
    return isolated_settings(stack_settings, tmp_path, f"swap-{unique}.", max_batch_size=8)


async def test_swap_under_load_drops_nothing_and_mixes_no_versions(swap_settings, text_encoder):
    registry = ModelRegistry(swap_settings.model_registry_dir)
    old = register_random_version(registry, text_encoder, seed=1)
    new = register_random_version(registry, text_encoder, seed=2)
    registry.set_serving(old)
    inputs = [reasoning_input(n) for n in range(240)]
    # What each whole version answers, computed offline.
    expected = {
        version: [
            (p.answers[0].key, p.answers[0].probability)
            for p in load_model(swap_settings, version).predict(inputs)
        ]
        for version in (old, new)
    }
    assert expected[old] != expected[new], "the two versions must be told apart by their answers"

    manager = ServiceManager(swap_settings, env=settings_env(swap_settings))
    manager.start(["inference"])
    try:
        async with PipelineClient(swap_settings) as client:
            client.expect(i.request_id for i in inputs)
            for n, item in enumerate(inputs[:160]):
                await client.publish(topics.REASONING_INPUTS, item, key=item.request_id)
                if n == 60:
                    registry.set_serving(new)
                    await publish_update(swap_settings, ModelAction.MODEL_ACTION_PROMOTE, new)
                await asyncio.sleep(0.01)  # a steady stream, not one burst
            replies = {
                rid: reply
                async for rid, reply in client.replies([i.request_id for i in inputs[:160]], 120.0)
            }
            # The swap is done once a request is answered by the new version; everything
            # published after that must be answered by it.
            assert await _answered_by(client, new, timeout_s=60.0)
            for item in inputs[160:]:
                await client.publish(topics.REASONING_INPUTS, item, key=item.request_id)
            rest = [i.request_id for i in inputs[160:]]
            replies.update({rid: reply async for rid, reply in client.replies(rest, 120.0)})

            # A version that cannot be loaded is refused with a dead letter; serving goes on.
            missing = await _missing_version_update(client, swap_settings)
            assert isinstance(missing, DeadLetter) and "could not be loaded" in missing.reason
            late = reasoning_input(999)
            client.expect([late.request_id])
            await client.publish(topics.REASONING_INPUTS, late, key=late.request_id)
            after = await client.reply(late.request_id, 60.0)
            assert isinstance(after, Result) and after.model_version == new
    finally:
        manager.stop(["inference"])

    versions = []
    for n, item in enumerate(inputs):
        result = replies[item.request_id]
        assert isinstance(result, Result) and result.status == ResultStatus.RESULT_STATUS_OK
        assert result.model_version in (old, new)
        key, probability = expected[result.model_version][n]
        assert result.answers[0].key == key
        assert result.answers[0].probability == pytest.approx(probability, abs=1e-4)
        versions.append(result.model_version)
    assert versions[0] == old and old in versions[:60]
    assert set(versions[160:]) == {new}


async def _missing_version_update(client: PipelineClient, settings) -> object:
    from autoglm.contracts import ModelUpdate

    update = ModelUpdate(
        request_id=new_request_id(),
        schema_version=SCHEMA_VERSION,
        action=ModelAction.MODEL_ACTION_PROMOTE,
        version="v9999-missing",
    )
    client.expect([update.request_id])
    await client.publish(topics.MODEL_UPDATES, update, key="serving")
    return await client.reply(update.request_id, 60.0)


async def _answered_by(client: PipelineClient, version: str, timeout_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        probe = reasoning_input(10_000)
        client.expect([probe.request_id])
        await client.publish(topics.REASONING_INPUTS, probe, key=probe.request_id)
        reply = await client.reply(probe.request_id, 30.0)
        if isinstance(reply, Result) and reply.model_version == version:
            return True
        await asyncio.sleep(0.5)
    return False
