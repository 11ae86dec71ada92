"""Processes of the local stack: launching, pid files, identity checks, ports, stopping.

A pid file records the boot id, pid and start time (clock ticks since boot) of the process it
names. Together they identify one process for good: a reused pid has another start time, so
``down`` never signals a process the stack did not start. Linux only (reads ``/proc``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from autoglm.stack.base import StackError
from autoglm.stack.config import Endpoint, ServerSpec

PROC = Path("/proc")
LOG_TAIL_LINES = 25

# Children started by this Python process, so that they can be reaped once they exit (a dead,
# unreaped child stays a zombie and would look alive in /proc).
_children: dict[int, subprocess.Popen[bytes]] = {}
_exit_codes: dict[int, int] = {}


@dataclass(frozen=True)
class ProcessId:
    """One process, for good: pids get reused, (boot id, pid, start time) do not."""

    pid: int
    start_ticks: int
    boot_id: str


@dataclass(frozen=True)
class PidRecord:
    """Content of a pid file."""

    pid: int
    start_ticks: int
    boot_id: str
    argv0: str
    started_at: float
    log_offset: int
    """Size of the log file when the process started: its output of this run starts there."""
    class_archive: str | None = None
    class_archive_dump: str | None = None
    """Where the process dumps its class archive at exit (see ``config.ClassArchive``)."""

    @property
    def process(self) -> ProcessId:
        return ProcessId(self.pid, self.start_ticks, self.boot_id)


def boot_id() -> str:
    return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_id(pid: int) -> ProcessId | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # Field 22 of stat is the start time; fields[0] here is field 3 (the state).
    return ProcessId(pid, int(fields[19]), boot_id())


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None:
        code = child.poll()
        if code is not None:
            _exit_codes[pid] = code
            del _children[pid]
        return
    # Not our child: its own parent reaps it.
    with contextlib.suppress(ChildProcessError):
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            _exit_codes[pid] = os.waitstatus_to_exitcode(status)


def is_alive(process: ProcessId) -> bool:
    """Whether exactly this process still runs (not exited, not a zombie, pid not reused)."""
    _reap(process.pid)
    fields = _stat_fields(process.pid)
    if fields is None:
        return False
    if fields[0] in ("Z", "X") and _thread_count(process.pid) <= 1:
        return False  # a zombie nobody reaps: it holds no files or ports any more
    # A zombie leader with threads left is still exiting (and may still hold its ports).
    return int(fields[19]) == process.start_ticks and boot_id() == process.boot_id


def _thread_count(pid: int) -> int:
    try:
        return len(os.listdir(PROC / str(pid) / "task"))
    except OSError:
        return 0


def cmdline(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        return PidRecord(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return None  # unreadable: treated as stale, the caller removes it


def write_pid_file(path: Path, record: PidRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file


def remove_pid_file(path: Path) -> None:
    path.unlink(missing_ok=True)


def running_record(path: Path) -> PidRecord | None:
    """The record of a pid file whose process still runs; a stale pid file is removed."""
    record = read_pid_file(path)
    if record is not None and is_alive(record.process):
        return record
    if record is not None and record.class_archive_dump is not None:
        # It ended without `down`: its archive, if any, cannot be trusted.
        Path(record.class_archive_dump).unlink(missing_ok=True)
    if path.exists():
        remove_pid_file(path)
    return None


def port_in_use(endpoint: Endpoint) -> bool:
    """Whether binding the address fails, i.e. another socket holds it.

    SO_REUSEADDR as servers set it: a closed connection lingering in TIME_WAIT does not count.
    """
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((endpoint.host, endpoint.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _socket_inodes(port: int) -> set[str]:
    """Inodes of TCP sockets bound to ``port`` (any address), from /proc/net/tcp{,6}."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            # cols[1] is "ADDR:PORT" in hex, cols[3] the state (0A = LISTEN), cols[9] the inode.
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and cols[3] in ("0A", "07") and cols[9] != "0":
                inodes.add(cols[9])
    return inodes


def port_holder(port: int) -> tuple[int, str] | None:
    """(pid, command line) of a process holding a socket bound to ``port``, if visible."""
    targets = {f"socket:[{inode}]" for inode in _socket_inodes(port)}
    if not targets:
        return None
    for proc_dir in PROC.iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            fds = list((proc_dir / "fd").iterdir())
        except OSError:
            continue  # gone, or another user's process
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    pid = int(proc_dir.name)
                    return pid, cmdline(pid)
            except OSError:
                continue
    return None


def describe_holder(endpoint: Endpoint, limit: int = 80) -> str:
    holder = port_holder(endpoint.port)
    if holder is None:
        return "by an unknown process"
    pid, command = holder
    if len(command) > limit:
        command = command[: limit - 3] + "..."
    return f"by pid {pid} ({command})" if command else f"by pid {pid}"


def log_tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a log written since ``offset``."""
    try:
        with path.open("rb") as file:
            file.seek(min(offset, path.stat().st_size))
            text = file.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def log_contains(path: Path, offset: int, needle: str) -> bool:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return needle.encode() in file.read()
    except OSError:
        return False


def _prepare(spec: ServerSpec) -> None:
    for folder in (*spec.dirs, spec.log_file.parent):
        folder.mkdir(parents=True, exist_ok=True)
    for path, content in spec.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 from the start: the files may hold passwords.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(content)


def _child_env(spec: ServerSpec) -> dict[str, str]:
    env = dict(os.environ)
    env.update(spec.env)
    return env


def run_init(spec: ServerSpec, cwd: Path, timeout_s: float) -> None:
    """Run the spec's one-off init command when it has not run yet; raise on failure."""
    _prepare(spec)
    if not spec.needs_init:
        return
    try:
        done = subprocess.run(
            spec.init_argv,
            cwd=cwd,
            env={**_child_env(spec), **spec.init_env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{spec.name}: preparing the storage took over {timeout_s:.0f}s") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        tail = "\n".join(f"  {line}" for line in output[-LOG_TAIL_LINES:])
        raise StackError(
            f"{spec.name}: preparing the storage failed (exit {done.returncode}):\n{tail}"
        )


def launch(spec: ServerSpec, pid_file: Path, cwd: Path) -> PidRecord:
    """Start the server in its own session, so it outlives this process; write its pid file."""
    _prepare(spec)
    with spec.log_file.open("ab") as log:
        log.write(f"\n=== autoglm stack: starting {spec.name} at {time.ctime()} ===\n".encode())
        log.flush()
        offset = log.tell()
        child = subprocess.Popen(
            spec.argv,
            cwd=cwd,
            env=_child_env(spec),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no SIGINT/SIGHUP from our terminal; survives our exit
        )
    _children[child.pid] = child
    archive = spec.class_archive
    _exit_codes.pop(child.pid, None)  # a reused pid: forget the exit of its predecessor
    identity = process_id(child.pid)
    # The child may die before we look; a start time of -1 never matches, so it reads as dead.
    start_ticks = identity.start_ticks if identity is not None else -1
    record = PidRecord(
        pid=child.pid,
        start_ticks=start_ticks,
        boot_id=boot_id(),
        argv0=spec.argv[0],
        started_at=time.time(),
        log_offset=offset,
        class_archive=str(archive.path) if archive is not None else None,
        class_archive_dump=str(archive.dump_to) if archive and archive.dump_to else None,
    )
    write_pid_file(pid_file, record)
    return record


def exit_code(pid: int) -> int | None:
    """Exit status of a child started here that has exited, else None."""
    _reap(pid)
    return _exit_codes.get(pid)


def terminate(processes: Iterable[ProcessId], grace_s: float) -> dict[int, str]:
    """SIGTERM every process, SIGKILL those still alive after ``grace_s``; say how each ended."""
    pending = {p.pid: p for p in processes if is_alive(p)}
    started = time.monotonic()
    outcome: dict[int, str] = {}
    for pid in list(pending):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            outcome[pid] = "exited"
            del pending[pid]
    while pending and time.monotonic() - started < grace_s:
        time.sleep(0.2)
        for pid, process in list(pending.items()):
            if not is_alive(process):
                outcome[pid] = f"stopped in {time.monotonic() - started:.1f}s"
                del pending[pid]
    for pid, process in pending.items():
        if is_alive(process):
            os.kill(pid, signal.SIGKILL)
            outcome[pid] = f"killed after {grace_s:.0f}s without stopping"
        else:
            outcome[pid] = f"stopped in {time.monotonic() - started:.1f}s"
    # Wait for the kernel to tear down the killed ones, so their ports are free on return.
    deadline = time.monotonic() + 10
    while any(is_alive(p) for p in pending.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return outcome
