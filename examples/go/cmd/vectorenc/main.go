// Command vectorenc prints the Go side's wire encoding of pressures and its
// decoding of metadata, read as JSON lines on stdin, for the cross-language
// tests (tests/test_interop_go.py), which compare it with Python's
// memcontract.wire.
//
// Input on stdin, one JSON object a line: a pressure to encode (the fields of
// the shared test vectors, tests/vectors/*.json) or metadata to decode
// (values in standard base64, so any bytes can be given):
//
//	{"id":"normal","pressure":{"usage_ratio":0.684,"capacity_bytes":2147483648,"level":0,...}}
//	{"id":"parse-3","metadata":[["x-memory-usage","Njgl"]]}
//
// Output on stdout, one JSON object a line, in input order:
//
//	{"id":"normal","metadata":[["x-memory-usage","68.4%"],...],"orca":"EQ..."}
//	{"id":"parse-3","present":true,"pressure":{"usage_ratio":0.68,...},"invalid":0}
//	{"id":"?","error":"..."}                                   (a bad input line)
//
// Encoded -bin values are in standard base64, as in the test vectors. The
// exit status is 0 unless stdin cannot be read.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/memcontract/memcontract/examples/go/internal/cli"
	"github.com/memcontract/memcontract/go/memcontract"
)

// pressureJSON is a pressure as the test vectors spell it.
type pressureJSON struct {
	UsageRatio           float64 `json:"usage_ratio"`
	UsedBytes            uint64  `json:"used_bytes"`
	CapacityBytes        uint64  `json:"capacity_bytes"`
	AllocRateBytesPerSec float64 `json:"alloc_rate_bytes_per_sec"`
	AllocRateRatio       float64 `json:"alloc_rate_ratio"`
	Level                int     `json:"level"`
	ContractVersion      string  `json:"contract_version"`
	Module               string  `json:"module"`
	SampledAtUnixMs      int64   `json:"sampled_at_unix_ms"`
}

func (j pressureJSON) pressure() memcontract.Pressure {
	p := memcontract.Pressure{
		UsageRatio:           j.UsageRatio,
		UsedBytes:            j.UsedBytes,
		CapacityBytes:        j.CapacityBytes,
		AllocRateBytesPerSec: j.AllocRateBytesPerSec,
		AllocRateRatio:       j.AllocRateRatio,
		Level:                memcontract.Level(j.Level),
		ContractVersion:      j.ContractVersion,
		Module:               j.Module,
	}
	if j.SampledAtUnixMs != 0 {
		p.SampledAt = time.UnixMilli(j.SampledAtUnixMs)
	}
	return p
}

type input struct {
	ID       string        `json:"id"`
	Pressure *pressureJSON `json:"pressure"`
	Metadata [][2]string   `json:"metadata"`
}

type encoded struct {
	ID       string      `json:"id"`
	Metadata [][2]string `json:"metadata"`
	ORCA     string      `json:"orca"`
}

type decoded struct {
	ID       string                `json:"id"`
	Present  bool                  `json:"present"`
	Pressure *memcontract.Pressure `json:"pressure"`
	Invalid  int                   `json:"invalid"`
}

type failed struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

func main() {
	out := cli.NewPrinter()
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		out.Print(handle(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		cli.Fatal(err)
	}
}

// handle answers one input line.
func handle(b []byte) any {
	var in input
	if err := json.Unmarshal(b, &in); err != nil {
		return failed{ID: "?", Error: err.Error()}
	}
	switch {
	case in.Pressure != nil:
		return encode(in.ID, in.Pressure.pressure())
	case in.Metadata != nil:
		return decode(in.ID, in.Metadata)
	}
	return failed{ID: in.ID, Error: "want \"pressure\" or \"metadata\""}
}

func encode(id string, p memcontract.Pressure) any {
	kv := memcontract.EncodePairs(p)
	md := make([][2]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if strings.HasSuffix(kv[i], "-bin") {
			v = base64.StdEncoding.EncodeToString([]byte(v))
		}
		md = append(md, [2]string{kv[i], v})
	}
	orca, err := memcontract.MarshalLoadReport(p)
	if err != nil {
		return failed{ID: id, Error: err.Error()}
	}
	return encoded{ID: id, Metadata: md, ORCA: base64.StdEncoding.EncodeToString(orca)}
}

func decode(id string, pairs [][2]string) any {
	md := metadata.MD{}
	for _, kv := range pairs {
		v, err := base64.StdEncoding.DecodeString(kv[1])
		if err != nil {
			return failed{ID: id, Error: fmt.Sprintf("%s: value not base64: %v", kv[0], err)}
		}
		md.Append(kv[0], string(v))
	}
	p, ok, invalid := memcontract.Decode(md)
	d := decoded{ID: id, Present: ok, Invalid: invalid}
	if ok {
		d.Pressure = &p
	}
	return d
}
