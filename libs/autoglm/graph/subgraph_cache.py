"""Redis cache of retrieved subgraphs (an accelerator: Redis down never fails a request).

Key: ``{namespace}:g{graph version}:{sha256}`` of everything the retrieved subgraph depends on:

- the anchors, sorted (retrieval sorts them too, so their order cannot change the result);
- k and the node and edge caps;
- the graph version, bumped by every write that changes the graph, so a new fact invalidates
  every cached subgraph at once (old entries are never read again and expire with the TTL);
- the retriever's fingerprint: algorithm version, encoder and scoring settings, beam settings;
- the *scoring text*: the question lower-cased with brackets and anchor mentions removed
  (``path_scoring.scoring_text``), which is exactly what the question-guided pruning reads.

Why the scoring text and not the relation plan the beam chose: the plan is only known after the
beam has run (it interleaves scoring with one aggregation query per hop), so a plan-keyed entry
could not be looked up before doing the work it saves. Keying on the text keeps a hit at one
Redis round trip; rephrasings of a question miss, which only costs a normal retrieval.

Value: the serialised ``Subgraph`` message. Redis down is a miss, through the process's
breaker (``autoglm.redis_access``): a dead Redis costs one timeout per interval, not one per
request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from autoglm.contracts import Subgraph
from autoglm.redis_access import CacheStats, ProtoCache
from autoglm.settings import Settings

__all__ = ["CacheStats", "SubgraphCache"]


class SubgraphCache(ProtoCache[Subgraph]):
    message_type = Subgraph
    what = "subgraph"

    @classmethod
    def connect(cls, settings: Settings) -> SubgraphCache:
        return cls.from_settings(settings, "subgraph", settings.subgraph_cache_ttl_s)

    def key(
        self,
        anchors: Sequence[str],
        hops: int,
        max_nodes: int,
        max_edges: int,
        graph_version: int,
        fingerprint: str,
        text: str,
    ) -> str:
        parts = {
            "anchors": sorted(anchors),
            "hops": hops,
            "max_nodes": max_nodes,
            "max_edges": max_edges,
            "retriever": fingerprint,
            "text": text,
        }
        digest = hashlib.sha256(
            json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        return f"{self.namespace}:g{graph_version}:{digest}"
