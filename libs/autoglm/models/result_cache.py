"""Redis cache of answers, keyed by what an answer depends on (Redis down: answers are computed).

Key: ``{namespace}:m{model version}:g{graph version}:{sha256}`` of the normalised input: the
question text the model reads, the anchor keys, k, top-k and a digest of the whole subgraph
(nodes, edges, relation types, anchors, evidence). A new model version or any write to the graph
changes the key, so a stale answer is never served; old entries expire with the TTL. Only
answered results (status OK) are cached, without their request id and timings.

Why the subgraph is in the key: the graph version and the question are whatever a message says
they are, so without it one forged reasoning input (a question others ask, over a subgraph of
the forger's making) set the answer everyone got for an hour, and those answers became
pseudo-labels for training. With it, a forged input can only fill the entry of its own
subgraph, which no honest graph-builder retrieves.
"""

from __future__ import annotations

import hashlib
import json

from autoglm.contracts import GraphNode, ReasoningInput, Result
from autoglm.redis_access import ProtoCache
from autoglm.settings import Settings


def normalized_question(item: ReasoningInput) -> str:
    text = item.question.normalized_text or item.question.question.text
    return " ".join(text.split()).lower()


class ResultCache(ProtoCache[Result]):
    message_type = Result
    what = "result"

    @classmethod
    def connect(cls, settings: Settings) -> ResultCache:
        return cls.from_settings(settings, "result", settings.result_cache_ttl_s)

    def key(self, model_version: str, item: ReasoningInput) -> str:
        parts = {
            "question": normalized_question(item),
            "anchors": sorted(node.key for node in _anchors(item)),
            "hops": item.hops,
            "top_k": item.top_k,
            "subgraph": subgraph_digest(item),
        }
        digest = hashlib.sha256(
            json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        return f"{self.namespace}:m{model_version}:g{item.graph_version}:{digest}"


def subgraph_digest(item: ReasoningInput) -> str:
    """sha256 of the subgraph as the model reads it (deterministic serialisation: the same
    subgraph always gives the same digest)."""
    return hashlib.sha256(item.subgraph.SerializeToString(deterministic=True)).hexdigest()


def _anchors(item: ReasoningInput) -> list[GraphNode]:
    nodes = item.subgraph.nodes
    return [nodes[i] for i in item.subgraph.anchor_indices if 0 <= i < len(nodes)]


def cacheable(result: Result) -> Result:
    """The part of a result that is the same for every asker: no request id, no timings."""
    stored = Result()
    stored.CopyFrom(result)
    stored.request_id = ""
    del stored.timings[:]
    return stored
