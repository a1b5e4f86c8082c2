"""Regenerate the example's Python code from ``protos/inventory_demo/v1/inventory_demo.proto``.

From the repository root::

    python examples/python/genproto.py            # writes examples/python/inventory_demo/v1/
    python examples/python/genproto.py --out DIR  # elsewhere (the drift test compares)

It runs exactly this, then makes the ``*_pb2_grpc.py`` import of ``*_pb2`` relative, so the
generated package imports as ``examples.python.inventory_demo.v1`` (or as ``inventory_demo.v1``
with ``examples/python`` on ``sys.path``) without touching ``sys.path``::

    python -m grpc_tools.protoc -Iexamples/python/protos --python_out=examples/python \\
        --pyi_out=examples/python --grpc_python_out=examples/python \\
        examples/python/protos/inventory_demo/v1/inventory_demo.proto
"""

from __future__ import annotations

import argparse
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE / "protos"
PROTO = "inventory_demo/v1/inventory_demo.proto"
GRPC_FILE = "inventory_demo/v1/inventory_demo_pb2_grpc.py"
ABSOLUTE = "from inventory_demo.v1 import inventory_demo_pb2 as"
RELATIVE = "from . import inventory_demo_pb2 as"
GENERATED = (
    "inventory_demo/v1/inventory_demo_pb2.py",
    "inventory_demo/v1/inventory_demo_pb2.pyi",
    GRPC_FILE,
)


def generate(out: pathlib.Path) -> list[pathlib.Path]:
    """Run protoc (grpcio-tools) into ``out``; return the generated files."""
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO_ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    grpc_file = out / GRPC_FILE
    text = grpc_file.read_text()
    if ABSOLUTE not in text:
        raise SystemExit(f"unexpected import in {grpc_file}; update genproto.py")
    grpc_file.write_text(text.replace(ABSOLUTE, RELATIVE))
    return [out / name for name in GENERATED]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE)
    for path in generate(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
