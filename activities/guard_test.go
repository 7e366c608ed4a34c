package activities

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/netguard"
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

	guard := netguard.New() // no --allow-cidr
	guard.Lookup = lookup(map[string]string{"hooks.customer.example": "127.0.0.1"})
	client := NewHTTPClient(HTTPOptions{Guard: guard})
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

func TestAttemptUseEnvProxy(t *testing.T) {
	var proxied atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Store(r.URL.String()) // absolute form: the proxy is asked for the endpoint's URL
		w.WriteHeader(http.StatusAccepted)
	}))
	defer proxy.Close()
	var direct atomic.Int32
	directSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { direct.Add(1) }))
	defer directSrv.Close()
	_, directPort, _ := net.SplitHostPort(directSrv.Listener.Addr().String())

	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	guard := func() *netguard.Guard {
		g := netguard.New(netip.MustParsePrefix("127.0.0.0/8")) // the proxy's and the direct server's address
		g.Lookup = lookup(map[string]string{
			"hooks.customer.example":    "93.184.215.14",
			"intranet.customer.example": "10.0.0.5",
			"direct.customer.example":   "127.0.0.1",
		})
		return g
	}

	viaProxy := NewHTTPClient(HTTPOptions{Guard: guard(), UseEnvProxy: true})
	a := runAttemptWith(t, viaProxy, endpointYAML("http://hooks.customer.example/hook", ""))
	if a.Outcome != workflows.OutcomeDelivered || a.StatusCode != http.StatusAccepted || proxied.Load() != "http://hooks.customer.example/hook" {
		t.Fatalf("through the proxy: attempt %+v, proxy saw %v", a, proxied.Load())
	}
	proxied.Store("")
	a = runAttemptWith(t, viaProxy, endpointYAML("http://intranet.customer.example/hook", ""))
	if a.Outcome != workflows.OutcomeBlockedDestination || proxied.Load() != "" {
		t.Fatalf("a private destination through the proxy: attempt %+v, proxy saw %q", a, proxied.Load())
	}

	// Without --use-env-proxy the same environment is ignored.
	plain := NewHTTPClient(HTTPOptions{Guard: guard()})
	a = runAttemptWith(t, plain, endpointYAML("http://direct.customer.example:"+directPort+"/hook", ""))
	if a.Outcome != workflows.OutcomeDelivered || direct.Load() != 1 || proxied.Load() != "" {
		t.Fatalf("without --use-env-proxy: attempt %+v, direct %d, proxy saw %q", a, direct.Load(), proxied.Load())
	}
}
