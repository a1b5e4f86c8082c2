// Command goproxy is the gateway benchmark's anchor: a transparent gRPC
// proxy with no pressure logic, as an SRE would write one with grpc-go
// (mwitkow/grpc-proxy's design: grpc.UnknownServiceHandler, a raw codec,
// two copy loops, one ClientConn to the upstream). It prints
// {"event":"listening","port":N} and serves until killed.
//
//	goproxy -listen 127.0.0.1:0 -upstream 127.0.0.1:50051
package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
)

// frame is a message as bytes; the codec hands the transport's buffers
// through without a copy.
type frame struct{ data mem.BufferSlice }

type codec struct{}

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	f := v.(*frame)
	data := f.data
	f.data = nil
	return data, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	data.Ref()
	v.(*frame).data = data
	return nil
}

func (codec) Name() string { return "proto" }

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	upstream := flag.String("upstream", "", "upstream HOST:PORT")
	flag.Parse()
	conn, err := grpc.NewClient(*upstream, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec{})))
	if err != nil {
		log.Fatal(err)
	}
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
	handler := func(_ any, ss grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(ss)
		md, _ := metadata.FromIncomingContext(ss.Context())
		ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ss.Context(), md.Copy()))
		defer cancel()
		cs, err := conn.NewStream(ctx, desc, method)
		if err != nil {
			return err
		}
		go func() { // client -> upstream
			for {
				f := &frame{}
				if err := ss.RecvMsg(f); err != nil {
					if err == io.EOF {
						_ = cs.CloseSend()
					} else {
						cancel()
					}
					return
				}
				if cs.SendMsg(f) != nil {
					return
				}
			}
		}()
		if header, err := cs.Header(); err == nil && header != nil {
			_ = ss.SendHeader(header)
		}
		for { // upstream -> client
			f := &frame{}
			if err := cs.RecvMsg(f); err != nil {
				ss.SetTrailer(cs.Trailer())
				if err == io.EOF {
					return nil
				}
				return err
			}
			if err := ss.SendMsg(f); err != nil {
				return err
			}
		}
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer(grpc.ForceServerCodecV2(codec{}), grpc.UnknownServiceHandler(handler))
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"event": "listening", "port": lis.Addr().(*net.TCPAddr).Port})
	log.Fatal(s.Serve(lis))
}
