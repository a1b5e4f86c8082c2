// Command growserver is the Go server of the memory cgroup drill
// (tests/test_cgroup.py): every call to a non-core method keeps 1 MiB for
// good, under a Sampler whose budget (1024 MiB) is far above the cgroup it
// runs in, so only the cgroup's hard limit can bring level 3 in time. It
// prints its port, then serves until killed. -dry-run: the same contract in
// dry run (the negative control: nothing is shed, and the kernel's OOM
// killer should end it).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"

	"github.com/memcontract/memcontract/go/memcontract"
)

// rawCodec passes message bytes through: the drill's calls carry none.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

var (
	mu   sync.Mutex
	kept [][]byte
)

// eat keeps 1 MiB (written, so it is resident) and answers empty.
func eat(_ any, stream grpc.ServerStream) error {
	var in []byte
	if err := stream.RecvMsg(&in); err != nil {
		return err
	}
	chunk := []byte(strings.Repeat("x", memcontract.MiB))
	mu.Lock()
	kept = append(kept, chunk)
	mu.Unlock()
	out := []byte{}
	return stream.SendMsg(&out)
}

func main() {
	dryRun := flag.Bool("dry-run", false, "evaluate and report only (nothing is shed)")
	flag.Parse()
	yaml := fmt.Sprintf(`version: cgroup-1
modules:
  - name: grow
    max_heap_mb: 1024
    alloc_rate_mb_per_sec: 1000
    sample_interval_ms: 500
    dry_run: %t
`, *dryRun)
	c, err := memcontract.ParseContractYAML("growserver", []byte(yaml))
	if err != nil {
		log.Fatal(err)
	}
	m := c.Module
	sampler := memcontract.NewSampler(c.Version, m)
	sampler.Start()
	srv := memcontract.NewServer(sampler, m)
	opts := append(srv.ServerOptions(), grpc.UnknownServiceHandler(eat), grpc.ForceServerCodec(rawCodec{}))
	s := grpc.NewServer(opts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lis.Addr().(*net.TCPAddr).Port)
	log.Fatal(s.Serve(lis))
}
