"""Replicas of a service (``parser.2``): own pid file and log, the service's module."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoglm.cli.services import SERVICES, ServiceManager, service_of
from autoglm.settings import Settings


def test_replica_names_map_to_their_service() -> None:
    assert service_of("parser") == "parser"
    assert service_of("graph-builder.2") == "graph-builder"
    for bad in ("parser.x", "nope", "nope.2", "parser."):
        with pytest.raises(KeyError):
            service_of(bad)


def test_a_replica_has_its_own_pid_file_and_log(tmp_path: Path) -> None:
    manager = ServiceManager(Settings(stack_dir=tmp_path))
    spec = manager._spec("inference.2")
    assert spec.argv[-1] == SERVICES["inference"]
    assert spec.log_file.name == "inference.2.log"
    assert manager._pid_file("inference.2") != manager._pid_file("inference")
    manager.run_dir.mkdir(parents=True)
    manager._pid_file("inference.2").write_text("{}")
    names = [s.name for s in manager.status()]
    assert names == [*SERVICES, "inference.2"]
