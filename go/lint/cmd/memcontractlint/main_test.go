package main_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommand builds memcontractlint and runs it the two ways users do, on
// the serverwiring analyzer's GOPATH-style testdata: standalone (exit 3 on
// findings) and as go vet's -vettool (exit 1), and on a wired package (exit 0).
func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary and runs go vet")
	}
	tool := filepath.Join(t.TempDir(), "memcontractlint")
	if out, err := exec.Command("go", "build", "-o", tool, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	gopath, err := filepath.Abs("../../serverwiring/testdata")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOPATH="+gopath, "GO111MODULE=off", "GOFLAGS=")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"standalone finding", []string{tool, "a"}, 3, "MC001: grpc.NewServer without memcontract"},
		{"standalone clean", []string{tool, "wired"}, 0, ""},
		{"vet finding", []string{"go", "vet", "-vettool=" + tool, "a"}, 1, "MC001: grpc.NewServer without memcontract"},
		{"vet clean", []string{"go", "vet", "-vettool=" + tool, "wired"}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.args[0], tc.args[1:]...)
			cmd.Dir = gopath
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(string(out), tc.wantOut) {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.wantCode, out)
			}
		})
	}
}
