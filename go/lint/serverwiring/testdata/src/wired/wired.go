// Package wired builds its server with memcontract: no finding (the command's tests run on it).
package wired

import (
	"example.com/memcontract"
	"google.golang.org/grpc"
)

func Serve(srv *memcontract.Server) *grpc.Server {
	return grpc.NewServer(srv.ServerOptions()...)
}
