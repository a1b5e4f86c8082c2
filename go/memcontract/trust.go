package memcontract

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// TrustPolicy says whose reported pressure counts (SPEC §7), as Python's
// TrustPolicy: by default every caller; TrustOnly limits it to caller
// addresses in some networks and to TLS peer identities. An untrusted
// caller's headers never reach PeerPressureFromContext (so they cannot
// change what a handler does with them) and are counted; no caller's header
// ever sheds a call (only the server's own level does).
type TrustPolicy struct {
	all        bool
	networks   []netip.Prefix
	identities map[string]bool
}

// TrustAll trusts every caller (the default).
func TrustAll() TrustPolicy { return TrustPolicy{all: true} }

// TrustOnly trusts callers whose address is in one of networks (CIDRs such
// as "10.0.0.0/8" or "::1/128"; a bare address is a single host) or whose
// TLS certificate names one of identities (a DNS or URI SAN, e.g. a SPIFFE
// ID, or the subject CN).
func TrustOnly(networks, identities []string) (TrustPolicy, error) {
	p := TrustPolicy{identities: map[string]bool{}}
	for _, n := range networks {
		prefix, err := netip.ParsePrefix(n)
		if err != nil {
			addr, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return TrustPolicy{}, fmt.Errorf("memcontract: trusted network %q: %w", n, err)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		p.networks = append(p.networks, prefix.Masked())
	}
	for _, id := range identities {
		p.identities[id] = true
	}
	return p, nil
}

// Trusts reports whether the caller of the call in ctx is trusted.
func (p TrustPolicy) Trusts(ctx context.Context) bool {
	if p.all {
		return true
	}
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	if tlsInfo, ok := pr.AuthInfo.(credentials.TLSInfo); ok && p.trustsIdentity(tlsInfo.State) {
		return true
	}
	return p.trustsAddr(pr.Addr)
}

func (p TrustPolicy) trustsIdentity(state tls.ConnectionState) bool {
	if len(p.identities) == 0 || len(state.PeerCertificates) == 0 {
		return false
	}
	cert := state.PeerCertificates[0]
	names := append([]string{cert.Subject.CommonName}, cert.DNSNames...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	for _, n := range names {
		if n != "" && p.identities[n] {
			return true
		}
	}
	return false
}

func (p TrustPolicy) trustsAddr(a net.Addr) bool {
	if a == nil {
		return false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, n := range p.networks {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}
