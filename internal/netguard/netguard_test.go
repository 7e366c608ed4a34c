package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDNS is the resolver these tests control: no real DNS is consulted.
var fakeDNS = map[string][]string{
	"hooks.customer.example":      {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
	"localhost.example":           {"127.0.0.1"},
	"hooks.totally-public.com":    {"127.0.0.2"}, // a public-looking name resolving to loopback
	"intranet.corp.example":       {"10.20.30.40"},
	"printer.lan.example":         {"192.168.1.20"},
	"metadata.cloud.example":      {"169.254.169.254"},
	"v6-loopback.example":         {"::1"},
	"ula.example":                 {"fd12:3456:789a::1"},
	"mixed.example":               {"93.184.215.14", "172.16.5.4"}, // one bad address spoils the name
	"mapped-loopback.example":     {"::ffff:127.0.0.1"},
	"allowed-lab.example":         {"10.99.0.7"},
	"multicast.example":           {"239.1.2.3"},
	"v6-public.example":           {"2a00:1450:4001:82a::200e"},
	"cgnat.example":               {"100.100.100.200"}, // Alibaba Cloud metadata
	"aws-v6-metadata.example":     {"fd00:ec2::254"},
	"link-local-v6.example":       {"fe80::1"},
	"mapped-public.example":       {"::ffff:93.184.215.14"},
	"nat64-metadata.example":      {"64:ff9b::a9fe:a9fe"}, // 169.254.169.254 through a NAT64 gateway
	"private-and-allowed.example": {"10.99.0.8", "10.99.0.9"},
}

func fakeLookup(calls *atomic.Int32) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if calls != nil {
			calls.Add(1)
		}
		raw, ok := fakeDNS[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []netip.Addr
		for _, s := range raw {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}
}

// The rule, as a table: each destination with the verdict the guard must give
// (allowed, or the range it is refused for), with 10.99.0.0/16 admitted.
func TestDestinations(t *testing.T) {
	g := New(netip.MustParsePrefix("10.99.0.0/16"))
	g.Lookup = fakeLookup(nil)
	tests := []struct {
		host string
		want string // "" allowed; otherwise a substring of the refusal
	}{
		// literal IPv4 in every refused range
		{"0.0.0.0", "this-network"},
		{"10.0.0.1", "private 10.0.0.0/8"},
		{"100.64.0.1", "shared address space"},
		{"127.0.0.1", "loopback 127.0.0.0/8"},
		{"127.255.255.254", "loopback"},
		{"169.254.169.254", "link-local 169.254.0.0/16"},
		{"172.16.0.1", "private 172.16.0.0/12"},
		{"172.31.255.255", "private 172.16.0.0/12"},
		{"192.0.0.170", "IETF protocol assignments"},
		{"192.0.2.10", "documentation"},
		{"192.88.99.1", "6to4 relay"},
		{"192.168.0.1", "private 192.168.0.0/16"},
		{"198.18.0.1", "benchmarking"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"224.0.0.251", "multicast"},
		{"240.0.0.1", "reserved 240.0.0.0/4"},
		{"255.255.255.255", "reserved 240.0.0.0/4"},
		// just outside refused ranges
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"93.184.215.14", ""},
		// literal IPv6, and IPv4-mapped forms
		{"::", "unspecified"},
		{"::1", "loopback ::1/128"},
		{"::ffff:127.0.0.1", "loopback 127.0.0.0/8"},
		{"::ffff:10.1.2.3", "private 10.0.0.0/8"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::ffff:7f00:1", "loopback"},
		{"::127.0.0.1", "IPv4-compatible"},
		{"fc00::1", "unique local"},
		{"fd00:ec2::254", "unique local fc00::/7"},
		{"fe80::1", "link-local fe80::/10"},
		{"fe80::1%eth0", "link-local"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"64:ff9b::7f00:1", "NAT64"},
		{"2002:7f00:1::1", "6to4"},
		{"2001:db8::1", "documentation"},
		{"2001::1", "Teredo"},
		{"2a00:1450:4001:82a::200e", ""},
		// an admitted range
		{"10.99.1.2", ""},
		{"::ffff:10.99.1.2", ""},
		// host names through the controlled resolver
		{"hooks.customer.example", ""},
		{"v6-public.example", ""},
		{"mapped-public.example", ""},
		{"allowed-lab.example", ""},
		{"private-and-allowed.example", ""},
		{"localhost.example", "loopback"},
		{"hooks.totally-public.com", "loopback 127.0.0.0/8"},
		{"intranet.corp.example", "private 10.0.0.0/8"},
		{"printer.lan.example", "private 192.168.0.0/16"},
		{"metadata.cloud.example", "link-local 169.254.0.0/16"},
		{"v6-loopback.example", "loopback ::1/128"},
		{"ula.example", "unique local"},
		{"mixed.example", "private 172.16.0.0/12"},
		{"mapped-loopback.example", "loopback 127.0.0.0/8"},
		{"multicast.example", "multicast"},
		{"cgnat.example", "shared address space"},
		{"aws-v6-metadata.example", "unique local"},
		{"link-local-v6.example", "link-local fe80::/10"},
		{"nat64-metadata.example", "NAT64"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			addrs, err := g.Resolve(context.Background(), tt.host)
			if tt.want == "" {
				if err != nil || len(addrs) == 0 {
					t.Fatalf("Resolve(%s) = %v, %v; want allowed", tt.host, addrs, err)
				}
			} else {
				var blocked *BlockedError
				if !errors.As(err, &blocked) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Resolve(%s) = %v, %v; want refused as %q", tt.host, addrs, err, tt.want)
				}
			}
			// The dial-time hook gives the same verdict on every address the name has.
			for _, a := range lookupAll(t, tt.host) {
				err := g.Control("tcp", netip.AddrPortFrom(a, 443).String(), nil)
				if (err == nil) != (tt.want == "") && tt.host != "mixed.example" {
					t.Errorf("Control(%s) = %v, disagrees with Resolve", a, err)
				}
			}
		})
	}
	if len(tests) < 20 {
		t.Fatalf("only %d destinations", len(tests))
	}
}

func lookupAll(t *testing.T, host string) []netip.Addr {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}
	}
	addrs, err := fakeLookup(nil)(context.Background(), host)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

func TestNoAllowanceRefusesLoopback(t *testing.T) {
	if err := New().Check(netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Fatal("a guard with no --allow-cidr admitted loopback")
	}
	g := New(netip.MustParsePrefix("::ffff:127.0.0.0/104"))
	if err := g.Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatalf("an IPv4-mapped allowance must admit the IPv4 range: %v", err)
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs([]string{"127.0.0.0/8", "fd00::/8"})
	if err != nil || len(got) != 2 {
		t.Fatalf("ParseCIDRs = %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"127.0.0.1":   "not a CIDR",
		"10.0.0.0/33": "not a CIDR",
		"10.1.2.3/8":  "did you mean 10.0.0.0/8",
		"example.com": "not a CIDR",
		"fd00::1/8":   "did you mean fd00::/8",
	} {
		if _, err := ParseCIDRs([]string{in}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCIDRs(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestControlFailsClosed(t *testing.T) {
	if err := New().Control("tcp", "not-an-address", nil); err == nil {
		t.Fatal("Control accepted an unreadable address")
	}
}

// Real connections on loopback: the dialer refuses before connecting, so the
// server never sees the attempt; with the range admitted it connects.
func TestDialContext(t *testing.T) {
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	d := &net.Dialer{Timeout: 5 * time.Second}

	var lookups atomic.Int32
	refuse := New()
	refuse.Lookup = fakeLookup(&lookups)
	for _, host := range []string{"127.0.0.1", "::ffff:127.0.0.1", "hooks.totally-public.com"} {
		_, err := refuse.DialContext(d)(context.Background(), "tcp", net.JoinHostPort(host, port))
		var blocked *BlockedError
		if !errors.As(err, &blocked) {
			t.Errorf("dial %s: %v, want *BlockedError", host, err)
		}
	}
	if lookups.Load() != 1 {
		t.Errorf("%d lookups, want 1 (IP literals are not looked up)", lookups.Load())
	}

	admit := New(netip.MustParsePrefix("127.0.0.0/8"))
	admit.Lookup = fakeLookup(nil)
	client := &http.Client{Transport: &http.Transport{DialContext: admit.DialContext(d)}}
	resp, err := client.Get("http://localhost.example:" + port + "/")
	if err != nil {
		t.Fatalf("admitted loopback: %v", err)
	}
	resp.Body.Close()

	blocked := &http.Client{Transport: &http.Transport{DialContext: refuse.DialContext(d)}}
	_, err = blocked.Get(srv.URL)
	var b *BlockedError
	if !errors.As(err, &b) {
		t.Fatalf("an http.Client with the guard: %v, want *BlockedError inside", err)
	}
	if served.Load() != 1 {
		t.Fatalf("server saw %d requests, want only the admitted one", served.Load())
	}
}

// The hook alone, on a plain net.Dialer that resolves for itself, refuses
// what it dials: the check DNS rebinding cannot dodge.
func TestControlHookOnPlainDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := &net.Dialer{Timeout: 5 * time.Second, Control: New().Control}
	_, err = d.Dial("tcp", ln.Addr().String())
	var blocked *BlockedError
	if !errors.As(err, &blocked) || blocked.Addr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("dial = %v, want *BlockedError for 127.0.0.1", err)
	}
}

func TestPorts(t *testing.T) {
	g := New().WithPortRule()
	for port, ok := range map[uint16]bool{443: true, 80: true, 1024: true, 65535: true, 8080: true, 22: false, 25: false, 1023: false, 444: false, 0: false} {
		var pe *PortError
		if err := g.CheckPort(port); (err == nil) != ok || !ok && !errors.As(err, &pe) {
			t.Errorf("port %d: %v", port, err)
		}
	}
	if err := New().CheckPort(22); err != nil {
		t.Errorf("a guard without the port rule (the proxy's) checked a port: %v", err)
	}
	extra, err := ParsePorts([]string{"22", "1-100"})
	if err != nil || New().WithPortRule(extra...).CheckPort(22) != nil || New().WithPortRule(extra...).CheckPort(101) == nil {
		t.Fatalf("ParsePorts: %v %v", extra, err)
	}
	for _, bad := range []string{"", "0", "ssh", "70000", "100-1", "1-", "-5"} {
		if _, err := ParsePorts([]string{bad}); err == nil {
			t.Errorf("ParsePorts(%q) took it", bad)
		}
	}
}
