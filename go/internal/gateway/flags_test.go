package gateway

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want func(o *Options)
	}{
		{"space separated", []string{"--listen", "127.0.0.1:0", "--upstream", "a:1"},
			func(o *Options) { o.Listen, o.Upstreams = "127.0.0.1:0", []string{"a:1"} }},
		{"equals and repeats", []string{"--upstream=a:1", "--listen=h:2", "--upstream", "b:2"},
			func(o *Options) { o.Listen, o.Upstreams = "h:2", []string{"a:1", "b:2"} }},
		{"booleans and numbers", []string{"--upstream-tls", "--grace-s", "2.5", "--max-request-bytes", "1000"},
			func(o *Options) { o.UpstreamTLS, o.GraceS, o.MaxRequestBytes = true, 2.5, 1000 }},
		{"unique prefix", []string{"--grace", "3"}, func(o *Options) { o.GraceS = 3 }},
		{"value starting with a dash", []string{"--module", "-x"}, func(o *Options) { o.Module = "-x" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseArgs(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			want := Defaults()
			tc.want(&want)
			if !reflect.DeepEqual(got.options, want) {
				t.Errorf("parseArgs(%q) = %+v, want %+v", tc.args, got.options, want)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--upstream", "a:1", "--bogus"}, "unrecognized arguments: --bogus"},
		{[]string{"stray"}, "unrecognized arguments: stray"},
		{[]string{"--workers", "two"}, "argument --workers: invalid int value: 'two'"},
		{[]string{"--grace-s", "soon"}, "argument --grace-s: invalid float value: 'soon'"},
		{[]string{"--listen"}, "argument --listen: expected one argument"},
		{[]string{"--upstream-tls=yes"}, "ignored explicit argument"},
		{[]string{"--upstream-c", "x"}, "ambiguous option: --upstream-c could match --upstream-ca, --upstream-cert"},
	} {
		_, err := parseArgs(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseArgs(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestIgnoredOptionsWarn(t *testing.T) {
	got, err := parseArgs([]string{"--workers", "2", "--reflection-timeout-s", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.options.warnings) != 2 || !strings.Contains(got.options.warnings[0], "--workers: ignored") {
		t.Errorf("warnings = %q", got.options.warnings)
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFileWithFlagsWinning(t *testing.T) {
	path := writeFile(t, "gw.yaml", "listen: 127.0.0.1:1\nupstream: a:1\ngrace-s: 2\n"+
		"trust_networks: 10.0.0.0/8\ncore_methods: ['/x/*', '/y/*']\nupstream_tls: true\nworkers: 3\n")
	got, err := parseArgs([]string{"--config", path, "--listen", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	o := got.options
	if o.Listen != "127.0.0.1:0" || !reflect.DeepEqual(o.Upstreams, []string{"a:1"}) || o.GraceS != 2 ||
		!reflect.DeepEqual(o.TrustNetworks, []string{"10.0.0.0/8"}) || len(o.CoreMethods) != 2 || !o.UpstreamTLS {
		t.Errorf("options = %+v", o)
	}
	if len(o.warnings) != 1 || !strings.Contains(o.warnings[0], "gw.yaml:7: workers: ignored") {
		t.Errorf("warnings = %q", o.warnings)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"listen: 127.0.0.1:0\nupstreams: [a:1]\nworkerz: 2\n", "cfg.yaml:3: workerz: unknown key (did you mean 'workers'?)"},
		{"listen: 127.0.0.1:0\nworkers: lots\n", "cfg.yaml:2: workers: expected int, got 'lots'"},
		{"grace_s: true\n", "cfg.yaml:1: grace_s: expected int or float, got True"},
		{"upstreams: [1, 2]\n", "cfg.yaml:1: upstreams: expected a list of strings"},
		{"listen: [unclosed\n", "cfg.yaml:1: not valid YAML: did not find expected ',' or ']'"},
		{"- a list\n", "cfg.yaml:1: expected a mapping of options"},
	} {
		path := writeFile(t, "cfg.yaml", tc.text)
		_, err := parseArgs([]string{"--config", path})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		change func(o *Options)
		want   string
	}{
		{func(o *Options) { o.Upstreams = nil }, "at least one --upstream"},
		{func(o *Options) { o.Listen = "nowhere" }, "listen: 'nowhere' is not HOST:PORT"},
		{func(o *Options) { o.Upstreams = []string{"h:99999"} }, "upstream: 'h:99999' is not HOST:PORT"},
		{func(o *Options) { o.TLSCert = "x.pem" }, "tls_cert and tls_key go together"},
		{func(o *Options) { o.GraceS = -1 }, "grace_s: must be a number >= 0"},
		{func(o *Options) { o.MaxMetadataBytes = 10 }, "max_metadata_bytes: must be a number >= 1024"},
		{func(o *Options) { o.TrustNetworks = []string{"ten"} }, "trust_networks:"},
		{func(o *Options) { o.Contract = "/nonexistent.yaml" }, "contract: cannot read '/nonexistent.yaml'"},
	} {
		o := Defaults()
		o.Listen, o.Upstreams = "127.0.0.1:0", []string{"127.0.0.1:1"}
		tc.change(&o)
		if err := o.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check() = %v, want %q", err, tc.want)
		}
	}
}

func TestHelpDocumentsEveryOption(t *testing.T) {
	var b strings.Builder
	usage(&b, Prog)
	for _, opt := range options {
		name := "--" + opt.flag + " "
		if !strings.Contains(b.String(), name) {
			t.Errorf("--help lacks %q", name)
		}
	}
	if !strings.Contains(b.String(), "--config FILE") {
		t.Error("--help lacks --config FILE")
	}
}
