"""What to run for each server of the local stack: paths, generated config files, command lines.

Nothing here starts a process, so all of it is unit-testable without servers.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autoglm.security import REDIS_SECURE_USER
from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.stack.base import MissingJarsError, StackError

STACK_SOURCES = PROJECT_ROOT / "stack"
"""Checked-in files of the stack: the Neo4j launcher and the Kafka logging config."""
NEO4J_LAUNCHER = STACK_SOURCES / "neo4j" / "Launcher.java"
KAFKA_TOOL = STACK_SOURCES / "kafka" / "KafkaTool.java"
"""Storage format with SCRAM users, and ACLs, for the secure stack (see ``stack.secure``)."""
KAFKA_LOG4J2_CONFIG = STACK_SOURCES / "kafka" / "log4j2.yaml"
DEFAULT_LIB_DIR = PROJECT_ROOT / ".stack" / "lib"
"""Where `make setup` puts the jars (``stack/pom.xml`` resolves them)."""

NEO4J_READY_LINE = "autoglm-neo4j ready"  # printed by Launcher.java once Bolt takes the password
NEO4J_PASSWORD_ENV = "AUTOGLM_NEO4J_PASSWORD"  # read by Launcher.java; keeps it off the cmdline
NEO4J_PAGECACHE_MB = 256
KAFKA_HEAP = "-Xmx512m"
KAFKA_CLUSTER_HEAP = "-Xmx256m"
"""Heap of each node of a multi-broker stack: three JVMs share a small machine."""
NEO4J_HEAP = ("-Xms256m", "-Xmx1g")

# Same flags the Neo4j server script passes: without the opens, the page cache and the
# transaction log fall back to slower code and log warnings on every start.
NEO4J_JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "-Dlog4j2.disable.jmx=true",
)
KAFKA_JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
SERVERS = ("kafka", "neo4j", "redis")
"""The servers of a one-broker stack, in the order they are started and reported."""


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node of the local stack: a broker and a controller voter in one process.

    A one-broker stack has the node ``kafka`` (id 1); a cluster has ``kafka-1`` ... ``kafka-N``.
    """

    name: str
    node_id: int
    port: int
    controller_port: int


def kafka_nodes(settings: Settings) -> list[KafkaNode]:
    """The nodes of ``settings.kafka_brokers``; node n (0-based) takes ports + 2n."""
    if settings.kafka_brokers == 1:
        return [KafkaNode("kafka", 1, settings.kafka_port, settings.kafka_controller_port)]
    return [
        KafkaNode(
            f"kafka-{n + 1}",
            n + 1,
            settings.kafka_port + 2 * n,
            settings.kafka_controller_port + 2 * n,
        )
        for n in range(settings.kafka_brokers)
    ]


def server_names(settings: Settings) -> tuple[str, ...]:
    """Every server of the stack the settings describe, in start and report order."""
    return (*(node.name for node in kafka_nodes(settings)), "neo4j", "redis")


def server_kind(name: str) -> str:
    """``kafka``, ``neo4j`` or ``redis`` for a server name (``kafka-2`` is a ``kafka``)."""
    return "kafka" if name == "kafka" or name.startswith("kafka-") else name


def default_lib_dir(settings: Settings) -> Path:
    """The folder holding ``kafka/`` and ``neo4j/`` jars.

    ``<stack_dir>/lib`` when it has jars, else the project's ``.stack/lib``: a stack whose
    ``stack_dir`` is a temporary folder (tests) then still finds the jars fetched once.
    """
    own = settings.stack_dir / "lib"
    if _has_jars(own / "kafka") and _has_jars(own / "neo4j"):
        return own
    return DEFAULT_LIB_DIR


def _has_jars(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.jar"))


def ensure_jars(settings: Settings, lib_dir: Path | None = None) -> Path:
    """Return the jar folder, or raise ``MissingJarsError`` saying how to fetch the jars."""
    lib = lib_dir if lib_dir is not None else default_lib_dir(settings)
    missing = [name for name in ("kafka", "neo4j") if not _has_jars(lib / name)]
    if missing:
        raise MissingJarsError(
            f"{' and '.join(missing)} jars not found in {lib}: run `make setup` "
            "(it runs `mvn -P kafka|neo4j dependency:copy-dependencies` in stack/)"
        )
    return lib


def find_java() -> str:
    """The ``java`` of ``JAVA_HOME`` when set, else the one on ``PATH``."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise StackError("java not found: install a JDK 17 (e.g. apt-get install openjdk-17-jdk)")
    return found


def find_redis_server() -> str:
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).is_file()), None
    )
    if found is None:
        raise StackError("redis-server not found: install it (e.g. apt-get install redis-server)")
    return found


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ClassArchive:
    """A class-data-sharing archive of a server's JVM (JDK 17 dynamic AppCDS).

    Loading Neo4j's classes from the archive instead of 200 jars cuts its start by a third.
    The first run dumps the archive when it exits (to ``dump_to``, a name of its own so that
    concurrent stacks never write one file); ``down`` then publishes it under ``path`` for
    later runs. The JVM checks the archive against the class path and ignores a stale one.
    """

    path: Path
    dump_to: Path | None = None

    def jvm_flags(self) -> tuple[str, ...]:
        if self.dump_to is not None:
            # The dump warns about every class it skips (hundreds of lines): errors only.
            return (f"-XX:ArchiveClassesAtExit={self.dump_to}", "-Xlog:cds*=error")
        return (f"-XX:SharedArchiveFile={self.path}",)


def class_archive(lib: Path, name: str, java: str) -> ClassArchive | None:
    """The archive for the jars of ``lib/<name>`` and this JDK; None if it cannot be written.

    Kept next to the jars (``<lib>/cds``), so that stacks in temporary folders share it; the
    name carries a digest of the JDK and the jars, so new jars or a new JDK get a new archive.
    """
    folder = lib / "cds"
    digest = hashlib.sha256()
    try:
        for item in (Path(java).resolve(), *sorted((lib / name).glob("*.jar"))):
            stat = item.stat()
            digest.update(f"{item}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        folder.mkdir(exist_ok=True)
    except OSError:
        return None  # the archive only saves time: never fail a start over it
    if not os.access(folder, os.W_OK):
        return None
    path = folder / f"{name}-{digest.hexdigest()[:16]}.jsa"
    if path.is_file() and path.stat().st_size > 0:
        return ClassArchive(path)
    return ClassArchive(path, dump_to=folder / f"{path.stem}.{uuid.uuid4().hex[:8]}.tmp")


def publish_class_archive(archive: Path, dump: Path, complete: bool) -> None:
    """Install an archive dumped by a JVM that has exited; drop it if the JVM did not exit
    cleanly (it dumps at exit, so a killed one leaves a partial file or none)."""
    if complete and dump.is_file() and dump.stat().st_size > 0:
        os.replace(dump, archive)  # atomic; a JVM mapping the old file keeps its copy
        server = archive.name.split("-", 1)[0]
        for stale in archive.parent.glob(f"{server}-*.jsa"):
            if stale != archive:
                stale.unlink(missing_ok=True)
    else:
        dump.unlink(missing_ok=True)


@dataclass(frozen=True)
class StackPaths:
    """Layout of a stack folder: generated configs, data, logs and pid files."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server."""

    name: str
    endpoints: tuple[Endpoint, ...]
    """Every address the server listens on; the first is the one clients use."""
    argv: tuple[str, ...]
    log_file: Path
    """Receives stdout and stderr."""
    files: Mapping[Path, str] = field(default_factory=dict)
    """Config files written (mode 0600, they may hold passwords) before each start."""
    dirs: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    init_argv: tuple[str, ...] = ()
    """One-off command run before the first start (Kafka: format the storage)."""
    init_env: Mapping[str, str] = field(default_factory=dict)
    """Environment of init_argv only (the secure stack's SCRAM users)."""
    init_done: Path | None = None
    """File whose presence means init_argv already ran."""
    ready_line: str | None = None
    """Line the server prints once it is ready; probes wait for it so they do not fail auth."""
    detail_log: Path | None = None
    """The server's own, fuller log, named in errors when ``log_file`` says little."""
    class_archive: ClassArchive | None = None

    @property
    def address(self) -> str:
        return str(self.endpoints[0])

    @property
    def needs_init(self) -> bool:
        return bool(self.init_argv) and (self.init_done is None or not self.init_done.exists())


def new_kafka_cluster_id() -> str:
    """A random cluster id in Kafka's format: 16 bytes, URL-safe base64 without padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # Kafka rejects ids that look like a command-line option.
        if not cluster_id.startswith("-"):
            return cluster_id


def _properties_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def render_properties(props: Mapping[str, str]) -> str:
    return "".join(f"{key}={_properties_escape(value)}\n" for key, value in props.items())


def kafka_properties(
    settings: Settings, paths: StackPaths, node: KafkaNode | None = None
) -> dict[str, str]:
    """KRaft in combined mode: every node is a broker and a controller voter.

    Combined rather than a separate controller quorum: three JVMs instead of six on a small
    machine, and a quorum of three voters still survives the loss of any one node, which is
    what killing a broker tests (it takes a voter with it).
    """
    nodes = kafka_nodes(settings)
    node = node or nodes[0]
    host = settings.kafka_host
    replication = settings.topic_replication_factor
    if replication > len(nodes):
        raise StackError(
            f"topic_replication {replication} needs at least as many brokers "
            f"(kafka_brokers is {len(nodes)})"
        )
    min_isr = str(min(settings.topic_min_isr, replication))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": ",".join(
            f"{n.node_id}@{host}:{n.controller_port}" for n in nodes
        ),
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://{host}:{node.port},CONTROLLER://{host}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{node.port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(paths.data / node.name),
        "num.partitions": str(settings.topic_partitions),
        "auto.create.topics.enable": "true",
        # Topics created by the broker itself (internal ones, auto-created ones) are replicated
        # like those the services create; one broker: every topic has a single replica.
        "default.replication.factor": str(replication),
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": str(replication),
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": min_isr,
        # A replica that lost data never becomes leader: acks=all writes stay written.
        "unclean.leader.election.enable": "false",
        # 50 offset partitions (the default) make the first consumer group slow to start.
        "offsets.topic.num.partitions": "10",
        # Tests start consumer groups all the time: do not wait for more members to join.
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
    }
    if settings.secure:
        from autoglm.stack.secure import kafka_secure_properties

        props.update(kafka_secure_properties(settings, node.port, node.controller_port))
    return props


def redis_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tls_root(settings: Settings) -> Path:
    return settings.stack_dir / "tls"


def redis_config(settings: Settings, paths: StackPaths) -> str:
    """Plain: a port and, when set, a password. Secure: TLS only, the default user off and one
    ACL user whose password is stored hashed (the file holds no password)."""
    tls = _tls_root(settings)
    listen = (
        [
            "port 0",
            f"tls-port {settings.redis_port}",
            f"tls-cert-file {redis_quote(str(tls / 'redis.pem'))}",
            f"tls-key-file {redis_quote(str(tls / 'redis.key'))}",
            f"tls-ca-cert-file {redis_quote(str(tls / 'ca.pem'))}",
            "tls-auth-clients no",
            'tls-protocols "TLSv1.2 TLSv1.3"',
        ]
        if settings.secure
        else [f"port {settings.redis_port}"]
    )
    lines = [
        f"bind {settings.redis_host}",
        *listen,
        # Bound to an explicit address; protected mode would refuse clients without a password.
        "protected-mode no",
        "daemonize no",
        'logfile ""',
        f"dir {redis_quote(str(paths.data / 'redis'))}",
        "dbfilename dump.rdb",
        # Snapshot now and then and on shutdown, so data survives `stack down` like Kafka's.
        "save 300 1",
        "appendonly no",
    ]
    if settings.secure:
        if not settings.redis_password:
            raise StackError("secure mode needs a Redis password (stack up generates one)")
        digest = hashlib.sha256(settings.redis_password.encode()).hexdigest()
        user = settings.redis_username or REDIS_SECURE_USER
        lines += ["user default off", f"user {user} on #{digest} ~* &* +@all"]
    elif settings.redis_password:
        lines.append(f"requirepass {redis_quote(settings.redis_password)}")
    return "\n".join(lines) + "\n"


def kafka_cluster_id(settings: Settings, paths: StackPaths) -> str:
    """The id every node is formatted with: the one a formatted node already has, else new."""
    for node in kafka_nodes(settings):
        meta = paths.data / node.name / "meta.properties"
        try:
            lines = meta.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id" and value.strip():
                return value.strip()
    return new_kafka_cluster_id()


def kafka_spec(
    settings: Settings,
    paths: StackPaths,
    lib: Path,
    java: str,
    use_class_archive: bool = True,
    node: KafkaNode | None = None,
    cluster_id: str | None = None,
) -> ServerSpec:
    node = node or kafka_nodes(settings)[0]
    single = node.name == "kafka"
    props_file = paths.conf / f"{node.name}.properties"
    log_dir = paths.data / node.name
    # One broker keeps its server log in logs/ (as before); cluster nodes get a folder each.
    logs = paths.logs if single else paths.logs / node.name
    jvm = (
        java,
        KAFKA_HEAP if single else KAFKA_CLUSTER_HEAP,
        *KAFKA_JVM_FLAGS,
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J2_CONFIG}",
        "-cp",
        f"{lib / 'kafka'}/*",  # java expands the wildcard itself
    )
    archive = class_archive(lib, "kafka", java) if use_class_archive else None
    archive_flags = archive.jvm_flags() if archive is not None else ()
    init_env: dict[str, str] = {}
    format_main: tuple[str, ...] = ("kafka.tools.StorageTool",)
    if settings.secure:
        from autoglm.stack.secure import scram_users_env

        # The SCRAM users travel in the environment, not on the command line.
        init_env = scram_users_env(settings)
        format_main = (str(KAFKA_TOOL),)
    return ServerSpec(
        name=node.name,
        endpoints=server_endpoints(settings)[node.name],
        argv=(jvm[0], *archive_flags, *jvm[1:], "kafka.Kafka", str(props_file)),
        class_archive=archive,
        log_file=paths.log(node.name),
        files={props_file: render_properties(kafka_properties(settings, paths, node))},
        dirs=(log_dir, logs),
        init_env=init_env,
        init_argv=(
            *jvm,
            *format_main,
            "format",
            "--cluster-id",
            cluster_id or kafka_cluster_id(settings, paths),
            "--config",
            str(props_file),
            "--ignore-formatted",
        ),
        init_done=log_dir / "meta.properties",
        detail_log=logs / "kafka-server.log",
    )


def neo4j_spec(
    settings: Settings, paths: StackPaths, lib: Path, java: str, use_class_archive: bool = True
) -> ServerSpec:
    if len(settings.neo4j_password) < 8:
        raise StackError("neo4j_password must have at least 8 characters (a Neo4j 5 rule)")
    debug_logs = paths.logs / "neo4j-debug"
    archive = class_archive(lib, "neo4j", java) if use_class_archive else None
    return ServerSpec(
        name="neo4j",
        endpoints=server_endpoints(settings)["neo4j"],
        class_archive=archive,
        argv=(
            java,
            *(archive.jvm_flags() if archive is not None else ()),
            *NEO4J_HEAP,
            *NEO4J_JVM_FLAGS,
            "-cp",
            f"{lib / 'neo4j'}/*",
            str(NEO4J_LAUNCHER),
            "--home",
            str(paths.data / "neo4j"),
            "--logs",
            str(debug_logs),
            "--host",
            settings.neo4j_host,
            "--port",
            str(settings.neo4j_port),
            "--user",
            settings.neo4j_user,
            "--database",
            settings.neo4j_database,
            "--pagecache",
            str(NEO4J_PAGECACHE_MB),
            # Secure mode: Bolt accepts TLS connections only (the policy folder of stack.secure).
            *(("--tls-dir", str(_tls_root(settings) / "neo4j-bolt")) if settings.secure else ()),
        ),
        log_file=paths.log("neo4j"),
        dirs=(paths.data / "neo4j", debug_logs),
        env={NEO4J_PASSWORD_ENV: settings.neo4j_password},
        ready_line=NEO4J_READY_LINE,
        detail_log=debug_logs / "debug.log",
    )


def redis_spec(settings: Settings, paths: StackPaths, redis_server: str) -> ServerSpec:
    conf_file = paths.conf / "redis.conf"
    return ServerSpec(
        name="redis",
        endpoints=server_endpoints(settings)["redis"],
        argv=(redis_server, str(conf_file)),
        log_file=paths.log("redis"),
        files={conf_file: redis_config(settings, paths)},
        dirs=(paths.data / "redis",),
    )


def server_endpoints(settings: Settings) -> dict[str, tuple[Endpoint, ...]]:
    """The addresses of each server, without needing java, redis-server or the jars."""
    endpoints: dict[str, tuple[Endpoint, ...]] = {
        node.name: (
            Endpoint(settings.kafka_host, node.port),
            Endpoint(settings.kafka_host, node.controller_port),
        )
        for node in kafka_nodes(settings)
    }
    endpoints["neo4j"] = (Endpoint(settings.neo4j_host, settings.neo4j_port),)
    endpoints["redis"] = (Endpoint(settings.redis_host, settings.redis_port),)
    every = [e for es in endpoints.values() for e in es]
    clashes = sorted({str(e) for e in every if every.count(e) > 1})
    if clashes:
        raise StackError(
            f"the stack's servers would share {', '.join(clashes)}: with kafka_brokers > 1, "
            "node n takes kafka_port + 2n and kafka_controller_port + 2n; choose ports apart"
        )
    return endpoints
