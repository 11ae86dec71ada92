"""Ingest through the running services (Kafka -> parser -> graph-builder -> Neo4j).

The MetaQA KB goes through the whole pipeline and comes out as exactly the graph its file
describes; bad documents are dead-lettered one by one while the rest of their batch is written.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections import defaultdict

import pytest

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.cli.requests import ingest, kb_documents
from autoglm.contracts import JSON, DeadLetter, Document, DocumentFormat, GraphCommit, encode
from autoglm.graph.store import GraphStore
from autoglm.nlp.keys import normalize_key
from autoglm.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.e2e

KB = PROJECT_ROOT.parent / "shared" / "data" / "metaqa" / "kb.txt"
AUTOGLM = PROJECT_ROOT / ".venv" / "bin" / "autoglm"

# A hub (has_genre object of thousands of films), a case-variant pair that must stay apart, a
# film, and names that NFKC normalisation or Cypher quoting could get wrong.
SPOT_CHECKS = ("Drama", "War", "war", "Cast Away", "8½", "$9.99")


def _kb_from_file() -> tuple[set[str], set[tuple[str, str, str]]]:
    """Entities and triples of the KB file, computed without any of the project's code."""
    entities: set[str] = set()
    triples: set[tuple[str, str, str]] = set()
    for line in KB.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            subject, relation, obj = line.split("|")
            entities.update((subject, obj))
            triples.add((subject, relation, obj))
    return entities, triples


async def _wipe_graph(store: GraphStore) -> None:
    # The version node stays (and moves on), so caches keyed by the version never go stale.
    await store.run_write(
        "MATCH (n) WHERE NOT n:GraphMeta CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
    )
    await store.run_write("MATCH (m:GraphMeta) SET m.version = m.version + 1")


async def test_metaqa_kb_through_the_pipeline_is_exactly_the_file(stack_settings, services):
    store = GraphStore.connect(stack_settings)
    try:
        await _wipe_graph(store)
        documents = list(kb_documents(KB, 500))
        summary = await ingest(stack_settings, documents, timeout_s=600.0)
        entities, triples = _kb_from_file()
        assert (len(entities), len(triples)) == (43_234, 133_582)  # as SOURCE.md says
        assert summary.documents == len(documents)
        assert (summary.dead_letters, summary.line_errors) == (0, 0)
        assert (summary.graph_entities, summary.graph_relations) == (len(entities), len(triples))

        names = await store.run_read("MATCH (e:Entity) RETURN e.name AS name")
        assert sorted(r["name"] for r in names) == sorted(entities)
        edges = await store.run_read(
            "MATCH (s:Entity)-[r:REL]->(o:Entity) RETURN s.name AS s, r.type AS p, o.name AS o"
        )
        assert len(edges) == len(triples)  # no relation written twice
        assert {(r["s"], r["p"], r["o"]) for r in edges} == triples

        expected: dict[str, set[tuple[str, bool, str]]] = defaultdict(set)
        for subject, relation, obj in triples:
            expected[subject].add((relation, True, obj))
            expected[obj].add((relation, False, subject))
        assert len(expected["Drama"]) > 1_000 and expected["War"] != expected["war"]
        for name in SPOT_CHECKS:
            rows = await store.run_read(
                "MATCH (e:Entity {key: $key})-[r:REL]-(n:Entity) "
                "RETURN r.type AS relation, startNode(r) = e AS outgoing, n.name AS neighbour",
                key=normalize_key(name),
            )
            seen = [(r["relation"], r["outgoing"], r["neighbour"]) for r in rows]
            assert len(seen) == len(expected[name]) and set(seen) == expected[name], name

        # The same lines again (new request ids): nothing changes, not even the version.
        version = summary.graph_version
        again = await ingest(stack_settings, list(kb_documents(KB, 500))[:4], timeout_s=120.0)
        assert again.documents == 4 and again.graph_version == version
        assert (again.graph_entities, again.graph_relations) == (len(entities), len(triples))
        assert await store.graph_version() == version
    finally:
        await store.close()


def _document(text: str, **fields) -> Document:
    request_id = new_request_id()
    return Document(
        request_id=request_id,
        schema_version=1,
        document_id=f"test:{request_id}",
        text=text,
        **fields,
    )


def _protobuf_with_invalid_utf8(request_id: str) -> bytes:
    # Document{request_id=1, text=5}: the text field holds bytes that are not UTF-8.
    rid = request_id.encode()
    return b"\x0a" + bytes([len(rid)]) + rid + b"\x2a\x02\xc3\x28"


INJECTIONS = (
    "x'}) MATCH (n) DETACH DELETE n //",
    '`Jaws`) RETURN 1 UNION MATCH (m) SET m.name = "pwned',
    "$entities} CALL db.clearQueryCaches() //",
)


async def test_bad_documents_are_dead_lettered_and_the_rest_is_written(stack_settings, services):
    settings = Settings()  # the limits the services run with
    good_text = _document(
        "Stanley Kubrick directed The Shining.", format=DocumentFormat.DOCUMENT_FORMAT_TEXT
    )
    kb_lines = [
        f"{INJECTIONS[0]}|directed_by|{INJECTIONS[1]}",
        "only|two",
        f'{INJECTIONS[2]}|has_tags|quote\'s "and" `ticks`',
        "a|b|c|d",
    ]
    kb = _document("\n".join(kb_lines), format=DocumentFormat.DOCUMENT_FORMAT_TRIPLES)
    good = [good_text, kb]
    bad: dict[str, tuple[bytes, dict[str, str], str]] = {}  # request id -> body, headers, type

    def reject(document: Document, error_type: str) -> None:
        body, headers = encode(document)
        bad[document.request_id] = (body, headers, error_type)

    reject(_document(""), "missing_field")
    reject(_document(" \n\t "), "missing_field")
    reject(_document("x" * (settings.max_document_chars + 1)), "too_large")
    reject(_document("a " * 100_000), "too_large")  # 100k tokens, within the character limit
    reject(_document("text\x00with NUL"), "binary")
    rid = new_request_id()
    bad[rid] = (
        _protobuf_with_invalid_utf8(rid),
        {"content-type": "application/x-protobuf"},
        "decode",
    )
    rid = new_request_id()
    body = b'{"requestId": "%s", "text": "caf\xe9"}' % rid.encode()
    bad[rid] = (body, {"content-type": JSON}, "decode")
    rid = new_request_id()
    bad[rid] = (b"\x9a\x00\xff\x13 binary junk \x01\x02", {}, "decode")

    ids = [d.request_id for d in good] + list(bad)
    async with PipelineClient(stack_settings) as client:
        client.expect(ids)
        # One burst, so that good and bad messages share the parser's and graph-builder's batches.
        await asyncio.gather(
            *(client.publish(topics.DOCUMENTS, d, key=d.request_id) for d in good),
            *(
                client.publish_raw(topics.DOCUMENTS, body, key=rid, headers=headers)
                for rid, (body, headers, _) in bad.items()
            ),
        )
        replies = {rid: reply async for rid, reply in client.replies(ids, 120.0)}
        await client.await_partial_rejections([kb.request_id], 10.0)
        partial = client.partial_rejections.get(kb.request_id, [])

    for rid, (body, _, error_type) in bad.items():
        letter = replies[rid]
        assert isinstance(letter, DeadLetter), (error_type, letter)
        assert (letter.service, letter.error_type) == ("parser", error_type), letter.reason
        assert letter.original_value == body and letter.reason and len(letter.trace_id) == 32

    commit = replies[good_text.request_id]
    assert isinstance(commit, GraphCommit) and commit.triples >= 1
    commit = replies[kb.request_id]
    assert isinstance(commit, GraphCommit)
    assert (commit.triples, commit.line_errors) == (2, 2)
    (report,) = partial
    assert report.error_type == "kb_bad_lines" and report.original_value == encode(kb)[0]
    assert "line 2: expected 3 fields separated by '|', got 2" in report.reason
    assert "line 4: expected 3 fields separated by '|', got 4" in report.reason

    store = GraphStore.connect(stack_settings)
    try:
        rows = await store.run_read(
            "MATCH (s:Entity)-[r:REL]->(o:Entity) WHERE s.name IN $names "
            "RETURN s.name AS s, r.type AS p, o.name AS o",
            names=list(INJECTIONS),
        )
        kubrick = await store.run_read(
            "MATCH (e:Entity {key: 'Stanley Kubrick'}) RETURN e.label AS label"
        )
    finally:
        await store.close()
    assert {(r["s"], r["p"], r["o"]) for r in rows} == {
        (INJECTIONS[0], "directed_by", INJECTIONS[1]),
        (INJECTIONS[2], "has_tags", 'quote\'s "and" `ticks`'),
    }
    assert kubrick == [{"label": "PERSON"}]


def _cli(stack_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AUTOGLM), "ingest", *args],
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ingest_commands_end_with_a_summary_of_what_was_committed(stack_env, services, tmp_path):
    kb = tmp_path / "kb.txt"
    kb.write_text("Film X|directed_by|Someone\nbroken line\nFilm X|release_year|2001\n")
    done = _cli(stack_env, "kb", str(kb))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["documents"], summary["relations"], summary["line_errors"]) == (1, 2, 1)
    assert summary["graph_relations"] >= 2 and summary["seconds"] > 0
    assert "line 2: expected 3 fields separated by '|', got 1" in done.stderr

    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "one.txt").write_text("Francis Ford Coppola directed The Godfather.")
    (texts / "two.txt").write_text("Sofia Coppola was born in New York.")
    (texts / "empty.txt").write_text("   ")
    done = _cli(stack_env, "text", str(texts))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["documents"], summary["dead_letters"]) == (3, 1)
    assert summary["relations"] >= 2 and "rejected" in done.stderr
