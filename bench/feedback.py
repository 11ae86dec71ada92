"""Self-training benchmark: does the feedback loop recover what labels would have given?

1. The 1-hop dev split is cut as ``autoglm train`` cuts it (80 % train, 20 % validation by a
   hash of the question). A deterministic 10 % of the train part is *labelled*; the other 90 %
   is *unlabelled*.
2. Two models are trained with the same recipe: on the labelled 10 % (the starting point) and
   on the whole train part (the fully supervised reference).
3. The 10 % model serves. The unlabelled questions are streamed through the whole pipeline via
   Kafka in ``--rounds`` chunks, without answers; the trainer service turns confident results
   into pseudo-labels and, ``trainer_max_wait_s`` after the first of a chunk, trains a round
   from the serving version (replay, distillation, gate) and promotes it if the gate passes.
4. After each round the serving model is scored on the validation questions the trainer's gate
   does not use, and on the labelled 10 %.

Runs on a stack and a model registry of its own::

    .venv/bin/python bench/feedback.py      # or: make bench-feedback

Writes ``bench/results/feedback.json`` and ``bench/results/feedback.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from common import add_stack_arguments, device_name, env_of, git_commit, machine, run_on_own_stack
from inference import ensure_kb
from rich.console import Console

from autoglm.cli.evaluate import QAItem, evaluate
from autoglm.cli.services import ServiceManager
from autoglm.models.serving import load_model
from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.training.example_store import ExampleStore, Round
from autoglm.training.feedback_loop import LoopConfig, validation_examples
from autoglm.training.loop import QASample, TrainConfig
from autoglm.training.loop import evaluate as score
from autoglm.training.metaqa import QAExample, labelled_part, read_qa, split_dev
from autoglm.training.run import TrainRequest, run_training
from autoglm.training.samples import SampleCaps, kb_retriever, retrieve_samples

DATA = PROJECT_ROOT.parent / "shared" / "data" / "metaqa"
OUTPUT = PROJECT_ROOT / "bench" / "results" / "feedback.json"
GOAL_GAP_RECOVERED = 0.5
GOAL_MAX_LABELLED_DROP = 0.005


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelled-fraction", type=float, default=0.1)
    parser.add_argument("--chunks", type=int, default=4, help="the unlabelled part, streamed in")
    parser.add_argument("--round-examples", type=int, default=1000, help="N of the trainer")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the two base models")
    parser.add_argument("--round-epochs", type=int, default=2, help="epochs of a round")
    parser.add_argument("--gate-questions", type=int, default=300)
    parser.add_argument("--round-wait-s", type=float, default=60.0, help="T of the trainer")
    parser.add_argument("--concurrency", type=int, default=64)
    add_stack_arguments(parser, 27000, "bench-fb", OUTPUT)
    return parser.parse_args(argv)


def split(
    fraction: float,
) -> tuple[list[QAExample], list[QAExample], list[QAExample]]:
    """(labelled, unlabelled, validation) 1-hop questions."""
    examples = read_qa(DATA / "1hop_dev.txt", DATA / "1hop_dev_qtype.txt", 1)
    train, validation = split_dev(examples, 0.2)
    labelled, unlabelled = labelled_part(train, fraction)
    return labelled, unlabelled, validation


def train(settings: Settings, fraction: float, epochs: int, serve: bool) -> dict[str, Any]:
    request = TrainRequest(
        data=DATA,
        hops=(1,),
        train_fraction=fraction,
        train=TrainConfig(epochs=epochs, batch_size=32, learning_rate=1e-3, seed=0),
        serve=serve,
        progress=True,
    )
    return run_training(settings, request).as_dict()


def samples_of(
    settings: Settings, parts: dict[str, Sequence[QAExample]]
) -> dict[str, list[QASample]]:
    """Each part's samples, subgraphs retrieved from the KB in memory (loaded once)."""
    retriever = kb_retriever(settings, DATA / "kb.txt")
    caps = SampleCaps(settings.subgraph_max_nodes, settings.subgraph_max_edges)
    return {
        name: retrieve_samples(retriever, examples, caps, f"retrieve {name}")
        for name, examples in parts.items()
    }


def hits(settings: Settings, version: str, parts: dict[str, list[QASample]]) -> dict[str, float]:
    """Hits@1 of ``version`` on each part (the model loaded once)."""
    model = load_model(settings.model_copy(update={"encoding_cache_enabled": False}), version)
    module = model.module  # type: ignore[attr-defined]
    return {
        name: score(module, samples, torch.device("cpu"))["hits@1"]
        for name, samples in parts.items()
    }


async def wait_until_idle(store_path: Path, round_examples: int, drained: bool) -> None:
    """Until no round runs and fewer than N examples wait (none at all when ``drained``: the
    last ones are trained ``trainer_max_wait_s`` after they arrived)."""
    quiet_since = None
    deadline = time.monotonic() + 3600.0
    while time.monotonic() < deadline:
        running, pending = await asyncio.to_thread(loop_state, store_path)
        idle = not running and (pending == 0 if drained else pending < round_examples)
        # Results still on their way become examples for a few seconds after a chunk.
        quiet_since = (quiet_since or time.monotonic()) if idle else None
        if quiet_since is not None and time.monotonic() - quiet_since > 10.0:
            return
        await asyncio.sleep(2.0)
    raise TimeoutError("the trainer did not catch up within an hour; see its log")


def loop_state(store_path: Path) -> tuple[bool, int]:
    store = ExampleStore(store_path)
    try:
        return store.unfinished_round() is not None, store.pending_count()
    finally:
        store.close()


def finished_rounds(store_path: Path) -> list[Round]:
    if not store_path.is_file():
        return []
    store = ExampleStore(store_path)
    try:
        return [r for r in store.rounds() if r.status != "running"]
    finally:
        store.close()


async def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    console = Console(stderr=True)
    started = time.perf_counter()
    labelled, unlabelled, validation = split(args.labelled_fraction)
    # The trainer's gate scores candidates on its own slice of the validation part; the figures
    # reported here are on the rest, which no decision of the loop has seen.
    gate_slice = validation_examples(
        LoopConfig(validation_files=(DATA / "1hop_dev.txt",), validation_limit=args.gate_questions)
    )
    gate_questions = {e.question for e in gate_slice}
    reported = [e for e in validation if e.question not in gate_questions]

    print(f"labelled {args.labelled_fraction:.0%}: {len(labelled)} questions", file=sys.stderr)
    base = await asyncio.to_thread(train, settings, args.labelled_fraction, args.epochs, True)
    # Sample retrieval and training run their own event loops: off this one.
    parts = await asyncio.to_thread(
        samples_of, settings, {"validation": reported, "labelled": labelled}
    )

    figures = {"labelled_only": hits(settings, base["version"], parts)}
    print(f"labelled only: {figures}", file=sys.stderr)

    graph = await ensure_kb(settings)
    state_dir = settings.model_registry_dir / "trainer"
    # What the 10 % model learnt from: the replay buffer starts from it.
    labelled_file = settings.model_registry_dir / "labelled_1hop.txt"
    labelled_file.write_text(
        "".join(f"{e.question}\t{'|'.join(e.answers)}\n" for e in labelled), encoding="utf-8"
    )
    trainer_env = {
        "AUTOGLM_TRAINER_SEED_QA": str(labelled_file),
        "AUTOGLM_TRAINER_MIN_EXAMPLES": str(args.round_examples),
        "AUTOGLM_TRAINER_MAX_WAIT_S": str(args.round_wait_s),
        "AUTOGLM_TRAINER_EPOCHS": str(args.round_epochs),
        "AUTOGLM_TRAINER_VALIDATION_QA": str(DATA / "1hop_dev.txt"),
        "AUTOGLM_TRAINER_VALIDATION_LIMIT": str(args.gate_questions),
    }
    store_path = state_dir / "examples.sqlite"
    manager = ServiceManager(settings, env={**env_of(settings), **trainer_env})
    manager.stop()
    manager.start()
    streams: list[dict[str, Any]] = []
    try:
        size = -(-len(unlabelled) // args.chunks)
        for number in range(args.chunks):
            part = unlabelled[number * size : (number + 1) * size]
            items = [QAItem(e.question, frozenset()) for e in part]  # no answers: unlabelled
            print(f"chunk {number + 1}: streaming {len(items)} questions", file=sys.stderr)
            streamed = await evaluate(
                settings,
                items,
                hops=1,
                concurrency=args.concurrency,
                timeout_s=300,
                console=console,
            )
            streams.append(
                {
                    "questions": len(items),
                    "errors": streamed["errors"],
                    "questions_per_second": streamed["questions_per_second"],
                }
            )
            # Let the loop catch up (rounds of N examples) before the next chunk.
            last = number == args.chunks - 1
            await wait_until_idle(store_path, args.round_examples, drained=last)
    finally:
        manager.stop()

    # Each round's outcome: the version serving after it, scored on data the loop never saw.
    rounds: list[dict[str, Any]] = []
    for finished in await asyncio.to_thread(finished_rounds, store_path):
        serving = finished.candidate_version if finished.status == "promoted" else None
        after = serving or (rounds[-1]["serving_after"] if rounds else base["version"])
        outcome = {
            "round": finished.id,
            "status": finished.status,
            "candidate": finished.candidate_version,
            "parent": finished.parent_version,
            "examples": len(finished.example_ids),
            "gate": finished.report.get("gate"),
            "seconds": finished.report.get("seconds"),
            "serving_after": after,
            **{f"{k}_hits@1": v for k, v in hits(settings, after, parts).items()},
        }
        print(f"round {finished.id}: {outcome}", file=sys.stderr)
        rounds.append(outcome)

    print(f"fully supervised: {len(labelled) + len(unlabelled)} questions", file=sys.stderr)
    full = await asyncio.to_thread(train, settings, 1.0, args.epochs, False)
    figures["supervised"] = hits(settings, full["version"], parts)
    start, top = figures["labelled_only"]["validation"], figures["supervised"]["validation"]
    final = rounds[-1]["validation_hits@1"] if rounds else start
    gap = top - start
    report: dict[str, Any] = {
        "benchmark": "feedback",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "device": device_name(),
        "machine": machine(),
        "graph": graph,
        "data": {
            "labelled": len(labelled),
            "unlabelled": len(unlabelled),
            "validation_reported": len(reported),
            "gate_slice": len(gate_slice),
            "note": "1-hop dev: 80 % train / 20 % validation by hash (as autoglm train); the "
            "labelled part is a hashed share of the train part (and seeds the trainer's replay "
            f"buffer); the gate's slice ({len(gate_slice)} validation questions drawn by hash) "
            "is not in the reported validation",
        },
        "models": {"supervised": full, "labelled_only": base},
        "figures": figures,
        "streams": streams,
        "rounds": rounds,
        "trainer": {k: v for k, v in trainer_env.items() if "QA" not in k},
        "gap": gap,
        "gap_recovered": (final - start) / gap if gap > 0 else None,
        "labelled_drop": figures["labelled_only"]["labelled"]
        - (rounds[-1]["labelled_hits@1"] if rounds else figures["labelled_only"]["labelled"]),
        "goal_gap_recovered": GOAL_GAP_RECOVERED,
        "goal_max_labelled_drop": GOAL_MAX_LABELLED_DROP,
        "seconds": round(time.perf_counter() - started, 1),
    }
    plot(report, args.output.with_suffix(".png"))
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = report["rounds"]
    xs = list(range(len(rounds) + 1))
    start = report["figures"]["labelled_only"]
    validation = [start["validation"] * 100] + [r["validation_hits@1"] * 100 for r in rounds]
    labelled = [start["labelled"] * 100] + [r["labelled_hits@1"] * 100 for r in rounds]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(xs, validation, "o-", label="validation (serving model)")
    axis.plot(xs, labelled, "s--", label="labelled 10 % slice")
    axis.axhline(
        report["figures"]["supervised"]["validation"] * 100,
        color="green",
        linestyle=":",
        label="fully supervised (validation)",
    )
    for x, r in zip(xs[1:], rounds, strict=True):
        axis.annotate(r["status"], (x, validation[x]), textcoords="offset points", xytext=(0, 8))
    axis.set_xticks(xs)
    axis.set_xlabel("self-training round (0 = trained on the labelled 10 % only)")
    axis.set_ylabel("Hits@1 (%)")
    axis.set_title("MetaQA 1-hop: self-training through the pipeline")
    axis.legend(loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    registry_dir = args.stack_dir / "models"
    shutil.rmtree(registry_dir, ignore_errors=True)  # every run starts from nothing
    return run_on_own_stack(args, run, model_registry_dir=registry_dir)


if __name__ == "__main__":
    main()
