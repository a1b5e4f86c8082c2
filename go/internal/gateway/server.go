package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/protobuf/proto"

	v3orcaservicepb "github.com/cncf/xds/go/xds/service/orca/v3"
	"github.com/prometheus/client_golang/prometheus"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
	"github.com/memcontract/memcontract/go/memcontract"
)

// Prog is the command's name in messages.
const Prog = "memcontract-gateway"

// Main runs the command with args (without the program name) and returns
// its exit status: 0 after a drain (or --help), 2 for bad input (one line on
// stderr), 1 when serving fails.
func Main(args []string, stdout, stderr io.Writer) int {
	parsed, err := parseArgs(args)
	if err == nil && parsed.help {
		usage(stdout, Prog)
		return 0
	}
	if err == nil {
		err = parsed.options.Check()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", Prog, err)
		return 2
	}
	o := parsed.options
	for _, w := range o.warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", Prog, w)
	}
	g, err := build(&o, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", Prog, err)
		return 2
	}
	return g.run(signals())
}

func signals() <-chan os.Signal {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	return sig
}

// gateway is one running gateway's parts.
type gateway struct {
	options     *Options
	events      *eventLog
	table       *table
	conn        *grpc.ClientConn
	server      *grpc.Server
	health      *health.Server
	listener    net.Listener
	sampler     *memcontract.Sampler
	own         prometheus.Gatherer // the sampler's memcontract_* families (nil: no contract)
	strips      *stripCounts
	descriptors *descriptors
	draining    atomic.Bool
	started     time.Time
	metrics     *http.Server
	metricsLis  net.Listener
}

var channelSeq atomic.Int64

// stripLogEvery is how often stripped request keys are logged (counts).
const stripLogEvery = 10 * time.Second

// build makes every part and binds the port; nothing is served yet.
func build(o *Options, stdout io.Writer) (*gateway, error) {
	g := &gateway{options: o, events: newEventLog(stdout), strips: &stripCounts{}, started: time.Now()}
	fail := func(err error) (*gateway, error) {
		g.events.out = io.Discard // a gateway that never listened prints nothing on stdout
		g.close()
		return nil, err
	}
	version, module, err := ownModule(o)
	if err != nil {
		return fail(err)
	}
	if len(o.DescriptorSets) > 0 {
		if g.descriptors, err = loadDescriptorSets(o.DescriptorSets); err != nil {
			return fail(err)
		}
	}
	serverCreds, err := serverCredentials(o)
	if err != nil {
		return fail(err)
	}
	upstreamCreds, err := upstreamCredentials(o)
	if err != nil {
		return fail(err)
	}
	trust, _ := o.trust()
	g.table = newTable(o.Upstreams, g.events)
	g.configureTable(module, o.Contract != "")
	if g.conn, err = g.dial(upstreamCreds); err != nil {
		return fail(fmt.Errorf("upstreams: %v", err))
	}
	var serverOpts []grpc.ServerOption
	var own *memcontract.Server
	if o.Contract != "" {
		g.sampler = memcontract.NewSampler(version, module, memcontract.WithTransitionHook(g.ownLevel))
		g.own = ownMetrics(g.sampler, module)
		own = memcontract.NewServer(g.sampler, module, memcontract.WithTrust(trust))
		serverOpts = own.ServerOptions()
	}
	p := &proxy{
		direct:  newDirector(g.conn, trust, len(o.TrustNetworks)+len(o.TrustIdentities) == 0, g.strips),
		ownKeys: o.Contract != "",
		callOpts: []grpc.CallOption{
			grpc.ForceCodecV2(newCodec()),
			grpc.MaxCallRecvMsgSize(o.MaxResponseBytes),
			grpc.MaxCallSendMsgSize(o.MaxRequestBytes),
		},
	}
	if !o.ExposeUpstreamAddresses {
		p.scrub = newScrubber(o.Upstreams)
	}
	serverOpts = append(serverOpts,
		grpc.Creds(serverCreds),
		grpc.ForceServerCodecV2(newCodec()),
		grpc.MaxRecvMsgSize(o.MaxRequestBytes),
		grpc.MaxSendMsgSize(o.MaxResponseBytes),
		grpc.MaxHeaderListSize(uint32(o.MaxMetadataBytes)),
		// After the contract's options: the proxy replaces its handler of
		// unknown methods.
		grpc.UnknownServiceHandler(p.handle),
	)
	g.server = grpc.NewServer(serverOpts...)
	g.health = health.NewServer()
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(g.server, g.health)
	// The pressure services (memcontract top, out-of-band ORCA) speak for the
	// gateway, as its trailers do, never for whichever upstream a forwarded
	// call would reach: its own with a contract, none without.
	if own != nil {
		if err := memcontract.RegisterPressureServices(g.server, own); err != nil {
			return fail(err)
		}
	} else {
		memcontractv1.RegisterMemoryPressureServiceServer(g.server, memcontractv1.UnimplementedMemoryPressureServiceServer{})
		v3orcaservicepb.RegisterOpenRcaServiceServer(g.server, v3orcaservicepb.UnimplementedOpenRcaServiceServer{})
	}
	if g.descriptors != nil {
		g.descriptors.register(g.server)
	}
	g.table.onReady = g.upstreamsReady
	if g.listener, err = net.Listen("tcp", o.Listen); err != nil {
		return fail(configErrorf("listen: cannot bind %s: %v", o.Listen, bindReason(err)))
	}
	if o.MetricsPort != 0 {
		if g.metrics, g.metricsLis, err = g.serveMetrics(o.MetricsPort); err != nil {
			return fail(err)
		}
	}
	return g, nil
}

// ownModule is the gateway's own contract module (a stand-in that never
// sheds without --contract), its core methods extended by --core-method.
func ownModule(o *Options) (string, *memcontractv1.ModuleContract, error) {
	version := ""
	module := memcontract.DefaultModule("gateway")
	if o.Contract != "" {
		var opts []memcontract.ContractOption
		if o.Module != "" {
			opts = append(opts, memcontract.WithModule(o.Module))
		}
		c, err := memcontract.LoadContract(o.Contract, opts...)
		if err != nil {
			return "", nil, configErrorf("contract: %v", err)
		}
		version = c.Version
		module = proto.Clone(c.Module).(*memcontractv1.ModuleContract)
	}
	module.CoreMethods = append(module.CoreMethods, o.CoreMethods...)
	return version, module, nil
}

// configureTable sets what routing takes from the gateway's contract: the
// core methods, the pushback of a level-3 report that sends none, and the
// cap on any (max_fail_fast_ms, as the library's client reads it).
func (g *gateway) configureTable(module *memcontractv1.ModuleContract, own bool) {
	g.table.core = coreMatcher(module.GetCoreMethods())
	g.table.defaultPushback = time.Duration(module.GetRetryPushbackMs()) * time.Millisecond
	g.table.maxPushback = time.Duration(module.GetMaxFailFastMs()) * time.Millisecond
	g.table.exposeAddresses = g.options.ExposeUpstreamAddresses
	g.table.stripMemoryKeys = own
}

// serviceConfig: the pressure picker, and grpc.health.v1 feeding readiness.
const serviceConfig = `{"loadBalancingConfig": [{"` + balancerName + `": {}}],
 "healthCheckConfig": {"serviceName": ""}}`

// dial makes the one ClientConn over every upstream. Reconnects back off
// from 100 ms to at most 500 ms (+20 % jitter), so a restarted upstream is
// connected, health-checked and getting calls within a second of listening
// (grpc-go's default caps the backoff at 120 s).
func (g *gateway) dial(creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	o := g.options
	id := "upstreams-" + strconv.FormatInt(channelSeq.Add(1), 10)
	tables.Store(id, g.table)
	registerBalancer()
	r := manual.NewBuilderWithScheme("memcontract-gateway")
	var addrs []resolver.Address
	for _, u := range g.table.order {
		name := u.addr
		if o.UpstreamServerName != "" {
			name = o.UpstreamServerName
		}
		addrs = append(addrs, resolver.Address{Addr: u.addr, ServerName: name})
	}
	r.InitialState(resolver.State{Addresses: addrs})
	return grpc.NewClient(r.Scheme()+":///"+id,
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: 5 * time.Second,
		}),
		// An idle channel would drop its subchannels and health would say
		// NOT_SERVING for a quiet gateway.
		grpc.WithIdleTimeout(0),
		grpc.WithMaxHeaderListSize(uint32(o.MaxMetadataBytes)),
	)
}

func serverCredentials(o *Options) (credentials.TransportCredentials, error) {
	if o.TLSCert == "" {
		return insecure.NewCredentials(), nil
	}
	cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, configErrorf("tls_cert/tls_key: not a PEM pair: %v", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.TLSClientCA != "" {
		if cfg.ClientCAs, err = certPool("tls_client_ca", o.TLSClientCA); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

func upstreamCredentials(o *Options) (credentials.TransportCredentials, error) {
	if !o.upstreamTLS() {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	var err error
	if o.UpstreamCA != "" {
		if cfg.RootCAs, err = certPool("upstream_ca", o.UpstreamCA); err != nil {
			return nil, err
		}
	}
	if o.UpstreamCert != "" {
		cert, err := tls.LoadX509KeyPair(o.UpstreamCert, o.UpstreamKey)
		if err != nil {
			return nil, configErrorf("upstream_cert/upstream_key: not a PEM pair: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

func certPool(name, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, configErrorf("%s: cannot read %s", name, pyRepr(path))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, configErrorf("%s: no PEM certificate in %s", name, pyRepr(path))
	}
	return pool, nil
}

// bindReason is why a bind failed, without Go's "listen tcp ADDR:" prefix.
func bindReason(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var sys *os.SyscallError
		if errors.As(op.Err, &sys) {
			return sys.Err.Error()
		}
		return op.Err.Error()
	}
	return err.Error()
}

// upstreamsReady is told how many upstreams are READY: the gateway serves
// while one is (and it is not draining).
func (g *gateway) upstreamsReady(n int) {
	if g.draining.Load() {
		return
	}
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if n > 0 {
		st = healthpb.HealthCheckResponse_SERVING
	}
	g.health.SetServingStatus("", st)
}

func (g *gateway) ownLevel(old, level memcontract.Level, p memcontract.Pressure) {
	g.events.emit(map[string]any{"event": "own_level", "from": int(old), "level": int(level), "usage": formatUsage(p)})
}

// run serves until a signal, then drains: health NOT_SERVING at once, new
// calls still taken for the drain delay (balancers move away), then
// GracefulStop, and Stop when the grace ends (a client holding a stream,
// a health Watch say, does not hold the gateway up). It prints the
// listening line first and the stopped line last.
func (g *gateway) run(sig <-chan os.Signal) int {
	port := g.listener.Addr().(*net.TCPAddr).Port
	hp, _ := splitAddress(g.options.Listen, "listen")
	methods := 0
	if g.descriptors != nil {
		methods = g.descriptors.methods
	}
	g.events.print(map[string]any{
		"event": "listening", "address": net.JoinHostPort(hp.host, strconv.Itoa(port)), "port": port,
		"worker": 0, "pid": os.Getpid(), "methods": methods, "upstreams": g.options.Upstreams,
	})
	g.events.start()
	if g.sampler != nil {
		g.sampler.Start()
	}
	served := make(chan error, 1)
	go func() { served <- g.server.Serve(g.listener) }()
	if g.metrics != nil {
		go func() { _ = g.metrics.Serve(g.metricsLis) }()
	}
	g.conn.Connect()
	stopLogging := make(chan struct{})
	defer close(stopLogging)
	go g.logStrips(stripLogEvery, stopLogging)
	go g.table.probeLevel3(g.conn, stopLogging)
	select {
	case <-sig:
	case err := <-served:
		g.events.print(map[string]any{"event": "error", "error": err.Error()})
		g.close()
		return 1
	}
	g.drain(sig)
	g.close() // flushes the queued lines: the summary is the last line
	g.stopped()
	return 0
}

// logStrips writes a line with the request keys stripped since the last one,
// at most every interval and only when some were.
func (g *gateway) logStrips(interval time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var hop, untrusted int64
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		h, u := g.strips.hopByHop.Load(), g.strips.untrusted.Load()
		if h != hop || u != untrusted {
			g.events.emit(map[string]any{"event": "stripped", "hop_by_hop": h - hop, "untrusted_memory_keys": u - untrusted})
			hop, untrusted = h, u
		}
	}
}

func (g *gateway) drain(sig <-chan os.Signal) {
	g.draining.Store(true)
	g.health.Shutdown() // NOT_SERVING to Check and Watch, from now on
	grace := time.Duration(g.options.GraceS * float64(time.Second))
	delay := min(time.Duration(g.options.DrainDelayS*float64(time.Second)), grace)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	select {
	case <-time.After(delay):
	case <-sig: // a second signal: no delay
	}
	done := make(chan struct{})
	go func() { g.server.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-deadline.C:
		g.server.Stop()
		<-done
	case <-sig:
		g.server.Stop()
		<-done
	}
}

// stopped prints the summary line.
func (g *gateway) stopped() {
	calls := map[string]int64{}
	for _, u := range g.table.order {
		calls[u.addr] = u.calls.Load()
	}
	g.events.print(map[string]any{
		"event": "stopped", "worker": 0, "pid": os.Getpid(), "calls": calls,
		"edge_sheds":        g.table.edgeSheds.Load(),
		"stripped":          map[string]int64{"hop_by_hop": g.strips.hopByHop.Load(), "untrusted_memory_keys": g.strips.untrusted.Load()},
		"uptime_s":          time.Since(g.started).Round(time.Millisecond).Seconds(),
		"log_lines_dropped": g.events.dropped.Load(),
	})
}

// close releases everything built (safe on a partly built gateway, and
// twice); queued lines are written.
func (g *gateway) close() {
	if g.server != nil {
		g.server.Stop()
	}
	if g.listener != nil {
		_ = g.listener.Close()
	}
	if g.metrics != nil {
		_ = g.metrics.Close()
	}
	if g.conn != nil {
		_ = g.conn.Close()
		tables.Delete(g.conn.Target())
	}
	if g.sampler != nil {
		g.sampler.Stop()
	}
	g.events.close()
}
