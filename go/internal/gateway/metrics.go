package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
	"github.com/memcontract/memcontract/go/memcontract"
	"github.com/memcontract/memcontract/go/memcontract/prommetrics"
)

// The gateway's metrics in the Prometheus text exposition format, on
// --metrics-port: with its own contract, the library's memcontract_*
// families of its own sampler (package prommetrics, the names every
// memcontract service exposes) with go_* and process_*; then the gateway's
// own series, written by hand. Names follow node_exporter's: base units,
// _total for counters, one label of bounded cardinality (the configured
// upstreams).

// ownMetrics is the registry of the gateway's own sampler's families.
func ownMetrics(sampler *memcontract.Sampler, module *memcontractv1.ModuleContract) prometheus.Gatherer {
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		prommetrics.NewCollector(sampler, module),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return registry
}

// writeOwnMetrics writes the families of the gateway's own sampler, if any.
func (g *gateway) writeOwnMetrics(w io.Writer) {
	if g.own == nil {
		return
	}
	families, err := g.own.Gather()
	if err != nil {
		g.events.emit(map[string]any{"event": "metrics_error", "error": err.Error()})
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return // the scraper went away
		}
	}
}

// writeMetrics writes the exposition.
func (g *gateway) writeMetrics(w io.Writer) {
	now := g.table.now()
	family(w, "memcontract_gateway_calls_total", "counter", "Calls sent to each upstream.")
	for _, u := range g.table.order {
		fmt.Fprintf(w, "memcontract_gateway_calls_total{upstream=%q} %d\n", u.addr, u.calls.Load())
	}
	family(w, "memcontract_gateway_upstream_ready", "gauge", "1 while the upstream is READY (connected and serving).")
	g.table.mu.Lock()
	for _, u := range g.table.order {
		fmt.Fprintf(w, "memcontract_gateway_upstream_ready{upstream=%q} %d\n", u.addr, b2i(g.table.ready[u.addr]))
	}
	g.table.mu.Unlock()
	family(w, "memcontract_gateway_upstream_level", "gauge", "The breach level the upstream last reported (-1: none in the last 5 s).")
	for _, u := range g.table.order {
		level := -1
		if s := u.current(now); s != nil {
			level = int(s.pressure.Level)
		}
		fmt.Fprintf(w, "memcontract_gateway_upstream_level{upstream=%q} %d\n", u.addr, level)
	}
	family(w, "memcontract_gateway_edge_sheds_total", "counter", "Calls refused at the gateway because every upstream that could take them is at level 3.")
	fmt.Fprintf(w, "memcontract_gateway_edge_sheds_total %d\n", g.table.edgeSheds.Load())
	family(w, "memcontract_gateway_stripped_keys_total", "counter", "Request metadata keys not forwarded, by kind.")
	fmt.Fprintf(w, "memcontract_gateway_stripped_keys_total{kind=\"untrusted_memory\"} %d\n", g.strips.untrusted.Load())
	fmt.Fprintf(w, "memcontract_gateway_stripped_keys_total{kind=\"hop_by_hop\"} %d\n", g.strips.hopByHop.Load())
	family(w, "memcontract_gateway_draining", "gauge", "1 from the first moment of a drain.")
	fmt.Fprintf(w, "memcontract_gateway_draining %d\n", b2i(g.draining.Load()))
}

func family(w io.Writer, name, kind, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// serveMetrics serves /metrics on the listen host at port; the server, or
// an error when the port cannot be bound.
func (g *gateway) serveMetrics(port int) (*http.Server, net.Listener, error) {
	hp, _ := splitAddress(g.options.Listen, "listen")
	lis, err := net.Listen("tcp", net.JoinHostPort(hp.host, strconv.Itoa(port)))
	if err != nil {
		return nil, nil, configErrorf("metrics_port: cannot bind %d: %v", port, bindReason(err))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		g.writeOwnMetrics(w)
		g.writeMetrics(w)
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, lis, nil
}
