package memcontract_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeGo is the Go program the README's Go section shows: Example's imports
// and body, as a main package.
func readmeGo(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\n(import \(\n.*?\n\))\n.*?\nfunc Example\(\) \{\n(.*?)\t// Output:`).FindSubmatch(src)
	if m == nil {
		t.Fatal("example_test.go: no import block or no Example with an Output comment")
	}
	return "package main\n\n" + string(m[1]) + "\n\nfunc main() {\n" + string(m[2]) + "}\n"
}

// readmeBlock is the first ```go block of the README's "## Go package" section.
func readmeBlock(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\n## Go package[^\n]*\n.*?```go\n(.*?)```\n").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md: no ```go block in a \"## Go package\" section")
	}
	return string(m[1])
}

// TestReadmeIsTheExample: the README shows exactly what Example runs.
func TestReadmeIsTheExample(t *testing.T) {
	if got, want := readmeBlock(t), readmeGo(t); got != want {
		t.Errorf("README.md's Go block differs from Example (example_test.go); it should read:\n%s", want)
	}
}

// TestReadmeBuildsInAConsumerModule builds and runs the README's Go program
// as a module of its own outside the repository, requiring the library (a
// replace to this checkout stands for the release) with the library's own
// dependency versions, as `go get` would give them.
func TestReadmeBuildsInAConsumerModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a program")
	}
	lib, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.go", []byte(readmeBlock(t)))
	contract, err := os.ReadFile("testdata/memory_contract.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write("testdata/memory_contract.yaml", contract)
	write("go.mod", []byte(consumerGoMod(t, lib)))
	sums, err := os.ReadFile(filepath.Join(lib, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write("go.sum", sums)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	build := exec.CommandContext(ctx, "go", "build", "-o", "consumer", ".")
	build.Dir, build.Env = dir, env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the README's program: %v\n%s", err, out)
	}
	run := exec.CommandContext(ctx, filepath.Join(dir, "consumer"))
	run.Dir = dir
	out, err := run.CombinedOutput()
	if err != nil || string(out) != "true inventory NORMAL\n" {
		t.Errorf("the README's program: %v, output %q; want \"true inventory NORMAL\\n\"", err, out)
	}
}

// consumerGoMod is a consumer's go.mod: the library (replaced by lib) and the
// requirements of the library's own go.mod.
func consumerGoMod(t *testing.T, lib string) string {
	t.Helper()
	mod, err := os.ReadFile(filepath.Join(lib, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	requires := regexp.MustCompile(`(?s)\nrequire \(.*?\n\)\n`).FindAll(mod, -1)
	if len(requires) == 0 {
		t.Fatal("go.mod: no require block")
	}
	var b strings.Builder
	b.WriteString("module example.com/consumer\n\ngo 1.26.0\n\n")
	b.WriteString("require github.com/memcontract/memcontract/go v0.0.0-00010101000000-000000000000\n")
	for _, r := range requires {
		b.Write(r)
	}
	b.WriteString("\nreplace github.com/memcontract/memcontract/go => " + lib + "\n")
	return b.String()
}
