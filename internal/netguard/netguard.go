// Package netguard keeps webhook attempts away from internal networks: a
// customer-supplied URL must not reach loopback, private, link-local (cloud
// metadata) or other non-public addresses. It resolves a destination before
// connecting, refuses it if any of its addresses is in a refused range, and
// checks again, through a net.Dialer Control hook, the address actually
// dialled, so a DNS answer that changes between check and connect (DNS
// rebinding) cannot slip past.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// refused lists the ranges no attempt may connect to unless admitted, each
// with the name used in errors. IPv4-mapped IPv6 addresses are unmapped and
// checked as IPv4; NAT64 and 6to4 forms, which embed an IPv4 address a
// gateway would reach, are refused whole.
var refused = []struct {
	name   string
	prefix netip.Prefix
}{
	{"this-network", mustPrefix("0.0.0.0/8")}, // includes the unspecified 0.0.0.0
	{"private", mustPrefix("10.0.0.0/8")},
	{"shared address space", mustPrefix("100.64.0.0/10")},
	{"loopback", mustPrefix("127.0.0.0/8")},
	{"link-local", mustPrefix("169.254.0.0/16")}, // cloud metadata 169.254.169.254
	{"private", mustPrefix("172.16.0.0/12")},
	{"reserved (IETF protocol assignments)", mustPrefix("192.0.0.0/24")},
	{"reserved (documentation)", mustPrefix("192.0.2.0/24")},
	{"reserved (6to4 relay)", mustPrefix("192.88.99.0/24")},
	{"private", mustPrefix("192.168.0.0/16")},
	{"reserved (benchmarking)", mustPrefix("198.18.0.0/15")},
	{"reserved (documentation)", mustPrefix("198.51.100.0/24")},
	{"reserved (documentation)", mustPrefix("203.0.113.0/24")},
	{"multicast", mustPrefix("224.0.0.0/4")},
	{"reserved", mustPrefix("240.0.0.0/4")}, // includes broadcast 255.255.255.255

	{"unspecified", mustPrefix("::/128")},
	{"loopback", mustPrefix("::1/128")},
	{"NAT64", mustPrefix("64:ff9b::/96")}, // inside ::/8: listed first for its name
	{"NAT64 (local use)", mustPrefix("64:ff9b:1::/48")},
	{"reserved (IPv4-compatible and other ::/8)", mustPrefix("::/8")},
	{"reserved (discard)", mustPrefix("100::/64")},
	{"reserved (IETF protocol assignments, Teredo)", mustPrefix("2001::/23")},
	{"reserved (documentation)", mustPrefix("2001:db8::/32")},
	{"6to4", mustPrefix("2002::/16")},
	{"reserved (documentation)", mustPrefix("3fff::/20")},
	{"unique local", mustPrefix("fc00::/7")}, // includes AWS metadata fd00:ec2::254
	{"link-local", mustPrefix("fe80::/10")},
	{"site-local", mustPrefix("fec0::/10")},
	{"multicast", mustPrefix("ff00::/8")},
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// BlockedError is a refused destination. Its text names the address and the
// range, never the URL, which may carry a customer's token.
type BlockedError struct {
	Addr  netip.Addr
	Range string // e.g. "loopback 127.0.0.0/8"
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("destination %s is in a refused range (%s); admit it with --allow-cidr if intended", e.Addr, e.Range)
}

// Guard decides which addresses attempts may connect to.
type Guard struct {
	allow []netip.Prefix
	ports []PortRange // nil: no port rule (see WithPortRule)
	// Lookup resolves a host name; nil uses net.DefaultResolver. Tests
	// inject their own so no real DNS is involved.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// New returns a guard refusing every listed range except those in allow.
func New(allow ...netip.Prefix) *Guard {
	g := &Guard{}
	for _, p := range allow {
		g.allow = append(g.allow, normalize(p))
	}
	return g
}

// ParseCIDRs parses --allow-cidr values such as 127.0.0.0/8 or fd00::/8.
func ParseCIDRs(values []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(values))
	for _, v := range values {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR range such as 127.0.0.0/8", v)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%q has host bits set; did you mean %s?", v, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// normalize turns an IPv4-mapped prefix (::ffff:127.0.0.0/104) into its
// IPv4 form, since addresses are unmapped before they are checked.
func normalize(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// Check is the verdict on one address: nil if attempts may connect to it, or
// a *BlockedError.
func (g *Guard) Check(a netip.Addr) error {
	a = a.WithZone("").Unmap()
	if !a.IsValid() {
		return &BlockedError{Addr: a, Range: "not an IP address"}
	}
	for _, p := range g.allow {
		if p.Contains(a) {
			return nil
		}
	}
	for _, r := range refused {
		if r.prefix.Contains(a) {
			return &BlockedError{Addr: a, Range: r.name + " " + r.prefix.String()}
		}
	}
	return nil
}

// Resolve returns host's addresses (host itself if it is an IP literal) and
// refuses the whole destination if any one is refused: which address a
// connection would use is not up to us, and a public name resolving to an
// internal address is itself the warning sign.
func (g *Guard) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, g.Check(a)
	}
	lookup := g.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	for _, a := range addrs {
		if err := g.Check(a); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

// Control is a net.Dialer Control hook: it runs just before each connect
// with the address actually dialled, and refuses it if the guard does.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Fail closed: an address we cannot read is not one we connect to.
		return fmt.Errorf("netguard: cannot check %s address %q: %w", network, address, err)
	}
	return g.Check(ap.Addr())
}

// DialContext returns a DialContext function for http.Transport: it resolves
// the host through the guard, then dials the vetted addresses themselves (no
// second lookup) in order, with d's Control replaced by the guard's.
func (g *Guard) DialContext(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	base := *d
	base.Control, base.ControlContext = g.Control, nil
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		if err := g.checkPortText(port); err != nil {
			return nil, err
		}
		return g.DialEach(ctx, host, func(ctx context.Context, a netip.Addr) (net.Conn, error) {
			return base.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		})
	}
}

// DialEach resolves host through the guard, then tries dial on each vetted
// address in order, each with its share of the time left, until one
// connects: the vetted addresses themselves, never a second lookup.
func (g *Guard) DialEach(ctx context.Context, host string, dial func(context.Context, netip.Addr) (net.Conn, error)) (net.Conn, error) {
	addrs, err := g.Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, a := range addrs {
		dctx, cancel := partialDeadline(ctx, len(addrs)-i)
		conn, err := dial(dctx, a)
		cancel()
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// partialDeadline gives one of several remaining addresses its share of the
// time left, as net.Dialer does, so an unreachable first address cannot use
// up the whole attempt.
func partialDeadline(ctx context.Context, remaining int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || remaining <= 1 {
		return context.WithCancel(ctx)
	}
	share := time.Until(deadline) / time.Duration(remaining)
	const floor = 2 * time.Second
	if share < floor {
		share = min(floor, time.Until(deadline))
	}
	return context.WithTimeout(ctx, share)
}

// checkPortText is CheckPort on a port as SplitHostPort returns it.
func (g *Guard) checkPortText(port string) error {
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("netguard: cannot check port %q: %w", port, err)
	}
	return g.CheckPort(uint16(n))
}
