# Go side (examples/go): tools installed with `go install` at pinned versions, generated code,
# go vet / gofmt / go test. Included by the Makefile; `make test` runs `gotest`.
#
#   make gotest     tools, drift check of generated code, buf lint, gofmt, vet, test -race, binaries,
#                   memcontractlint over examples/go (as go vet's -vettool)
#   make goproto    regenerate examples/go/gen/ (Go for protos/ and examples/go/proto/,
#                   Python stubs of the example service under examples/go/gen/python/)
GO       ?= go
GODIR    := examples/go
GOBIN    := $(CURDIR)/$(GODIR)/bin
GOGEN    := $(GODIR)/scripts/genproto.sh

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
BUF_VERSION                := v1.75.0

# One stamp per tool and version: a version bump reinstalls, nothing else does.
GOTOOLS := $(GOBIN)/.protoc-gen-go@$(PROTOC_GEN_GO_VERSION) \
           $(GOBIN)/.protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION) \
           $(GOBIN)/.buf@$(BUF_VERSION)

.PHONY: gotest gotools goproto godrift golint govet gounit gobuild gomclint

gotools: $(GOTOOLS)

$(GOBIN)/.protoc-gen-go@%:
	GOBIN=$(GOBIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$*
	touch $@

$(GOBIN)/.protoc-gen-go-grpc@%:
	GOBIN=$(GOBIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$*
	touch $@

$(GOBIN)/.buf@%:
	GOBIN=$(GOBIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$*
	touch $@

goproto: $(STAMP) gotools
	rm -rf $(GODIR)/gen
	$(GOGEN) $(CURDIR)/$(BIN)/python $(GOBIN)

# Regenerate into a temporary directory and compare with the committed code.
godrift: $(STAMP) gotools
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(GOGEN) $(CURDIR)/$(BIN)/python $(GOBIN) "$$tmp" && \
	if ! diff -r -x __pycache__ $(GODIR)/gen "$$tmp"; then \
		echo "go.mk: $(GODIR)/gen is out of date with the protos; run 'make goproto'" >&2; exit 1; \
	fi

golint: gotools
	$(GOBIN)/buf lint
	@out=$$(cd $(GODIR) && gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt -l: not formatted:" >&2; echo "$$out" >&2; exit 1; fi

govet:
	cd $(GODIR) && $(GO) vet ./...

# -race: the interceptors run on many goroutines; -short would skip the real-memory test.
gounit:
	cd $(GODIR) && $(GO) test -race ./...

# The example binaries, for the Python cross-language tests.
gobuild:
	cd $(GODIR) && $(GO) build -o bin/ ./cmd/...

# Dogfood: memcontract's own analyzers over the Go examples; a finding fails the build.
gomclint:
	cd $(GODIR) && $(GO) build -o bin/memcontractlint ./cmd/memcontractlint && \
		$(GO) vet -vettool=$(GOBIN)/memcontractlint ./...

gotest: godrift golint govet gounit gobuild gomclint

# ghz, the reference load generator bench/harness.py compares `memcontract loadtest` with.
GHZ_VERSION := v0.121.0

$(GOBIN)/.ghz@%:
	GOBIN=$(GOBIN) $(GO) install github.com/bojand/ghz/cmd/ghz@$*
	touch $@

.PHONY: ghz
ghz: $(GOBIN)/.ghz@$(GHZ_VERSION) gobuild
