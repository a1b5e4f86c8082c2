package memcontract

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Defaults of the client's per-target table.
const (
	DefaultPeerTTL  = 5 * time.Second
	DefaultMaxPeers = 1024
)

// Client holds the client side of the protocol: its interceptors add the
// process's keys to every outgoing call and record the pressure each target
// reports in its trailers in a bounded table whose entries expire.
type Client struct {
	source   Source
	ttl      time.Duration
	maxPeers int
	now      func() time.Time

	fastFail *CoreMatcher
	pushback time.Duration

	mu    sync.Mutex
	peers map[string]peerEntry

	fastFailed atomic.Int64
	invalid    atomic.Int64
}

type peerEntry struct {
	p        Pressure
	at       time.Time
	pushback time.Duration
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
		c.fastFail = NewCoreMatcher(coreGlobs)
		c.pushback = pushback
	}
}

// NewClient returns a Client sending the pressure of src.
func NewClient(src Source, opts ...ClientOption) *Client {
	c := &Client{
		source:   src,
		ttl:      DefaultPeerTTL,
		maxPeers: DefaultMaxPeers,
		now:      time.Now,
		peers:    make(map[string]peerEntry),
	}
	for _, o := range opts {
		o(c)
	}
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
	if !ok || c.now().Sub(e.at) > c.ttl {
		return Pressure{}, false
	}
	return e.p, true
}

// FastFailCount returns the number of calls failed fast so far.
func (c *Client) FastFailCount() int64 { return c.fastFailed.Load() }

// InvalidCount returns the number of invalid x-memory-* values received in
// trailers.
func (c *Client) InvalidCount() int64 { return c.invalid.Load() }

// outgoing returns ctx with the process's keys in its outgoing metadata,
// replacing any x-memory-* keys already there.
func (c *Client) outgoing(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	for _, k := range []string{UsageKey, CapacityKey, ContractKey, LevelKey, PressureBinKey} {
		delete(md, k)
	}
	kv := EncodePairs(c.source.Pressure())
	for i := 0; i < len(kv); i += 2 {
		md.Append(kv[i], kv[i+1])
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// check fails a call fast when its target is at level 3.
func (c *Client) check(target, method string) error {
	if c.fastFail == nil || c.fastFail.Match(method) {
		return nil
	}
	c.mu.Lock()
	e, ok := c.peers[target]
	c.mu.Unlock()
	if !ok || e.p.Level < LevelCritical || c.now().Sub(e.at) > e.pushback {
		return nil
	}
	c.fastFailed.Add(1)
	return status.Errorf(codes.ResourceExhausted,
		"memcontract: target %s (module %q) is at memory level %d: non-core call %s failed fast",
		target, e.p.Module, int(e.p.Level), method)
}

// record stores the pressure a target reported in trailer.
func (c *Client) record(target string, trailer metadata.MD) {
	p, ok, invalid := Decode(trailer)
	if invalid > 0 {
		c.invalid.Add(int64(invalid))
	}
	if !ok {
		return
	}
	pushback := c.pushback
	if v := trailer.Get(RetryPushbackKey); len(v) > 0 {
		if ms, err := strconv.ParseUint(v[len(v)-1], 10, 32); err == nil {
			pushback = time.Duration(ms) * time.Millisecond
		}
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.peers[target]; !exists && len(c.peers) >= c.maxPeers {
		c.evictLocked(now)
	}
	c.peers[target] = peerEntry{p: p, at: now, pushback: pushback}
}

// evictLocked drops expired entries, or the oldest one when none expired.
func (c *Client) evictLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, e := range c.peers {
		if now.Sub(e.at) > c.ttl {
			delete(c.peers, k)
			continue
		}
		if oldest == "" || e.at.Before(oldestAt) {
			oldest, oldestAt = k, e.at
		}
	}
	if len(c.peers) >= c.maxPeers && oldest != "" {
		delete(c.peers, oldest)
	}
}

// UnaryClientInterceptor returns the unary client interceptor.
func (c *Client) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		target := cc.Target()
		if err := c.check(target, method); err != nil {
			return err
		}
		var trailer metadata.MD
		err := invoker(c.outgoing(ctx), method, req, reply, cc, append(opts, grpc.Trailer(&trailer))...)
		c.record(target, trailer)
		return err
	}
}

// StreamClientInterceptor returns the stream client interceptor.
func (c *Client) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		target := cc.Target()
		if err := c.check(target, method); err != nil {
			return nil, err
		}
		cs, err := streamer(c.outgoing(ctx), desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &clientStream{ClientStream: cs, c: c, target: target, serverStreams: desc.ServerStreams}, nil
	}
}

type clientStream struct {
	grpc.ClientStream
	c             *Client
	target        string
	serverStreams bool
	once          sync.Once
}

// RecvMsg records the trailers once the stream has ended: on an error
// (io.EOF included) or, for a call without server streaming, after the one
// response.
func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil || !s.serverStreams {
		s.once.Do(func() { s.c.record(s.target, s.ClientStream.Trailer()) })
	}
	return err
}
