"""The trainer's durable memory: training examples and the incremental rounds that used them.

SQLite in the trainer's state folder: one file, transactional, and still there when a killed
trainer restarts. Examples are keyed by their request id, so a redelivered message changes
nothing. An example is *pending* until a finished round has used it; a round is recorded
before it starts (with the examples it takes) and marked finished only after its version is
registered and, if it passed the gate, promoted, so a trainer killed in between finds the round
and resumes it (see ``autoglm.training.incremental``). Its attempts are counted in its report
while it runs; one that keeps failing is finished as "failed" (its examples are used by it, so
they do not make every later round fail too).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoglm.contracts import ExampleSource, TrainingExample

_SCHEMA = """
CREATE TABLE IF NOT EXISTS examples (
    id TEXT PRIMARY KEY,
    source_request_id TEXT NOT NULL,
    source INTEGER NOT NULL,
    payload BLOB NOT NULL,
    added_at REAL NOT NULL,
    round_id INTEGER
);
CREATE INDEX IF NOT EXISTS examples_pending ON examples (round_id, added_at);
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    parent_version TEXT NOT NULL,
    example_ids TEXT NOT NULL,
    status TEXT NOT NULL,
    candidate_version TEXT,
    report TEXT
);
"""


@dataclass(frozen=True)
class Round:
    id: int
    parent_version: str
    example_ids: tuple[str, ...]
    status: str  # "running", "promoted", "rejected", "superseded", "failed"
    candidate_version: str | None
    report: dict[str, Any]


class ExampleStore:
    """Thread-safe (the trainer trains in a worker thread while the event loop adds examples)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- examples -----------------------------------------------------------------------------

    def add(self, examples: Iterable[TrainingExample], now: float | None = None) -> int:
        """Stores the examples not seen before; returns how many were new."""
        stamp = time.time() if now is None else now
        rows = [
            (e.request_id, e.source_request_id, int(e.source), e.SerializeToString(), stamp)
            for e in examples
        ]
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO examples (id, source_request_id, source, payload, added_at)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
            return self._db.total_changes - before

    def pending_count(self) -> int:
        return int(self._run("SELECT COUNT(*) FROM examples WHERE round_id IS NULL")[0][0])

    def oldest_pending_age(self, now: float | None = None) -> float | None:
        (oldest,) = self._run("SELECT MIN(added_at) FROM examples WHERE round_id IS NULL")[0]
        return None if oldest is None else (time.time() if now is None else now) - oldest

    def pending(self, limit: int) -> list[TrainingExample]:
        """The oldest pending examples, at most ``limit``."""
        rows = self._run(
            "SELECT payload FROM examples WHERE round_id IS NULL ORDER BY added_at, id LIMIT ?",
            (limit,),
        )
        return [_example(payload) for (payload,) in rows]

    def examples(self, ids: Sequence[str]) -> list[TrainingExample]:
        found: dict[str, TrainingExample] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, payload in self._run(
                f"SELECT id, payload FROM examples WHERE id IN ({marks})", chunk
            ):
                found[key] = _example(payload)
        return [found[i] for i in ids if i in found]

    def count(self) -> int:
        return int(self._run("SELECT COUNT(*) FROM examples")[0][0])

    # --- rounds -------------------------------------------------------------------------------

    def start_round(self, parent_version: str, example_ids: Sequence[str]) -> Round:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO rounds (started_at, parent_version, example_ids, status)"
                " VALUES (?, ?, ?, 'running')",
                (time.time(), parent_version, json.dumps(list(example_ids))),
            )
            round_id = int(cursor.lastrowid or 0)
        return Round(round_id, parent_version, tuple(example_ids), "running", None, {})

    def set_candidate(self, round_id: int, version: str) -> None:
        self._run("UPDATE rounds SET candidate_version = ? WHERE id = ?", (version, round_id))

    def finish_round(self, round_id: int, status: str, report: dict[str, Any]) -> None:
        """Marks the round finished and its examples used, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            (ids,) = self._db.execute(
                "SELECT example_ids FROM rounds WHERE id = ?", (round_id,)
            ).fetchone()
            self._db.executemany(
                "UPDATE examples SET round_id = ? WHERE id = ?",
                [(round_id, key) for key in json.loads(ids)],
            )
            self._db.execute(
                "UPDATE rounds SET status = ?, finished_at = ?, report = ? WHERE id = ?",
                (status, time.time(), json.dumps(report, default=str), round_id),
            )
            self._db.execute("COMMIT")

    def round(self, round_id: int) -> Round:
        rows = self._run(
            "SELECT id, parent_version, example_ids, status, candidate_version, report"
            " FROM rounds WHERE id = ?",
            (round_id,),
        )
        if not rows:
            raise KeyError(f"no round {round_id}")
        return _round(rows[0])

    def note_attempt(self, round_id: int, error: str | None = None) -> int:
        """Count an attempt at a running round (before it runs, so that one killed midway
        counts too) or note the error of the last one; returns the attempts so far. Kept in the
        round's report until it finishes, so a restarted trainer knows them."""
        with self._lock:
            self._db.execute("BEGIN")
            (raw,) = self._db.execute(
                "SELECT report FROM rounds WHERE id = ?", (round_id,)
            ).fetchone()
            report = json.loads(raw) if raw else {}
            if error is None:
                report["attempts"] = int(report.get("attempts", 0)) + 1
            else:
                report["last_error"] = error
            self._db.execute(
                "UPDATE rounds SET report = ? WHERE id = ?", (json.dumps(report), round_id)
            )
            self._db.execute("COMMIT")
            return int(report.get("attempts", 0))

    def unfinished_round(self) -> Round | None:
        rows = self._run(
            "SELECT id, parent_version, example_ids, status, candidate_version, report"
            " FROM rounds WHERE status = 'running' ORDER BY id LIMIT 1"
        )
        return _round(rows[0]) if rows else None

    def rounds(self) -> list[Round]:
        rows = self._run(
            "SELECT id, parent_version, example_ids, status, candidate_version, report"
            " FROM rounds ORDER BY id"
        )
        return [_round(row) for row in rows]


def effective_examples(examples: Sequence[TrainingExample]) -> list[TrainingExample]:
    """One example per source request: a user's feedback overrides the model's own pseudo-label
    (the latest feedback wins)."""
    chosen: dict[str, TrainingExample] = {}
    for example in examples:
        current = chosen.get(example.source_request_id)
        if (
            current is None
            or example.source == ExampleSource.EXAMPLE_SOURCE_FEEDBACK
            or current.source != ExampleSource.EXAMPLE_SOURCE_FEEDBACK
        ):
            chosen[example.source_request_id] = example
    return list(chosen.values())


def _example(payload: bytes) -> TrainingExample:
    example = TrainingExample()
    example.ParseFromString(payload)
    return example


def _round(row: tuple[Any, ...]) -> Round:
    round_id, parent, ids, status, candidate, report = row
    return Round(
        int(round_id),
        str(parent),
        tuple(json.loads(ids)),
        str(status),
        candidate,
        json.loads(report) if report else {},
    )
