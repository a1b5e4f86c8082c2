package gateway

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	_ "google.golang.org/grpc/encoding/proto" // the codec of the gateway's own services
)

// frame is one message as the bytes on the wire: no generated code, no
// copy. The codec takes a reference to the transport's buffers when a
// message is read and hands the same reference back when it is written
// (grpc-go frees what Marshal returns once it is sent).
type frame struct{ data mem.BufferSlice }

// free releases a message that was read but will not be written.
func (f *frame) free() {
	if f.data != nil {
		f.data.Free()
		f.data = nil
	}
}

// codec passes frames through and leaves every other message (health,
// reflection: the gateway's own services) to the proto codec.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2("proto")} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		data := f.data
		f.data = nil
		return data, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		f.free()
		data.Ref()
		f.data = data
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (codec) Name() string { return "proto" }

// proxy is the catch-all handler (grpc.UnknownServiceHandler): every method
// the gateway does not serve itself is forwarded, whatever its arity, as a
// bidirectional stream of frames.
type proxy struct {
	direct   Director
	callOpts []grpc.CallOption
	// ownKeys: the gateway reports its own pressure (its contract), so the
	// upstream's x-memory-* trailers are not passed on.
	ownKeys bool
	// scrub hides upstream addresses in errors the gateway's own client made.
	scrub func(string) string
}

var anyArity = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// handle forwards one call: route it, open the upstream stream, pump.
func (p *proxy) handle(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	ctx, conn, err := p.direct(ss.Context(), method)
	if err != nil {
		return err
	}
	// The upstream call ends with the client's: its cancellation and
	// deadline are the parent's.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait := &awaited{} // the picker counts the call as waiting on its upstream
	defer wait.answered()
	cs, err := conn.NewStream(context.WithValue(ctx, awaitedKey{}, wait), anyArity, method, p.callOpts...)
	if err != nil {
		return p.refused(ss, err)
	}
	return p.pump(ss, cs, cancel, wait)
}

// refused ends a call no upstream took: a shed at the gateway carries its
// trailers; an error of the gateway's own client names no upstream.
func (p *proxy) refused(ss grpc.ServerStream, err error) error {
	var shed *shedError
	if errors.As(err, &shed) {
		ss.SetTrailer(shed.trailer)
		return shed.st.Err()
	}
	return p.ownError(err)
}

// ownError is an error the gateway's client made itself (no upstream sent
// it), with upstream addresses scrubbed from its message.
func (p *proxy) ownError(err error) error {
	st, ok := status.FromError(err)
	if !ok || p.scrub == nil {
		return err
	}
	if msg := p.scrub(st.Message()); msg != st.Message() {
		return status.Error(st.Code(), msg)
	}
	return err
}

// pump copies one call both ways. Client to upstream runs on a goroutine
// of its own (client EOF: CloseSend); upstream to client on this one:
// headers as soon as they arrive, messages, then trailers and the status as
// the upstream sent them (CANCELLED and DEADLINE_EXCEEDED stay what they
// are). A client that fails or goes away cancels the upstream call.
func (p *proxy) pump(ss grpc.ServerStream, cs grpc.ClientStream, cancel context.CancelFunc, wait *awaited) error {
	requests := make(chan error, 1)
	go func() {
		err := forwardRequests(ss, cs)
		requests <- err // before the cancel, so that the status below is this one
		if err != nil {
			cancel()
		}
	}()
	err := p.forwardResponses(ss, cs, wait)
	if err == errClientGone {
		return status.FromContextError(ss.Context().Err()).Err()
	}
	// A client whose stream failed (a message over the limit, say) gets
	// that status rather than the CANCELLED it caused upstream.
	select {
	case reqErr := <-requests:
		if reqErr != nil {
			return reqErr
		}
	default:
	}
	trailer := cs.Trailer()
	ss.SetTrailer(p.upstreamTrailer(trailer))
	if err == io.EOF {
		return nil
	}
	if trailer == nil {
		return p.ownError(err)
	}
	return err
}

// errClientGone: a message could not be written to the client.
var errClientGone = errors.New("client gone")

func (p *proxy) forwardResponses(ss grpc.ServerStream, cs grpc.ClientStream, wait *awaited) error {
	header, err := cs.Header()
	wait.answered()
	if err == nil && header != nil {
		if err := ss.SendHeader(withoutTransport(header)); err != nil {
			return errClientGone
		}
	}
	var f frame
	for {
		if err := cs.RecvMsg(&f); err != nil {
			f.free()
			return err
		}
		if err := ss.SendMsg(&f); err != nil {
			f.free()
			return errClientGone
		}
	}
}

// forwardRequests copies the client's messages upstream until the client
// half-closes (then CloseSend, nil), its stream fails (its error: the caller
// cancels the upstream call) or the upstream call ends (nil: its status
// comes from RecvMsg).
func forwardRequests(ss grpc.ServerStream, cs grpc.ClientStream) error {
	var f frame
	defer f.free()
	for {
		if err := ss.RecvMsg(&f); err != nil {
			if err == io.EOF {
				_ = cs.CloseSend()
				return nil
			}
			return err
		}
		if err := cs.SendMsg(&f); err != nil {
			return nil
		}
	}
}

// upstreamTrailer is an upstream's trailer as the client gets it: without
// the upstream's ORCA report (a client balancing over gateways must not
// weigh a gateway by whichever upstream answered) and, when the gateway
// reports its own pressure, without the upstream's x-memory-* keys.
func (p *proxy) upstreamTrailer(md metadata.MD) metadata.MD {
	if md == nil {
		return nil
	}
	delete(md, loadReportKey)
	if p.ownKeys {
		for k := range md {
			if strings.HasPrefix(k, memoryKeyPrefix) {
				delete(md, k)
			}
		}
	}
	return md
}

// withoutTransport drops from response headers what grpc-go's server sets
// itself for its hop.
func withoutTransport(md metadata.MD) metadata.MD {
	for k := range md {
		if hopByHop[k] || strings.HasPrefix(k, ":") {
			delete(md, k)
		}
	}
	return md
}

var ipPort = regexp.MustCompile(`\[[0-9A-Fa-f:.]+\]:\d+|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?`)

// newScrubber returns a function replacing upstream addresses (the
// configured ones, their hosts, and any IP address) with "upstream".
func newScrubber(upstreams []string) func(string) string {
	var names []string
	for _, u := range upstreams {
		names = append(names, u)
		if hp, err := splitAddress(u, "upstream"); err == nil {
			names = append(names, hp.host)
		}
	}
	return func(msg string) string {
		for _, n := range names {
			msg = strings.ReplaceAll(msg, n, "upstream")
		}
		return ipPort.ReplaceAllString(msg, "upstream")
	}
}
