package activities

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/hookrelay/hookrelay/internal/netguard"
)

// The proxy path (--use-env-proxy). Handing the proxy a name would let it
// resolve the name again and connect wherever that answer points (DNS
// rebinding), past the guard. So the worker resolves the endpoint's name
// itself, the guard checks every address, and the proxy is asked to CONNECT
// to the checked address: a tunnel for http and https alike. Over the
// tunnel the request is the one a direct connection carries, so the Host
// header and the TLS server name (SNI, and the certificate checked) are
// still the endpoint's name. The proxy's own address is vetted by a guard of
// its own (--proxy-allow-cidr), so admitting the proxy admits no endpoint.

// ProxyError is a failure reaching or using the proxy: the attempt could
// not leave, whatever the endpoint. Its text never holds the proxy's URL,
// which may carry credentials.
type ProxyError struct {
	msg string
	err error
}

func (e *ProxyError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

// Unwrap keeps timeouts and cancellations recognisable. (A refusal of the
// proxy's address carries no cause: the endpoint was not the one refused,
// so the attempt is a connection error, retried, not blocked_destination.)
func (e *ProxyError) Unwrap() error { return e.err }

// tunnel dials endpoints through the proxy the environment names for a scheme.
type tunnel struct {
	guard      *netguard.Guard // the endpoints'
	proxyGuard *netguard.Guard // the proxy's
	dialer     *net.Dialer
	// proxyFor is the environment's choice (HTTPS_PROXY, HTTP_PROXY,
	// NO_PROXY): nil for a destination to reach directly.
	proxyFor func(*url.URL) (*url.URL, error)
}

// dialer returns the DialContext of the transport for scheme's URLs.
func (t *tunnel) dialContext(scheme string) func(ctx context.Context, network, address string) (net.Conn, error) {
	direct := t.guard.DialContext(t.dialer)
	viaProxy := t.proxyGuard.DialContext(t.dialer)
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		proxy, err := t.proxyFor(&url.URL{Scheme: scheme, Host: address})
		if err != nil {
			return nil, &ProxyError{msg: "the proxy the environment names for " + scheme + " does not parse"}
		}
		if proxy == nil {
			return direct(ctx, network, address) // NO_PROXY, or no proxy for this scheme
		}
		host, portText, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		port, err := strconv.ParseUint(portText, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", portText, err)
		}
		if err := t.guard.CheckPort(uint16(port)); err != nil {
			return nil, err
		}
		return t.guard.DialEach(ctx, host, func(ctx context.Context, a netip.Addr) (net.Conn, error) {
			return connect(ctx, viaProxy, proxy, netip.AddrPortFrom(a.Unmap(), uint16(port)))
		})
	}
}

// connect opens a connection to the proxy and a tunnel through it to target.
func connect(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), proxy *url.URL, target netip.AddrPort) (net.Conn, error) {
	proxyAddr := proxy.Host
	if proxy.Port() == "" {
		port := "80"
		if proxy.Scheme == "https" {
			port = "443"
		}
		proxyAddr = net.JoinHostPort(proxy.Hostname(), port)
	}
	conn, err := dial(ctx, "tcp", proxyAddr)
	if err != nil {
		var blocked *netguard.BlockedError
		if errors.As(err, &blocked) {
			return nil, &ProxyError{msg: fmt.Sprintf("proxy %s is in a refused range (%s); admit it with --proxy-allow-cidr if intended", blocked.Addr, blocked.Range)}
		}
		return nil, &ProxyError{msg: "connect to the proxy", err: err}
	}
	// The exchange below is bounded by the attempt's deadline and cancellation.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	switch proxy.Scheme {
	case "http":
	case "https":
		tc := tls.Client(conn, &tls.Config{ServerName: proxy.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &ProxyError{msg: "TLS to the proxy", err: err}
		}
		conn = tc
	default:
		conn.Close()
		return nil, &ProxyError{msg: fmt.Sprintf("proxy scheme %q is not supported; use http or https", proxy.Scheme)}
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target.String()},
		Host:   target.String(),
		Header: http.Header{},
	}
	if u := proxy.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, &ProxyError{msg: "send CONNECT to the proxy", err: ctxErr(ctx, err)}
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, &ProxyError{msg: "read the proxy's answer to CONNECT", err: ctxErr(ctx, err)}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, &ProxyError{msg: fmt.Sprintf("the proxy refused CONNECT to %s: %s", target, resp.Status)}
	}
	if br.Buffered() > 0 {
		conn.Close()
		return nil, &ProxyError{msg: "the proxy sent data before the tunnel was used"}
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// ctxErr prefers the context's error to the I/O error its deadline caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// byScheme routes each request to the transport for its URL's scheme, since
// the proxy (HTTPS_PROXY or HTTP_PROXY) depends on it and a transport's
// DialContext sees only host and port.
type byScheme struct {
	https, http *http.Transport
}

func (b byScheme) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Scheme {
	case "https":
		return b.https.RoundTrip(req)
	case "http":
		return b.http.RoundTrip(req)
	}
	return nil, fmt.Errorf("unsupported scheme %q", req.URL.Scheme)
}

// CloseIdleConnections closes both transports' idle connections.
func (b byScheme) CloseIdleConnections() {
	b.https.CloseIdleConnections()
	b.http.CloseIdleConnections()
}
