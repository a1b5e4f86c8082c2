package gateway

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// Routing is grpc-go's own machinery with one custom piece: the picker.
//
//   - One ClientConn over every upstream (a manual resolver with the static
//     list); grpc-go's base balancer keeps one subchannel per upstream,
//     reconnects it when it drops and hands the picker only READY ones.
//   - healthCheckConfig in the service config: a subchannel is READY only
//     while the upstream's grpc.health.v1 says SERVING (grpc-go's health
//     producer; an upstream without the health service counts as serving,
//     as in grpc-go).
//   - The picker (below) spreads calls by the pressure each upstream reports
//     in its trailers, read in the pick's Done callback, as grpc-go's
//     weightedroundrobin reads ORCA reports: per-endpoint state that outlives
//     pickers, weights that expire (a report older than the peer TTL counts
//     as none), a schedule rebuilt at most every 100 ms or at once when a
//     level changes.
//   - Failover is grpc-go's transparent retry: a call whose stream never
//     reached an upstream (refused stream, connection gone before the
//     headers were written, GOAWAY) is picked again; a call whose headers
//     were written is never retried (Envoy's retry_on: reset,
//     connect-failure, refused-stream, without retrying what reached the
//     upstream). No retry policy is configured: a proxy does not retry for
//     its clients.

// balancerName is the load-balancing policy's name in the service config.
const balancerName = "memcontract_pressure"

// Weights of a report's level (times 1.05 - usage, at least 0.05): level 2
// gets about 1 call in 40 next to a calm upstream, enough to see it recover.
// Level 3 gets no call while another upstream can take it (its recovery is
// seen by the gateway's own probes, see probe.go); when every upstream is
// at level 3 they share non-core calls once their pushback windows end, as
// the library's client lets calls through after the window (see record for
// which answers open a window and which end it).
var levelWeight = [4]float64{1.0, 0.6, 0.15, 0}

const (
	// reweighEvery bounds how often weights follow usage (levels: at once).
	reweighEvery = 100 * time.Millisecond
	// scheduleLen is the number of slots of a schedule (weight resolution).
	scheduleLen = 100
	// peerTTL is how long a report counts without a new one (the library's
	// DefaultPeerTTL).
	peerTTL = 5 * time.Second
	// An upstream with stallCalls calls or more waiting for their headers
	// gets no new call while another can take it with stallRatio times
	// fewer per unit of weight (counting one more there): an upstream that
	// hangs with its connection up (a stopped process, a stuck event loop)
	// stays READY, and without this every caller ends up waiting on it. Per
	// unit of weight, so that an upstream taking most calls by its pressure
	// is not taken for a hung one; a call waits from its pick to its
	// headers.
	stallCalls = 4
	stallRatio = 4
)

// table is the gateway's state about its upstreams; it outlives pickers and
// subchannels.
type table struct {
	upstreams map[string]*upstream
	order     []*upstream // configured order
	// core reports whether a method is never shed.
	core func(method string) bool
	// defaultPushback is the window of a shed answer whose
	// grpc-retry-pushback-ms is not a number, or of a core call's level-3
	// answer from an upstream not heard from before; maxPushback caps any
	// window (the gateway's contract's retry_pushback_ms and
	// max_fail_fast_ms).
	defaultPushback, maxPushback time.Duration
	exposeAddresses              bool
	// stripMemoryKeys: the gateway reports its own pressure, so an edge
	// shed's trailers carry only the pushback.
	stripMemoryKeys bool

	// now is the clock (unix nanoseconds; tests step one).
	now func() int64

	// generation changes when a level changes: pickers rebuild at once.
	generation atomic.Uint64
	edgeSheds  atomic.Int64
	events     *eventLog
	// onReady is told how many upstreams are READY after every change.
	onReady func(ready int)

	mu    sync.Mutex
	ready map[string]bool
}

func newTable(addrs []string, events *eventLog) *table {
	t := &table{upstreams: map[string]*upstream{}, events: events, core: func(string) bool { return false },
		defaultPushback: time.Second, maxPushback: 30 * time.Second, ready: map[string]bool{}, onReady: func(int) {},
		now: func() int64 { return time.Now().UnixNano() }}
	for _, a := range addrs {
		if _, dup := t.upstreams[a]; dup {
			continue
		}
		u := newUpstream(a, t)
		t.upstreams[a] = u
		t.order = append(t.order, u)
	}
	return t
}

// upstream is one upstream server's state.
type upstream struct {
	addr    string
	t       *table
	calls   atomic.Int64
	waiting atomic.Int64 // calls picked for it whose headers have not come (see awaited)
	seen    atomic.Pointer[seen]
	seenAt  atomic.Int64 // unix nanoseconds of the last report
	askedAt atomic.Int64 // unix nanoseconds a call last read the trailers
	// doneCore and doneNonCore are the pick's Done callbacks for a core and
	// a non-core call (made once: a pick allocates nothing).
	doneCore, doneNonCore func(balancer.DoneInfo)
}

func newUpstream(addr string, t *table) *upstream {
	u := &upstream{addr: addr, t: t}
	u.doneCore = func(di balancer.DoneInfo) { u.done(di, true) }
	u.doneNonCore = func(di balancer.DoneInfo) { u.done(di, false) }
	return u
}

// doneFor is the Done callback of a call, core or not.
func (u *upstream) doneFor(core bool) func(balancer.DoneInfo) {
	if core {
		return u.doneCore
	}
	return u.doneNonCore
}

// seen is the last report of an upstream, as the picker uses it.
type seen struct {
	memo     string
	pressure Pressure
	weight   float64
	// blockedUntil (unix nanoseconds): while it lasts, a level-3 upstream
	// gets no non-core call. Only an answer saying the upstream sheds opens
	// or keeps it (see record).
	blockedUntil int64
}

func weightOf(p Pressure) float64 {
	level := max(0, min(int(p.Level), 3))
	return levelWeight[level] * max(0.05, 1.05-p.UsageRatio)
}

// done reads the pressure of a finished call's upstream (the pick's Done
// callback; core: the call was of a core method). Upstreams resend the same
// keys until they sample again: then only the time of the report is renewed.
func (u *upstream) done(di balancer.DoneInfo, core bool) {
	memo := memoKey(di.Trailer)
	now := u.t.now()
	if memo != "" {
		if s := u.seen.Load(); s != nil && s.memo == memo && s.pressure.Level < levelCritical {
			u.seenAt.Store(now)
			return
		}
	}
	r, ok := readReport(di.Trailer, di.Err)
	if !ok {
		return
	}
	u.record(r, memo, now, core)
}

// record stores an answer's report, with the window it leaves, as the
// library's client decides it (go/memcontract, (*Client).record):
//
//   - an answer says the upstream sheds when it carries level 3 and the call
//     was shed: a grpc-retry-pushback-ms came with it (in the trailers, its
//     value a number or not, or as RetryInfo in the status details of a
//     call shed in the upstream's transport). It opens a window of its
//     pushback (else defaultPushback), cut to maxPushback, and does not
//     shorten one already open;
//   - a non-core call answered at level 3 without a pushback was served (the
//     upstream sheds half-open, admitting a share again, or runs dry): it
//     ends the window, as a calm answer does, while the report still says
//     level 3 (weights, probes). Were it to renew the window, a half-open
//     upstream would get one non-core call per window from the gateway once
//     every upstream is at level 3, however many it admits;
//   - a core call is never shed, so its answer at level 3 cannot tell: it
//     opens a window only for an upstream not heard from before, and else
//     leaves the window of the upstream's last shed or served answer as it
//     was (the gateway's health probes are such calls).
func (u *upstream) record(r report, memo string, now int64, core bool) {
	s := &seen{memo: memo, pressure: r.pressure, weight: weightOf(r.pressure)}
	var old *seen
	for {
		old = u.seen.Load()
		s.blockedUntil = u.window(r, old, now, core)
		if u.seen.CompareAndSwap(old, s) {
			break
		}
	}
	u.seenAt.Store(now)
	if old == nil || old.pressure.Level != s.pressure.Level {
		u.t.generation.Add(1)
		u.t.events.emit(map[string]any{
			"event": "level", "upstream": u.addr, "level": int(s.pressure.Level),
			"usage": formatUsage(s.pressure), "module": s.pressure.Module,
		})
	}
}

// window is the end of the window an answer leaves (unix nanoseconds; 0:
// none), prev the upstream's report before it (nil: none yet). See record.
func (u *upstream) window(r report, prev *seen, now int64, core bool) int64 {
	switch {
	case r.pressure.Level < levelCritical, !r.shed && !core:
		return 0 // calm, or served at level 3
	case !r.shed && prev != nil:
		return prev.blockedUntil // a core call's answer: the last word stands
	}
	window := u.t.defaultPushback
	if r.hasPushback {
		window = r.pushback
	}
	end := now + int64(min(window, u.t.maxPushback))
	if prev != nil {
		end = max(end, prev.blockedUntil) // a window is not shortened
	}
	return end
}

// current is the upstream's last report if it has not expired.
func (u *upstream) current(now int64) *seen {
	s := u.seen.Load()
	if s == nil || now-u.seenAt.Load() > int64(peerTTL) {
		return nil
	}
	return s
}

// blocked reports whether non-core calls must not go to u now.
func (u *upstream) blocked(now int64) bool {
	s := u.current(now)
	return s != nil && s.pressure.Level >= levelCritical && now < s.blockedUntil
}

// shedError is the status of a call refused at the gateway because every
// upstream that could take it is at level 3; it carries the trailers the
// client gets (the upstream's keys and the pushback left).
type shedError struct {
	st      *status.Status
	trailer metadata.MD
}

func (e *shedError) Error() string              { return e.st.Err().Error() }
func (e *shedError) GRPCStatus() *status.Status { return e.st }

func (u *upstream) shed(now int64) error {
	u.t.edgeSheds.Add(1)
	s := u.current(now)
	msg := "memcontract gateway: upstream reports memory level 3; call not forwarded"
	if u.t.exposeAddresses {
		msg = fmt.Sprintf("memcontract gateway: upstream %s reports memory level 3; call not forwarded", u.addr)
	}
	left := int64(1)
	trailer := metadata.MD{}
	if s != nil {
		left = max(1, (s.blockedUntil-now+int64(time.Millisecond)/2)/int64(time.Millisecond))
		if !u.t.stripMemoryKeys {
			kv := pressureKeys(s.pressure)
			for i := 0; i+1 < len(kv); i += 2 {
				trailer.Append(kv[i], kv[i+1])
			}
		}
	}
	trailer.Set(retryPushbackKey, fmt.Sprint(left))
	return &shedError{st: status.New(codes.ResourceExhausted, msg), trailer: trailer}
}

// --- the balancer ------------------------------------------------------------------------------

// tables maps a ClientConn's target endpoint to its table: the policy is
// registered once per process, its instances find their gateway here.
var tables sync.Map

var registerOnce sync.Once

func registerBalancer() {
	registerOnce.Do(func() { balancer.Register(builder{}) })
}

type builder struct{}

func (builder) Name() string { return balancerName }

func (builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	found, _ := tables.Load(opts.Target.Endpoint())
	t, _ := found.(*table)
	if t == nil { // not a gateway's channel: route evenly, log nothing
		t = newTable(nil, nil)
	}
	inner := base.NewBalancerBuilder(balancerName, pickerBuilder{t: t}, base.Config{HealthCheck: true})
	return inner.Build(&watchedConn{ClientConn: cc, t: t}, opts)
}

// watchedConn logs the state changes of an upstream's subchannel (with
// health checking on, READY means connected and SERVING). Once an upstream
// has failed, its reconnect attempts (IDLE, CONNECTING, TRANSIENT_FAILURE
// again, every half second at most) are not logged: the next line about it
// says READY.
type watchedConn struct {
	balancer.ClientConn
	t *table
}

func (c *watchedConn) NewSubConn(addrs []resolver.Address, opts balancer.NewSubConnOptions) (balancer.SubConn, error) {
	listener := opts.StateListener
	addr := ""
	if len(addrs) > 0 {
		addr = addrs[0].Addr
	}
	var last connectivity.State = -1
	failed := false // TRANSIENT_FAILURE logged, READY not since
	opts.StateListener = func(s balancer.SubConnState) {
		if s.ConnectivityState != last {
			last = s.ConnectivityState
			if !failed || last == connectivity.Ready || last == connectivity.Shutdown {
				line := map[string]any{"event": "upstream", "upstream": addr, "state": last.String()}
				if s.ConnectionError != nil {
					line["error"] = s.ConnectionError.Error()
				}
				c.t.events.emit(line)
			}
			failed = last == connectivity.TransientFailure || (failed && last != connectivity.Ready)
			c.t.setReady(addr, last == connectivity.Ready)
		}
		listener(s)
	}
	return c.ClientConn.NewSubConn(addrs, opts)
}

type pickerBuilder struct{ t *table }

// Build is called with the READY subchannels after every change.
func (b pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	p := &picker{t: b.t}
	for sc, sci := range info.ReadySCs {
		u := b.t.upstreams[sci.Address.Addr]
		if u == nil {
			u = newUpstream(sci.Address.Addr, b.t)
		}
		p.ends = append(p.ends, endpoint{up: u, sc: sc})
	}
	sort.Slice(p.ends, func(i, j int) bool { return p.ends[i].up.addr < p.ends[j].up.addr })
	if len(p.ends) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	return p
}

type endpoint struct {
	up *upstream
	sc balancer.SubConn
}

// picker spreads calls over the READY upstreams by weight (a schedule of
// slots rebuilt as reports change, read with one atomic add per pick) and
// keeps non-core calls off a level-3 upstream while another can take them.
type picker struct {
	t     *table
	ends  []endpoint
	sched atomic.Pointer[schedule]
	next  atomic.Uint64
}

type schedule struct {
	slots      []uint8
	generation uint64
	builtAt    int64
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	if info.FullMethodName == probeMethod {
		return p.pinned(info)
	}
	i := 0
	if len(p.ends) > 1 {
		i = p.choose()
	}
	e := &p.ends[i]
	matched, core := false, false
	if s := e.up.seen.Load(); s != nil && s.pressure.Level >= levelCritical {
		now := p.t.now()
		if e.up.blocked(now) {
			matched, core = true, p.t.core(info.FullMethodName)
			if !core {
				j, ok := p.another(i, now)
				if !ok {
					return balancer.PickResult{}, e.up.shed(now)
				}
				i, e = j, &p.ends[j]
			}
		}
	}
	if e.up.waiting.Load() >= stallCalls && len(p.ends) > 1 {
		if j, ok := p.lessWaiting(i, p.t.now()); ok {
			e = &p.ends[j]
		}
	}
	if info.Ctx != nil {
		if w, _ := info.Ctx.Value(awaitedKey{}).(*awaited); w != nil {
			w.picked(e.up)
		}
	}
	e.up.calls.Add(1)
	if !e.up.wantsReport(p.t.now()) {
		return balancer.PickResult{SubConn: e.sc}, nil
	}
	// Whether the call was core changes what its answer does only for an
	// upstream at level 3 or not heard from yet (see window: below level 3 a
	// report holds no window), so the method is matched only then, not on
	// every call to an upstream at level 2.
	if s := e.up.seen.Load(); !matched && (s == nil || s.pressure.Level >= levelCritical) {
		core = p.t.core(info.FullMethodName)
	}
	return balancer.PickResult{SubConn: e.sc, Done: e.up.doneFor(core)}, nil
}

// reportEvery is how often an upstream's trailers are read while it is calm:
// with a Done callback grpc-go also parses the call's ORCA report, a cost
// worth paying on every call only while the level is high or unknown.
const reportEvery = 10 * time.Millisecond

// wantsReport reports whether this call's trailers are to be read: always
// at level 2 or more, or without a fresh report; else at most every
// reportEvery (a sample changes every sample_interval_ms, 100 ms or more).
func (u *upstream) wantsReport(now int64) bool {
	s := u.seen.Load()
	if s == nil || s.pressure.Level >= 2 {
		return true
	}
	last := u.askedAt.Load()
	return now-last >= int64(reportEvery) && u.askedAt.CompareAndSwap(last, now)
}

// pinned picks the upstream a probe names (the gateway's own health check of
// one upstream); none when it is not READY.
func (p *picker) pinned(info balancer.PickInfo) (balancer.PickResult, error) {
	addr := ""
	if info.Ctx != nil {
		addr, _ = info.Ctx.Value(probeKey{}).(string)
	}
	for i := range p.ends {
		if e := &p.ends[i]; addr == "" || e.up.addr == addr {
			return balancer.PickResult{SubConn: e.sc, Done: e.up.doneCore}, nil // health: core
		}
	}
	return balancer.PickResult{}, status.Error(codes.Unavailable, "upstream not ready")
}

// choose returns the next slot's endpoint, rebuilding the schedule when a
// level changed or (checked every 64 picks) it is older than reweighEvery.
func (p *picker) choose() int {
	n := p.next.Add(1)
	s := p.sched.Load()
	if s == nil || s.generation != p.t.generation.Load() ||
		(n%64 == 0 && p.t.now()-s.builtAt > int64(reweighEvery)) {
		s = p.rebuild()
	}
	return int(s.slots[n%uint64(len(s.slots))])
}

// rebuild makes a schedule by smooth weighted round robin (nginx's), so that
// a light upstream's slots are spread out, not bunched.
func (p *picker) rebuild() *schedule {
	gen := p.t.generation.Load()
	now := p.t.now()
	weights := make([]float64, len(p.ends))
	total := 0.0
	for i, e := range p.ends {
		weights[i] = 1
		if s := e.up.current(now); s != nil {
			weights[i] = s.weight
		}
		total += weights[i]
	}
	if total == 0 { // all at level 3: even, Pick refuses non-core calls in their windows
		for i := range weights {
			weights[i] = 1
		}
		total = float64(len(weights))
	}
	length := scheduleLen
	if allEqual(weights) {
		length = len(weights)
	}
	// Every upstream that may be probed keeps a slot: a weight under one
	// slot's share would otherwise vanish from the schedule.
	slot := total / scheduleLen
	total = 0
	for i, w := range weights {
		if w > 0 {
			weights[i] = max(w, slot)
		}
		total += weights[i]
	}
	s := &schedule{slots: make([]uint8, length), generation: gen, builtAt: now}
	current := make([]float64, len(weights))
	for k := range s.slots {
		best := 0
		for i, w := range weights {
			current[i] += w
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		s.slots[k] = uint8(best)
	}
	p.sched.Store(s)
	return s
}

// lessWaiting returns the upstream to take a call instead of ends[i], which
// looks hung: of those not shedding and with a weight, the one with the
// fewest calls waiting per unit of weight, if ends[i] has stallRatio times
// as many per unit of its own (the waiting count grows with an upstream's
// share of the calls, which its weight sets).
func (p *picker) lessWaiting(i int, now int64) (int, bool) {
	best, least := -1, math.Inf(1)
	for j := range p.ends {
		u := p.ends[j].up
		if w := u.weight(now); j != i && w > 0 && !u.blocked(now) {
			if load := float64(u.waiting.Load()+1) / w; load < least {
				best, least = j, load
			}
		}
	}
	u := p.ends[i].up
	return best, best >= 0 && float64(u.waiting.Load()) >= stallRatio*least*u.weight(now)
}

// weight is the upstream's weight now: its report's, or 1 without one.
func (u *upstream) weight(now int64) float64 {
	if s := u.current(now); s != nil {
		return s.weight
	}
	return 1
}

// awaited is carried in a forwarded call's context: the upstream it was
// picked for, counted as waiting until the call's headers come or it ends.
// A transparent retry picks again: the count moves with it.
type awaited struct{ up atomic.Pointer[upstream] }

type awaitedKey struct{}

func (w *awaited) picked(u *upstream) {
	u.waiting.Add(1)
	if old := w.up.Swap(u); old != nil {
		old.waiting.Add(-1)
	}
}

// answered ends the wait (headers came, or the call ended); idempotent.
func (w *awaited) answered() {
	if u := w.up.Swap(nil); u != nil {
		u.waiting.Add(-1)
	}
}

// another is the unblocked endpoint other than i with the highest weight.
func (p *picker) another(i int, now int64) (int, bool) {
	best, bestWeight := -1, -1.0
	for j, e := range p.ends {
		if j == i || e.up.blocked(now) {
			continue
		}
		if w := e.up.weight(now); w > bestWeight {
			best, bestWeight = j, w
		}
	}
	return best, best >= 0
}

// setReady records whether an upstream is READY and tells onReady how many
// are (the gateway's health follows).
func (t *table) setReady(addr string, ready bool) {
	t.mu.Lock()
	if ready {
		t.ready[addr] = true
	} else {
		delete(t.ready, addr)
	}
	n := len(t.ready)
	t.mu.Unlock()
	t.onReady(n)
}

func allEqual(ws []float64) bool {
	for _, w := range ws {
		if w != ws[0] {
			return false
		}
	}
	return true
}
