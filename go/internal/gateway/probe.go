package gateway

import (
	"context"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// An upstream at level 3 gets no client call while another can take it, so
// no client call would show that it recovered. The gateway asks it itself: a
// grpc.health.v1 Check pinned to that upstream (health is core: never shed)
// whose trailers carry the upstream's keys like any call's, read by the same
// Done callback. Envoy's active health checking plays this part for hosts it
// has ejected; here it only runs for upstreams reporting level 3.

// probeMethod is the method the picker pins to one upstream.
const probeMethod = "/grpc.health.v1.Health/Check"

// probeKey carries the pinned upstream's address in a probe's context.
type probeKey struct{}

const (
	probeEvery   = 200 * time.Millisecond // how often level-3 upstreams are looked at
	probeQuiet   = 300 * time.Millisecond // probe one that has not reported for this long
	probeTimeout = time.Second
)

// probeLevel3 checks, until stop closes, every upstream whose last report is
// level 3 and that has been quiet for probeQuiet.
func (t *table) probeLevel3(conn *grpc.ClientConn, stop <-chan struct{}) {
	client := healthpb.NewHealthClient(conn)
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := t.now()
		for _, u := range t.order {
			if s := u.current(now); s != nil && s.pressure.Level >= levelCritical && now-u.seenAt.Load() > int64(probeQuiet) {
				go probe(client, u.addr)
			}
		}
	}
}

func probe(client healthpb.HealthClient, addr string) {
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), probeKey{}, addr), probeTimeout)
	defer cancel()
	_, _ = client.Check(ctx, &healthpb.HealthCheckRequest{})
}
