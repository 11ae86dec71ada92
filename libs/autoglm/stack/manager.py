"""``LocalStack``: start, inspect and stop Kafka, Neo4j and Redis as local processes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from autoglm.settings import Settings
from autoglm.stack.base import ServerStatus, StackError, State
from autoglm.stack.config import (
    KAFKA_LOG4J2_CONFIG,
    KAFKA_TOOL,
    Endpoint,
    ServerSpec,
    StackPaths,
    ensure_jars,
    find_java,
    find_redis_server,
    kafka_cluster_id,
    kafka_nodes,
    kafka_spec,
    neo4j_spec,
    publish_class_archive,
    redis_spec,
    render_properties,
    server_endpoints,
    server_kind,
    server_names,
)
from autoglm.stack.probes import describe_error, probe_once
from autoglm.stack.procs import (
    PidRecord,
    describe_holder,
    exit_code,
    is_alive,
    launch,
    log_contains,
    log_tail,
    port_in_use,
    remove_pid_file,
    run_init,
    running_record,
    terminate,
)
from autoglm.stack.secure import (
    acl_digest,
    acl_lines,
    admin_client_properties,
    ensure_stack_secrets,
    ensure_tls,
    stack_secrets,
    write_private,
)

T = TypeVar("T")

STOP_GRACE_S = 45.0
"""How long ``down`` waits after SIGTERM before SIGKILL (Neo4j takes ~10 s to stop)."""
STATUS_PROBE_TIMEOUT_S = 5.0
PROBE_ATTEMPT_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.5
INIT_TIMEOUT_S = 120.0

PORT_SETTINGS: dict[str, tuple[str, ...]] = {
    "kafka": ("kafka_port", "kafka_controller_port"),
    "neo4j": ("neo4j_port",),
    "redis": ("redis_port",),
}
"""The settings field of each endpoint in ``server_endpoints`` by server kind, named in
port-conflict errors."""


SHAPE_FIELDS = ("kafka_brokers", "secure")
"""Settings that change what `stack up` starts: recorded by `up`, so that `status` and `down`
without options see the stack as it was started (``stack_shape``)."""


def stack_shape(stack_dir: Path) -> dict[str, object]:
    """The shape settings the last `stack up` of this folder recorded; empty when none."""
    try:
        shape = json.loads((StackPaths(stack_dir).run / "stack.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in shape.items() if k in SHAPE_FIELDS} if isinstance(shape, dict) else {}


def _run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion, also when called from code inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, make()).result()


class LocalStack:
    """The servers of one stack folder (``settings.stack_dir``).

    ``lib_dir`` overrides where the Kafka and Neo4j jars are found (see ``default_lib_dir``);
    ``only`` restricts the stack to some kinds of server (``{"kafka"}``: the brokers alone).
    """

    def __init__(
        self,
        settings: Settings,
        lib_dir: Path | None = None,
        only: frozenset[str] | set[str] | None = None,
    ) -> None:
        # Passwords left empty are the stack's generated ones (``up`` generates missing ones).
        self.settings = stack_secrets(settings)
        self.paths = StackPaths(settings.stack_dir)
        self.lib_dir = lib_dir
        self.only = frozenset(only) if only is not None else None

    @property
    def names(self) -> tuple[str, ...]:
        """The servers of this stack, in start and report order."""
        return tuple(
            n
            for n in server_names(self.settings)
            if self.only is None or server_kind(n) in self.only
        )

    def _recorded_names(self) -> tuple[str, ...]:
        """``names`` plus any Kafka node with a pid file that the settings do not describe
        (a cluster started with other ``kafka_brokers``): ``status`` and ``down`` see it too."""
        extra = sorted(
            p.stem
            for p in self.paths.run.glob("kafka*.pid")
            if p.stem not in self.names
            and server_kind(p.stem) == "kafka"
            and (self.only is None or "kafka" in self.only)
        )
        return (*extra, *self.names)

    # --- public API -----------------------------------------------------------------------

    def up(self) -> list[ServerStatus]:
        """Start every server not running yet and wait until each answers a real request.

        Servers already running are only probed. When any server fails, those started by this
        call are stopped again and ``StackError`` says why.
        """
        with self._lock():
            self.settings = ensure_stack_secrets(self.settings)
            if self.settings.secure:
                ensure_tls(self.settings)
            self._check_kafka_storage_mode()
            specs = self.specs()
            running = {name: running_record(self.paths.pid_file(name)) for name in self.names}
            conflicts = [self._port_conflict(n) for n in self.names if running[n] is None]
            if any(conflicts):
                raise StackError("; ".join(c for c in conflicts if c))

            started: dict[str, PidRecord] = {}
            try:
                statuses = _run_async(lambda: self._start_all(specs, running, started))
                if self.settings.secure and any(server_kind(n) == "kafka" for n in self.names):
                    self._apply_acls()
            except BaseException:
                # All or nothing: stop what this call started, so a failed `up` leaves the
                # stack as it found it.
                self._stop(started, keep_class_archives=False)
                raise
            self._record_shape()
            return statuses

    def _kafka_mode_marker(self, node: str) -> Path:
        return self.paths.data / f"{node}.secure"

    def _check_kafka_storage_mode(self) -> None:
        """SCRAM users only come with a format: a storage formatted in the other mode cannot
        serve this one. Say so instead of timing out on authentication."""
        if not any(server_kind(n) == "kafka" for n in self.names):
            return
        for node in kafka_nodes(self.settings):
            formatted = (self.paths.data / node.name / "meta.properties").exists()
            marker = self._kafka_mode_marker(node.name)
            if formatted and marker.exists() != self.settings.secure:
                was, now = ("secure", "plain") if marker.exists() else ("plain", "secure")
                raise StackError(
                    f"{node.name}: its storage {self.paths.data / node.name} was formatted for "
                    f"a {was} stack and cannot serve a {now} one; run `autoglm stack down`, "
                    "delete it, or use another AUTOGLM_STACK_DIR"
                )
            if not formatted and self.settings.secure:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            elif not formatted:
                marker.unlink(missing_ok=True)

    def _apply_acls(self) -> None:
        """Create the ACLs of ``security.kafka_acls`` unless this cluster already has them."""
        cluster_id = kafka_cluster_id(self.settings, self.paths)
        done = self.paths.data / "kafka-acls.done"
        digest = acl_digest(self.settings, cluster_id)
        if done.is_file() and done.read_text().strip() == digest:
            return
        props, acl_file = self.paths.conf / "kafka-admin.properties", self.paths.conf / "kafka-acls"
        write_private(props, render_properties(admin_client_properties(self.settings)))
        write_private(acl_file, "\n".join(acl_lines(self.settings)) + "\n")
        lib = ensure_jars(self.settings, self.lib_dir)
        tool_logs = self.paths.logs / "kafka-tool"
        tool_logs.mkdir(parents=True, exist_ok=True)
        argv = (
            find_java(),
            "-Xmx256m",
            f"-Dkafka.logs.dir={tool_logs}",
            f"-Dlog4j2.configurationFile={KAFKA_LOG4J2_CONFIG}",
            "-cp",
            f"{lib / 'kafka'}/*",
            str(KAFKA_TOOL),
            "acls",
            str(props),
            str(acl_file),
        )
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=INIT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"kafka: creating ACLs took over {INIT_TIMEOUT_S:.0f}s") from exc
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise StackError("kafka: creating ACLs failed:\n" + "\n".join(f"  {t}" for t in tail))
        done.write_text(digest + "\n")

    def _record_shape(self) -> None:
        shape = {name: getattr(self.settings, name) for name in SHAPE_FIELDS}
        with contextlib.suppress(OSError):
            (self.paths.run / "stack.json").write_text(json.dumps(shape))

    def status(self) -> list[ServerStatus]:
        """What runs now; running servers are probed (a few seconds at most)."""
        records = {
            name: running_record(self.paths.pid_file(name)) for name in self._recorded_names()
        }
        return _run_async(lambda: self._status_all(records))

    def down(self) -> list[ServerStatus]:
        """Stop the servers this stack started (SIGTERM, then SIGKILL after a grace period).

        Processes holding the ports that this stack did not start are reported, never signalled.
        """
        with self._lock():
            names = self._recorded_names()
            records = {name: running_record(self.paths.pid_file(name)) for name in names}
            outcome = self._stop(
                {n: r for n, r in records.items() if r is not None}, keep_class_archives=True
            )
            statuses = []
            endpoints = server_endpoints(self.settings)
            for name in names:
                record = records[name]
                address = str(endpoints[name][0]) if name in endpoints else "-"
                busy = self._busy_endpoint(name)
                if busy is not None:
                    held = f"{busy} held {describe_holder(busy)}, not started by this stack"
                    statuses.append(ServerStatus(name, address, None, "foreign", held))
                elif record is not None:
                    statuses.append(
                        ServerStatus(
                            name, address, None, "stopped", outcome.get(record.pid, "exited")
                        )
                    )
                else:
                    statuses.append(ServerStatus(name, address, None, "stopped", "not running"))
            return statuses

    def specs(self) -> dict[str, ServerSpec]:
        """How each server runs; raises ``StackError`` when jars or programs are missing."""
        wanted = {server_kind(n) for n in self.names}
        specs: dict[str, ServerSpec] = {}
        if wanted & {"kafka", "neo4j"}:
            lib = ensure_jars(self.settings, self.lib_dir)
            java = find_java()
        if "kafka" in wanted:
            cluster_id = kafka_cluster_id(self.settings, self.paths)
            for node in kafka_nodes(self.settings):
                specs[node.name] = kafka_spec(
                    self.settings, self.paths, lib, java, node=node, cluster_id=cluster_id
                )
        if "neo4j" in wanted:
            specs["neo4j"] = neo4j_spec(self.settings, self.paths, lib, java)
        if "redis" in wanted:
            specs["redis"] = redis_spec(self.settings, self.paths, find_redis_server())
        return specs

    # --- internals ------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise ``up`` and ``down`` of one stack folder across processes."""
        self.paths.run.mkdir(parents=True, exist_ok=True)
        with (self.paths.run / "stack.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _busy_endpoint(self, name: str) -> Endpoint | None:
        endpoints = server_endpoints(self.settings).get(name, ())
        return next((e for e in endpoints if port_in_use(e)), None)

    def _port_conflict(self, name: str) -> str | None:
        """A one-line error when another process holds a port the server needs."""
        endpoints = server_endpoints(self.settings)[name]
        for endpoint, setting in zip(endpoints, PORT_SETTINGS[server_kind(name)], strict=True):
            if port_in_use(endpoint):
                return (
                    f"{name}: {endpoint} is already in use {describe_holder(endpoint)}; "
                    f"stop it or set AUTOGLM_{setting.upper()} to a free port"
                )
        return None

    def _stop(self, records: dict[str, PidRecord], keep_class_archives: bool) -> dict[int, str]:
        """Stop the processes; keep the class archives they dump only when asked to: a server
        that never got ready loaded too few classes for its archive to be worth keeping."""
        outcome = terminate([r.process for r in records.values()], STOP_GRACE_S)
        for name, record in records.items():
            if record.class_archive is not None and record.class_archive_dump is not None:
                clean = outcome.get(record.pid, "").startswith("stopped")
                publish_class_archive(
                    Path(record.class_archive),
                    Path(record.class_archive_dump),
                    complete=clean and keep_class_archives,
                )
            remove_pid_file(self.paths.pid_file(name))
        return outcome

    async def _start_all(
        self,
        specs: dict[str, ServerSpec],
        running: dict[str, PidRecord | None],
        started: dict[str, PidRecord],
    ) -> list[ServerStatus]:
        """Start (or just probe) every server concurrently; ``started`` collects the new ones.

        The first failure cancels the other waits: no point waiting for Kafka when Neo4j died.
        """
        tasks = [
            asyncio.create_task(self._start_one(specs[n], running[n], started)) for n in self.names
        ]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        errors = [e for t in done if (e := t.exception()) is not None]
        if errors:
            if len(errors) == 1:
                raise errors[0]
            raise StackError("\n".join(str(e) for e in errors)) from errors[0]
        return [t.result() for t in tasks]

    async def _start_one(
        self, spec: ServerSpec, record: PidRecord | None, started: dict[str, PidRecord]
    ) -> ServerStatus:
        if record is not None:
            return await self._wait_ready(spec, record, fresh=False)
        if spec.needs_init:
            # Kafka's storage format is a JVM of its own (seconds): others start meanwhile.
            await asyncio.to_thread(run_init, spec, self.paths.root, INIT_TIMEOUT_S)
        record = launch(spec, self.paths.pid_file(spec.name), self.paths.root)
        started[spec.name] = record
        return await self._wait_ready(spec, record, fresh=True)

    async def _wait_ready(self, spec: ServerSpec, record: PidRecord, fresh: bool) -> ServerStatus:
        timeout = self.settings.stack_start_timeout_s
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while True:
            if not is_alive(record.process):
                raise StackError(self._died_message(spec, record))
            # The launcher's ready line comes after the password is set: probing before would
            # only collect auth failures, which Neo4j rate-limits.
            if spec.ready_line is None or log_contains(
                spec.log_file, record.log_offset, spec.ready_line
            ):
                remaining = deadline - time.monotonic()
                attempt_timeout = max(0.5, min(PROBE_ATTEMPT_TIMEOUT_S, remaining))
                try:
                    info = await probe_once(
                        spec.name, self.settings, spec.endpoints[0], attempt_timeout
                    )
                except Exception as exc:  # any failure just means "not ready yet"
                    last_error = describe_error(exc)
                else:
                    elapsed = time.time() - record.started_at
                    detail = f"started in {elapsed:.1f}s" if fresh else "already running"
                    return ServerStatus(
                        spec.name, spec.address, record.pid, "running", f"{detail}; {info}"
                    )
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{spec.name} did not answer at {spec.address} within {timeout:.0f}s "
                    f"(last error: {last_error}); see {spec.log_file}"
                )
            await asyncio.sleep(POLL_INTERVAL_S)

    def _died_message(self, spec: ServerSpec, record: PidRecord) -> str:
        code = exit_code(record.pid)
        how = f"exited with code {code}" if code is not None else "exited"
        log, lines = spec.log_file, log_tail(spec.log_file, record.log_offset)
        if not lines and spec.detail_log is not None:
            log, lines = spec.detail_log, log_tail(spec.detail_log)
        tail = "\n".join(f"  {line}" for line in lines) or "  (empty)"
        return f"{spec.name} {how} while starting; last lines of {log}:\n{tail}"

    async def _status_all(self, records: dict[str, PidRecord | None]) -> list[ServerStatus]:
        return list(await asyncio.gather(*(self._status(n, records[n]) for n in records)))

    async def _status(self, name: str, record: PidRecord | None) -> ServerStatus:
        endpoints = server_endpoints(self.settings).get(name)
        if endpoints is None:  # a node of another cluster shape: its address is unknown here
            state: State = "running" if record is not None else "stopped"
            detail = "not in this stack's settings (kafka_brokers)"
            return ServerStatus(name, "-", record.pid if record else None, state, detail)
        endpoint = endpoints[0]
        address = str(endpoint)
        if record is None:
            busy = self._busy_endpoint(name)
            if busy is not None:
                held = f"{busy} held {describe_holder(busy)}, not started by this stack"
                return ServerStatus(name, address, None, "foreign", held)
            return ServerStatus(name, address, None, "stopped", "not running")
        try:
            info = await probe_once(name, self.settings, endpoint, STATUS_PROBE_TIMEOUT_S)
        except Exception as exc:  # reported, not raised: status must always answer
            detail = f"not answering ({describe_error(exc)}); see {self.paths.log(name)}"
        else:
            detail = f"answering; {info}"
        return ServerStatus(name, address, record.pid, "running", detail)
