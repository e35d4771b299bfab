"""The generated stubs are exactly what scripts/genproto.sh makes from the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_stubs_match_the_protos(tmp_path: Path) -> None:
    subprocess.run(["bash", "scripts/genproto.sh", str(tmp_path)], cwd=ROOT, check=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "genproto produced nothing"
    committed = sorted(
        p.relative_to(ROOT / "proto") for p in (ROOT / "proto").rglob("*")
        if p.is_file() and p.suffix in (".py", ".pyi") and "__pycache__" not in p.parts
    )
    assert generated == committed, "generated and committed stub files differ: run `make proto`"
    stale = [str(rel) for rel in generated if (tmp_path / rel).read_bytes() != (ROOT / "proto" / rel).read_bytes()]
    assert not stale, f"stubs out of date with their .proto (run `make proto`): {stale}"


def test_grpc_stubs_exist_exactly_for_the_protos_that_declare_a_service() -> None:
    protos = sorted((ROOT / "proto").rglob("*.proto"))
    assert protos
    for proto in protos:
        declares_service = any(line.startswith("service ") for line in proto.read_text().splitlines())
        stub = proto.with_name(f"{proto.stem}_pb2_grpc.py")
        why = "is missing" if declares_service else "is generated for a proto without services"
        assert stub.is_file() == declares_service, f"{stub.relative_to(ROOT)} {why}"
        assert proto.with_name(f"{proto.stem}_pb2.py").is_file() and proto.with_name(f"{proto.stem}_pb2.pyi").is_file()


def test_every_proto_package_matches_its_path() -> None:
    for proto in (ROOT / "proto").rglob("*.proto"):
        lines = proto.read_text().splitlines()
        package = next(line.split()[1].rstrip(";") for line in lines if line.startswith("package "))
        assert package == ".".join(proto.parent.relative_to(ROOT / "proto").parts), proto
