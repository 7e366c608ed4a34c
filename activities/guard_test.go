package activities

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testpki"
	"github.com/hookrelay/hookrelay/workflows"
)

// lookup is a resolver the test controls.
func lookup(names map[string]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, ok := names[host]; ok {
			return []netip.Addr{netip.MustParseAddr(a)}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
}

func TestAttemptRefusesBlockedDestination(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	// no --allow-cidr
	client := NewHTTPClient(HTTPOptions{Lookup: lookup(map[string]string{"hooks.customer.example": "127.0.0.1"})})
	for _, url := range []string{
		srv.URL + "/hook?token=fake-token",
		"http://[::ffff:127.0.0.1]:" + port + "/hook?token=fake-token",
		"http://hooks.customer.example:" + port + "/hook?token=fake-token",
	} {
		a := runAttemptWith(t, client, endpointYAML(url, ""))
		if a.Outcome != workflows.OutcomeBlockedDestination || a.Outcome.Retryable() {
			t.Fatalf("%s: attempt = %+v, want a non-retryable blocked_destination", url, a)
		}
		if !strings.Contains(a.Error, "127.0.0.1") || !strings.Contains(a.Error, "loopback") || !strings.Contains(a.Error, "--allow-cidr") {
			t.Errorf("error %q should name the address, its range and --allow-cidr", a.Error)
		}
		if strings.Contains(a.Error, "fake-token") || strings.Contains(a.Error, "hooks.customer.example") {
			t.Errorf("error %q leaks the URL", a.Error)
		}
		if len(a.KeyIDs) != 2 {
			t.Errorf("key ids %v: a refused attempt is still audited with its keys", a.KeyIDs)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the receiver saw %d requests; the guard must refuse before connecting", hits.Load())
	}
}

// The endpoint's timeout bounds the TLS handshake and the body, not just
// the wait for headers (covered by the "timeout" case of TestAttemptOutcomes).
func TestAttemptTimeoutCoversTLSAndBody(t *testing.T) {
	// A listener that accepts and then says nothing: the TLS handshake never finishes.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()

	release := make(chan struct{})
	defer close(release)
	slowBody := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"partial":`))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slowBody.Close()

	for name, url := range map[string]string{
		"TLS handshake": "https://" + silent.Addr().String() + "/",
		"body":          slowBody.URL,
	} {
		t.Run(name, func(t *testing.T) {
			started := time.Now()
			a := runAttempt(t, strings.Replace(endpointYAML(url, ""), "timeout: 2s", "timeout: 300ms", 1))
			if a.Outcome != workflows.OutcomeTimeout {
				t.Fatalf("attempt = %+v, want timeout", a)
			}
			// Well under the transport's own 10s handshake bound: the endpoint's timeout governs.
			if took := time.Since(started); took > 5*time.Second {
				t.Fatalf("attempt took %s with a 300ms timeout", took)
			}
		})
	}
}

// connectProxy is a real HTTP proxy on loopback that tunnels CONNECT to the
// target it is given, and records every request line it gets.
type connectProxy struct {
	addr string
	mu   sync.Mutex
	seen []string // "CONNECT 127.0.0.1:443", or "POST http://..." for an absolute-form request
	auth []string // Proxy-Authorization headers
}

func newConnectProxy(t *testing.T) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &connectProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, req.Method+" "+req.RequestURI)
	p.auth = append(p.auth, req.Header.Get("Proxy-Authorization"))
	p.mu.Unlock()
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	// Like any proxy, it connects where it is told: a name it resolves itself.
	upstream, err := net.DialTimeout("tcp", req.RequestURI, 2*time.Second)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer upstream.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { io.Copy(upstream, c); done <- struct{}{} }()
	go func() { io.Copy(c, upstream); done <- struct{}{} }()
	<-done
}

func (p *connectProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// rebinding answers a name's first lookup with first, and every later one
// with then: what a hostile DNS server does between a check and a connect.
func rebinding(name, first, then string) (lookup func(context.Context, string) ([]netip.Addr, error), calls *atomic.Int32) {
	calls = new(atomic.Int32)
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if host != name {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		if calls.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr(first)}, nil
		}
		return []netip.Addr{netip.MustParseAddr(then)}, nil
	}, calls
}

// Through the proxy, the worker asks for a tunnel to the address its guard
// checked, never to a name the proxy would resolve again; over the tunnel
// the request still carries the endpoint's name as Host and TLS server name.
func TestAttemptThroughProxyConnectsToTheCheckedAddress(t *testing.T) {
	ca := testpki.NewCA(t, "proxy-test-ca")
	var host, sni atomic.Value
	receiver := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		sni.Store(r.TLS.ServerName)
		w.WriteHeader(http.StatusAccepted)
	}))
	receiver.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server("hooks.customer.example").TLS}}
	receiver.StartTLS()
	defer receiver.Close()
	_, port, _ := net.SplitHostPort(receiver.Listener.Addr().String())
	plainReceiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { host.Store(r.Host) }))
	defer plainReceiver.Close()
	_, plainPort, _ := net.SplitHostPort(plainReceiver.Listener.Addr().String())

	proxy := newConnectProxy(t)
	t.Setenv("HTTPS_PROXY", "http://proxyuser:fake-proxy-pw@"+proxy.addr)
	t.Setenv("HTTP_PROXY", "http://proxyuser:fake-proxy-pw@"+proxy.addr)
	t.Setenv("NO_PROXY", "")
	for _, v := range []string{"https_proxy", "http_proxy", "no_proxy"} {
		t.Setenv(v, "")
	}
	client := func(endpointsAllow, proxyAllow string, resolve func(context.Context, string) ([]netip.Addr, error)) *http.Client {
		var pa []netip.Prefix
		if proxyAllow != "" {
			pa = []netip.Prefix{netip.MustParsePrefix(proxyAllow)}
		}
		return NewHTTPClient(HTTPOptions{Allow: []netip.Prefix{netip.MustParsePrefix(endpointsAllow)}, Lookup: resolve,
			UseEnvProxy: true, ProxyAllow: pa, RootCAs: ca.Pool})
	}

	// https: the first answer (the receiver, admitted) is checked and tunnelled to;
	// the rebinding answer that follows is never asked for.
	resolve, calls := rebinding("hooks.customer.example", "127.0.0.1", "169.254.169.254")
	a := runAttemptWith(t, client("127.0.0.1/32", "127.0.0.1/32", resolve), endpointYAML("https://hooks.customer.example:"+port+"/hook?token=fake-token", ""))
	if a.Outcome != workflows.OutcomeDelivered || a.StatusCode != http.StatusAccepted {
		t.Fatalf("https through the proxy: attempt %+v", a)
	}
	if got := proxy.requests(); len(got) != 1 || got[0] != "CONNECT 127.0.0.1:"+port {
		t.Fatalf("the proxy was asked %q, want one CONNECT to the checked address 127.0.0.1:%s", got, port)
	}
	if host.Load() != "hooks.customer.example:"+port || sni.Load() != "hooks.customer.example" || calls.Load() != 1 {
		t.Fatalf("receiver saw Host %v and SNI %v after %d lookups; want the endpoint's name, one lookup", host.Load(), sni.Load(), calls.Load())
	}
	if proxy.auth[0] != "Basic "+base64.StdEncoding.EncodeToString([]byte("proxyuser:fake-proxy-pw")) {
		t.Errorf("Proxy-Authorization %q, want the credentials of HTTPS_PROXY", proxy.auth[0])
	}

	// http: tunnelled too, so the proxy never gets a name to resolve.
	resolve, _ = rebinding("plain.customer.example", "127.0.0.1", "169.254.169.254")
	a = runAttemptWith(t, client("127.0.0.1/32", "127.0.0.1/32", resolve), endpointYAML("http://plain.customer.example:"+plainPort+"/hook", ""))
	if got := proxy.requests(); a.Outcome != workflows.OutcomeDelivered || len(got) != 2 || got[1] != "CONNECT 127.0.0.1:"+plainPort || host.Load() != "plain.customer.example:"+plainPort {
		t.Fatalf("http through the proxy: attempt %+v, proxy asked %q, Host %v", a, got, host.Load())
	}

	// A name whose (first) answer the guard refuses reaches no proxy.
	resolve, _ = rebinding("hooks.customer.example", "169.254.169.254", "127.0.0.1")
	a = runAttemptWith(t, client("127.0.0.1/32", "127.0.0.1/32", resolve), endpointYAML("https://hooks.customer.example:"+port+"/hook", ""))
	if a.Outcome != workflows.OutcomeBlockedDestination || len(proxy.requests()) != 2 {
		t.Fatalf("a refused destination: attempt %+v, proxy asked %q", a, proxy.requests())
	}

	// The allow-lists are apart: admitting the proxy admits no endpoint on its network...
	resolve, _ = rebinding("hooks.customer.example", "127.0.0.1", "127.0.0.1")
	a = runAttemptWith(t, client("192.0.2.0/24", "127.0.0.0/8", resolve), endpointYAML("https://hooks.customer.example:"+port+"/hook", ""))
	if a.Outcome != workflows.OutcomeBlockedDestination || len(proxy.requests()) != 2 {
		t.Fatalf("endpoint on the proxy's admitted network: attempt %+v, proxy asked %q", a, proxy.requests())
	}
	// ...and admitting endpoints admits no proxy: a retried connection error naming --proxy-allow-cidr.
	resolve, _ = rebinding("hooks.customer.example", "127.0.0.1", "127.0.0.1")
	a = runAttemptWith(t, client("127.0.0.0/8", "", resolve), endpointYAML("https://hooks.customer.example:"+port+"/hook", ""))
	if a.Outcome != workflows.OutcomeConnectionError || !a.Outcome.Retryable() || !strings.Contains(a.Error, "--proxy-allow-cidr") || len(proxy.requests()) != 2 {
		t.Fatalf("proxy not admitted: attempt %+v, proxy asked %q", a, proxy.requests())
	}
	if strings.Contains(a.Error, "fake-proxy-pw") || strings.Contains(a.Error, "fake-token") {
		t.Fatalf("error %q leaks the proxy's credentials or the URL", a.Error)
	}

	// NO_PROXY hosts, and every host without --use-env-proxy, go direct.
	t.Setenv("NO_PROXY", "direct.customer.example")
	direct := HTTPOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Lookup: lookup(map[string]string{"direct.customer.example": "127.0.0.1"})}
	withProxy := direct
	withProxy.UseEnvProxy = true
	a = runAttemptWith(t, NewHTTPClient(withProxy), endpointYAML("http://direct.customer.example:"+plainPort+"/hook", ""))
	if a.Outcome != workflows.OutcomeDelivered || len(proxy.requests()) != 2 {
		t.Fatalf("NO_PROXY: attempt %+v, proxy asked %q", a, proxy.requests())
	}
	t.Setenv("NO_PROXY", "")
	a = runAttemptWith(t, NewHTTPClient(direct), endpointYAML("http://direct.customer.example:"+plainPort+"/hook", ""))
	if a.Outcome != workflows.OutcomeDelivered || len(proxy.requests()) != 2 {
		t.Fatalf("without --use-env-proxy: attempt %+v, proxy asked %q", a, proxy.requests())
	}
}

// A port outside 443, 80 and 1024-65535 is refused before any connection,
// a non-retryable blocked_destination naming --allow-port, which admits it.
func TestAttemptRefusesPort(t *testing.T) {
	a := runAttempt(t, endpointYAML("http://127.0.0.1:25/hook?token=fake-token", ""))
	if a.Outcome != workflows.OutcomeBlockedDestination || a.Outcome.Retryable() || !strings.Contains(a.Error, "--allow-port") || !strings.Contains(a.Error, "25") {
		t.Fatalf("port 25: %+v, want a blocked_destination naming the port and --allow-port", a)
	}
	if strings.Contains(a.Error, "fake-token") {
		t.Errorf("error %q leaks the URL", a.Error)
	}
	admitted := NewHTTPClient(HTTPOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, AllowPorts: []PortRange{{Lo: 1, Hi: 1023}}})
	if a := runAttemptWith(t, admitted, endpointYAML("http://127.0.0.1:25/hook", "")); a.Outcome == workflows.OutcomeBlockedDestination {
		t.Fatalf("port 25 under --allow-port 1-1023: %+v", a)
	}
}
