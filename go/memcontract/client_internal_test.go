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

// ping is a core method of the callers here.
const ping = "/inventory.v1.InventoryService/Ping"

// critical is what a callee at level 3 sends in its trailers.
var critical = encode(Pressure{UsageRatio: 0.99, Level: LevelCritical, Module: "inventory"})

// clockedClient is a Client whose clock reads *now.
func clockedClient(now *time.Time, opts ...ClientOption) *Client {
	c := NewClient(NewStaticSource(Pressure{}), opts...)
	c.now = func() time.Time { return *now }
	return c
}

func TestFastFailReturnsTheRemainingPushbackAndCapsIt(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)

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
			c := clockedClient(&now, WithFastFail([]string{ping}, time.Second), WithMaxFailFast(30*time.Second))
			// A core call's answer: at level 3 it blocks with or without a pushback.
			c.record("inv", "", ping, tr, nil)
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
	failsFastFor := func(pushback, method string) string {
		c := clockedClient(&now, WithContractFastFail(m)) // a fresh table: no window open
		tr := critical.Copy()
		if pushback != "" {
			tr.Set(RetryPushbackKey, pushback)
		}
		c.record("inv", "", ping, tr, nil) // a core call's answer (see above)
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
	if got := failsFastFor("999999", "/inventory.v1.InventoryService/GetItem"); got != "" {
		t.Errorf("max_fail_fast_ms 0 still failed fast for %q ms", got)
	}
}

// answer records one answer of backend addr on target "svc": level 3 (with a
// 500 ms pushback) or calm, or no keys at all.
func answer(c *Client, addr string, level Level, keys bool) {
	var tr metadata.MD
	if keys {
		tr = encode(Pressure{UsageRatio: 0.5, Level: level, Module: "svc"})
		tr.Set(RetryPushbackKey, "500")
	}
	c.record("svc", addr, "/svc/Call", tr, nil)
}

func failsFast(c *Client) bool { return c.check("svc", "/svc/Call", nil) != nil }

func TestOneBackendAtLevel3AmongCalmOnesNeverFailsTheChannelFast(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := clockedClient(&now, WithFastFail(nil, time.Second))
	answer(c, "b", LevelNormal, true)
	answer(c, "c", LevelNormal, false) // no keys: calm
	for range 10 {
		for _, addr := range []string{"a", "b", "c"} {
			level := LevelNormal
			if addr == "a" {
				level = LevelCritical
			}
			answer(c, addr, level, addr != "c")
			now = now.Add(10 * time.Millisecond)
			if failsFast(c) {
				t.Fatalf("failed fast after %s answered", addr)
			}
		}
	}
}

func TestAllBackendsAtLevel3FailFastWithOneProbePerWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := clockedClient(&now, WithFastFail(nil, time.Second))
	answer(c, "a", LevelCritical, true)
	if !failsFast(c) {
		t.Fatal("the only backend heard from is at level 3: must fail fast")
	}
	c = clockedClient(&now, WithFastFail(nil, time.Second))
	answer(c, "a", LevelNormal, true)
	answer(c, "b", LevelNormal, true)
	now = now.Add(time.Second) // the calm answers are older than the window
	answer(c, "a", LevelCritical, true)
	if failsFast(c) {
		t.Fatal("one backend of two at level 3: must not fail fast")
	}
	answer(c, "b", LevelCritical, true)
	if !failsFast(c) {
		t.Fatal("both at level 3: must fail fast")
	}
	now = now.Add(500 * time.Millisecond)
	if failsFast(c) {
		t.Fatal("the window is over: the probe must go out")
	}
	if !failsFast(c) {
		t.Fatal("only one probe per window")
	}
	answer(c, "a", LevelNormal, false) // the probe's answer: no keys, calm
	if failsFast(c) {
		t.Fatal("a calm answer must end failing fast")
	}
}

func TestANonCoreCallAdmittedAtLevel3EndsTheWindow(t *testing.T) {
	// Half-open (or dry run): the backend is at level 3 and serves non-core calls again.
	now := time.Unix(1_800_000_000, 0)
	c := clockedClient(&now, WithFastFail([]string{ping}, time.Second))
	const get = "/inventory.v1.InventoryService/GetItem"
	shed := critical.Copy()
	shed.Set(RetryPushbackKey, "500")
	c.record("inv", "", get, shed, nil)
	if c.check("inv", get, nil) == nil {
		t.Fatal("a shed call's answer opened no window")
	}
	now = now.Add(500 * time.Millisecond)
	if err := c.check("inv", get, nil); err != nil {
		t.Fatalf("the probe failed fast: %v", err)
	}
	c.record("inv", "", get, critical, nil) // the probe was served, at level 3
	if err := c.check("inv", get, nil); err != nil {
		t.Fatalf("failed fast after a non-core call was served: %v", err)
	}
	c.record("inv", "", ping, critical, nil) // a core call's answer cannot say it sheds again
	if err := c.check("inv", get, nil); err != nil {
		t.Fatalf("failed fast after a core answer: %v", err)
	}
	c.record("inv", "", get, shed, nil) // a shed call's answer can
	if c.check("inv", get, nil) == nil {
		t.Fatal("a shed call's answer after it opened no window")
	}
	if p, ok := c.PeerPressure("inv"); !ok || p.Level != LevelCritical {
		t.Errorf("PeerPressure = %v, %v; want what the callee said, level 3", p, ok)
	}
}
