package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	v3orcaservicepb "github.com/cncf/xds/go/xds/service/orca/v3"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
	"github.com/memcontract/memcontract/go/memcontract"
)

// Real grpc-go servers and clients on loopback: upstreams that echo raw
// frames, the gateway built from flags as the command builds it.

type testUpstream struct {
	addr    string
	server  *grpc.Server
	health  *health.Server
	calls   atomic.Int64
	trailer atomic.Pointer[metadata.MD] // what each call's trailer carries
	// shedPushback, when set, makes it shed every call but /test.S/Ping
	// (RESOURCE_EXHAUSTED, the trailer and this grpc-retry-pushback-ms).
	shedPushback atomic.Pointer[string]
	// hung makes it answer nothing until the call ends (a stopped process
	// whose connection stays up; its health stays SERVING).
	hung atomic.Bool
}

func startUpstream(t *testing.T, addr string) *testUpstream {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	u := &testUpstream{addr: lis.Addr().String(), health: health.NewServer()}
	u.trailer.Store(&metadata.MD{})
	//memcontract:ignore MC001 a test upstream: its trailers are set by each test, not by a sampler
	u.server = grpc.NewServer(grpc.ForceServerCodecV2(newCodec()), grpc.UnknownServiceHandler(u.handle))
	healthpb.RegisterHealthServer(u.server, u.health)
	go func() { _ = u.server.Serve(lis) }()
	t.Cleanup(u.server.Stop)
	return u
}

// handle echoes every message; /test.S/Fail fails with details; headers go
// out before the first message is read.
func (u *testUpstream) handle(_ any, ss grpc.ServerStream) error {
	u.calls.Add(1)
	if u.hung.Load() {
		<-ss.Context().Done()
		return ss.Context().Err()
	}
	method, _ := grpc.MethodFromServerStream(ss)
	in, _ := metadata.FromIncomingContext(ss.Context())
	header := metadata.Pairs("x-upstream", u.addr)
	for k, v := range in {
		if strings.HasPrefix(k, "x-echo") || strings.HasPrefix(k, "x-memory") {
			header[k] = v
		}
	}
	trailer := (*u.trailer.Load()).Copy()
	trailer.Set(loadReportKey, "not-for-clients")
	if pushback := u.shedPushback.Load(); pushback != nil && method != "/test.S/Ping" {
		trailer.Set(retryPushbackKey, *pushback)
		ss.SetTrailer(trailer)
		return status.Error(codes.ResourceExhausted, "test upstream sheds")
	}
	ss.SetTrailer(trailer)
	if err := ss.SendHeader(header); err != nil {
		return err
	}
	if method == "/test.S/Fail" {
		st, _ := status.New(codes.FailedPrecondition, "upstream says no").WithDetails(
			&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})
		return st.Err()
	}
	for {
		var f frame
		if err := ss.RecvMsg(&f); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(&f); err != nil {
			return err
		}
	}
}

// syncBuffer collects the gateway's stdout.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testGateway struct {
	addr   string
	out    *syncBuffer
	sig    chan os.Signal
	exited chan int
}

func startGateway(t *testing.T, args ...string) *testGateway {
	t.Helper()
	parsed, err := parseArgs(append([]string{"--listen", "127.0.0.1:0"}, args...))
	if err == nil {
		err = parsed.options.Check()
	}
	if err != nil {
		t.Fatal(err)
	}
	g := &testGateway{out: &syncBuffer{}, sig: make(chan os.Signal, 2), exited: make(chan int, 1)}
	gw, err := build(&parsed.options, g.out)
	if err != nil {
		t.Fatal(err)
	}
	g.addr = gw.listener.Addr().String()
	go func() { g.exited <- gw.run(g.sig) }()
	t.Cleanup(func() { g.stop(t) })
	return g
}

// stop sends SIGTERM once and returns the exit status.
func (g *testGateway) stop(t *testing.T) int {
	t.Helper()
	select {
	case g.sig <- syscall.SIGTERM:
	default:
	}
	select {
	case code := <-g.exited:
		g.exited <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not stop")
		return -1
	}
}

func dialRaw(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newCodec())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func bytesFrame(b []byte) *frame {
	return &frame{data: mem.BufferSlice{mem.SliceBuffer(append([]byte(nil), b...))}}
}

// call sends messages on a bidi stream and returns what came back.
func call(ctx context.Context, conn *grpc.ClientConn, method string, md metadata.MD, messages ...string) (header, trailer metadata.MD, got []string, err error) {
	ctx = metadata.NewOutgoingContext(ctx, md)
	cs, err := conn.NewStream(ctx, anyArity, method)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, m := range messages {
		if err := cs.SendMsg(bytesFrame([]byte(m))); err != nil {
			break
		}
	}
	_ = cs.CloseSend()
	header, _ = cs.Header()
	for {
		var f frame
		if err = cs.RecvMsg(&f); err != nil {
			break
		}
		got = append(got, string(f.data.Materialize()))
		f.free()
	}
	if err == io.EOF {
		err = nil
	}
	return header, cs.Trailer(), got, err
}

func healthStatus(t *testing.T, conn *grpc.ClientConn) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return r.GetStatus()
}

// eventually polls cond every 10 ms until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestForwardsMessagesMetadataAndTrailers(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	up.trailer.Store(&metadata.MD{"x-trailer-bin": {"\x00\x01\xff"}})
	gw := startGateway(t, "--upstream", up.addr)
	conn := dialRaw(t, gw.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md := metadata.Pairs("x-echo-a", "1", "x-echo-a", "2", "x-echo-b-bin", "\x00\x01", "host", "elsewhere")
	header, trailer, got, err := call(ctx, conn, "/test.S/Echo", md, "one", "", "three")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "one,,three" {
		t.Errorf("messages = %q", got)
	}
	if a := header.Get("x-echo-a"); len(a) != 2 || a[1] != "2" || header.Get("x-echo-b-bin")[0] != "\x00\x01" {
		t.Errorf("header = %v", header)
	}
	if trailer.Get("x-trailer-bin")[0] != "\x00\x01\xff" || len(trailer.Get(loadReportKey)) != 0 {
		t.Errorf("trailer = %v, want the upstream's without its ORCA report", trailer)
	}
	if code := gw.stop(t); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

func TestUntrustedClientsMemoryKeysAreStrippedAndCounted(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	for _, tc := range []struct {
		network string
		kept    bool
	}{{"127.0.0.0/8", true}, {"10.0.0.0/8", false}} {
		gw := startGateway(t, "--upstream", up.addr, "--trust-network", tc.network)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		md := metadata.Pairs(levelKey, "3", "x-echo-a", "1")
		header, _, _, err := call(ctx, dialRaw(t, gw.addr), "/test.S/Echo", md, "x")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := len(header.Get(levelKey)) == 1; got != tc.kept || header.Get("x-echo-a") == nil {
			t.Errorf("trusting %s: header %v", tc.network, header)
		}
		gw.stop(t)
		counted := strings.Contains(gw.out.String(), `"untrusted_memory_keys":1`)
		if counted == tc.kept {
			t.Errorf("trusting %s: %s", tc.network, gw.out.String())
		}
	}
}

func TestHeadersArriveBeforeTheFirstMessage(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	gw := startGateway(t, "--upstream", up.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := dialRaw(t, gw.addr).NewStream(ctx, anyArity, "/test.S/Echo")
	if err != nil {
		t.Fatal(err)
	}
	// The upstream sends its headers before reading; a proxy that waits
	// for the first response message would block here until the deadline.
	header, err := cs.Header()
	if err != nil || header.Get("x-upstream")[0] != up.addr {
		t.Fatalf("Header() = %v, %v", header, err)
	}
	_ = cs.CloseSend()
	if err := cs.RecvMsg(&frame{}); err != io.EOF {
		t.Errorf("RecvMsg = %v, want EOF", err)
	}
}

func TestStatusAndDetailsPassThroughUnchanged(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	gw := startGateway(t, "--upstream", up.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, _, direct := call(ctx, dialRaw(t, up.addr), "/test.S/Fail", nil)
	_, _, _, via := call(ctx, dialRaw(t, gw.addr), "/test.S/Fail", nil)
	if !proto.Equal(status.Convert(direct).Proto(), status.Convert(via).Proto()) || status.Code(via) != codes.FailedPrecondition {
		t.Errorf("via the gateway %v, direct %v", status.Convert(via).Proto(), status.Convert(direct).Proto())
	}
}

func TestDeadlineAndCancellationKeepTheirCodes(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	gw := startGateway(t, "--upstream", up.addr)
	conn := dialRaw(t, gw.addr)
	eventually(t, "connected", func() bool { // the deadline below is for the call, not the dial
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x")
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	cs, err := conn.NewStream(ctx, anyArity, "/test.S/Echo") // never half-closed: ends by the deadline
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(&frame{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("deadline: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cs, err = conn.NewStream(ctx, anyArity, "/test.S/Echo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Header(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := cs.RecvMsg(&frame{}); status.Code(err) != codes.Canceled {
		t.Errorf("cancel: %v", err)
	}
}

// level3Trailer is an upstream's keys at level 3 (97 %).
func level3Trailer() metadata.MD {
	return metadata.Pairs(encodePairs(memcontract.Pressure{UsageRatio: 0.97, Level: memcontract.LevelCritical})...)
}

func TestLevel3UpstreamIsSkippedAndShedWhenAlone(t *testing.T) {
	hot, calm := startUpstream(t, "127.0.0.1:0"), startUpstream(t, "127.0.0.1:0")
	md := level3Trailer()
	md.Set(retryPushbackKey, "60000")
	hot.trailer.Store(&md)
	gw := startGateway(t, "--upstream", hot.addr, "--upstream", calm.addr, "--core-method", "/test.S/Ping")
	conn := dialRaw(t, gw.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eventually(t, "both READY, hot reported", func() bool {
		// Until calm is READY a call may find only hot, and be refused here.
		if _, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x"); err != nil && status.Code(err) != codes.ResourceExhausted {
			t.Fatal(err)
		}
		return hot.calls.Load() > 0 && calm.calls.Load() > 0
	})
	before := hot.calls.Load()
	for range 50 {
		if _, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x"); err != nil {
			t.Fatalf("with a calm upstream a call failed: %v", err)
		}
	}
	if hot.calls.Load() != before {
		t.Errorf("the level-3 upstream got %d non-core calls", hot.calls.Load()-before)
	}
	calm.server.Stop() // now only the level-3 upstream serves
	eventually(t, "the calm upstream is gone", func() bool {
		_, trailer, _, err := call(ctx, conn, "/test.S/Echo", nil, "x")
		return status.Code(err) == codes.ResourceExhausted && trailer.Get(retryPushbackKey) != nil
	})
	_, trailer, _, err := call(ctx, conn, "/test.S/Echo", nil, "x")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "not forwarded") || strings.Contains(msg, hot.addr) {
		t.Errorf("shed message %q", msg)
	}
	if trailer.Get(levelKey)[0] != "3" {
		t.Errorf("shed trailer %v", trailer)
	}
	if _, _, _, err := call(ctx, conn, "/test.S/Ping", nil, "x"); err != nil {
		t.Errorf("core call: %v", err)
	}
}

func TestHalfOpenUpstreamsAtLevel3KeepGettingCallsAfterTheWindow(t *testing.T) {
	a, b := startUpstream(t, "127.0.0.1:0"), startUpstream(t, "127.0.0.1:0")
	md := level3Trailer()
	pushback := "300"
	for _, u := range []*testUpstream{a, b} {
		u.trailer.Store(&md)
		u.shedPushback.Store(&pushback)
	}
	// Without --contract the window of an answer without a pushback would
	// be 1 s (retry_pushback_ms): far longer than the calls below.
	gw := startGateway(t, "--upstream", a.addr, "--upstream", b.addr, "--core-method", "/test.S/Ping")
	conn := dialRaw(t, gw.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	eventually(t, "both upstreams shed a call", func() bool {
		if _, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x"); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("a call while both upstreams shed: %v, want RESOURCE_EXHAUSTED", err)
		}
		return a.calls.Load() > 0 && b.calls.Load() > 0
	})
	// Both go half-open: still at level 3, they serve non-core calls and
	// answer them without a pushback.
	for _, u := range []*testUpstream{a, b} {
		u.shedPushback.Store(nil)
	}
	eventually(t, "a call served once the window is over", func() bool {
		_, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x")
		if err != nil && status.Code(err) != codes.ResourceExhausted {
			t.Fatal(err)
		}
		return err == nil
	})
	before := a.calls.Load() + b.calls.Load()
	served := 0
	for range 4 {
		if _, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x"); err == nil {
			served++
		} else if status.Code(err) != codes.ResourceExhausted {
			t.Fatal(err)
		}
	}
	if served != 4 || a.calls.Load()+b.calls.Load()-before != 4 {
		t.Errorf("after the window %d of 4 non-core calls were served by half-open upstreams at level 3, "+
			"want 4 (an answer without a pushback ends the window)", served)
	}
	if _, _, _, err := call(ctx, conn, "/test.S/Ping", nil, "x"); err != nil {
		t.Errorf("core call: %v", err)
	}
}

func TestFailoverWhenAnUpstreamStops(t *testing.T) {
	a, b := startUpstream(t, "127.0.0.1:0"), startUpstream(t, "127.0.0.1:0")
	gw := startGateway(t, "--upstream", a.addr, "--upstream", b.addr)
	conn := dialRaw(t, gw.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	eventually(t, "both upstreams get calls", func() bool {
		_, _, _, _ = call(ctx, conn, "/test.S/Echo", nil, "x")
		return a.calls.Load() > 0 && b.calls.Load() > 0
	})
	a.server.Stop()
	failed := 0
	for range 200 {
		if _, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x"); err != nil {
			failed++
		}
	}
	if failed > 1 { // at most the call in flight when the upstream went
		t.Errorf("%d of 200 calls failed after one of two upstreams stopped", failed)
	}
}

func TestRestartedUpstreamGetsCallsWithinASecond(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	gw := startGateway(t, "--upstream", up.addr)
	conn := dialRaw(t, gw.addr)
	eventually(t, "serving", func() bool { return healthStatus(t, conn) == healthpb.HealthCheckResponse_SERVING })
	up.server.Stop()
	eventually(t, "not serving", func() bool { return healthStatus(t, conn) == healthpb.HealthCheckResponse_NOT_SERVING })
	time.Sleep(2 * time.Second) // let the reconnect backoff grow to its cap
	restarted := startUpstream(t, up.addr)
	start := time.Now()
	eventually(t, "calls again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x")
		return err == nil
	})
	if waited := time.Since(start); waited > 1200*time.Millisecond || restarted.calls.Load() == 0 {
		t.Errorf("the restarted upstream got calls after %v", waited)
	}
	// Its reconnect attempts while down (four or more in those two seconds)
	// are not logged: one failure, then READY again (lines are written by a
	// goroutine of their own: the READY line may come a moment later).
	states := func() []string {
		var states []string
		for _, line := range strings.Split(gw.out.String(), "\n") {
			var ev struct{ Event, State string }
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "upstream" {
				states = append(states, ev.State)
			}
		}
		return states
	}
	eventually(t, "READY logged", func() bool { s := states(); return len(s) > 0 && s[len(s)-1] == "READY" })
	got := states()
	if failures := len(slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s != "TRANSIENT_FAILURE" })); failures != 1 || len(got) > 6 {
		t.Errorf("upstream lines %v: want one TRANSIENT_FAILURE while it was down, READY last", got)
	}
}

// An upstream that hangs with its connection up stays READY; once a few
// calls wait on it, new calls go to the upstream that answers, so the
// callers are not all caught waiting on the hung one.
func TestCallsGoAroundAnUpstreamThatHangs(t *testing.T) {
	hung, live := startUpstream(t, "127.0.0.1:0"), startUpstream(t, "127.0.0.1:0")
	gw := startGateway(t, "--upstream", hung.addr, "--upstream", live.addr)
	conn := dialRaw(t, gw.addr)
	eventually(t, "serving", func() bool { return healthStatus(t, conn) == healthpb.HealthCheckResponse_SERVING })
	hung.hung.Store(true)
	var ok, waitedOut atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x")
				cancel()
				switch status.Code(err) {
				case codes.OK:
					ok.Add(1)
				case codes.DeadlineExceeded:
					waitedOut.Add(1)
				default:
					t.Errorf("call: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	// A few calls at a time wait on the hung upstream, each for its 1 s
	// deadline, while the other callers keep calling the live one. Without
	// the rule every caller waits on every other call: about as many calls
	// waited out as were served (23 and 24 in a run).
	if ok.Load() < 100 || ok.Load() < 10*waitedOut.Load() {
		t.Errorf("in 3 s, %d calls OK and %d waited out their deadline on the hung upstream; want 100 OK or more, 10 times as many as waited out",
			ok.Load(), waitedOut.Load())
	}
}

func TestHealthFollowsTheUpstreamsAndTheDrain(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	gw := startGateway(t, "--upstream", up.addr, "--drain-delay-s", "5", "--grace-s", "10")
	conn := dialRaw(t, gw.addr)
	eventually(t, "serving", func() bool { return healthStatus(t, conn) == healthpb.HealthCheckResponse_SERVING })
	up.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	eventually(t, "not serving with the upstream", func() bool {
		return healthStatus(t, conn) == healthpb.HealthCheckResponse_NOT_SERVING
	})
	up.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	eventually(t, "serving again", func() bool { return healthStatus(t, conn) == healthpb.HealthCheckResponse_SERVING })
	gw.sig <- syscall.SIGTERM
	// From the first moment of the drain, and while calls are still taken.
	eventually(t, "not serving in the drain", func() bool {
		return healthStatus(t, conn) == healthpb.HealthCheckResponse_NOT_SERVING
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, _, err := call(ctx, conn, "/test.S/Echo", nil, "x"); err != nil {
		t.Errorf("a call in the drain delay: %v", err)
	}
}

func TestErrorsOfTheGatewayNameNoUpstream(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	_ = lis.Close()
	gw := startGateway(t, "--upstream", dead)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, _, err = call(ctx, dialRaw(t, gw.addr), "/test.S/Echo", nil, "x")
	if status.Code(err) != codes.Unavailable || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error %v: want UNAVAILABLE naming no upstream", err)
	}
}

// freePort returns a port that was free a moment ago (for a flag that takes a
// port number, not a listener).
func freePort(t *testing.T) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

// scrape returns the body of /metrics on port.
func scrape(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func TestMetricsExposition(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	port := freePort(t)
	gw := startGateway(t, "--upstream", up.addr, "--metrics-port", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, _, err := call(ctx, dialRaw(t, gw.addr), "/test.S/Echo", nil, "x"); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, port)
	for _, want := range []string{
		fmt.Sprintf("memcontract_gateway_calls_total{upstream=%q} 1\n", up.addr),
		fmt.Sprintf("memcontract_gateway_upstream_ready{upstream=%q} 1\n", up.addr),
		"# TYPE memcontract_gateway_edge_sheds_total counter\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

// The pressure services speak for the gateway, as its trailers do: its own
// with a contract, none without; never forwarded to an upstream (which
// memcontract top then showed as the gateway's state).
func TestPressureServicesAreTheGatewaysOwn(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	contract := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(contract, []byte("version: v1\nmodules: [{name: gateway, max_heap_mb: 512}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	plain := dial(startGateway(t, "--upstream", up.addr).addr)
	if _, err := memcontractv1.NewMemoryPressureServiceClient(plain).GetPressure(ctx, &memcontractv1.GetPressureRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("GetPressure of a gateway without a contract: %v, want UNIMPLEMENTED", err)
	}
	reports, err := v3orcaservicepb.NewOpenRcaServiceClient(plain).StreamCoreMetrics(ctx, &v3orcaservicepb.OrcaLoadReportRequest{})
	if err == nil {
		_, err = reports.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("out-of-band ORCA of a gateway without a contract: %v, want UNIMPLEMENTED", err)
	}

	owned := dial(startGateway(t, "--upstream", up.addr, "--contract", contract).addr)
	got, err := memcontractv1.NewMemoryPressureServiceClient(owned).GetPressure(ctx, &memcontractv1.GetPressureRequest{})
	if err != nil || got.GetPressure().GetModule() != "gateway" || got.GetPressure().GetCapacityBytes() != 512<<20 {
		t.Errorf("GetPressure of a gateway with a contract: %v, %v; want its own (module gateway, 512 MiB)", got, err)
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("%d pressure-service calls were forwarded to the upstream", n)
	}
}

func TestMetricsWithAContractExposeTheGatewaysOwnPressure(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0")
	port := freePort(t)
	contract := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(contract, []byte("version: v1\nmodules: [{name: gateway, max_heap_mb: 512}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startGateway(t, "--upstream", up.addr, "--contract", contract, "--metrics-port", strconv.Itoa(port))
	body := scrape(t, port)
	for _, want := range []string{
		"# TYPE memcontract_level gauge\n", // the library's families, as every service's
		"memcontract_memory_budget_bytes 5.36870912e+08\n",
		"memcontract_memory_used_bytes ",
		"memcontract_contract_info{module=\"gateway\",version=\"v1\"} 1\n",
		"# TYPE go_goroutines gauge\n",
		fmt.Sprintf("memcontract_gateway_upstream_ready{upstream=%q} ", up.addr), // and its own
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
