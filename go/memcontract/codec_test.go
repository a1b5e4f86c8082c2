package memcontract

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// vectorDir holds the test vectors shared with the Python tests.
const vectorDir = "../../tests/vectors"

type vector struct {
	Name     string `json:"name"`
	Pressure struct {
		UsageRatio           float64 `json:"usage_ratio"`
		UsedBytes            uint64  `json:"used_bytes"`
		CapacityBytes        uint64  `json:"capacity_bytes"`
		AllocRateBytesPerSec float64 `json:"alloc_rate_bytes_per_sec"`
		AllocRateRatio       float64 `json:"alloc_rate_ratio"`
		Level                int     `json:"level"`
		ContractVersion      string  `json:"contract_version"`
		Module               string  `json:"module"`
		SampledAtUnixMs      int64   `json:"sampled_at_unix_ms"`
	} `json:"pressure"`
	Metadata [][2]string `json:"metadata"`
	ORCA     string      `json:"orca"`
}

func (v *vector) pressure() Pressure {
	p := Pressure{
		UsageRatio:           v.Pressure.UsageRatio,
		UsedBytes:            v.Pressure.UsedBytes,
		CapacityBytes:        v.Pressure.CapacityBytes,
		AllocRateBytesPerSec: v.Pressure.AllocRateBytesPerSec,
		AllocRateRatio:       v.Pressure.AllocRateRatio,
		Level:                Level(v.Pressure.Level),
		ContractVersion:      v.Pressure.ContractVersion,
		Module:               v.Pressure.Module,
	}
	if ms := v.Pressure.SampledAtUnixMs; ms != 0 {
		p.SampledAt = time.UnixMilli(ms)
	}
	return p
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	for _, f := range files {
		if filepath.Base(f) == "parse.json" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if v.Name == "" {
			v.Name = strings.TrimSuffix(filepath.Base(f), ".json")
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		t.Fatalf("no test vectors in %s", vectorDir)
	}
	return vs
}

// wire returns a metadata value as it appears in the vectors: -bin values
// in padded standard base64.
func wire(k, v string) string {
	if strings.HasSuffix(k, "-bin") {
		return base64.StdEncoding.EncodeToString([]byte(v))
	}
	return v
}

func TestEncodeVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			kv := EncodePairs(v.pressure())
			var got [][2]string
			for i := 0; i < len(kv); i += 2 {
				got = append(got, [2]string{kv[i], wire(kv[i], kv[i+1])})
			}
			if len(got) != len(v.Metadata) {
				t.Fatalf("EncodePairs() = %q, want %q", got, v.Metadata)
			}
			for i := range got {
				if got[i] != v.Metadata[i] {
					t.Errorf("EncodePairs()[%d] = %q, want %q", i, got[i], v.Metadata[i])
				}
			}
			orca, err := MarshalLoadReport(v.pressure())
			if err != nil {
				t.Fatalf("MarshalLoadReport() failed: %v", err)
			}
			if got := base64.StdEncoding.EncodeToString(orca); got != v.ORCA {
				t.Errorf("MarshalLoadReport() = %s, want %s", got, v.ORCA)
			}
		})
	}
}

func TestDecodeVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			md := metadata.MD{}
			text := metadata.MD{}
			for _, kv := range v.Metadata {
				val := kv[1]
				if strings.HasSuffix(kv[0], "-bin") {
					b, err := base64.StdEncoding.DecodeString(val)
					if err != nil {
						t.Fatal(err)
					}
					val = string(b)
				} else {
					text.Append(kv[0], val)
				}
				md.Append(kv[0], val)
			}
			got, ok, invalid := Decode(md)
			if !ok || invalid != 0 {
				t.Fatalf("Decode() = _, %v, %d, want true, 0", ok, invalid)
			}
			want := v.pressure()
			want.UsageRatio = math.Min(want.UsageRatio, 10) // read back as at most 1000 %
			if !got.SampledAt.Equal(want.SampledAt) {
				t.Errorf("Decode().SampledAt = %v, want %v", got.SampledAt, want.SampledAt)
			}
			got.SampledAt, want.SampledAt = time.Time{}, time.Time{}
			if got != want {
				t.Errorf("Decode() = %+v, want %+v", got, want)
			}

			// Without the -bin value the text keys carry usage (to 0.1%),
			// capacity (whole MiB), version and level.
			got, ok, invalid = Decode(text)
			if !ok || invalid != 0 {
				t.Fatalf("Decode(text keys) = _, %v, %d, want true, 0", ok, invalid)
			}
			if got.Level != want.Level || got.ContractVersion != want.ContractVersion ||
				got.CapacityBytes != want.CapacityBytes/MiB*MiB ||
				math.Abs(got.UsageRatio-math.Min(want.UsageRatio, 10)) > 0.0005+1e-12 {
				t.Errorf("Decode(text keys) = %+v, want about %+v", got, want)
			}

			var r v3orcapb.OrcaLoadReport
			b, _ := base64.StdEncoding.DecodeString(v.ORCA)
			if err := proto.Unmarshal(b, &r); err != nil {
				t.Fatalf("vector ORCA report does not parse: %v", err)
			}
			if !proto.Equal(&r, LoadReport(v.pressure())) {
				t.Errorf("LoadReport() = %v, want %v", LoadReport(v.pressure()), &r)
			}
		})
	}
}

type parseCase struct {
	Key         string          `json:"key"`
	Value       *string         `json:"value"`
	ValueBase64 *string         `json:"value_base64"`
	Valid       bool            `json:"valid"`
	Parsed      json.RawMessage `json:"parsed"`
}

func (c parseCase) value(t *testing.T) string {
	t.Helper()
	switch {
	case c.Value != nil:
		return *c.Value
	case c.ValueBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*c.ValueBase64)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatal("case has neither value nor value_base64")
	return ""
}

func TestParseVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(vectorDir, "parse.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []parseCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	for i, c := range file.Cases {
		v := c.value(t)
		var (
			ok  bool
			got any
		)
		switch c.Key {
		case UsageKey:
			got, ok = ParseUsage(v)
		case CapacityKey:
			got, ok = ParseCapacity(v)
		case ContractKey:
			got, ok = ParseContract(v)
		case LevelKey:
			var l Level
			l, ok = ParseLevel(v)
			got = int(l)
		case PressureBinKey:
			got, ok = ParsePressureBin([]byte(v))
		default:
			t.Errorf("case %d: unknown key %q", i, c.Key)
			continue
		}
		if ok != c.Valid {
			t.Errorf("case %d: parse %s %q: ok = %v, want %v", i, c.Key, v, ok, c.Valid)
			continue
		}
		// Decode never fails a call: an invalid value is counted. Capacity and
		// contract version alone describe no pressure (as in Python).
		_, dok, invalid := Decode(metadata.MD{c.Key: []string{v}})
		wantOK := c.Valid && c.Key != CapacityKey && c.Key != ContractKey
		if wantInvalid := map[bool]int{true: 0, false: 1}[c.Valid]; dok != wantOK || invalid != wantInvalid {
			t.Errorf("case %d: Decode(%s: %q) = _, %v, %d, want %v, %d", i, c.Key, v, dok, invalid, wantOK, wantInvalid)
		}
		if !ok || len(c.Parsed) == 0 || string(c.Parsed) == "null" || c.Key == PressureBinKey {
			continue
		}
		var want any
		switch got.(type) {
		case float64:
			var f float64
			err = json.Unmarshal(c.Parsed, &f)
			want = f
		case uint64:
			var n uint64
			err = json.Unmarshal(c.Parsed, &n)
			want = n
		case int:
			var n int
			err = json.Unmarshal(c.Parsed, &n)
			want = n
		case string:
			var s string
			err = json.Unmarshal(c.Parsed, &s)
			want = s
		}
		if err != nil {
			t.Fatalf("case %d: parsed: %v", i, err)
		}
		if got != want {
			t.Errorf("case %d: parse %s %q = %v, want %v", i, c.Key, v, got, want)
		}
	}
}

func TestFormatUsage(t *testing.T) {
	tests := []struct {
		ratio float64
		want  string
	}{
		{0, "0%"},
		{0.684, "68.4%"},
		{0.68, "68%"},
		{1, "100%"},
		{-1, "0%"},
		{math.NaN(), "0%"},
		{math.Inf(1), "1000%"},
		{12, "1000%"},
		{0.9999, "100%"},
		{0.00049, "0%"},
	}
	for _, tt := range tests {
		if got := FormatUsage(tt.ratio); got != tt.want {
			t.Errorf("FormatUsage(%v) = %q, want %q", tt.ratio, got, tt.want)
		}
	}
}

func TestDecodeMixed(t *testing.T) {
	bin := string(mustMarshal(t, Pressure{UsageRatio: 0.5, Level: LevelAlert, Module: "m"}))
	tests := []struct {
		name        string
		md          metadata.MD
		wantOK      bool
		wantInvalid int
		wantUsage   float64
		wantLevel   Level
	}{
		{"empty", metadata.MD{}, false, 0, 0, 0},
		{"bin wins over text", metadata.Pairs(UsageKey, "90%", LevelKey, "3", PressureBinKey, bin), true, 0, 0.5, LevelAlert},
		{"bad bin falls back to text", metadata.Pairs(UsageKey, "90%", LevelKey, "3", PressureBinKey, "\xff"), true, 1, 0.9, LevelCritical},
		{"bad text counted", metadata.Pairs(UsageKey, "x", LevelKey, "9", CapacityKey, "1.5"), false, 3, 0, 0},
		{"last valid value wins", metadata.Pairs(LevelKey, "1", LevelKey, "bad", LevelKey, "2"), true, 1, 0, LevelDegraded},
		{"too long", metadata.Pairs(UsageKey, strings.Repeat("1", 65)), false, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok, invalid := Decode(tt.md)
			if ok != tt.wantOK || invalid != tt.wantInvalid || p.UsageRatio != tt.wantUsage || p.Level != tt.wantLevel {
				t.Errorf("Decode() = %+v, %v, %d; want usage %v level %v, %v, %d",
					p, ok, invalid, tt.wantUsage, tt.wantLevel, tt.wantOK, tt.wantInvalid)
			}
		})
	}
}

func mustMarshal(t *testing.T, p Pressure) []byte {
	t.Helper()
	b, err := proto.Marshal(p.Proto())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
