package temporalclient

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/testpki"
)

// fakeAPIKey is not a real key: tests only.
const fakeAPIKey = "test-api-key-not-real-0123456789"

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSecurityFlagsFallBackToEnvironment(t *testing.T) {
	t.Setenv(EnvTLS, "")
	t.Setenv(EnvTLSCert, "/etc/hookrelay/client.pem")
	t.Setenv(EnvTLSKey, "/etc/hookrelay/client.key")
	t.Setenv(EnvTLSCA, "/etc/hookrelay/ca.pem")
	t.Setenv(EnvTLSServerName, "temporal.internal")
	t.Setenv(EnvAPIKey, fakeAPIKey)
	t.Setenv(EnvAPIKeyFile, "")
	var o Options
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	want := Security{TLSCert: "/etc/hookrelay/client.pem", TLSKey: "/etc/hookrelay/client.key", TLSCA: "/etc/hookrelay/ca.pem",
		TLSServerName: "temporal.internal", APIKey: fakeAPIKey}
	if o.Security != want {
		t.Fatalf("from environment: %+v, want %+v", o.Security, want)
	}
	if !o.Enabled() || o.Mode() != "mutual-tls+api-key" {
		t.Fatalf("Enabled %t, Mode %q", o.Enabled(), o.Mode())
	}
	if strings.Contains(fs.FlagUsages(), fakeAPIKey) {
		t.Fatal("--help shows the API key taken from the environment")
	}
	var notice strings.Builder
	fs.SetOutput(&notice)
	if err := fs.Parse([]string{"--api-key", "other-key", "--tls-server-name", "flag.example"}); err != nil || o.APIKey != "other-key" || o.TLSServerName != "flag.example" {
		t.Fatalf("a flag must win over the environment: %+v, %v", o.Security, err)
	}
	// --api-key is deprecated: still taken, with a notice naming the ways that keep the key out of ps.
	if !strings.Contains(notice.String(), "--api-key has been deprecated") || !strings.Contains(notice.String(), EnvAPIKey) ||
		!strings.Contains(notice.String(), "--api-key-file") || strings.Contains(notice.String(), "other-key") {
		t.Fatalf("--api-key notice %q", notice.String())
	}
	if strings.Contains(fs.FlagUsages(), "--api-key ") {
		t.Error("--help still offers --api-key")
	}

	t.Setenv(EnvTLS, "maybe")
	var bad Options
	badFlags := pflag.NewFlagSet("t", pflag.ContinueOnError)
	bad.AddFlags(badFlags)
	if err := cmdline.Parse(badFlags, nil, 0); err == nil || !errors.Is(err, cmdline.ErrUsage) || !strings.HasPrefix(err.Error(), "--tls: TEMPORAL_TLS=") {
		t.Fatalf("TEMPORAL_TLS=maybe: %v, want a usage error naming --tls and the variable", err)
	}
	if err := cmdline.Parse(badFlags, []string{"--tls"}, 0); err != nil {
		t.Fatalf("--tls given on the command line overrides TEMPORAL_TLS=maybe: %v", err)
	}
}

func TestSecurityModes(t *testing.T) {
	for _, c := range []struct {
		s    Security
		mode string
	}{
		{Security{}, "plaintext"},
		{Security{TLS: true}, "tls"},
		{Security{TLSCA: "ca.pem"}, "tls"},
		{Security{TLSServerName: "x"}, "tls"},
		{Security{APIKey: fakeAPIKey}, "tls+api-key"},
		{Security{APIKeyFile: "key"}, "tls+api-key"},
		{Security{TLSCert: "c", TLSKey: "k"}, "mutual-tls"},
	} {
		if got := c.s.Mode(); got != c.mode {
			t.Errorf("%+v: Mode %q, want %q", c.s, got, c.mode)
		}
		if got := c.s.Enabled(); got != (c.mode != "plaintext") {
			t.Errorf("%+v: Enabled %t", c.s, got)
		}
	}
}

// Every misconfiguration fails before any connection, with an error that
// names the flag and quotes no key material.
func TestMisconfiguredSecurityNamesTheFlag(t *testing.T) {
	ca := testpki.NewCA(t, "test")
	a, b := ca.Client("a"), ca.Client("b")
	expired := ca.ExpiredClient("old")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a PEM file\n"), 0o600)
	emptyKey := filepath.Join(dir, "empty-key")
	os.WriteFile(emptyKey, []byte("\n"), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	keyPEM, _ := os.ReadFile(a.KeyFile)

	for _, c := range []struct {
		name string
		s    Security
		want string // the error's prefix
		also string // and something it says
	}{
		{"cert without key", Security{TLSCert: a.CertFile}, "--tls-key: required with --tls-cert", ""},
		{"key without cert", Security{TLSKey: a.KeyFile}, "--tls-cert: required with --tls-key", ""},
		{"unreadable cert", Security{TLSCert: missing, TLSKey: a.KeyFile}, "--tls-cert: ", "no such file"},
		{"unreadable key", Security{TLSCert: a.CertFile, TLSKey: missing}, "--tls-key: ", "no such file"},
		{"unreadable CA", Security{TLSCA: missing}, "--tls-ca: ", "no such file"},
		{"cert not PEM", Security{TLSCert: garbage, TLSKey: a.KeyFile}, "--tls-cert " + garbage, "no PEM certificate"},
		{"key given as cert", Security{TLSCert: a.KeyFile, TLSKey: a.KeyFile}, "--tls-cert " + a.KeyFile, "no PEM certificate"},
		{"key not PEM", Security{TLSCert: a.CertFile, TLSKey: garbage}, "--tls-key " + garbage, "no PEM private key"},
		{"cert given as key", Security{TLSCert: a.CertFile, TLSKey: a.CertFile}, "--tls-key " + a.CertFile, "no PEM private key"},
		{"CA not PEM", Security{TLSCA: garbage}, "--tls-ca " + garbage, "no PEM certificate"},
		{"mismatched pair", Security{TLSCert: a.CertFile, TLSKey: b.KeyFile}, "--tls-key " + b.KeyFile, "does not match the certificate in --tls-cert " + a.CertFile},
		{"expired cert", Security{TLSCert: expired.CertFile, TLSKey: expired.KeyFile}, "--tls-cert " + expired.CertFile, "expired"},
		{"key and key file", Security{APIKey: fakeAPIKey, APIKeyFile: emptyKey}, "--api-key-file: conflicts with --api-key", ""},
		{"empty key file", Security{APIKeyFile: emptyKey}, "--api-key-file " + emptyKey, "empty"},
		{"unreadable key file", Security{APIKeyFile: missing}, "--api-key-file: ", "no such file"},
		{"key with a space", Security{APIKey: "two words"}, "--api-key: contains white space", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := Options{Address: DefaultAddress, Namespace: "default", TaskQueue: "webhooks", InsecurePlaintext: true, Security: c.s}
			_, err := clientOptions(o, quietLogger())
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, c.want) || !strings.Contains(msg, c.also) {
				t.Fatalf("error %q, want it to start %q and say %q", msg, c.want, c.also)
			}
			if strings.Contains(msg, "PRIVATE KEY") || strings.Contains(msg, string(keyPEM[30:60])) || strings.Contains(msg, fakeAPIKey) {
				t.Fatalf("error quotes key material: %q", msg)
			}
			// Dial refuses the same way, before connecting to anything.
			if _, err := Dial(context.Background(), o, quietLogger()); err == nil || err.Error() != msg {
				t.Fatalf("Dial: %v, want %q", err, msg)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	if cfg, err := (Security{}).TLSConfig(); cfg != nil || err != nil {
		t.Fatalf("plaintext: %v, %v", cfg, err)
	}
	ca := testpki.NewCA(t, "test")
	c := ca.Client("worker")
	cfg, err := Security{TLSCert: c.CertFile, TLSKey: c.KeyFile, TLSCA: ca.CertFile, TLSServerName: "temporal.internal"}.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 1 || cfg.RootCAs == nil || cfg.ServerName != "temporal.internal" || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("config: %+v", cfg)
	}
	if cfg, err := (Security{APIKey: fakeAPIKey}).TLSConfig(); err != nil || cfg == nil || cfg.RootCAs != nil {
		t.Fatalf("an API key implies TLS with the system roots: %+v, %v", cfg, err)
	}
}

// frontend is a stand-in Temporal frontend answering only GetSystemInfo,
// which Dial calls first; it records each call's metadata and client certificate.
type frontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
	mu     sync.Mutex
	calls  []metadata.MD
	client []string // verified client certificate common names
}

func (f *frontend) GetSystemInfo(ctx context.Context, _ *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	cn := ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 {
			cn = info.State.VerifiedChains[0][0].Subject.CommonName
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.client = append(f.calls, md), append(f.client, cn)
	return &workflowservice.GetSystemInfoResponse{}, nil
}

func startFrontend(t *testing.T, cfg *tls.Config) (*frontend, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &frontend{}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	workflowservice.RegisterWorkflowServiceServer(srv, f)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return f, ln.Addr().String()
}

func dialWith(t *testing.T, addr string, s Security) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{Address: addr, Namespace: "mail", TaskQueue: "webhooks", InsecurePlaintext: true, Security: s}, quietLogger())
	if err == nil {
		c.Close()
	}
	return err
}

// An API key travels as a bearer token, and only over TLS.
func TestAPIKeyIsSentOverTLS(t *testing.T) {
	ca := testpki.NewCA(t, "test")
	f, addr := startFrontend(t, &tls.Config{Certificates: []tls.Certificate{ca.Server().TLS}, MinVersion: tls.VersionTLS12})

	keyFile := filepath.Join(t.TempDir(), "api-key")
	os.WriteFile(keyFile, []byte(fakeAPIKey+"\n"), 0o600)
	for _, s := range []Security{
		{APIKey: fakeAPIKey, TLSCA: ca.CertFile},
		{APIKeyFile: keyFile, TLSCA: ca.CertFile, TLSServerName: "localhost"},
	} {
		if err := dialWith(t, addr, s); err != nil {
			t.Fatalf("dial %s with %+v: %v", addr, s, err)
		}
	}
	f.mu.Lock()
	for i, md := range f.calls {
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+fakeAPIKey {
			t.Errorf("call %d: authorization %q", i, got)
		}
	}
	f.mu.Unlock()

	// The key alone means TLS verified by the system roots, which do not
	// know this test's CA: the handshake fails and the key is never sent.
	before := len(f.calls)
	err := dialWith(t, addr, Security{APIKey: fakeAPIKey})
	if err == nil || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), fakeAPIKey) {
		t.Fatalf("API key without the test CA: %v, want a certificate error", err)
	}
	if len(f.calls) != before {
		t.Fatal("a call reached the server over an unverified connection")
	}
}

// Mutual TLS: the server sees the client certificate; without one, or with
// one from another CA, it refuses the connection.
func TestMutualTLS(t *testing.T) {
	ca := testpki.NewCA(t, "test")
	f, addr := startFrontend(t, &tls.Config{
		Certificates: []tls.Certificate{ca.Server().TLS}, ClientCAs: ca.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	worker := ca.Client("hookrelay-worker")
	if err := dialWith(t, addr, Security{TLSCert: worker.CertFile, TLSKey: worker.KeyFile, TLSCA: ca.CertFile}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	if len(f.client) != 1 || f.client[0] != "hookrelay-worker" {
		t.Fatalf("client certificates seen: %q", f.client)
	}
	f.mu.Unlock()

	stranger := testpki.NewCA(t, "other").Client("stranger")
	for name, s := range map[string]Security{
		"no client certificate":     {TLSCA: ca.CertFile},
		"certificate of another CA": {TLSCA: ca.CertFile, TLSCert: stranger.CertFile, TLSKey: stranger.KeyFile},
	} {
		if err := dialWith(t, addr, s); err == nil {
			t.Errorf("%s: connected", name)
		}
	}
	if len(f.client) != 1 {
		t.Fatalf("calls without a valid client certificate reached the server: %q", f.client)
	}
}
