package memcontract

import (
	"sync"
	"time"
)

// Source provides the process's current memory pressure. Pressure is called
// on every RPC and must be cheap: implementations return a cached snapshot.
type Source interface {
	Pressure() Pressure
}

// StaticSource is a Source whose pressure is set by the program (tests, or
// flags that force a pressure). It is safe for concurrent use.
type StaticSource struct {
	mu sync.RWMutex
	p  Pressure
}

// NewStaticSource returns a StaticSource reporting p.
func NewStaticSource(p Pressure) *StaticSource {
	return &StaticSource{p: p}
}

// Pressure returns the pressure last set, stamped with the current time
// when it has none.
func (s *StaticSource) Pressure() Pressure {
	s.mu.RLock()
	p := s.p
	s.mu.RUnlock()
	if p.SampledAt.IsZero() {
		p.SampledAt = time.Now()
	}
	return p
}

// Set replaces the pressure reported.
func (s *StaticSource) Set(p Pressure) {
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()
}
