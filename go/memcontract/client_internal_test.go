package memcontract

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// critical is what a callee at level 3 sends in its trailers.
var critical = Encode(Pressure{UsageRatio: 0.99, Level: LevelCritical, Module: "inventory"})

// clockedClient is a Client whose clock reads *now.
func clockedClient(now *time.Time, opts ...ClientOption) *Client {
	c := NewClient(NewStaticSource(Pressure{}), opts...)
	c.now = func() time.Time { return *now }
	return c
}

func TestFastFailReturnsTheRemainingPushbackAndCapsIt(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := clockedClient(&now, WithFastFail(nil, time.Second), WithMaxFailFast(30*time.Second))

	tests := []struct {
		name     string
		pushback string
		after    time.Duration
		want     string // remaining pushback in ms, "" for no fast fail
	}{
		{"remaining, not the whole window", "1500", time.Second, "500"},
		{"window over", "1500", 1600 * time.Millisecond, ""},
		{"no pushback: the client's default", "", 200 * time.Millisecond, "800"},
		{"a huge pushback is capped", "999999999", 29 * time.Second, "1000"},
		{"ten digits are not a pushback", "4000000000", 500 * time.Millisecond, "500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := critical.Copy()
			if tt.pushback != "" {
				tr.Set(RetryPushbackKey, tt.pushback)
			}
			start := now
			c.record("inv", tr, nil)
			now = start.Add(tt.after)
			defer func() { now = start }()
			var got metadata.MD
			err := c.check("inv", "/inventory.v1.InventoryService/GetItem", []grpc.CallOption{grpc.Trailer(&got)})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("check() = %v, want no fast fail", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "failed fast") {
				t.Fatalf("check() = %v, want a fast fail", err)
			}
			if v := got.Get(RetryPushbackKey); len(v) != 1 || v[0] != tt.want {
				t.Errorf("trailer %s = %v, want %s", RetryPushbackKey, v, tt.want)
			}
			for _, d := range status.Convert(err).Details() {
				if r, ok := d.(*errdetails.RetryInfo); ok && r.GetRetryDelay().AsDuration().Milliseconds() > 30_000 {
					t.Errorf("RetryInfo %v over the cap", r)
				}
			}
		})
	}
}

func TestContractFastFailReadsCoreMethodsPushbackAndCap(t *testing.T) {
	m := DefaultModule("caller")
	m.CoreMethods = []string{"/inventory.v1.InventoryService/Ping"}
	m.RetryPushbackMs = 700
	m.MaxFailFastMs = 2000
	now := time.Unix(1_800_000_000, 0)
	c := clockedClient(&now, WithContractFastFail(m))
	failsFastFor := func(pushback, method string) string {
		tr := critical.Copy()
		if pushback != "" {
			tr.Set(RetryPushbackKey, pushback)
		}
		c.record("inv", tr, nil)
		var got metadata.MD
		if err := c.check("inv", method, []grpc.CallOption{grpc.Trailer(&got)}); err == nil {
			return ""
		}
		return strings.Join(got.Get(RetryPushbackKey), ",")
	}
	if got := failsFastFor("", "/inventory.v1.InventoryService/GetItem"); got != "700" {
		t.Errorf("no pushback: failed fast for %q ms, want the contract's 700", got)
	}
	if got := failsFastFor("999999", "/inventory.v1.InventoryService/GetItem"); got != "2000" {
		t.Errorf("huge pushback: failed fast for %q ms, want the contract's cap 2000", got)
	}
	if got := failsFastFor("999999", "/inventory.v1.InventoryService/Ping"); got != "" {
		t.Errorf("core method failed fast for %q ms", got)
	}
	m.MaxFailFastMs = 0
	c = clockedClient(&now, WithContractFastFail(m))
	if got := failsFastFor("999999", "/inventory.v1.InventoryService/GetItem"); got != "" {
		t.Errorf("max_fail_fast_ms 0 still failed fast for %q ms", got)
	}
}
