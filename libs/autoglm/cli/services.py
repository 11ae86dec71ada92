"""Run the four services as background processes for `make demo` and the end-to-end tests.

Processes are launched, identified and stopped with the local stack's process helpers
(``autoglm.stack.procs``): a pid file names one process for good, so ``stop`` never signals a
process it did not start.

A second replica of a service is named ``<service>.<n>`` (``parser.2``): its own pid file and
log, the same consumer group, so the replicas share the partitions (``bench/faults.py``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.stack.config import ServerSpec
from autoglm.stack.procs import (
    exit_code,
    launch,
    log_contains,
    log_tail,
    running_record,
    terminate,
)

SERVICES = {
    "parser": "services.parser",
    "graph-builder": "services.graph_builder",
    "inference": "services.inference",
    "trainer": "services.trainer",
}

REPLICA_SEPARATOR = "."


def service_of(name: str) -> str:
    """The service a process name runs: ``parser`` itself, or its replica ``parser.2``."""
    base, separator, replica = name.partition(REPLICA_SEPARATOR)
    if base not in SERVICES or (separator and not replica.isdigit()):
        raise KeyError(
            f"unknown service {name!r}; choose from {', '.join(SERVICES)} "
            f"(a replica: <service>{REPLICA_SEPARATOR}<n>)"
        )
    return base


# ServiceRuntime logs this once the broker is connected and every subscriber started.
READY_MARKER = "service ready"


@dataclass
class ServiceProcess:
    name: str
    pid: int | None
    running: bool
    log: Path


class ServiceManager:
    def __init__(self, settings: Settings, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.run_dir = settings.stack_dir / "run" / "services"
        self.log_dir = settings.stack_dir / "logs" / "services"
        self.env = env or {}

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _names(self) -> list[str]:
        """The services, then the replicas that have a pid file."""
        replicas = sorted(
            p.stem
            for p in self.run_dir.glob(f"*{REPLICA_SEPARATOR}*.pid")
            if REPLICA_SEPARATOR in p.stem and p.stem.partition(REPLICA_SEPARATOR)[0] in SERVICES
        )
        return [*SERVICES, *replicas]

    def _spec(self, name: str) -> ServerSpec:
        return ServerSpec(
            name=name,
            endpoints=(),
            argv=(sys.executable, "-m", SERVICES[service_of(name)]),
            log_file=self.log_dir / f"{name}.log",
            env=self.env,
        )

    def status(self) -> list[ServiceProcess]:
        statuses = []
        for name in self._names():
            record = running_record(self._pid_file(name))
            statuses.append(
                ServiceProcess(
                    name,
                    record.pid if record else None,
                    record is not None,
                    self.log_dir / f"{name}.log",
                )
            )
        return statuses

    def start(
        self, names: list[str] | None = None, timeout_s: float = 180.0
    ) -> list[ServiceProcess]:
        """Start the services not running yet; return when each has joined its topics."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        launched = []
        for name in names or list(SERVICES):
            spec = self._spec(name)
            if running_record(self._pid_file(name)) is None:
                launched.append((spec, launch(spec, self._pid_file(name), PROJECT_ROOT)))
        deadline = time.monotonic() + timeout_s
        for spec, record in launched:
            while not log_contains(spec.log_file, record.log_offset, READY_MARKER):
                code = exit_code(record.pid)
                if code is not None:
                    tail = "\n".join(log_tail(spec.log_file, record.log_offset, 15))
                    raise RuntimeError(
                        f"service {spec.name} exited with {code}; see {spec.log_file}:\n{tail}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"service {spec.name} not ready after {timeout_s:.0f}s; see {spec.log_file}"
                    )
                time.sleep(0.2)
        return self.status()

    def stop(self, names: list[str] | None = None, grace_s: float = 20.0) -> list[ServiceProcess]:
        """SIGTERM (in-flight messages finish and are committed), SIGKILL after ``grace_s``.
        Without ``names``: every service and replica."""
        names = names or self._names()
        records = [running_record(self._pid_file(name)) for name in names]
        terminate([r.process for r in records if r is not None], grace_s)
        for name in names:
            self._pid_file(name).unlink(missing_ok=True)
        return self.status()

    def kill(self, name: str) -> None:
        """SIGKILL a service: no graceful shutdown, in-flight work is cut off (fault tests)."""
        record = running_record(self._pid_file(name))
        if record is not None:
            os.kill(record.pid, signal.SIGKILL)
            terminate([record.process], grace_s=0.0)  # waits until it is gone
        self._pid_file(name).unlink(missing_ok=True)
