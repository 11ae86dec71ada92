"""Redis cache of question encodings (the text encoder's token states), shared by replicas.

The encoder forward is a large part of inference on CPU, and questions recur: across replicas,
after a restart, and after a graph write (which invalidates cached *answers* but not encodings).
Key: ``{namespace}:{encoder id}:{sha256 of the text}``; the encoder id names the weights (the
pretrained encoder's path, or the model version when the encoder was fine-tuned), so a
fine-tuned version never reads another's encodings. Value: float32 states, shape header first.

Called from the inference worker thread, so it uses the synchronous client; like every cache
here it is an accelerator: Redis down is a miss, through the process's breaker
(``autoglm.redis_access``).
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections.abc import Sequence

import numpy as np
import redis
import torch
from torch import Tensor

from autoglm.redis_access import FAILURES, CircuitBreaker, breaker_for, sync_client
from autoglm.settings import Settings

_HEADER = struct.Struct("<II")  # tokens, width


class EncodingCache:
    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str,
        encoder_id: str,
        ttl_s: int,
        retry_after_s: float = 5.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._redis = client
        self.prefix = f"{namespace}:{hashlib.sha256(encoder_id.encode()).hexdigest()[:16]}"
        self.ttl_s = ttl_s
        self.breaker = breaker or CircuitBreaker("encoding cache", retry_after_s)
        self.hits = self.misses = self.errors = 0

    @classmethod
    def connect(cls, settings: Settings, encoder_id: str) -> EncodingCache:
        return cls(
            sync_client(settings),
            namespace=f"{settings.topic_prefix}encoding",
            encoder_id=encoder_id,
            ttl_s=settings.encoding_cache_ttl_s,
            breaker=breaker_for(settings),
        )

    def key(self, text: str) -> str:
        return f"{self.prefix}:{hashlib.sha256(text.encode()).hexdigest()}"

    def _failed(self, action: str, exc: Exception) -> None:
        self.errors += 1
        self.breaker.failed(f"encoding cache {action}", exc)

    def get_many(self, texts: Sequence[str]) -> dict[str, Tensor]:
        if not texts or not self.breaker.allow():
            return {}
        try:
            values = self._redis.mget([self.key(t) for t in texts])
        except FAILURES as exc:
            self._failed("read", exc)
            return {}
        self.breaker.succeeded()
        found: dict[str, Tensor] = {}
        for text, raw in zip(texts, values, strict=True):
            states = _decode(raw) if isinstance(raw, bytes) else None
            if states is None:
                self.misses += 1
            else:
                self.hits += 1
                found[text] = states
        return found

    def put_many(self, states: dict[str, Tensor]) -> None:
        if not states or not self.breaker.allow():
            return
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for text, value in states.items():
                    pipe.set(self.key(text), _encode(value), ex=self.ttl_s)
                pipe.execute()
        except FAILURES as exc:
            self._failed("write", exc)

    def close(self) -> None:
        with contextlib.suppress(*FAILURES):
            self._redis.close()


def _encode(states: Tensor) -> bytes:
    array = states.detach().float().cpu().numpy()
    return _HEADER.pack(*array.shape) + array.tobytes()


def _decode(raw: bytes) -> Tensor | None:
    if len(raw) < _HEADER.size:
        return None
    tokens, width = _HEADER.unpack_from(raw)
    body = raw[_HEADER.size :]
    if len(body) != tokens * width * 4:
        return None  # torn or foreign value: a miss
    return torch.from_numpy(np.frombuffer(body, dtype=np.float32).reshape(tokens, width).copy())
