"""The local stack without servers: generated configs, command lines, pid files, ports.

The few processes started here are throw-away Python children, never Kafka, Neo4j or Redis.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoglm.settings import Settings
from autoglm.stack import LocalStack, MissingJarsError, StackError, default_lib_dir, ensure_jars
from autoglm.stack.config import (
    DEFAULT_LIB_DIR,
    NEO4J_PASSWORD_ENV,
    ClassArchive,
    Endpoint,
    ServerSpec,
    StackPaths,
    class_archive,
    kafka_cluster_id,
    kafka_nodes,
    kafka_properties,
    kafka_spec,
    neo4j_spec,
    new_kafka_cluster_id,
    publish_class_archive,
    redis_config,
    redis_spec,
    render_properties,
    server_endpoints,
    server_names,
)
from autoglm.stack.procs import (
    PidRecord,
    is_alive,
    launch,
    log_tail,
    port_holder,
    port_in_use,
    process_id,
    read_pid_file,
    running_record,
    terminate,
    write_pid_file,
)


def _settings(stack_dir: Path, **overrides: object) -> Settings:
    return Settings(stack_dir=stack_dir, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return _settings(
        tmp_path / "stack",
        neo4j_password="unit-test-password",
        kafka_port=29092,
        kafka_controller_port=29093,
        neo4j_port=27687,
        redis_port=26379,
    )


@pytest.fixture
def paths(settings: Settings) -> StackPaths:
    return StackPaths(settings.stack_dir)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket on a free port, standing for a process the stack does not own."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def _fake_jars(lib: Path) -> None:
    for name in ("kafka", "neo4j"):
        (lib / name).mkdir(parents=True)
        (lib / name / f"{name}.jar").write_bytes(b"")


# --- config generation ------------------------------------------------------------------------


def test_kafka_properties_single_node_kraft(settings: Settings, paths: StackPaths) -> None:
    props = kafka_properties(settings, paths)
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["log.dirs"] == str(settings.stack_dir / "data" / "kafka")
    assert props["num.partitions"] == str(settings.topic_partitions)
    assert props["auto.create.topics.enable"] == "true"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1"


def test_kafka_cluster_nodes_and_properties(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_brokers=3, kafka_port=29092, kafka_controller_port=29093)
    nodes = kafka_nodes(settings)
    assert [(n.name, n.node_id, n.port, n.controller_port) for n in nodes] == [
        ("kafka-1", 1, 29092, 29093),
        ("kafka-2", 2, 29094, 29095),
        ("kafka-3", 3, 29096, 29097),
    ]
    assert server_names(settings) == ("kafka-1", "kafka-2", "kafka-3", "neo4j", "redis")
    assert settings.kafka_bootstrap == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    props = kafka_properties(settings, StackPaths(tmp_path), nodes[1])
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29095"
    assert props["log.dirs"] == str(tmp_path / "data" / "kafka-2")
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert props[key] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    spec = kafka_spec(
        settings, StackPaths(tmp_path), tmp_path, "java", use_class_archive=False, node=nodes[2]
    )
    assert "-Xmx256m" in spec.argv
    assert spec.detail_log == tmp_path / "logs" / "kafka-3" / "kafka-server.log"


def test_kafka_nodes_share_one_cluster_id(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_brokers=3)
    paths = StackPaths(tmp_path)
    fresh = kafka_cluster_id(settings, paths)
    assert len(fresh) == 22
    (tmp_path / "data" / "kafka-2").mkdir(parents=True)
    (tmp_path / "data" / "kafka-2" / "meta.properties").write_text("cluster.id=abc\nnode.id=2\n")
    assert kafka_cluster_id(settings, paths) == "abc"


def test_replication_beyond_the_brokers_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, topic_replication=3)
    with pytest.raises(StackError, match="topic_replication 3"):
        kafka_properties(settings, StackPaths(tmp_path))


def test_cluster_ports_must_not_overlap(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_brokers=3, kafka_port=29092, kafka_controller_port=29094)
    with pytest.raises(StackError, match=r"share 127\.0\.0\.1:29094"):
        server_endpoints(settings)


def test_render_properties_escapes_backslashes() -> None:
    assert render_properties({"a": "x", "log.dirs": r"C:\data"}) == "a=x\nlog.dirs=C:\\\\data\n"


def test_kafka_spec_formats_once(settings: Settings, paths: StackPaths, tmp_path: Path) -> None:
    spec = kafka_spec(settings, paths, tmp_path / "lib", "java", use_class_archive=False)
    assert spec.argv[-2:] == ("kafka.Kafka", str(paths.conf / "kafka.properties"))
    assert f"{tmp_path / 'lib' / 'kafka'}/*" in spec.argv
    assert "-Xmx512m" in spec.argv
    assert any(a.startswith("-Dlog4j2.configurationFile=") for a in spec.argv)
    assert "kafka.tools.StorageTool" in spec.init_argv
    assert "--ignore-formatted" in spec.init_argv
    assert spec.needs_init
    assert spec.init_done is not None
    spec.init_done.parent.mkdir(parents=True)
    spec.init_done.write_text("cluster.id=x\n")
    assert not spec.needs_init
    assert [str(e) for e in spec.endpoints] == ["127.0.0.1:29092", "127.0.0.1:29093"]


def test_kafka_cluster_id_format() -> None:
    for _ in range(50):
        cluster_id = new_kafka_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_redis_config(settings: Settings, paths: StackPaths) -> None:
    conf = redis_config(settings, paths).splitlines()
    assert "bind 127.0.0.1" in conf
    assert "port 26379" in conf
    assert "daemonize no" in conf
    assert f'dir "{paths.data / "redis"}"' in conf
    assert not any(line.startswith("requirepass") for line in conf)


def test_redis_config_password_is_quoted(tmp_path: Path) -> None:
    settings = _settings(tmp_path, redis_password='p"w d')
    conf = redis_config(settings, StackPaths(tmp_path)).splitlines()
    assert 'requirepass "p\\"w d"' in conf


def test_redis_spec_writes_private_config(settings: Settings, paths: StackPaths) -> None:
    spec = redis_spec(settings, paths, "/usr/bin/redis-server")
    assert spec.argv == ("/usr/bin/redis-server", str(paths.conf / "redis.conf"))
    assert spec.log_file == paths.logs / "redis.log"


def test_neo4j_password_stays_off_the_command_line(
    settings: Settings, paths: StackPaths, tmp_path: Path
) -> None:
    spec = neo4j_spec(settings, paths, tmp_path / "lib", "java", use_class_archive=False)
    assert settings.neo4j_password not in " ".join(spec.argv)
    assert spec.env == {NEO4J_PASSWORD_ENV: settings.neo4j_password}
    assert spec.argv[spec.argv.index("--port") + 1] == "27687"
    assert spec.argv[spec.argv.index("--database") + 1] == settings.neo4j_database
    assert "-Xmx1g" in spec.argv
    assert spec.ready_line is not None


def test_neo4j_short_password_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, neo4j_password="short")
    with pytest.raises(StackError, match="at least 8"):
        neo4j_spec(settings, StackPaths(tmp_path), tmp_path, "java", use_class_archive=False)


# --- jars ---------------------------------------------------------------------------------------


def test_default_lib_dir_prefers_the_stack_dir_with_jars(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert default_lib_dir(settings) == DEFAULT_LIB_DIR
    _fake_jars(tmp_path / "lib")
    assert default_lib_dir(settings) == tmp_path / "lib"


def test_missing_jars_tell_to_run_make_setup(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(MissingJarsError, match="make setup"):
        ensure_jars(settings, tmp_path / "nowhere")
    _fake_jars(tmp_path / "lib")
    assert ensure_jars(settings, tmp_path / "lib") == tmp_path / "lib"


# --- class-data-sharing archives -----------------------------------------------------------


def test_first_run_dumps_the_class_archive_then_later_runs_use_it(
    settings: Settings, paths: StackPaths, tmp_path: Path
) -> None:
    lib = tmp_path / "lib"
    _fake_jars(lib)
    first = neo4j_spec(settings, paths, lib, sys.executable)
    assert first.class_archive is not None
    dump = first.class_archive.dump_to
    assert dump is not None
    assert f"-XX:ArchiveClassesAtExit={dump}" in first.argv
    # The JVM writes the dump at exit; `down` publishes it.
    dump.write_bytes(b"archive")
    publish_class_archive(first.class_archive.path, dump, complete=True)
    assert first.class_archive.path.read_bytes() == b"archive"
    assert not dump.exists()

    later = neo4j_spec(settings, paths, lib, sys.executable)
    assert later.class_archive == ClassArchive(first.class_archive.path)
    assert f"-XX:SharedArchiveFile={first.class_archive.path}" in later.argv
    assert not any(a.startswith("-XX:ArchiveClassesAtExit") for a in later.argv)


def test_new_jars_get_a_new_class_archive(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    _fake_jars(lib)
    before = class_archive(lib, "kafka", sys.executable)
    (lib / "kafka" / "extra.jar").write_bytes(b"")
    after = class_archive(lib, "kafka", sys.executable)
    assert before is not None and after is not None
    assert before.path != after.path
    # Publishing the new archive removes the stale one.
    before.path.write_bytes(b"old")
    assert after.dump_to is not None
    after.dump_to.write_bytes(b"new")
    publish_class_archive(after.path, after.dump_to, complete=True)
    assert not before.path.exists()
    assert after.path.read_bytes() == b"new"


def test_dump_of_a_killed_jvm_is_discarded(tmp_path: Path) -> None:
    dump = tmp_path / "neo4j-x.1234.tmp"
    dump.write_bytes(b"partial")
    publish_class_archive(tmp_path / "neo4j-x.jsa", dump, complete=False)
    assert not dump.exists()
    assert not (tmp_path / "neo4j-x.jsa").exists()


def test_no_class_archive_without_java(tmp_path: Path) -> None:
    assert class_archive(tmp_path, "kafka", str(tmp_path / "no-java")) is None


# --- pid files and processes ------------------------------------------------------------------


def _record_for(pid: int, start_ticks: int | None = None) -> PidRecord:
    identity = process_id(pid)
    assert identity is not None
    return PidRecord(
        pid=pid,
        start_ticks=identity.start_ticks if start_ticks is None else start_ticks,
        boot_id=identity.boot_id,
        argv0="python",
        started_at=0.0,
        log_offset=0,
    )


def test_pid_file_round_trip(tmp_path: Path) -> None:
    record = _record_for(os.getpid())
    write_pid_file(tmp_path / "run" / "x.pid", record)
    assert read_pid_file(tmp_path / "run" / "x.pid") == record
    assert running_record(tmp_path / "run" / "x.pid") == record


def test_reused_pid_is_not_ours(tmp_path: Path) -> None:
    """Same pid, other start time: another process got the pid, the pid file is stale."""
    record = _record_for(os.getpid(), start_ticks=1)
    assert not is_alive(record.process)
    write_pid_file(tmp_path / "x.pid", record)
    assert running_record(tmp_path / "x.pid") is None
    assert not (tmp_path / "x.pid").exists()


def test_unreadable_pid_file_is_stale(tmp_path: Path) -> None:
    (tmp_path / "x.pid").write_text("not json")
    assert running_record(tmp_path / "x.pid") is None
    assert not (tmp_path / "x.pid").exists()


def _python_spec(tmp_path: Path, name: str, code: str) -> ServerSpec:
    return ServerSpec(
        name=name,
        endpoints=(Endpoint("127.0.0.1", 9),),
        argv=(sys.executable, "-c", code),
        log_file=tmp_path / "logs" / f"{name}.log",
    )


def test_launch_and_terminate(tmp_path: Path) -> None:
    spec = _python_spec(tmp_path, "sleeper", "import time; print('up', flush=True); time.sleep(60)")
    record = launch(spec, tmp_path / "run" / "sleeper.pid", tmp_path)
    assert read_pid_file(tmp_path / "run" / "sleeper.pid") == record
    assert is_alive(record.process)
    # Its own session: a Ctrl-C in our terminal does not reach it.
    assert os.getsid(record.pid) == record.pid
    outcome = terminate([record.process], grace_s=10)
    assert outcome[record.pid].startswith("stopped in")
    assert not is_alive(record.process)


def test_terminate_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    spec = _python_spec(tmp_path, "stubborn", code)
    record = launch(spec, tmp_path / "stubborn.pid", tmp_path)
    for _ in range(100):  # wait until the handler is installed
        if "ready" in spec.log_file.read_text():
            break
        time.sleep(0.05)
    outcome = terminate([record.process], grace_s=0.5)
    assert outcome[record.pid].startswith("killed")
    assert not is_alive(record.process)


def test_log_tail_reads_this_run_only(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("old 1\nold 2\n")
    offset = log.stat().st_size
    with log.open("a") as file:
        file.write("new 1\n\nnew 2\n")
    assert log_tail(log, offset) == ["new 1", "new 2"]
    assert log_tail(log, 0, lines=1) == ["new 2"]
    assert log_tail(tmp_path / "missing.log") == []


# --- ports ------------------------------------------------------------------------------------


def test_port_in_use_and_holder(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert port_in_use(Endpoint("127.0.0.1", port))
    holder = port_holder(port)
    assert holder is not None
    assert holder[0] == os.getpid()
    listener.close()
    assert not port_in_use(Endpoint("127.0.0.1", port))


def test_foreign_port_is_a_one_line_error(tmp_path: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    settings = _settings(tmp_path, redis_port=port)
    message = LocalStack(settings)._port_conflict("redis")
    assert message is not None
    assert "\n" not in message
    assert message.startswith(f"redis: 127.0.0.1:{port} is already in use by pid {os.getpid()}")
    assert "AUTOGLM_REDIS_PORT" in message


# --- waiting for a server ---------------------------------------------------------------------


def test_death_during_start_names_the_log(tmp_path: Path) -> None:
    stack = LocalStack(_settings(tmp_path, stack_start_timeout_s=10))
    spec = _python_spec(tmp_path, "redis", "import sys; print('boom: bad config'); sys.exit(3)")
    record = launch(spec, tmp_path / "redis.pid", tmp_path)
    with pytest.raises(StackError) as caught:
        asyncio.run(stack._wait_ready(spec, record, fresh=True))
    message = str(caught.value)
    assert message.startswith("redis exited with code 3 while starting")
    assert str(spec.log_file) in message
    assert "boom: bad config" in message


def test_silent_server_times_out(tmp_path: Path) -> None:
    stack = LocalStack(_settings(tmp_path, stack_start_timeout_s=1))
    spec = _python_spec(tmp_path, "redis", "import time; time.sleep(60)")
    record = launch(spec, tmp_path / "redis.pid", tmp_path)
    try:
        with pytest.raises(StackError, match=r"did not answer at 127\.0\.0\.1:9 within 1s"):
            asyncio.run(stack._wait_ready(spec, record, fresh=True))
    finally:
        terminate([record.process], grace_s=5)
