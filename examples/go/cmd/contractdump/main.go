// Command contractdump loads memory_contract.yaml files with the Go loader
// (memcontract.LoadContract, defaults filled in) and prints each as a
// memcontract.v1.Contract in protojson, for the cross-language tests, which
// compare it with Python's Contract.to_proto().
//
//	contractdump [-module NAME] examples/go/contracts/memory_contract.yaml examples/contracts/seed.yaml
//
// Output on stdout, one JSON object a line per file, in argument order:
//
//	{"path":"examples/contracts/seed.yaml","contract":{"version":"v1","modules":[...]}}
//	{"path":"tests/contracts/bad_type.yaml","error":"..."}
//
// A file that does not load is reported on its line; the exit status is 0
// unless no file is given (2).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/memcontract/memcontract/examples/go/internal/cli"
	"github.com/memcontract/memcontract/go/memcontract"
)

type line struct {
	Path     string          `json:"path"`
	Contract json.RawMessage `json:"contract,omitempty"`
	Error    string          `json:"error,omitempty"`
}

func main() {
	module := flag.String("module", "", "module in force (default: $MEMCONTRACT_MODULE, else the only one)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: contractdump [-module NAME] CONTRACT.yaml...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		cli.Fatal(errors.New("contractdump: no contract file given"))
	}
	out := cli.NewPrinter()
	for _, path := range flag.Args() {
		out.Print(dump(path, *module))
	}
}

// dump loads one contract file and returns its output line.
func dump(path, module string) line {
	c, err := memcontract.LoadContract(path, memcontract.WithModule(module))
	if err != nil {
		return line{Path: path, Error: err.Error()}
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(c.Proto())
	if err != nil {
		return line{Path: path, Error: err.Error()}
	}
	return line{Path: path, Contract: b}
}
