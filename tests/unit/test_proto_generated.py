"""The committed Python code of proto/ is what protoc makes of the .proto files now."""

from __future__ import annotations

from pathlib import Path

from autoglm.protogen import generate, proto_files
from autoglm.settings import PROJECT_ROOT


def test_generated_code_is_current(tmp_path: Path):
    generate(tmp_path)
    fresh = sorted((tmp_path / "autoglm" / "v1").glob("*_pb2.py*"))
    committed_dir = PROJECT_ROOT / "libs" / "autoglm" / "v1"
    assert {p.name for p in fresh} == {p.name for p in committed_dir.glob("*_pb2.py*")}
    stale = [p.name for p in fresh if p.read_bytes() != (committed_dir / p.name).read_bytes()]
    assert not stale, f"run `make proto`: {stale} differ from proto/"


def test_every_proto_has_generated_module():
    names = {p.stem for p in proto_files()}
    assert names == {"common", "documents", "questions", "reasoning", "feedback", "dead_letter"}
