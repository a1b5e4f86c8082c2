package a

import (
	"example.com/memcontract"
	"google.golang.org/grpc"
)

var srv = memcontract.NewServer()

func bare() {
	grpc.NewServer()                             // want `MC001: grpc.NewServer without memcontract`
	grpc.NewServer(grpc.MaxRecvMsgSize(1 << 20)) // want `MC001: grpc.NewServer without memcontract`
}

func direct() {
	grpc.NewServer(srv.ServerOptions()...)
}

func appended() {
	opts := append(srv.ServerOptions(), grpc.MaxRecvMsgSize(1<<20))
	grpc.NewServer(opts...)
}

func appendedLater() {
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(1 << 20)}
	opts = append(opts, srv.ServerOptions()...)
	grpc.NewServer(opts...)
}

func declared() {
	var opts = srv.ServerOptions()
	grpc.NewServer(opts...)
}

func localWithoutMemcontract() {
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(1 << 20)}
	opts = append(opts, grpc.MaxRecvMsgSize(2))
	grpc.NewServer(opts...) // want `MC001`
}

func onlyUnary() {
	grpc.NewServer(grpc.ChainUnaryInterceptor(srv.UnaryServerInterceptor())) // want `MC001: grpc.NewServer gets a memcontract interceptor but not ServerOptions`
}

// Options that come from elsewhere cannot be followed: not reported.
func fromParam(opts []grpc.ServerOption) {
	grpc.NewServer(opts...)
}

var packageOpts []grpc.ServerOption

func fromPackage() {
	grpc.NewServer(packageOpts...)
}

func fromCall() {
	grpc.NewServer(options()...)
	local := options()
	grpc.NewServer(append(local, grpc.MaxRecvMsgSize(1))...)
}

func options() []grpc.ServerOption { return nil }

// A look-alike: a NewServer that is not grpc's.
type other struct{}

func (other) NewServer() {}

func lookAlike() {
	var o other
	o.NewServer()
	NewServer()
}

func NewServer() {}

func inClosure() {
	_ = func() {
		grpc.NewServer() // want `MC001`
	}
}
