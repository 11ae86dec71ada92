"""Bounds on the request fields that decide how much work a message costs, checked by every
consumer as if a stranger wrote the message.

Internal topics are written by the services, but anything that can reach Kafka can write them
too, and a field left unbounded after the parser reaches the costly parts: ``hops`` = 2^32-1 on
reasoning-inputs kept the zero-shot path loop busy for ~15 minutes, and graph-builder retrieval
runs one expansion per hop. So the parser (questions), graph-builder (parsed questions),
inference (reasoning inputs) and the trainer (training examples) all hold ``hops`` and ``top_k``
to ``Settings.max_hops`` and ``Settings.max_top_k``; where the contract says "0 = the service
default" (``Question``, ``TrainingExample``), 0 is allowed.
"""

from __future__ import annotations

from autoglm.errors import BadInputError
from autoglm.settings import Settings

INVALID_FIELD = "invalid_field"


def check_hops(hops: int, settings: Settings, *, zero_is_default: bool = False) -> None:
    lowest = 0 if zero_is_default else 1
    if not lowest <= hops <= settings.max_hops:
        default = ", or 0 for the default" if zero_is_default else ""
        raise BadInputError(
            f"hops must be 1 to {settings.max_hops}{default}; got {hops}",
            error_type=INVALID_FIELD,
        )


def check_top_k(top_k: int, settings: Settings, *, zero_is_default: bool = False) -> None:
    lowest = 0 if zero_is_default else 1
    if not lowest <= top_k <= settings.max_top_k:
        default = ", or 0 for the default" if zero_is_default else ""
        raise BadInputError(
            f"top_k must be 1 to {settings.max_top_k}{default}; got {top_k}",
            error_type=INVALID_FIELD,
        )
