// Package grpc is a stub of google.golang.org/grpc's server options.
package grpc

type ServerOption interface{ apply() }

type opt struct{}

func (opt) apply() {}

type Server struct{}

func NewServer(opt ...ServerOption) *Server { return &Server{} }

type UnaryServerInterceptor func()
type StreamServerInterceptor func()

func MaxRecvMsgSize(int) ServerOption                              { return opt{} }
func ChainUnaryInterceptor(...UnaryServerInterceptor) ServerOption { return opt{} }
func ChainStreamInterceptor(...StreamServerInterceptor) ServerOption {
	return opt{}
}
