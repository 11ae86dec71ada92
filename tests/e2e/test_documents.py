"""Document updates through the running services: ingest a text, see where its edges were read
(in Neo4j and on `autoglm ask`'s reasoning path), replace it, delete it, delete it again.

Assertions follow the document's provenance in the graph rather than the exact triples, so they
hold whichever text extractor the parser runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from autoglm.bus.client import PipelineClient
from autoglm.cli.requests import delete_documents, ingest, kb_documents, text_document_id
from autoglm.contracts import DocumentAction, GraphCommit
from autoglm.graph.store import GraphStore
from autoglm.graph.writes import document_ref
from autoglm.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

AUTOGLM = PROJECT_ROOT / ".venv" / "bin" / "autoglm"

DIRECTED = "Idris Vantongeren directed The Copper Lantern."
BORN_V1 = "Idris Vantongeren was born in Ghent."
BORN_V2 = "Idris Vantongeren was born in Bruges."


def _cli(stack_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AUTOGLM), *args],
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        timeout=300,
    )


async def _document_edges(store: GraphStore, document_id: str) -> dict[tuple, list[str]]:
    rows = await store.run_read(
        "MATCH (s:Entity)-[r:REL|OPEN_REL]->(o:Entity) WHERE $ref IN r.sources "
        "RETURN s.key AS s, s.name AS sn, r.type AS p, o.key AS o, o.name AS on, "
        "type(r) AS rel, r.sources AS sources",
        ref=document_ref(document_id),
    )
    return {(r["s"], r["sn"], r["p"], r["o"], r["on"], r["rel"]): r["sources"] for r in rows}


async def _edge_sources(store: GraphStore, subject: str, relation: str, obj: str) -> list[str]:
    rows = await store.run_read(
        "MATCH (:Entity {key: $s})-[r:REL {type: $p}]->(:Entity {key: $o}) "
        "RETURN COLLECT { MATCH (d:Document) WHERE d.ref IN r.sources RETURN d.id } AS sources",
        s=subject,
        p=relation,
        o=obj,
    )
    return sorted(rows[0]["sources"]) if rows else []


async def _sentences(store: GraphStore, document_id: str) -> list[str]:
    rows = await store.run_read(
        "MATCH (:Document {id: $id})-[:HAS_SENTENCE]->(s:Sentence)-[:SUPPORTS]->() "
        "RETURN DISTINCT s.text AS text ORDER BY text",
        id=document_id,
    )
    return [r["text"] for r in rows]


async def test_ingest_replace_and_delete_a_text_through_kafka(
    stack_settings, stack_env, services, tmp_path: Path, unique: str
):
    folder = tmp_path / "texts"
    (folder / unique).mkdir(parents=True)
    text_file = folder / unique / "lantern.txt"
    text_file.write_text(f"{DIRECTED} {BORN_V1}")
    document_id = text_document_id(f"{unique}/lantern.txt")
    store = GraphStore.connect(stack_settings)
    cleanup = [document_id]
    try:
        # 1. Ingest: every edge the text gave is supported by it, and says where it was read.
        done = _cli(stack_env, "ingest", "text", str(folder))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["documents"] == 1
        first = await _document_edges(store, document_id)
        assert first, "the text gave no edge"
        sentences = await _sentences(store, document_id)
        assert sentences and set(sentences) <= {DIRECTED, BORN_V1}

        # A KB states one of those facts too: one edge, two sources.
        # (The fact of the sentence that both versions of the text state.)
        shared = next(
            e
            for e in sorted(first)
            if "The Copper Lantern" in (e[1], e[4])
            and e[0] == e[1]
            and e[3] == e[4]
            and e[5] == "REL"
        )
        subject, _, relation, obj, _, _ = shared
        kb_file = tmp_path / f"kb-{unique}.txt"
        kb_file.write_text(f"{subject}|{relation}|{obj}\n")
        (kb_doc,) = kb_documents(kb_file, 500)
        cleanup.append(kb_doc.document_id)
        kb_summary = await ingest(stack_settings, [kb_doc], 120.0)
        assert kb_summary.documents == 1 and kb_summary.dead_letters == 0
        assert {kb_doc.document_id, document_id} <= set(
            await _edge_sources(store, subject, relation, obj)
        )

        # 2. `ask` shows the evidence sentence of the text edges on the reasoning path.
        answered = _cli(stack_env, "ask", "--json", "what did [Idris Vantongeren] direct")
        assert answered.returncode == 0, answered.stderr
        result = json.loads(answered.stdout)
        assert result["status"] == "RESULT_STATUS_OK", result
        path = result["reasoningPath"]
        assert path
        for edge in path:
            (evidence,) = [e for e in edge["evidence"] if e["documentId"] == document_id]
            assert evidence["text"] in (DIRECTED, BORN_V1)
            assert evidence["extractorVersion"]
        printed = _cli(stack_env, "ask", "what did [Idris Vantongeren] direct")
        assert printed.returncode == 0, printed.stderr
        assert evidence["text"] in printed.stdout
        assert document_id in printed.stdout

        # 3. The file changed: ingesting it again replaces what it said.
        text_file.write_text(f"{DIRECTED} {BORN_V2}")
        done = _cli(stack_env, "ingest", "text", str(folder))
        assert done.returncode == 0, done.stderr
        second = await _document_edges(store, document_id)
        gone = set(first) - set(second)
        assert any("Ghent" in (e[1], e[4]) for e in gone), first
        assert any("Bruges" in (e[1], e[4]) for e in second), second
        assert json.loads(done.stdout)["removed_relations"] == len(gone)  # text-only edges
        sentences = await _sentences(store, document_id)
        assert sentences and set(sentences) <= {DIRECTED, BORN_V2}

        # 4. Delete through Kafka: its edges go, the KB's stays, its sentences go.
        version = await store.graph_version()
        done = _cli(stack_env, "documents", "delete", document_id)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["documents"] == 1 and summary["removed_relations"] >= 1
        assert summary["graph_version"] > version
        assert await _document_edges(store, document_id) == {}
        assert await _sentences(store, document_id) == []
        sources = await _edge_sources(store, subject, relation, obj)
        assert kb_doc.document_id in sources and document_id not in sources
        assert not await store.run_read("MATCH (d:Document {id: $id}) RETURN d", id=document_id)
        ghent = await store.run_read(
            "MATCH (e:Entity) WHERE e.name IN ['Ghent', 'Bruges'] "
            "AND NOT EXISTS { (e)--() } RETURN e.key AS key"
        )
        assert ghent == []  # no entity is left hanging

        # 5. Deleting again (or a redelivery) changes nothing, not even the version.
        version = await store.graph_version()
        again = delete_documents([document_id])
        async with PipelineClient(stack_settings) as client:
            client.expect([again[0].request_id])
            await client.publish("documents", again[0], key=document_id)
            replies = [r async for _, r in client.replies([again[0].request_id], 120.0)]
        (commit,) = replies
        assert isinstance(commit, GraphCommit)
        assert commit.action == DocumentAction.DOCUMENT_ACTION_DELETE
        assert (commit.triples_removed, commit.graph_version) == (0, version)
        assert await store.graph_version() == version
    finally:
        await ingest(stack_settings, delete_documents(cleanup), 120.0)
        await store.close()
