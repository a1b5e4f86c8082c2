package memcontract

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
)

// Defaults of the client's per-target table.
const (
	DefaultPeerTTL  = 5 * time.Second
	DefaultMaxPeers = 1024
	// DefaultMaxFailFast caps a callee's pushback: a target cannot make its
	// callers fail fast for longer than this (Python's max_fail_fast_ms).
	DefaultMaxFailFast = 30 * time.Second
)

// Client holds the client side of the protocol: its interceptors add the
// process's keys to outgoing calls and record what each target's backends
// answer in a bounded table. Every finished call is an answer; one without
// keys is a calm one (a calm server sends its keys only when they change).
// A target fails non-core calls fast (WithFastFail) only while every answer
// in the last window carried level 3, from two backends or more, or from the
// only one ever heard from; one probe per window still goes out. A backend
// is named by its address (grpc.Peer) or the instance id in its -bin value.
type Client struct {
	source   Source
	ttl      time.Duration
	maxPeers int
	now      func() time.Time

	fastFail    *coreMatcher
	pushback    time.Duration
	maxFailFast time.Duration

	mu    sync.Mutex
	peers map[string]*callee

	quiet quietRule // calm is free: when this process's keys travel once per change
	told  teller    // per target

	fastFailed atomic.Int64
	invalid    atomic.Int64
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithPeerTTL sets how long a target's reported pressure is kept
// (DefaultPeerTTL by default).
func WithPeerTTL(d time.Duration) ClientOption {
	return func(c *Client) { c.ttl = d }
}

// WithMaxPeers bounds the per-target table (DefaultMaxPeers by default).
func WithMaxPeers(n int) ClientOption {
	return func(c *Client) { c.maxPeers = n }
}

// WithFastFail makes non-core calls to a target that reports level 3 fail
// locally with codes.ResourceExhausted, without sending a request, for the
// target's grpc-retry-pushback-ms (or pushback when it sent none). coreGlobs
// are the full-method globs that are never failed fast.
func WithFastFail(coreGlobs []string, pushback time.Duration) ClientOption {
	return func(c *Client) {
		c.fastFail = newCoreMatcher(coreGlobs)
		c.pushback = pushback
	}
}

// WithMaxFailFast caps the fail-fast window a callee's pushback opens
// (DefaultMaxFailFast by default).
func WithMaxFailFast(d time.Duration) ClientOption {
	return func(c *Client) { c.maxFailFast = d }
}

// WithContractFastFail is WithFastFail and WithMaxFailFast from a module
// contract: its core_methods are never failed fast, its retry_pushback_ms is
// the window when a callee sends no pushback, and its max_fail_fast_ms caps
// any window (0: never fail fast), as the Python client reads them.
func WithContractFastFail(m *memcontractv1.ModuleContract) ClientOption {
	return func(c *Client) {
		WithFastFail(m.GetCoreMethods(), time.Duration(m.GetRetryPushbackMs())*time.Millisecond)(c)
		WithMaxFailFast(time.Duration(m.GetMaxFailFastMs()) * time.Millisecond)(c)
		c.quiet = quietRuleOf(m)
	}
}

// NewClient returns a Client sending the pressure of src.
func NewClient(src Source, opts ...ClientOption) *Client {
	c := &Client{
		source:      src,
		ttl:         DefaultPeerTTL,
		maxPeers:    DefaultMaxPeers,
		now:         time.Now,
		maxFailFast: DefaultMaxFailFast,
		peers:       make(map[string]*callee),
		quiet:       quietRuleOf(nil),
	}
	for _, o := range opts {
		o(c)
	}
	c.told.max = c.maxPeers
	return c
}

// DialOptions returns the options that install the client interceptors.
func (c *Client) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(c.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamClientInterceptor()),
	}
}

// PeerPressure returns the last pressure target reported, if it has not
// expired. target is the ClientConn's target string.
func (c *Client) PeerPressure(target string) (Pressure, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.peers[target]
	if !ok || e.reportedAt.IsZero() || c.now().Sub(e.reportedAt) > c.ttl {
		return Pressure{}, false
	}
	return e.pressure, true
}

// FastFailCount returns the number of calls failed fast so far.
func (c *Client) FastFailCount() int64 { return c.fastFailed.Load() }

// InvalidCount returns the number of invalid x-memory-* values received in
// trailers.
func (c *Client) InvalidCount() int64 { return c.invalid.Load() }

// outgoing returns ctx with the process's keys in its outgoing metadata
// (every call at level 1 and up; quiet, once per change per target),
// replacing any x-memory-* keys already there.
func (c *Client) outgoing(ctx context.Context, target string) context.Context {
	p := c.source.Pressure()
	p.Instance = processInstance
	tell := c.told.tells(target, c.quiet.version(p), p.SampledAt, 0, true)
	md, had := metadata.FromOutgoingContext(ctx)
	if !tell && !had {
		return ctx
	}
	md = md.Copy()
	for _, k := range []string{UsageKey, CapacityKey, ContractKey, LevelKey, PressureBinKey} {
		delete(md, k)
	}
	if !tell {
		return metadata.NewOutgoingContext(ctx, md)
	}
	kv := encodePairs(p)
	for i := 0; i < len(kv); i += 2 {
		md.Append(kv[i], kv[i+1])
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// check fails a non-core call fast while its target fails fast: the status
// says how long until the next probe, as grpc-retry-pushback-ms in the
// trailers the caller asked for (grpc.Trailer) and as google.rpc.RetryInfo.
// Once that time has come the call goes out: the probe.
func (c *Client) check(target, method string, opts []grpc.CallOption) error {
	if c.fastFail == nil || c.fastFail.Match(method) {
		return nil
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.peers[target]
	if !ok || e.blockedUntil.IsZero() {
		c.mu.Unlock()
		return nil
	}
	left := e.blockedUntil.Sub(now)
	if left <= 0 {
		e.blockedUntil = now.Add(e.window)
		c.mu.Unlock()
		return nil
	}
	reported := e.pressure
	c.mu.Unlock()
	c.fastFailed.Add(1)
	processCounts.fastFailed[classNonCore].Add(1)
	ms := max(1, (left+time.Millisecond/2)/time.Millisecond)
	for _, o := range opts {
		if t, ok := o.(grpc.TrailerCallOption); ok {
			*t.TrailerAddr = metadata.Pairs(RetryPushbackKey, strconv.FormatInt(int64(ms), 10))
		}
	}
	st := status.Newf(codes.ResourceExhausted,
		"memcontract: target %s (module %q) is at memory level %d: non-core call %s failed fast",
		target, reported.Module, int(reported.Level), method)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(ms * time.Millisecond)}); err == nil {
		st = d
	}
	return st.Err()
}

// record is one answer of target's backend at addr ("" when unknown) to a
// call of method: the pressure it reported in trailer or, for a call shed in
// the backend's transport (WithEarlyShed), in the status details; none is a
// calm answer. An answer says its backend sheds when it carries level 3 and
// the call was shed (a pushback came with it). A non-core call answered at
// level 3 without one was admitted (half-open, dry run): its backend takes
// calls. A core call is never shed, so its answer at level 3 stands only for a
// backend not heard from before.
func (c *Client) record(target, addr, method string, trailer metadata.MD, callErr error) {
	p, ok, invalid := Decode(trailer)
	if invalid > 0 {
		c.invalid.Add(int64(invalid))
	}
	pushback, hasPushback := time.Duration(0), false
	v := trailer.Get(RetryPushbackKey)
	shed := len(v) > 0 // a pushback came: the call was shed (even if its value is not one)
	if len(v) > 0 {
		// Nine digits at most, as the Python client reads it.
		if ms, err := strconv.ParseUint(v[len(v)-1], 10, 32); err == nil && len(v[len(v)-1]) <= 9 {
			pushback, hasPushback = time.Duration(ms)*time.Millisecond, true
		}
	}
	if !ok {
		p, ok, pushback, hasPushback = fromStatusDetails(callErr)
		shed = hasPushback
	}
	// Matched only at level 3: a calm answer costs no method lookup.
	critical := ok && p.Level >= LevelCritical
	core := critical && (c.fastFail == nil || c.fastFail.Match(method))
	admitted := critical && !shed && !core
	if !hasPushback {
		pushback = c.pushback
	}
	window := max(0, min(pushback, c.maxFailFast))
	backend, named := backendName(addr, p, ok)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.peers[target]
	if !critical || admitted {
		if e == nil && !ok {
			return // nothing heard from it yet, and still nothing: calm
		}
		e = c.calleeLocked(target, e, now)
		if ok {
			e.pressure, e.reportedAt = p, now
		}
		e.calm(backend, named, now)
		return
	}
	e = c.calleeLocked(target, e, now)
	e.pressure, e.reportedAt = p, now
	if _, heard := e.backends[backend]; core && heard {
		return // the backend's own last word on shedding stands
	}
	e.hear(backend, now, true)
	e.window = window
	if c.fastFail != nil && window > 0 && e.blockedUntil.IsZero() && e.allCritical(now.Add(-window)) {
		e.blockedUntil = now.Add(window)
	}
}

// calleeLocked returns target's entry, made (and the table bounded) if e is
// nil, its last answer stamped now.
func (c *Client) calleeLocked(target string, e *callee, now time.Time) *callee {
	if e == nil {
		if len(c.peers) >= c.maxPeers {
			c.evictLocked()
		}
		e = newCallee()
		c.peers[target] = e
	}
	e.lastAt = now
	return e
}

// evictLocked drops the target answered least recently.
func (c *Client) evictLocked() {
	var oldest string
	var oldestAt time.Time
	for k, e := range c.peers {
		if oldest == "" || e.lastAt.Before(oldestAt) {
			oldest, oldestAt = k, e.lastAt
		}
	}
	delete(c.peers, oldest)
}

// UnaryClientInterceptor returns the unary client interceptor.
func (c *Client) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		target := cc.Target()
		if err := c.check(target, method, opts); err != nil {
			return err
		}
		// A new slice: appending to the caller's could write into its
		// backing array, shared with other calls.
		var trailer metadata.MD
		var from peer.Peer
		callOpts := make([]grpc.CallOption, len(opts), len(opts)+2)
		copy(callOpts, opts)
		callOpts = append(callOpts, grpc.Trailer(&trailer), grpc.Peer(&from))
		err := invoker(c.outgoing(ctx, target), method, req, reply, cc, callOpts...)
		c.record(target, addrOf(&from), method, trailer, err)
		return err
	}
}

// StreamClientInterceptor returns the stream client interceptor.
func (c *Client) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		target := cc.Target()
		if err := c.check(target, method, opts); err != nil {
			return nil, err
		}
		cs, err := streamer(c.outgoing(ctx, target), desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &clientStream{ClientStream: cs, c: c, target: target, method: method, serverStreams: desc.ServerStreams}, nil
	}
}

type clientStream struct {
	grpc.ClientStream
	c             *Client
	target        string
	method        string
	serverStreams bool
	once          sync.Once
}

// RecvMsg records the trailers once the stream has ended: on an error
// (io.EOF included) or, for a call without server streaming, after the one
// response.
func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil || !s.serverStreams {
		s.once.Do(func() {
			from, _ := peer.FromContext(s.ClientStream.Context())
			s.c.record(s.target, addrOf(from), s.method, s.ClientStream.Trailer(), err)
		})
	}
	return err
}

// fromStatusDetails reads the pressure and pushback a server put in the
// status details of a call it shed before reading it (WithEarlyShed).
func fromStatusDetails(err error) (p Pressure, ok bool, pushback time.Duration, hasPushback bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || st.Code() != codes.ResourceExhausted {
		return Pressure{}, false, 0, false
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *memcontractv1.MemoryPressure:
			if got, err := pressureFromProto(d); err == nil {
				p, ok = got, true
			}
		case *errdetails.RetryInfo:
			if dd := d.GetRetryDelay(); dd.IsValid() && dd.AsDuration() >= 0 {
				pushback, hasPushback = dd.AsDuration(), true
			}
		}
	}
	return p, ok, pushback, hasPushback
}

// addrOf is a peer's address, "" when grpc-go gave none.
func addrOf(p *peer.Peer) string {
	if p == nil || p.Addr == nil {
		return ""
	}
	return p.Addr.String()
}
