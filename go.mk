# Go side: three modules, each vetted, formatted and tested on its own.
#   go/           the library, github.com/memcontract/memcontract/go (package go/memcontract,
#                 its generated proto in go/gen); no x/tools, no replace
#   go/lint/      the go/analysis analyzers and cmd/memcontractlint (the only x/tools user)
#   examples/go/  the example services (replace to ../../go), their proto in examples/go/gen
# Tools are installed with `go install` at pinned versions. Included by the Makefile;
# `make test` runs `gotest`.
#
#   make gotest     tools, drift check of generated code, buf lint, gofmt, vet, test -race, binaries,
#                   memcontractlint over every module (as go vet's -vettool)
#   make goproto    regenerate go/gen/ (Go for protos/) and examples/go/gen/ (Go for
#                   examples/go/proto/, Python stubs of the example service under gen/python/)
GO       ?= go
GOLIB    := go
GOLINT   := go/lint
GODIR    := examples/go
GOMODS   := $(GOLIB) $(GOLINT) $(GODIR)
GOGENS   := $(GOLIB)/gen $(GODIR)/gen
GOBIN    := $(CURDIR)/$(GODIR)/bin
GOGEN    := tools/genproto_go.sh

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
	rm -rf $(GOGENS)
	$(GOGEN) $(CURDIR)/$(BIN)/python $(GOBIN)

# Regenerate into a temporary directory and compare with the committed code.
godrift: $(STAMP) gotools
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(GOGEN) $(CURDIR)/$(BIN)/python $(GOBIN) "$$tmp" && \
	for gen in $(GOGENS); do \
		if ! diff -r -x __pycache__ $$gen "$$tmp/$$gen"; then \
			echo "go.mk: $$gen is out of date with the protos; run 'make goproto'" >&2; exit 1; \
		fi; \
	done

golint: gotools
	$(GOBIN)/buf lint
	@out=$$(gofmt -l $(GOLIB) $(GODIR) bench/goproxy); \
	if [ -n "$$out" ]; then echo "gofmt -l: not formatted:" >&2; echo "$$out" >&2; exit 1; fi

govet:
	set -e; for m in $(GOMODS); do (cd $$m && $(GO) vet ./...); done

# -race: the interceptors run on many goroutines; -short would skip the real-memory test.
gounit:
	set -e; for m in $(GOMODS); do (cd $$m && $(GO) test -race ./...); done

# The example binaries, for the Python cross-language tests, and the gateway.
gobuild: gateway
	cd $(GODIR) && $(GO) build -o bin/ ./cmd/...

# The gateway (go/cmd/memcontract-gateway) at go/bin/memcontract-gateway; users run
# `go install github.com/memcontract/memcontract/go/cmd/memcontract-gateway@latest`.
.PHONY: gateway
gateway:
	cd $(GOLIB) && $(GO) build -o bin/memcontract-gateway ./cmd/memcontract-gateway

# Dogfood: memcontract's own analyzers over every module; a finding fails the build.
gomclint:
	cd $(GOLINT) && $(GO) build -o $(GOBIN)/memcontractlint ./cmd/memcontractlint
	set -e; for m in $(GOMODS); do (cd $$m && $(GO) vet -vettool=$(GOBIN)/memcontractlint ./...); done

gotest: godrift golint govet gounit gobuild gomclint grpcurl

# grpcurl, for the test that a calm service still shows its keys on a connection's first call
# (tests/test_grpcurl.py); the version the issue named as latest, pinned.
GRPCURL_VERSION := v1.9.4

$(GOBIN)/.grpcurl@%:
	GOBIN=$(GOBIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$*
	touch $@

.PHONY: grpcurl
grpcurl: $(GOBIN)/.grpcurl@$(GRPCURL_VERSION)

# ghz, the reference load generator bench/harness.py compares `memcontract loadtest` with.
GHZ_VERSION := v0.121.0

$(GOBIN)/.ghz@%:
	GOBIN=$(GOBIN) $(GO) install github.com/bojand/ghz/cmd/ghz@$*
	touch $@

.PHONY: ghz
ghz: $(GOBIN)/.ghz@$(GHZ_VERSION) gobuild
