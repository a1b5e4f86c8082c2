package requestalloc_test

import (
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/memcontract/memcontract/go/lint/requestalloc"
)

func TestAnalyzer(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), requestalloc.Analyzer, "a")
}
