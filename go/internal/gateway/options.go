package gateway

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/memcontract/memcontract/go/memcontract"
)

// MiB is the number of bytes in a mebibyte.
const MiB = 1 << 20

// Options is everything the gateway is told, from flags and/or a YAML file
// (keys: the long flag names with underscores). Check validates them.
type Options struct {
	// Listen is HOST:PORT to serve on (port 0: any free port).
	Listen string
	// Upstreams are the HOST:PORT of each upstream server (at least one).
	Upstreams []string
	// Contract and Module: the gateway's own memory contract (optional).
	Contract, Module string
	// CoreMethods are extra method globs never shed (health always is; the
	// contract's core_methods count too).
	CoreMethods []string
	// DescriptorSets are FileDescriptorSet files (protoc -o) the gateway
	// answers server reflection from.
	DescriptorSets []string
	// GraceS is the time in seconds in-flight calls get after SIGTERM.
	GraceS float64
	// DrainDelayS is how long the gateway keeps taking calls after SIGTERM
	// while health says NOT_SERVING, so that balancers move away first.
	DrainDelayS float64
	// MaxRequestBytes and MaxResponseBytes bound one message each way.
	MaxRequestBytes, MaxResponseBytes int
	// MaxMetadataBytes bounds the headers (and trailers) of a call each way.
	MaxMetadataBytes int
	// TrustNetworks and TrustIdentities: clients whose x-memory-* keys are
	// forwarded (CIDRs, TLS identities); both empty: every client.
	TrustNetworks, TrustIdentities []string
	// TLSCert and TLSKey serve TLS; TLSClientCA also requires client
	// certificates signed by it.
	TLSCert, TLSKey, TLSClientCA string
	// UpstreamTLS dials upstreams with TLS (roots: UpstreamCA or the
	// system's); UpstreamCert and UpstreamKey are the client certificate;
	// UpstreamServerName is the name upstream certificates must carry.
	UpstreamTLS                           bool
	UpstreamCA, UpstreamCert, UpstreamKey string
	UpstreamServerName                    string
	// ExposeUpstreamAddresses lets errors the gateway makes itself (an
	// upstream it cannot reach) keep the upstream's address for the client.
	ExposeUpstreamAddresses bool
	// MetricsPort, when not 0, serves the gateway's counters in the
	// Prometheus text format on :PORT/metrics (0: none).
	MetricsPort int

	// warnings are the accepted-but-ignored options seen (workers, ...).
	warnings []string
}

// Defaults returns the options before any flag or file.
func Defaults() Options {
	return Options{
		GraceS:           10,
		DrainDelayS:      0.5,
		MaxRequestBytes:  4 * MiB,
		MaxResponseBytes: 4 * MiB,
		MaxMetadataBytes: 1 * MiB,
	}
}

// ConfigError is a bad option, flag or config file; the CLI prints it as one
// line and exits 2.
type ConfigError struct{ Message string }

func (e *ConfigError) Error() string { return e.Message }

func configErrorf(format string, args ...any) error {
	return &ConfigError{Message: fmt.Sprintf(format, args...)}
}

// Check validates every option, naming the option in the error.
func (o *Options) Check() error {
	if _, err := splitAddress(o.Listen, "listen"); err != nil {
		return err
	}
	if len(o.Upstreams) == 0 {
		return configErrorf("upstreams: at least one --upstream HOST:PORT is needed")
	}
	for _, u := range o.Upstreams {
		if _, err := splitAddress(u, "upstream"); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		name  string
		value float64
		low   float64
	}{
		{"grace_s", o.GraceS, 0},
		{"drain_delay_s", o.DrainDelayS, 0},
		{"max_request_bytes", float64(o.MaxRequestBytes), 1},
		{"max_response_bytes", float64(o.MaxResponseBytes), 1},
		{"max_metadata_bytes", float64(o.MaxMetadataBytes), 1024},
	} {
		if c.value < c.low {
			return configErrorf("%s: must be a number >= %g, got %g", c.name, c.low, c.value)
		}
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return configErrorf("tls_cert and tls_key go together")
	}
	if o.TLSClientCA != "" && o.TLSCert == "" {
		return configErrorf("tls_client_ca needs tls_cert and tls_key")
	}
	if (o.UpstreamCert == "") != (o.UpstreamKey == "") {
		return configErrorf("upstream_cert and upstream_key go together")
	}
	for _, f := range []struct{ name, path string }{
		{"contract", o.Contract}, {"tls_cert", o.TLSCert}, {"tls_key", o.TLSKey},
		{"tls_client_ca", o.TLSClientCA}, {"upstream_ca", o.UpstreamCA},
		{"upstream_cert", o.UpstreamCert}, {"upstream_key", o.UpstreamKey},
	} {
		if err := readable(f.name, f.path); err != nil {
			return err
		}
	}
	for _, path := range o.DescriptorSets {
		if err := readable("descriptor_sets", path); err != nil {
			return err
		}
	}
	if _, err := o.trust(); err != nil {
		return err
	}
	if o.MetricsPort < 0 || o.MetricsPort > 65535 {
		return configErrorf("metrics_port: must be 0..65535, got %d", o.MetricsPort)
	}
	return nil
}

// trust is the policy of whose x-memory-* keys are forwarded.
func (o *Options) trust() (memcontract.TrustPolicy, error) {
	if len(o.TrustNetworks) == 0 && len(o.TrustIdentities) == 0 {
		return memcontract.TrustAll(), nil
	}
	p, err := memcontract.TrustOnly(o.TrustNetworks, o.TrustIdentities)
	if err != nil {
		return p, configErrorf("trust_networks: %v", err)
	}
	return p, nil
}

// upstreamTLS reports whether upstreams are dialled with TLS.
func (o *Options) upstreamTLS() bool {
	return o.UpstreamTLS || o.UpstreamCA != "" || o.UpstreamCert != ""
}

type hostPort struct {
	host string
	port int
}

// splitAddress splits HOST:PORT ([v6]:PORT too).
func splitAddress(address, name string) (hostPort, error) {
	host, port, err := net.SplitHostPort(address)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || n < 0 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		return hostPort{}, configErrorf("%s: %s is not HOST:PORT", name, pyRepr(address))
	}
	return hostPort{host: host, port: n}, nil
}

func readable(name, path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return configErrorf("%s: cannot read %s", name, pyRepr(path))
	}
	_ = f.Close()
	return nil
}

// pyRepr quotes s as Python's repr does for plain strings ('...'), as the
// messages of the other memcontract commands do.
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
