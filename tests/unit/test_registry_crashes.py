"""The model registry survives writers killed at any moment, and one bad version stops nothing.

A forked child (fork, not exec: 200 interpreter starts with torch would take minutes) registers
small versions (real safetensors files), promotes and rolls back in a loop; the parent SIGKILLs
it after a random delay, 200 times. After every kill: the registry lists (library and
``autoglm models list``), every listed version is whole (its weights load and match its
meta.json), the serving version loads the way inference loads it, and nothing half-written is
listed. At the end the real ``load_serving_model`` starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from autoglm.cli.models import models_app
from autoglm.registry import BUILTIN_VERSION, WEIGHTS_FILE, ModelRegistry

KILLS = 200


def fake_weights(fill: int) -> dict[str, torch.Tensor]:
    return {"layer.weight": torch.full((8, 8), float(fill)), "layer.bias": torch.arange(8.0)}


def writer_loop(root: Path, seed: int) -> None:
    """What a trainer and an operator do to a registry, as fast as possible, forever."""
    registry = ModelRegistry(root)
    rng = random.Random(seed)
    fill = seed * 1_000
    while True:
        action = rng.random()
        if action < 0.4:
            fill += 1
            version = registry.register(fake_weights(fill), {"fill": fill}).version
            if rng.random() < 0.5:
                registry.set_serving(version)
        elif action < 0.8:
            known = [v.version for v in registry.versions()]
            registry.set_serving(rng.choice(known))
        else:
            with contextlib.suppress(KeyError):  # nothing to roll back to
                registry.rollback()


def fork_writer(root: Path, seed: int) -> int:
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            writer_loop(root, seed)
        finally:
            os._exit(0)
    return pid


def check_whole(registry: ModelRegistry, verified: set[str]) -> str:
    """Everything a reader can see is whole; returns the serving version."""
    versions = registry.versions()
    assert not registry.broken()
    for entry in versions:
        assert not entry.version.startswith("."), "a staging folder is listed"
        if entry.path is None or entry.version in verified:
            continue
        weights = registry.load_weights(entry.version)
        assert torch.equal(
            weights["layer.weight"], fake_weights(entry.meta["fill"])["layer.weight"]
        )
        verified.add(entry.version)
    names = {v.version for v in versions}
    serving = registry.serving_version()
    assert serving in names, f"the pointer names {serving}, which is not listed"
    pointer = registry.root / "serving.json"
    if pointer.is_file():  # never torn: a reader gets the old pointer or the new one
        assert set(json.loads(pointer.read_text())["history"]) <= names
    if serving != BUILTIN_VERSION:  # what inference does with it (minus the text encoder)
        entry = registry.get(serving)
        assert entry.kind == "fusion" and registry.load_weights(serving)
    return serving


def test_200_sigkills_inside_writes_leave_a_whole_registry(tmp_path, monkeypatch):
    root = tmp_path / "models"
    monkeypatch.setenv("AUTOGLM_MODEL_REGISTRY_DIR", str(root))
    registry = ModelRegistry(root)
    rng = random.Random(11)
    verified: set[str] = set()
    runner = CliRunner()
    started = time.monotonic()
    for kill in range(KILLS):
        pid = fork_writer(root, seed=kill + 1)
        time.sleep(rng.uniform(0.0, 0.04))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), "the writer must have been killed, not have failed"
        check_whole(registry, verified)
        if kill % 10 == 0:
            listed = runner.invoke(models_app, ["list"])
            assert listed.exit_code == 0, listed.output
    elapsed = time.monotonic() - started
    assert elapsed < 50, f"{KILLS} kills took {elapsed:.0f} s"
    assert len(verified) > 20, "the writers must have registered versions between kills"
    # Leftovers of the killed writers are ignored by readers and removed by the next writer.
    registry.register(fake_weights(-1), {"fill": -1})
    assert not list((root / "versions").glob(".staging-*"))
    assert not list(root.glob(".serving-*"))
    check_whole(registry, verified)


def test_two_writers_at_once_never_share_a_version_number(tmp_path):
    root = tmp_path / "models"

    def register_many(seed: int) -> None:
        registry = ModelRegistry(root)
        for n in range(15):
            version = registry.register(fake_weights(seed * 100 + n), {"fill": seed * 100 + n})
            registry.set_serving(version.version)

    children = []
    for seed in (1, 2):
        pid = os.fork()
        if pid == 0:
            try:
                register_many(seed)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
    registry = ModelRegistry(root)
    versions = [v for v in registry.versions() if v.path is not None]
    assert len(versions) == 30 and len({v.version.split("-")[0] for v in versions}) == 30
    assert len({v.meta["fill"] for v in versions}) == 30
    check_whole(registry, set())
    state = json.loads((root / "serving.json").read_text())
    assert len(state["history"]) == 30  # 30 promotions from the built-in, none lost


def test_a_torn_meta_json_is_reported_and_skipped(tmp_path, monkeypatch, text_encoder):
    from autoglm.models.serving import load_serving_model
    from autoglm.settings import Settings

    root = tmp_path / "models"
    registry = ModelRegistry(root)
    good = registry.register(fake_weights(1), {"fill": 1}).version
    torn = registry.register(fake_weights(2), {"fill": 2}).version
    registry.set_serving(torn)
    meta = root / "versions" / torn / "meta.json"
    meta.write_text(meta.read_text()[:25])  # torn in the middle
    (root / "versions" / "v0099-listless").mkdir()  # no meta.json at all
    assert [v.version for v in registry.versions()] == [BUILTIN_VERSION, good]
    assert {b.version for b in registry.broken()} == {torn, "v0099-listless"}
    assert "meta.json unreadable" in registry.broken()[0].reason
    # inference starts (on the built-in model, as for any unloadable serving version)
    settings = Settings(model_registry_dir=root, device="cpu", encoding_cache_enabled=False)
    assert load_serving_model(settings).version == BUILTIN_VERSION
    monkeypatch.setenv("AUTOGLM_MODEL_REGISTRY_DIR", str(root))
    listed = CliRunner().invoke(models_app, ["list"])
    assert listed.exit_code == 0 and good in listed.output and "broken, skipped" in listed.output
    # a torn pointer serves the built-in model too, and the next promotion repairs it
    (root / "serving.json").write_text('{"version": "v00')
    assert registry.serving_version() == BUILTIN_VERSION
    registry.set_serving(good)
    assert registry.serving_version() == good
    with pytest.raises(KeyError):
        registry.set_serving(torn)  # a broken version cannot be served


def test_writes_are_fsynced(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    registry = ModelRegistry(tmp_path)
    version = registry.register(fake_weights(1), {"fill": 1}).version
    # weights, meta.json, the staging folder, versions/
    assert len(synced) >= 4
    synced.clear()
    registry.set_serving(version)
    assert len(synced) >= 2  # the pointer's temp file and its folder
    assert (registry.root / "versions" / version / WEIGHTS_FILE).is_file()
