package memcontract

import (
	"strconv"
	"time"
)

// maxBackends bounds the backends remembered per target (the least recently
// heard from goes first).
const maxBackends = 256

// heard is one backend's latest answer.
type heard struct {
	at       time.Time
	critical bool
}

// callee is what the backends behind one target (one ClientConn) last
// answered, and whether its non-core calls fail fast. A backend is named by
// its address (grpc.Peer) or, where grpc-go gives none, by the instance id in
// its x-memory-pressure-bin; "" is every backend that names nothing.
type callee struct {
	backends  map[string]heard
	calmAt    time.Time // the latest answer without level 3
	calmFrom  string    // whose ("" when unknown)
	calmNamed bool      // whether calmFrom names a backend

	pressure   Pressure // the last reported, for PeerPressure
	reportedAt time.Time
	lastAt     time.Time // the latest answer of any kind (eviction)

	window       time.Duration // the fail-fast window of the last level-3 report
	blockedUntil time.Time     // zero: calls go out; else when the next probe may
}

func newCallee() *callee { return &callee{backends: make(map[string]heard)} }

func (e *callee) hear(backend string, at time.Time, critical bool) {
	if _, ok := e.backends[backend]; !ok && len(e.backends) >= maxBackends {
		oldest, oldestAt := "", time.Time{}
		for k, h := range e.backends {
			if oldest == "" || h.at.Before(oldestAt) {
				oldest, oldestAt = k, h.at
			}
		}
		delete(e.backends, oldest)
	}
	e.backends[backend] = heard{at: at, critical: critical}
}

// calm records an answer without level 3 (no keys at all, or a level below
// 3): it ends any fail-fast window.
func (e *callee) calm(backend string, named bool, at time.Time) {
	e.calmAt, e.calmFrom, e.calmNamed = at, backend, named
	if named {
		e.hear(backend, at, false)
	}
	e.blockedUntil = time.Time{}
}

// allCritical reports whether every answer since since carried level 3,
// from two backends or more, or from the only one ever heard from. A calm
// answer is set aside only when its backend answered level 3 after it, or
// when a single backend answers this target.
func (e *callee) allCritical(since time.Time) bool {
	sole := len(e.backends) == 1
	if !e.calmAt.Before(since) && !sole {
		latest, ok := e.backends[e.calmFrom]
		if !e.calmNamed || !ok || !latest.critical || latest.at.Before(e.calmAt) {
			return false
		}
	}
	critical := 0
	for _, h := range e.backends {
		if !h.at.Before(since) {
			if !h.critical {
				return false
			}
			critical++
		}
	}
	return critical >= 2 || (sole && critical == 1)
}

// backendName is how an answer names its backend: its address when grpc-go
// gave one, else the instance id its -bin named, else "".
func backendName(addr string, p Pressure, ok bool) (string, bool) {
	if addr != "" {
		return addr, true
	}
	if ok && p.Instance != 0 {
		return "instance:" + strconv.FormatUint(p.Instance, 16), true
	}
	return "", ok
}
