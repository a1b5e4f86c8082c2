package memcontract

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func TestTrustPolicy(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://example.org/order")
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "order"}, DNSNames: []string{"order.svc"}, URIs: []*url.URL{spiffe}}
	tlsPeer := func(ip string) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{
			Addr:     &net.TCPAddr{IP: net.ParseIP(ip), Port: 5000},
			AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}},
		})
	}
	plainPeer := func(ip string) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 5000}})
	}
	only := func(networks, ids []string) TrustPolicy {
		p, err := TrustOnly(networks, ids)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		policy TrustPolicy
		ctx    context.Context
		want   bool
	}{
		{"default trusts all", TrustAll(), context.Background(), true},
		{"address in a network", only([]string{"10.0.0.0/8"}, nil), plainPeer("10.1.2.3"), true},
		{"address outside", only([]string{"10.0.0.0/8"}, nil), plainPeer("192.168.1.1"), false},
		{"IPv4-mapped IPv6", only([]string{"10.0.0.0/8"}, nil), plainPeer("::ffff:10.0.0.1"), true},
		{"a bare address is one host", only([]string{"::1"}, nil), plainPeer("::1"), true},
		{"SPIFFE ID", only(nil, []string{"spiffe://example.org/order"}), tlsPeer("192.168.1.1"), true},
		{"DNS SAN", only(nil, []string{"order.svc"}), tlsPeer("192.168.1.1"), true},
		{"common name", only(nil, []string{"order"}), tlsPeer("192.168.1.1"), true},
		{"another identity", only(nil, []string{"spiffe://example.org/batch"}), tlsPeer("192.168.1.1"), false},
		{"identity without TLS", only(nil, []string{"order"}), plainPeer("192.168.1.1"), false},
		{"no peer", only([]string{"0.0.0.0/0"}, nil), context.Background(), false},
	}
	for _, tt := range tests {
		if got := tt.policy.Trusts(tt.ctx); got != tt.want {
			t.Errorf("%s: Trusts() = %v, want %v", tt.name, got, tt.want)
		}
	}
}
