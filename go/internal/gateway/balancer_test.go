package gateway

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/memcontract/memcontract/go/memcontract"
)

// fakeSubConn is a subchannel as the picker sees one (only compared).
type fakeSubConn struct {
	balancer.SubConn
	addr string
}

// clock is a stepped clock in unix nanoseconds.
type clock struct{ t int64 }

func (c *clock) now() int64              { return c.t }
func (c *clock) advance(d time.Duration) { c.t += int64(d) }

func newTestTable(addrs ...string) (*table, *clock) {
	t := newTable(addrs, nil)
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	t.now = c.now
	t.defaultPushback, t.maxPushback = 800*time.Millisecond, 30*time.Second
	t.core = coreMatcher([]string{"/svc.S/Ping"})
	return t, c
}

func pickerOf(t *table) balancer.Picker {
	ready := map[balancer.SubConn]base.SubConnInfo{}
	for _, u := range t.order {
		ready[&fakeSubConn{addr: u.addr}] = base.SubConnInfo{Address: resolver.Address{Addr: u.addr}}
	}
	return pickerBuilder{t: t}.Build(base.PickerBuildInfo{ReadySCs: ready})
}

// reportTrailer is the trailer of an upstream reporting usage at level,
// with a pushback when pushbackMs >= 0.
func reportTrailer(usage float64, level memcontract.Level, pushbackMs int) metadata.MD {
	p := memcontract.Pressure{UsageRatio: usage, Level: level, CapacityBytes: 1 << 30, Module: "m",
		SampledAt: time.Unix(int64(usage*1000), 0)}
	md := metadata.Pairs(encodePairs(p)...)
	if pushbackMs >= 0 {
		md.Set(retryPushbackKey, strconv.Itoa(pushbackMs))
	}
	return md
}

// sendReport is the answer of a non-core call.
func sendReport(t *table, addr string, md metadata.MD) {
	t.upstreams[addr].done(balancer.DoneInfo{Trailer: md}, false)
}

func spread(t *testing.T, p balancer.Picker, method string, calls int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range calls {
		r, err := p.Pick(balancer.PickInfo{FullMethodName: method})
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		seen[r.SubConn.(*fakeSubConn).addr]++
	}
	return seen
}

func TestUnknownUpstreamsShareEvenly(t *testing.T) {
	tab, _ := newTestTable("a:1", "b:1", "c:1")
	got := spread(t, pickerOf(tab), "/svc.S/Get", 300)
	for _, addr := range []string{"a:1", "b:1", "c:1"} {
		if got[addr] != 100 {
			t.Errorf("calls = %v, want 100 each", got)
		}
	}
}

func TestPressureWeighsUpstreams(t *testing.T) {
	for _, tc := range []struct {
		name            string
		hotUsage        float64
		hotLevel        memcontract.Level
		minCalm, maxHot int
	}{
		{"level 2 gets a trickle", 0.92, memcontract.LevelDegraded, 950, 50},
		{"level 1 gets less", 0.75, memcontract.LevelAlert, 700, 300},
		{"same level: lower usage wins", 0.60, memcontract.LevelNormal, 550, 450},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, _ := newTestTable("calm:1", "hot:1")
			sendReport(tab, "calm:1", reportTrailer(0.30, memcontract.LevelNormal, -1))
			sendReport(tab, "hot:1", reportTrailer(tc.hotUsage, tc.hotLevel, -1))
			got := spread(t, pickerOf(tab), "/svc.S/Get", 1000)
			if got["calm:1"] < tc.minCalm || got["hot:1"] > tc.maxHot || got["hot:1"] < 1 {
				t.Errorf("calls = %v, want calm >= %d, 1 <= hot <= %d", got, tc.minCalm, tc.maxHot)
			}
		})
	}
}

// Calls waiting in proportion to the weights (an upstream's share of the
// calls in flight follows its share of the picks) leave the spread as the
// weights make it: only a count far above an upstream's share looks hung.
func TestCallsInFlightDoNotOverrideTheWeights(t *testing.T) {
	for _, inFlight := range []int{4, 16, 64} {
		tab, _ := newTestTable("calm:1", "hot:1")
		sendReport(tab, "calm:1", reportTrailer(0.30, memcontract.LevelNormal, -1))
		sendReport(tab, "hot:1", reportTrailer(0.92, memcontract.LevelDegraded, -1))
		p := pickerOf(tab)
		var waiting []*awaited
		got := map[string]int{}
		for range 2000 {
			w := &awaited{}
			r, err := p.Pick(balancer.PickInfo{FullMethodName: "/svc.S/Get", Ctx: context.WithValue(context.Background(), awaitedKey{}, w)})
			if err != nil {
				t.Fatal(err)
			}
			got[r.SubConn.(*fakeSubConn).addr]++
			if waiting = append(waiting, w); len(waiting) > inFlight {
				waiting[0].answered() // the oldest call gets its headers
				waiting = waiting[1:]
			}
		}
		if got["hot:1"] > 100 {
			t.Errorf("%d in flight: calls = %v, want about 1 in 40 to the level-2 upstream, as without calls in flight", inFlight, got)
		}
	}
}

func TestLevel3UpstreamGetsNoNonCoreCallWhileAnotherCan(t *testing.T) {
	tab, clk := newTestTable("calm:1", "hot:1")
	p := pickerOf(tab)
	spread(t, p, "/svc.S/Get", 10) // before any report: both get calls
	sendReport(tab, "hot:1", reportTrailer(0.97, memcontract.LevelCritical, 500))
	if got := spread(t, p, "/svc.S/Get", 400); got["hot:1"] != 0 {
		t.Errorf("inside the window: calls = %v, want none to hot", got)
	}
	clk.advance(600 * time.Millisecond) // the window is over, the report is not
	if got := spread(t, p, "/svc.S/Get", 1000); got["hot:1"] != 0 {
		t.Errorf("after the window: calls = %v, want none to hot while calm can take them", got)
	}
	clk.advance(peerTTL) // no news from hot (no probe answered): it counts as unknown
	if got := spread(t, p, "/svc.S/Get", 1000); got["hot:1"] < 400 {
		t.Errorf("after the TTL: calls = %v, want hot back in the spread", got)
	}
	sendReport(tab, "hot:1", reportTrailer(0.50, memcontract.LevelNormal, -1)) // a probe saw it recover
	if got := spread(t, p, "/svc.S/Get", 1000); got["hot:1"] < 300 {
		t.Errorf("recovered: calls = %v, want hot back in the spread", got)
	}
	if tab.edgeSheds.Load() != 0 {
		t.Errorf("edge sheds = %d, want 0 while another upstream takes the calls", tab.edgeSheds.Load())
	}
}

func TestOnlyLevel3UpstreamsShedNonCoreCalls(t *testing.T) {
	tab, _ := newTestTable("hot:1")
	p := pickerOf(tab)
	sendReport(tab, "hot:1", reportTrailer(0.97, memcontract.LevelCritical, 60_000))
	_, err := p.Pick(balancer.PickInfo{FullMethodName: "/svc.S/Get"})
	var shed *shedError
	if !errors.As(err, &shed) || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Pick = %v, want a shed with RESOURCE_EXHAUSTED", err)
	}
	// The pushback is capped by max_fail_fast_ms (30 s here).
	if got := shed.trailer.Get(retryPushbackKey); len(got) != 1 || got[0] != "30000" {
		t.Errorf("pushback = %v, want [30000]", got)
	}
	if got := shed.trailer.Get(levelKey); len(got) != 1 || got[0] != "3" {
		t.Errorf("level = %v, want [3]", got)
	}
	if _, err := p.Pick(balancer.PickInfo{FullMethodName: "/svc.S/Ping"}); err != nil {
		t.Errorf("core call: %v, want picked", err)
	}
	if _, err := p.Pick(balancer.PickInfo{FullMethodName: "/grpc.health.v1.Health/Check"}); err != nil {
		t.Errorf("health: %v, want picked", err)
	}
}

func TestAllAtLevel3ShareCallsOnceTheirWindowsEnd(t *testing.T) {
	tab, clk := newTestTable("a:1", "b:1")
	p := pickerOf(tab)
	sendReport(tab, "a:1", reportTrailer(0.97, memcontract.LevelCritical, 500))
	sendReport(tab, "b:1", reportTrailer(0.98, memcontract.LevelCritical, 1000))
	if _, err := p.Pick(balancer.PickInfo{FullMethodName: "/svc.S/Get"}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("both in their windows: %v, want RESOURCE_EXHAUSTED", err)
	}
	clk.advance(600 * time.Millisecond) // a's window is over, b's is not
	if got := spread(t, p, "/svc.S/Get", 10); got["a:1"] != 10 {
		t.Errorf("calls = %v, want all to a (the library's client lets calls through after the window)", got)
	}
}

func TestOnlyAnswersSayingTheUpstreamShedsKeepItsWindow(t *testing.T) {
	tab, clk := newTestTable("hot:1")
	p := pickerOf(tab)
	hot := tab.upstreams["hot:1"]
	pick := func(method string) func(balancer.DoneInfo) {
		t.Helper()
		r, err := p.Pick(balancer.PickInfo{FullMethodName: method})
		if err != nil || r.Done == nil {
			t.Fatalf("Pick(%s) = %v, %v; want picked, its trailers read", method, r, err)
		}
		return r.Done
	}
	served := reportTrailer(0.97, memcontract.LevelCritical, -1) // level 3, no pushback
	first, second := pick("/svc.S/Get"), pick("/svc.S/Get")      // two non-core calls in flight
	first(balancer.DoneInfo{Trailer: reportTrailer(0.97, memcontract.LevelCritical, 500)})
	if !hot.blocked(clk.now()) {
		t.Fatal("a shed answer (level 3 and a pushback) opened no window")
	}
	clk.advance(100 * time.Millisecond)
	pick("/svc.S/Ping")(balancer.DoneInfo{Trailer: served}) // a core call's answer cannot tell
	if !hot.blocked(clk.now()) {
		t.Fatal("a core call's level-3 answer after a shed one ended the window")
	}
	if s := hot.seen.Load(); s.blockedUntil != clk.now()+int64(400*time.Millisecond) {
		t.Errorf("the window ends in %v, want 400ms (a core call's answer neither renews nor shortens it)",
			time.Duration(s.blockedUntil-clk.now()))
	}
	second(balancer.DoneInfo{Trailer: served}) // a non-core call served at level 3: half-open
	if hot.blocked(clk.now()) {
		t.Fatal("a non-core call served at level 3 did not end the window")
	}
	if s := hot.current(clk.now()); s == nil || s.pressure.Level != memcontract.LevelCritical {
		t.Errorf("report %+v, want level 3 still", s)
	}
	pick("/svc.S/Get")(balancer.DoneInfo{Trailer: served}) // served again: no window
	pick("/svc.S/Ping")(balancer.DoneInfo{Trailer: served})
	if hot.blocked(clk.now()) {
		t.Fatal("a core call's level-3 answer after a served one opened a window")
	}

	// A pushback that is not a number still says the call was shed: the
	// default window (800 ms here).
	shedNaN := reportTrailer(0.97, memcontract.LevelCritical, -1)
	shedNaN.Set(retryPushbackKey, "soon")
	sendReport(tab, "hot:1", shedNaN)
	clk.advance(700 * time.Millisecond)
	if !hot.blocked(clk.now()) {
		t.Fatal("a shed answer with a pushback that is not a number opened no default window")
	}
	clk.advance(200 * time.Millisecond)
	if hot.blocked(clk.now()) {
		t.Fatal("the default window outlasted 800 ms")
	}

	// In the status details (a Go upstream's early shed): shed only with a RetryInfo.
	critical := memcontract.Pressure{UsageRatio: 0.99, Level: memcontract.LevelCritical}
	detailed, err := status.New(codes.ResourceExhausted, "shed").WithDetails(critical.Proto())
	if err != nil {
		t.Fatal(err)
	}
	withRetry, err := detailed.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	hot.done(balancer.DoneInfo{Err: withRetry.Err()}, false)
	if !hot.blocked(clk.now()) || hot.seen.Load().blockedUntil != clk.now()+int64(2*time.Second) {
		t.Fatal("status details with a RetryInfo opened no window of its delay")
	}
	clk.advance(3 * time.Second)
	hot.done(balancer.DoneInfo{Err: detailed.Err()}, false)
	if hot.blocked(clk.now()) || hot.seen.Load().blockedUntil != 0 {
		t.Fatal("status details without a RetryInfo opened a window")
	}

	// An upstream not heard from before: a core call's level-3 answer
	// stands (the default window).
	fresh, freshClk := newTestTable("new:1")
	r, err := pickerOf(fresh).Pick(balancer.PickInfo{FullMethodName: "/svc.S/Ping"})
	if err != nil || r.Done == nil {
		t.Fatalf("Pick = %v, %v", r, err)
	}
	r.Done(balancer.DoneInfo{Trailer: served})
	if !fresh.upstreams["new:1"].blocked(freshClk.now()) {
		t.Fatal("a core call's level-3 answer from an upstream never heard from opened no window")
	}
	freshClk.advance(900 * time.Millisecond)
	if fresh.upstreams["new:1"].blocked(freshClk.now()) {
		t.Fatal("that window outlasted the default 800 ms")
	}
	// The gateway's health probes are core calls too.
	probed, probedClk := newTestTable("new:1")
	ctx := context.WithValue(context.Background(), probeKey{}, "new:1")
	if r, err = pickerOf(probed).Pick(balancer.PickInfo{FullMethodName: probeMethod, Ctx: ctx}); err != nil {
		t.Fatal(err)
	}
	sendReport(probed, "new:1", reportTrailer(0.97, memcontract.LevelCritical, 500))
	r.Done(balancer.DoneInfo{Trailer: served})
	if !probed.upstreams["new:1"].blocked(probedClk.now()) {
		t.Fatal("a probe's level-3 answer ended the window")
	}
}

func TestProbesArePinnedToTheirUpstream(t *testing.T) {
	tab, _ := newTestTable("a:1", "b:1")
	p := pickerOf(tab)
	ctx := context.WithValue(context.Background(), probeKey{}, "b:1")
	for range 5 {
		r, err := p.Pick(balancer.PickInfo{FullMethodName: probeMethod, Ctx: ctx})
		if err != nil || r.SubConn.(*fakeSubConn).addr != "b:1" {
			t.Fatalf("probe picked %v, %v; want b:1", r.SubConn, err)
		}
	}
}

func TestReportsExpire(t *testing.T) {
	tab, clk := newTestTable("hot:1")
	p := pickerOf(tab)
	sendReport(tab, "hot:1", reportTrailer(0.97, memcontract.LevelCritical, 60_000))
	clk.advance(peerTTL + time.Second)
	if _, err := p.Pick(balancer.PickInfo{FullMethodName: "/svc.S/Get"}); err != nil {
		t.Errorf("after the TTL: %v, want picked", err)
	}
}

func TestReportsFromTextKeysAndStatusDetails(t *testing.T) {
	tab, _ := newTestTable("py:1", "go:1")
	// A Python peer: text keys only, in a trailers-only response.
	sendReport(tab, "py:1", metadata.Pairs(usageKey, "91.5%", levelKey, "2"))
	if s := tab.upstreams["py:1"].seen.Load(); s == nil || s.pressure.Level != 2 || s.pressure.UsageRatio != 0.915 {
		t.Errorf("text keys read as %+v", s)
	}
	// A Go peer that shed in its transport (WithEarlyShed): status details.
	p := memcontract.Pressure{UsageRatio: 0.99, Level: memcontract.LevelCritical}
	st, err := status.New(codes.ResourceExhausted, "shed").WithDetails(p.Proto())
	if err != nil {
		t.Fatal(err)
	}
	tab.upstreams["go:1"].done(balancer.DoneInfo{Err: st.Err()}, false)
	if s := tab.upstreams["go:1"].seen.Load(); s == nil || s.pressure.Level != memcontract.LevelCritical {
		t.Errorf("status details read as %+v", s)
	}
}

func TestSameReportIsNotDecodedTwice(t *testing.T) {
	tab, clk := newTestTable("a:1")
	md := reportTrailer(0.5, memcontract.LevelNormal, -1)
	sendReport(tab, "a:1", md)
	first := tab.upstreams["a:1"].seen.Load()
	clk.advance(time.Second)
	sendReport(tab, "a:1", md)
	if tab.upstreams["a:1"].seen.Load() != first {
		t.Error("the same report was decoded again")
	}
	if got := tab.upstreams["a:1"].seenAt.Load(); got != clk.now() {
		t.Errorf("report time not renewed: %d, want %d", got, clk.now())
	}
}

func TestNoReadyUpstreamMeansNoSubConnAvailable(t *testing.T) {
	tab, _ := newTestTable("a:1")
	p := pickerBuilder{t: tab}.Build(base.PickerBuildInfo{ReadySCs: map[balancer.SubConn]base.SubConnInfo{}})
	if _, err := p.Pick(balancer.PickInfo{FullMethodName: "/svc.S/Get"}); !errors.Is(err, balancer.ErrNoSubConnAvailable) {
		t.Errorf("Pick = %v, want ErrNoSubConnAvailable", err)
	}
}
