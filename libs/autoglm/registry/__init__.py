"""Model registry: versioned checkpoints and the pointer to the serving version.

Layout under ``Settings.model_registry_dir``::

    serving.json                       {"version": ..., "history": [earlier serving versions]}
    versions/<version>/meta.json       kind, parent, data seen, hyper-parameters, metrics, created
    versions/<version>/model.safetensors
    .lock                              fcntl lock of the writers

Crash safety (a trainer or ``autoglm models`` killed at any instruction, a power cut):

- A version is written under ``versions/.staging-*`` (every file fsynced, then the folder), and
  renamed into place (then ``versions/`` is fsynced): a version folder is whole or absent.
  Folders whose name starts with a dot are never listed; writers remove the ones a killed writer
  left behind.
- ``serving.json`` is written to a unique temporary file, fsynced, renamed over the pointer and
  the folder fsynced, so a reader sees the old pointer or the new one. Writers (register, import,
  promote, rollback) hold an exclusive ``fcntl`` lock on ``.lock``, so two of them never
  interleave a read-modify-write of the pointer, and version numbers stay unique. The kernel
  drops the lock of a killed process.
- Reading never stops at one bad version: a version whose ``meta.json`` cannot be read (torn by
  a copy from elsewhere, hand-edited, a disk error) is reported by :meth:`ModelRegistry.broken`
  and left out of :meth:`ModelRegistry.versions`, so inference starts and ``autoglm models
  list`` works; an unreadable pointer serves the built-in model and says so.

``tests/unit/test_registry_crashes.py`` SIGKILLs writers at 200 random moments and checks this.
An empty registry serves the built-in zero-shot model, so a fresh installation answers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from autoglm.errors import FatalError

log = logging.getLogger(__name__)

BUILTIN_VERSION = "zero-shot-minilm"
WEIGHTS_FILE = "model.safetensors"


class ModelLoadError(FatalError):
    """A registered version cannot be loaded (missing, corrupt or incompatible)."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    kind: str
    path: Path | None
    meta: dict[str, Any]

    @property
    def parent(self) -> str | None:
        parent = self.meta.get("parent")
        return str(parent) if parent else None


@dataclass(frozen=True)
class BrokenVersion:
    """A version folder that cannot be used, and why."""

    version: str
    reason: str


_NUMBER = re.compile(r"^v(\d+)-")
_STAGING_PREFIX = ".staging-"
_POINTER_TMP_PREFIX = ".serving-"


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def _pointer(self) -> Path:
        return self.root / "serving.json"

    @property
    def _versions_dir(self) -> Path:
        return self.root / "versions"

    # --- reading ------------------------------------------------------------------------------

    def versions(self) -> list[ModelVersion]:
        """The built-in model and every whole, readable version (see :meth:`broken`)."""
        return self._scan()[0]

    def broken(self) -> list[BrokenVersion]:
        """Version folders left out of :meth:`versions` because they cannot be read."""
        return self._scan()[1]

    def _scan(self) -> tuple[list[ModelVersion], list[BrokenVersion]]:
        found = [ModelVersion(BUILTIN_VERSION, "zero-shot", None, {"builtin": True})]
        broken: list[BrokenVersion] = []
        if not self._versions_dir.is_dir():
            return found, broken
        for folder in sorted(self._versions_dir.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue  # staging folders of a writer (alive or killed), stray files
            try:
                meta = json.loads((folder / "meta.json").read_text())
                if not isinstance(meta, dict):
                    raise ValueError(f"meta.json holds a {type(meta).__name__}, not an object")
            except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeError included
                broken.append(BrokenVersion(folder.name, f"meta.json unreadable: {exc}"))
                continue
            found.append(ModelVersion(folder.name, str(meta.get("kind", "fusion")), folder, meta))
        return found, broken

    def get(self, version: str) -> ModelVersion:
        for candidate in self.versions():
            if candidate.version == version:
                return candidate
        raise KeyError(f"model version {version!r} is not in the registry at {self.root}")

    def _pointer_state(self) -> dict[str, Any]:
        builtin: dict[str, Any] = {"version": BUILTIN_VERSION, "history": []}
        try:
            state = json.loads(self._pointer.read_text())
        except FileNotFoundError:
            return builtin
        except (OSError, ValueError) as exc:
            log.error(
                "serving pointer unreadable; serving the built-in model until a version is "
                "promoted",
                extra={"pointer": str(self._pointer), "error": str(exc)},
            )
            return builtin
        if not isinstance(state, dict) or not isinstance(state.get("version"), str):
            log.error("serving pointer malformed", extra={"pointer": str(self._pointer)})
            return builtin
        history = state.get("history")
        state["history"] = (
            [h for h in history if isinstance(h, str)] if isinstance(history, list) else []
        )
        return state

    def serving_version(self) -> str:
        return str(self._pointer_state()["version"])

    def load_weights(self, version: str) -> dict[str, torch.Tensor]:
        """The tensors of a version; a missing or corrupt file is a clear ``ModelLoadError``."""
        try:
            entry = self.get(version)
        except KeyError as exc:
            raise ModelLoadError(str(exc), error_type="model_missing") from exc
        if entry.path is None:
            raise ModelLoadError(f"{version} is built in and has no weights", error_type="builtin")
        weights = entry.path / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelLoadError(f"{version}: {weights} is missing", error_type="model_missing")
        try:
            return load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{version}: {weights} is corrupt: {exc}", error_type="model_corrupt"
            ) from exc

    # --- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The writers' lock (held until the block ends, or the process dies), with what a
        killed writer left behind removed first."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._remove_leftovers()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _remove_leftovers(self) -> None:
        """Staging folders and pointer temp files of writers that died (called under the lock,
        so none of them belongs to a live writer)."""
        if self._versions_dir.is_dir():
            for folder in self._versions_dir.glob(_STAGING_PREFIX + "*"):
                shutil.rmtree(folder, ignore_errors=True)
        for tmp in self.root.glob(_POINTER_TMP_PREFIX + "*"):
            tmp.unlink(missing_ok=True)

    def _next_version(self) -> str:
        numbers = [0]
        if self._versions_dir.is_dir():
            for folder in self._versions_dir.iterdir():
                match = _NUMBER.match(folder.name)
                if match:  # broken versions count too: a number is never reused
                    numbers.append(int(match.group(1)))
        return f"v{max(numbers) + 1:04d}-{time.strftime('%Y%m%d%H%M%S')}"

    def _publish_folder(self, fill: Any, version: str) -> None:
        """Write a version folder through a staging folder: ``fill(staging)`` writes the files,
        which are fsynced with the folder before it is renamed into place."""
        self._versions_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self._versions_dir))
        try:
            fill(staging)
            for file in staging.iterdir():
                _fsync_file(file)
            _fsync_dir(staging)
            os.rename(staging, self._versions_dir / version)
            _fsync_dir(self._versions_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def register(
        self,
        weights: dict[str, torch.Tensor],
        meta: dict[str, Any],
        *,
        kind: str = "fusion",
        parent: str | None = None,
    ) -> ModelVersion:
        """Store a new version (not yet serving); returns it."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
        full_meta = {
            **meta,
            "kind": kind,
            "parent": parent,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

        def fill(staging: Path) -> None:
            save_file(tensors, str(staging / WEIGHTS_FILE))
            (staging / "meta.json").write_text(json.dumps(full_meta, indent=2, default=str))

        with self._writing():
            version = self._next_version()
            self._publish_folder(fill, version)
        return self.get(version)

    def import_version(self, source: Path) -> ModelVersion:
        """Copy a version directory (``meta.json`` + weights, e.g. the checkpoint bundled with
        the repository) into the registry under its own name; a no-op when it is there."""
        meta_file = source / "meta.json"
        if not meta_file.is_file() or not (source / WEIGHTS_FILE).is_file():
            raise ModelLoadError(
                f"{source} is not a model version (needs meta.json and {WEIGHTS_FILE})",
                error_type="model_missing",
            )
        try:
            json.loads(meta_file.read_text())  # refuse a torn meta.json before copying
        except ValueError as exc:
            raise ModelLoadError(
                f"{source}: meta.json is not valid JSON: {exc}", error_type="model_corrupt"
            ) from exc
        if source.name.startswith("."):
            raise ModelLoadError(f"{source}: a version name cannot start with a dot")

        def fill(staging: Path) -> None:
            for name in ("meta.json", WEIGHTS_FILE):
                shutil.copyfile(source / name, staging / name)

        with self._writing():
            if not (self._versions_dir / source.name).is_dir():
                self._publish_folder(fill, source.name)
        return self.get(source.name)

    def set_serving(self, version: str) -> None:
        """Point serving at ``version``; the previous one is remembered for ``rollback``."""
        with self._writing():
            self.get(version)  # refuse to point at nothing
            state = self._pointer_state()
            if state["version"] == version:
                return
            history = [*state.get("history", []), state["version"]]
            self._write_pointer({"version": version, "history": history})

    def rollback(self) -> str:
        """Serve the previously serving version again; returns it."""
        with self._writing():
            state = self._pointer_state()
            history = list(state.get("history", []))
            if not history:
                raise KeyError("nothing to roll back to: no earlier serving version")
            previous = history.pop()
            self._write_pointer({"version": previous, "history": history})
            return str(previous)

    def _write_pointer(self, state: dict[str, Any]) -> None:
        """Replace the pointer atomically and durably (called under the writers' lock)."""
        fd, name = tempfile.mkstemp(prefix=_POINTER_TMP_PREFIX, suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w") as tmp:
                tmp.write(json.dumps(state))
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(name, self._pointer)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
