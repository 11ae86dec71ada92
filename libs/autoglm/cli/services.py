"""Run the four services as background processes for `make demo` and the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from autoglm.settings import PROJECT_ROOT, Settings

SERVICES = {
    "parser": "services.parser",
    "graph-builder": "services.graph_builder",
    "inference": "services.inference",
    "trainer": "services.trainer",
}

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
        self.env = env

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _pid(self, name: str) -> int | None:
        pid_file = self._pid_file(name)
        if not pid_file.is_file():
            return None
        pid = int(pid_file.read_text().split()[0])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        # A recycled pid belongs to someone else: only our module invocation counts.
        return pid if SERVICES[name] in cmdline else None

    def status(self) -> list[ServiceProcess]:
        return [
            ServiceProcess(
                name, self._pid(name), self._pid(name) is not None, self.log_dir / f"{name}.log"
            )
            for name in SERVICES
        ]

    def start(
        self, names: list[str] | None = None, timeout_s: float = 180.0
    ) -> list[ServiceProcess]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        started: dict[str, tuple[subprocess.Popen[bytes], Path, int]] = {}
        for name in names or list(SERVICES):
            if self._pid(name) is not None:
                continue
            log = self.log_dir / f"{name}.log"
            offset = log.stat().st_size if log.exists() else 0
            with log.open("ab") as handle:
                process = subprocess.Popen(
                    [sys.executable, "-m", SERVICES[name]],
                    cwd=PROJECT_ROOT,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **(self.env or {})},
                    start_new_session=True,
                )
            self._pid_file(name).write_text(str(process.pid))
            started[name] = (process, log, offset)
        deadline = time.monotonic() + timeout_s
        for name, (process, log, offset) in started.items():
            while True:
                with log.open("rb") as handle:
                    handle.seek(offset)
                    if READY_MARKER.encode() in handle.read():
                        break
                if process.poll() is not None:
                    tail = log.read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError(
                        f"service {name} exited with {process.returncode}; see {log}:\n"
                        + "\n".join(tail)
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"service {name} not ready after {timeout_s:.0f}s; see {log}"
                    )
                time.sleep(0.2)
        return self.status()

    def stop(
        self,
        names: list[str] | None = None,
        grace_s: float = 20.0,
        sig: signal.Signals = signal.SIGTERM,
    ) -> list[ServiceProcess]:
        for name in names or list(SERVICES):
            pid = self._pid(name)
            if pid is None:
                self._pid_file(name).unlink(missing_ok=True)
                continue
            os.kill(pid, sig)
            deadline = time.monotonic() + grace_s
            while self._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._alive(pid):
                os.kill(pid, signal.SIGKILL)
            self._pid_file(name).unlink(missing_ok=True)
        return self.status()

    def kill(self, name: str) -> None:
        """SIGKILL a service: no graceful shutdown, in-flight work is cut off (fault tests)."""
        self.stop([name], grace_s=0.0, sig=signal.SIGKILL)

    @staticmethod
    def _alive(pid: int) -> bool:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return False
        return state != "Z"
