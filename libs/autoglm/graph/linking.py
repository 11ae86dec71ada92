"""Entity linking: question mentions -> graph entities, with nothing guessed silently."""

from __future__ import annotations

import re
from collections.abc import Sequence

from autoglm.contracts import LinkedEntity, LinkingReport, Mention
from autoglm.graph.store import GraphStore
from autoglm.nlp.keys import lookup_key

_LUCENE_SPECIAL = re.compile(r'([+\-!(){}\[\]^"~*?:\\/]|&&|\|\|)')

_EXACT = """
MATCH (e:Entity) WHERE e.lookup IN $lookups
RETURN e.key AS key, e.name AS name, e.lookup AS lookup
"""
_FULLTEXT = """
CALL db.index.fulltext.queryNodes('entity_names', $query, {limit: $limit})
YIELD node, score
RETURN node.key AS key, node.name AS name, score
"""

# A full-text candidate must beat the runner-up by this factor to be taken without doubt.
AMBIGUITY_MARGIN = 1.2


def lucene_phrase(text: str) -> str:
    """A Lucene phrase query for ``text`` with every special character escaped."""
    return '"' + _LUCENE_SPECIAL.sub(r"\\\1", text) + '"'


class EntityLinker:
    def __init__(self, store: GraphStore, fulltext_candidates: int = 5) -> None:
        self.store = store
        self.fulltext_candidates = fulltext_candidates

    async def link(self, mentions: Sequence[Mention]) -> LinkingReport:
        report = LinkingReport()
        if not mentions:
            return report
        lookups = sorted({lookup_key(m.text) for m in mentions if m.text.strip()})
        by_lookup: dict[str, list[tuple[str, str]]] = {}
        for row in await self.store.run_read(_EXACT, lookups=lookups):
            by_lookup.setdefault(row["lookup"], []).append((row["key"], row["name"]))
        brackets = [m for m in mentions if m.source == "bracket"]
        # A bracketed mention is the user's explicit choice: it alone decides the anchors.
        candidates = brackets or list(mentions)
        for mention in candidates:
            matches = by_lookup.get(lookup_key(mention.text), [])
            exact = [m for m in matches if m[0] == mention.key]
            # The exact spelling wins; otherwise every case variant is the same name to a reader
            # ("Clint Eastwood" the actor, "clint eastwood" the tag) and all become anchors.
            for key, name in exact or matches:
                report.anchors.append(
                    LinkedEntity(mention=mention.text, key=key, name=name, score=1.0)
                )
            if matches:
                continue
            if mention.source == "bracket":
                report.unlinked_mentions.append(mention.text)
            else:
                await self._link_fulltext(mention, report)
        return report

    async def _link_fulltext(self, mention: Mention, report: LinkingReport) -> None:
        rows = await self.store.run_read(
            _FULLTEXT, query=lucene_phrase(mention.text), limit=self.fulltext_candidates
        )
        if not rows:
            report.unlinked_mentions.append(mention.text)
            return
        best = rows[0]
        runner_up = rows[1]["score"] if len(rows) > 1 else 0.0
        if best["score"] >= AMBIGUITY_MARGIN * runner_up:
            report.anchors.append(
                LinkedEntity(
                    mention=mention.text,
                    key=best["key"],
                    name=best["name"],
                    score=float(best["score"]) / (float(best["score"]) + runner_up),
                )
            )
        else:
            report.ambiguous_candidates.extend(
                LinkedEntity(
                    mention=mention.text, key=r["key"], name=r["name"], score=float(r["score"])
                )
                for r in rows
            )
