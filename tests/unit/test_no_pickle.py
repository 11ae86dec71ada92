"""Nothing the project reads from disk is unpickled: a planted pickle never runs.

Unpickling runs whatever callable a file names. The trainer's state folder (round checkpoints,
the replay buffer) and the sample cache under ``models/cache`` are files anyone with write
access to the folder can replace, so each is planted here with a pickle that would create a
folder when loaded: each is refused with a clear error (or ignored and rebuilt, for a cache),
and the folder is never created. A scan of the sources keeps pickle out for good.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from autoglm.contracts import GraphNode, Subgraph
from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.training.example_store import ExampleStore
from autoglm.training.feedback_loop import FeedbackLoop, LoopConfig
from autoglm.training.loop import QASample, ReasonerTraining, TrainConfig
from autoglm.training.replay import ReplayBuffer
from autoglm.training.samples import SampleCache


class Exploit:
    """Unpickling this creates ``marker``: proof that a load ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def plant(path: Path, marker: Path, *, torch_format: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if torch_format:
        torch.save({"epoch": 0, "payload": Exploit(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Exploit(marker)))


def test_the_exploit_works_when_unpickled(tmp_path):
    """The planted files are real exploits: plain unpickling does run them."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Exploit(marker)))
    assert marker.is_dir()


class TinyModule(nn.Module):
    """What ReasonerTraining needs of a FusionModule, without a text encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(2, 2)
        self.reasoner = nn.Linear(2, 2)


@pytest.mark.parametrize("torch_format", [True, False], ids=["torch.save", "raw pickle"])
def test_a_planted_training_state_is_refused(tmp_path, torch_format):
    state = tmp_path / "trainer" / "round-1.pt"
    marker = tmp_path / "ran"
    plant(state, marker, torch_format=torch_format)
    training = ReasonerTraining(TinyModule(), TrainConfig(), torch.device("cpu"), state)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a training state this trainer can load safely"):
        training.resume()
    assert not marker.exists()


def test_a_genuine_training_state_still_resumes(tmp_path):
    state = tmp_path / "round-1.pt"
    config = TrainConfig(epochs=2)
    first = ReasonerTraining(TinyModule(), config, torch.device("cpu"), state)  # type: ignore[arg-type]
    first._save_state(0)
    again = ReasonerTraining(TinyModule(), config, torch.device("cpu"), state)  # type: ignore[arg-type]
    assert again.resume() and again.start_epoch == 1


def test_a_planted_replay_buffer_is_refused(tmp_path):
    path = tmp_path / "replay.json"
    marker = tmp_path / "ran"
    plant(path, marker)
    with pytest.raises(ValueError, match="is not a replay buffer saved by the trainer"):
        ReplayBuffer.load(path, capacity=10)
    assert not marker.exists()


def test_a_legacy_pickled_replay_buffer_is_never_loaded(tmp_path):
    state_dir = tmp_path / "trainer"
    marker = tmp_path / "ran"
    plant(state_dir / "replay.pkl", marker)
    loop = FeedbackLoop(
        Settings(model_registry_dir=tmp_path / "models"),
        LoopConfig(replay_capacity=10),
        ExampleStore(state_dir / "examples.sqlite"),
        None,  # type: ignore[arg-type]  # no retrieval in this test
        None,  # type: ignore[arg-type]
        state_dir,
    )
    assert loop._replay().seen == 0
    assert not marker.exists()
    loop.store.close()


def test_replay_buffer_round_trips_bytes_as_json(tmp_path):
    path = tmp_path / "replay.json"
    buffer: ReplayBuffer[bytes] = ReplayBuffer(capacity=3, seed=5, tag=2)
    buffer.extend(bytes([n, 0, 255]) for n in range(10))
    buffer.save(path)
    assert path.read_text().startswith("{")
    loaded: ReplayBuffer[bytes] = ReplayBuffer.load(path, capacity=3)
    assert (loaded.items, loaded.seen, loaded.tag) == (buffer.items, 10, 2)
    assert loaded.sample(2) == buffer.sample(2)  # the random generator resumes too


def test_a_planted_sample_cache_file_is_ignored_and_rebuilt(tmp_path):
    cache = SampleCache(tmp_path / "cache", "fingerprint")
    marker = tmp_path / "ran"
    plant(cache.path("train"), marker)
    assert cache.load("train") is None
    assert not marker.exists()
    sample = QASample(
        "who directed Jaws",
        Subgraph(nodes=[GraphNode(key="Jaws")], anchor_indices=[0]),
        frozenset({"SS"}),
        1,
    )
    cache.save("train", [sample, sample])
    assert cache.load("train") == [sample, sample]
    cache.path("train").write_bytes(cache.path("train").read_bytes()[:-3])  # torn
    assert cache.load("train") is None


FORBIDDEN = [
    (re.compile(r"\bpickle\.(loads?|Unpickler)\b"), "pickle.load"),
    (re.compile(r"\b(cloudpickle|dill|joblib|shelve|marshal)\b"), "a pickle-like loader"),
    (re.compile(r"weights_only\s*=\s*False"), "weights_only=False"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)[^)]*\)", re.S), "torch.load"),
]


def test_no_source_unpickles_anything():
    this = Path(__file__).resolve()
    offenders = []
    for folder in ("libs/autoglm", "services", "bench", "tests"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            if path.resolve() == this or "/v1/" in str(path):
                continue
            text = path.read_text()
            offenders += [
                f"{path.relative_to(PROJECT_ROOT)}: {what}"
                for pattern, what in FORBIDDEN
                if pattern.search(text)
            ]
    assert not offenders
