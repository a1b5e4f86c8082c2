package memcontract

import (
	"crypto/rand"
	"encoding/binary"
)

// processInstance names this process in the x-memory-pressure-bin it sends
// (MemoryPressure.instance_id): random per process, never 0 (0 means "not
// named"), so that a client can tell the backends behind one channel apart.
var processInstance = newInstance()

func newInstance() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 1
	}
	if id := binary.BigEndian.Uint64(b[:]); id != 0 {
		return id
	}
	return 1
}

// Instance returns this process's instance id, the one its servers and
// clients name in x-memory-pressure-bin.
func Instance() uint64 { return processInstance }
