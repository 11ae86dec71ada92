"""Question encodings cached in the real Redis: shared across model instances, never wrong."""

from __future__ import annotations

import redis
import torch

from autoglm.models.encoding_cache import EncodingCache
from autoglm.models.fusion_model import FusionModule
from autoglm.models.reasoner import ReasonerConfig

QUESTIONS = ["who directed Jaws", "what films did Sam Neill act in", "who directed Jaws"]


def cache_for(stack_settings, unique: str, encoder_id: str = "pretrained:") -> EncodingCache:
    client = redis.Redis.from_url(stack_settings.redis_url)
    return EncodingCache(client, namespace=f"test-{unique}", encoder_id=encoder_id, ttl_s=60)


def test_second_replica_reads_the_first_ones_encodings(stack_settings, unique, text_encoder):
    config = ReasonerConfig(hidden_dim=32)
    first = FusionModule(text_encoder, config).eval()
    first.encoding_cache = cache_for(stack_settings, unique)
    states, mask = first.question_states(QUESTIONS)
    direct, direct_mask = text_encoder.token_states(QUESTIONS)
    assert torch.equal(mask, direct_mask)
    assert torch.allclose(states * mask[..., None], direct.detach() * mask[..., None], atol=1e-5)
    assert first.encoding_cache.misses == 2 and first.encoding_cache.hits == 0

    second = FusionModule(text_encoder, config).eval()
    second.encoding_cache = cache_for(stack_settings, unique)
    again, again_mask = second.question_states(QUESTIONS)
    assert second.encoding_cache.hits == 2 and second.encoding_cache.misses == 0
    assert torch.equal(again, states) and torch.equal(again_mask, mask)

    # Another encoder (a fine-tuned version) never reads these.
    other = cache_for(stack_settings, unique, encoder_id="v0007-fine-tuned")
    assert other.get_many(QUESTIONS[:1]) == {}


def test_redis_down_means_encoding_without_the_cache(text_encoder):
    dead = EncodingCache(
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5),
        namespace="down",
        encoder_id="x",
        ttl_s=60,
    )
    module = FusionModule(text_encoder, ReasonerConfig(hidden_dim=32)).eval()
    module.encoding_cache = dead
    states, _ = module.question_states(QUESTIONS)
    assert states.shape[0] == 3 and dead.errors >= 1
