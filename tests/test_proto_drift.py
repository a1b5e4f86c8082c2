"""The committed Python code for protos/ is what protoc generates from them now."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "src" / "memcontract" / "v1"


def test_generated_python_matches_the_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "genproto.py"), "--out", str(tmp_path)],
        check=True,
        timeout=120,
    )
    fresh = tmp_path / "memcontract" / "v1"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == ["memcontract_pb2.py", "memcontract_pb2.pyi", "memcontract_pb2_grpc.py"]
    _, mismatch, errors = filecmp.cmpfiles(fresh, COMMITTED, names, shallow=False)
    assert (mismatch, errors) == ([], []), "generated code drifted: run `make proto`"


def test_the_core_never_imports_grpc() -> None:
    code = (
        "import sys, memcontract, memcontract.cache, memcontract.wire; print('grpc' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
