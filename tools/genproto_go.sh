#!/bin/sh
# Generate the Go code for protos/ into go/gen (the library module's own proto)
# and, for examples/go/proto/, the Go code and the Python stubs of the example
# service into examples/go/gen. OUT (default: the repository root) is where
# go/gen and examples/go/gen are written, so that a drift check can generate
# into a temporary directory and compare.
#
# Usage: tools/genproto_go.sh PYTHON GOBIN [OUT]
#   PYTHON  a Python with grpcio-tools (protoc and the well-known types)
#   GOBIN   directory holding protoc-gen-go and protoc-gen-go-grpc
set -eu
PYTHON=$1
GOBIN=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${3:-$ROOT}
LIBGEN=$OUT/go/gen
EXGEN=$OUT/examples/go/gen
mkdir -p "$LIBGEN" "$EXGEN/python"
WKT=$("$PYTHON" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')

protoc() {
	"$PYTHON" -m grpc_tools.protoc \
		--plugin=protoc-gen-go="$GOBIN/protoc-gen-go" \
		--plugin=protoc-gen-go-grpc="$GOBIN/protoc-gen-go-grpc" \
		-I"$WKT" "$@"
}

cd "$ROOT"
protoc -Iprotos \
	--go_out="$LIBGEN" --go_opt=paths=source_relative \
	--go-grpc_out="$LIBGEN" --go-grpc_opt=paths=source_relative \
	memcontract/v1/memcontract.proto

protoc -Iexamples/go/proto \
	--go_out="$EXGEN" --go_opt=paths=source_relative \
	--go-grpc_out="$EXGEN" --go-grpc_opt=paths=source_relative \
	--python_out="$EXGEN/python" --pyi_out="$EXGEN/python" --grpc_python_out="$EXGEN/python" \
	inventory/v1/inventory.proto
