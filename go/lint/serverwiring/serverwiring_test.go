package serverwiring_test

import (
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/memcontract/memcontract/go/lint/serverwiring"
)

func TestAnalyzer(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), serverwiring.Analyzer, "a")
}
