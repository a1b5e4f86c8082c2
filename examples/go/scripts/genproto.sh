#!/bin/sh
# Generate the Go code (and the Python stubs of the example service) for
# protos/ and examples/go/proto/ into OUT (default: examples/go/gen).
#
# Usage: examples/go/scripts/genproto.sh PYTHON GOBIN [OUT]
#   PYTHON  a Python with grpcio-tools (protoc and the well-known types)
#   GOBIN   directory holding protoc-gen-go and protoc-gen-go-grpc
set -eu
PYTHON=$1
GOBIN=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${3:-$ROOT/examples/go/gen}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WKT=$("$PYTHON" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')

protoc() {
	"$PYTHON" -m grpc_tools.protoc \
		--plugin=protoc-gen-go="$GOBIN/protoc-gen-go" \
		--plugin=protoc-gen-go-grpc="$GOBIN/protoc-gen-go-grpc" \
		-I"$WKT" "$@"
}

cd "$ROOT"
protoc -Iprotos \
	--go_out="$OUT" --go_opt=paths=source_relative \
	--go-grpc_out="$OUT" --go-grpc_opt=paths=source_relative \
	memcontract/v1/memcontract.proto

mkdir -p "$OUT/python"
protoc -Iexamples/go/proto \
	--go_out="$OUT" --go_opt=paths=source_relative \
	--go-grpc_out="$OUT" --go-grpc_opt=paths=source_relative \
	--python_out="$OUT/python" --pyi_out="$OUT/python" --grpc_python_out="$OUT/python" \
	inventory/v1/inventory.proto
