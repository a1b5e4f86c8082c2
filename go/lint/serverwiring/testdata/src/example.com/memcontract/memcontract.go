// Package memcontract is a stub of the memcontract Go package's server side.
package memcontract

import "google.golang.org/grpc"

type Server struct{}

func NewServer() *Server { return &Server{} }

func (*Server) ServerOptions() []grpc.ServerOption                    { return nil }
func (*Server) UnaryServerInterceptor() grpc.UnaryServerInterceptor   { return nil }
func (*Server) StreamServerInterceptor() grpc.StreamServerInterceptor { return nil }
