package gateway

import (
	"encoding/json"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// eventLog writes the gateway's JSON lines (one object a line, keys sorted).
// Lines from the call path (a level change seen in a trailer, a subchannel
// state change) are queued and written by a goroutine of their own, so no
// call waits for I/O; when the queue is full a line is dropped and counted.
type eventLog struct {
	mu      sync.Mutex
	out     io.Writer
	queue   chan map[string]any
	done    chan struct{}
	dropped atomic.Int64
	// startOnce starts the writer goroutine.
	startOnce sync.Once
	// state guards closed against an emit racing close.
	state  sync.RWMutex
	closed bool
}

const eventQueue = 256

// newEventLog returns a log whose queued lines are written once start is
// called (after the listening line, which is always the first).
func newEventLog(out io.Writer) *eventLog {
	return &eventLog{out: out, queue: make(chan map[string]any, eventQueue), done: make(chan struct{})}
}

// start writes the queued lines and those to come.
func (l *eventLog) start() {
	l.startOnce.Do(func() { go l.run() })
}

func (l *eventLog) run() {
	defer close(l.done)
	for line := range l.queue {
		l.print(line)
	}
}

// emit queues a line (never blocks), stamped now.
func (l *eventLog) emit(line map[string]any) {
	if l == nil {
		return
	}
	line["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	l.state.RLock()
	defer l.state.RUnlock()
	if l.closed {
		return
	}
	select {
	case l.queue <- line:
	default:
		l.dropped.Add(1)
	}
}

// print writes a line now, in one write, with the time it is written.
func (l *eventLog) print(line map[string]any) {
	if l == nil {
		return
	}
	if _, ok := line["time"]; !ok {
		line["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(line)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"event": "error", "error": err.Error()})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.out.Write(append(b, '\n'))
}

// close writes what is queued and stops the writer; later emits are
// dropped silently.
func (l *eventLog) close() {
	if l == nil {
		return
	}
	l.state.Lock()
	already := l.closed
	l.closed = true
	if !already {
		close(l.queue)
	}
	l.state.Unlock()
	l.start()
	<-l.done
}
