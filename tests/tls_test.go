package tests

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/internal/testpki"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// tlsProxy stands in front of the suite's Temporal frontend, which has no
// TLS of its own: it terminates TLS on 127.0.0.1:0 (with client
// certificates required for mutual TLS) and forwards the plain bytes.
type tlsProxy struct {
	addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu         sync.Mutex
	conns      []net.Conn
	handshakes []handshake
}

// handshake is one client's TLS handshake: the verified client certificate's
// common name, or the error.
type handshake struct {
	ClientCN string
	Err      error
}

func startTLSProxy(t *testing.T, upstream string, ca *testpki.CA, mutual bool) *tlsProxy {
	t.Helper()
	if suiteSecurity.Enabled() {
		t.Skipf("the proxy forwards plain TCP, and the suite's server at %s speaks TLS itself (%s)", upstream, suiteSecurity.Mode())
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{ca.Server().TLS},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"}, // gRPC clients insist on ALPN h2
	}
	if mutual {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProxy{addr: ln.Addr().String(), ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(c)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(tls.Server(c, cfg), upstream)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *tlsProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *tlsProxy) serve(c *tls.Conn, upstream string) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := c.HandshakeContext(ctx)
	cancel()
	h := handshake{Err: err}
	if err == nil {
		if chains := c.ConnectionState().VerifiedChains; len(chains) > 0 {
			h.ClientCN = chains[0][0].Subject.CommonName
		}
	}
	p.mu.Lock()
	p.handshakes = append(p.handshakes, h)
	p.mu.Unlock()
	if err != nil {
		return
	}
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	p.track(up)
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done // either side closing ends the pair
}

// clients returns the common names of the verified client certificates seen.
func (p *tlsProxy) clients() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var cns []string
	for _, h := range p.handshakes {
		if h.Err == nil {
			cns = append(cns, h.ClientCN)
		}
	}
	return cns
}

func (p *tlsProxy) failedHandshakes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, h := range p.handshakes {
		if h.Err != nil {
			n++
		}
	}
	return n
}

func dialThrough(addr string, s temporalclient.Security) (client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return temporalclient.Dial(ctx, temporalclient.Options{
		Address: addr, Namespace: namespace, TaskQueue: "unused", CodecKeyFile: codecKeyFile, Security: s,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// The client connects to the dev server through TLS and through mutual TLS,
// and real calls (health, describe namespace) succeed; a client that cannot
// prove the server, or itself, does not get through.
func TestConnectThroughTLSAndMutualTLS(t *testing.T) {
	ca := testpki.NewCA(t, "hookrelay-tests")
	serverTLS := startTLSProxy(t, server.FrontendHostPort(), ca, false)
	mutualTLS := startTLSProxy(t, server.FrontendHostPort(), ca, true)
	worker := ca.Client("hookrelay-worker")

	for _, c := range []struct {
		name  string
		proxy *tlsProxy
		s     temporalclient.Security
	}{
		{"TLS with a private CA", serverTLS, temporalclient.Security{TLSCA: ca.CertFile}},
		{"TLS with a server name", serverTLS, temporalclient.Security{TLSCA: ca.CertFile, TLSServerName: "localhost"}},
		{"mutual TLS", mutualTLS, temporalclient.Security{TLSCA: ca.CertFile, TLSCert: worker.CertFile, TLSKey: worker.KeyFile}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc, err := dialThrough(c.proxy.addr, c.s)
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
				t.Fatalf("health through %s: %v", c.proxy.addr, err)
			}
			resp, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
			if err != nil || resp.GetNamespaceInfo().GetName() != namespace {
				t.Fatalf("describe namespace through %s: %v", c.proxy.addr, err)
			}
		})
	}
	if got := mutualTLS.clients(); len(got) == 0 || got[0] != "hookrelay-worker" {
		t.Fatalf("mutual TLS proxy saw client certificates %q", got)
	}

	stranger := testpki.NewCA(t, "stranger").Client("stranger")
	for _, c := range []struct {
		name  string
		proxy *tlsProxy
		s     temporalclient.Security
	}{
		{"plaintext to a TLS frontend", serverTLS, temporalclient.Security{}},
		{"system roots only", serverTLS, temporalclient.Security{TLS: true}},
		{"wrong server name", serverTLS, temporalclient.Security{TLSCA: ca.CertFile, TLSServerName: "temporal.example.com"}},
		{"no client certificate", mutualTLS, temporalclient.Security{TLSCA: ca.CertFile}},
		{"client certificate of another CA", mutualTLS, temporalclient.Security{TLSCA: ca.CertFile, TLSCert: stranger.CertFile, TLSKey: stranger.KeyFile}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := c.proxy.failedHandshakes()
			tc, err := dialThrough(c.proxy.addr, c.s)
			if err == nil {
				tc.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), "connect to Temporal at "+c.proxy.addr) {
				t.Fatalf("error %q does not say where it could not connect", err)
			}
			// The server side may log its failure just after the client gave up.
			testenv.Eventually(t, 10*time.Second, "a failed handshake at the proxy", func() bool { return c.proxy.failedHandshakes() > before })
		})
	}
}

// The worker and starter binaries connect through mutual TLS with the flags
// (worker) and their environment fallbacks (starter) and deliver an event;
// a worker without a client certificate, or with a pair that does not
// match, stops before it starts, saying why.
func TestWorkerAndStarterOverMutualTLS(t *testing.T) {
	ca := testpki.NewCA(t, "hookrelay-tests")
	proxy := startTLSProxy(t, server.FrontendHostPort(), ca, true)
	workerCert, starterCert := ca.Client("hookrelay-worker"), ca.Client("hookrelay-starter")

	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL+"/hooks", "")
	h := on(hookrelay(t), proxy.addr)
	w := testenv.StartT(t, h.Worker("worker", "--endpoints", endpoints, "--allow-cidr", "127.0.0.0/8",
		"--tls-ca", ca.CertFile, "--tls-cert", workerCert.CertFile, "--tls-key", workerCert.KeyFile, "--tls-server-name", "localhost"))
	if !strings.Contains(w.Log(), `"temporal_security":"mutual-tls"`) {
		t.Fatalf("worker log lacks its connection mode:\n%s", w.Log())
	}

	send := h.Command("starter", "send", "--endpoints", endpoints, "--output", "json")
	send.Env = append(send.Env, temporalclient.EnvTLSCA+"="+ca.CertFile,
		temporalclient.EnvTLSCert+"="+starterCert.CertFile, temporalclient.EnvTLSKey+"="+starterCert.KeyFile)
	send.Stdin = strings.NewReader(sampleEvent(event.Delivered, 951))
	out, err := send.Output()
	if err != nil {
		t.Fatalf("starter send over mutual TLS: %v\n%s", err, stderrOf(err))
	}
	var started startedLine
	if err := json.Unmarshal(out, &started); err != nil {
		t.Fatalf("starter send output %q: %v", out, err)
	}
	if st := result(t, started.WorkflowID); st.Status != workflows.StatusDelivered {
		t.Fatalf("delivery over mutual TLS: %+v", st)
	}
	if reqs := rc.Requests(); len(reqs) != 1 || reqs[0].VerifyErr != nil {
		t.Fatalf("receiver got %+v", reqs)
	}
	seen := map[string]bool{}
	for _, cn := range proxy.clients() {
		seen[cn] = true
	}
	if !seen["hookrelay-worker"] || !seen["hookrelay-starter"] || len(seen) != 2 {
		t.Fatalf("client certificates through the proxy: %v", seen)
	}

	other := ca.Client("other")
	for _, c := range []struct {
		name string
		args []string
		want string
		code int // 2 for a command-line mistake, 1 for anything else
	}{
		{"no client certificate", []string{"--tls-ca", ca.CertFile}, "connect to Temporal at " + proxy.addr, 1},
		{"certificate without its key", []string{"--tls-ca", ca.CertFile, "--tls-cert", workerCert.CertFile}, "--tls-key: required with --tls-cert", 2},
		{"mismatched pair", []string{"--tls-ca", ca.CertFile, "--tls-cert", workerCert.CertFile, "--tls-key", other.KeyFile},
			"--tls-key " + other.KeyFile + ": does not match the certificate in --tls-cert", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Refused at once, or after the 10s dial timeout: never a hang.
			out, err := on(hookrelay(t), proxy.addr).Command("worker", append([]string{"--endpoints", endpoints}, c.args...)...).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != c.code {
				t.Fatalf("worker %v: %v, want exit status %d\n%s", c.args, err, c.code, out)
			}
			if !strings.Contains(string(out), c.want) || strings.Contains(string(out), "worker started") {
				t.Fatalf("worker output %q: want %q and no start", out, c.want)
			}
		})
	}
}

func stderrOf(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(exit.Stderr)
	}
	return ""
}
