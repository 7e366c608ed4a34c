package netguard

import (
	"fmt"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of destination ports.
type PortRange struct{ Lo, Hi uint16 }

// DefaultPorts are the ports endpoints may use without --allow-port: https,
// http and the unprivileged ports. The rest (ssh 22, smtp 25, dns 53, ...)
// are where internal services listen, not webhook receivers.
var DefaultPorts = []PortRange{{443, 443}, {80, 80}, {1024, 65535}}

// PortError is a refused destination port.
type PortError struct{ Port uint16 }

func (e *PortError) Error() string {
	return fmt.Sprintf("destination port %d is refused (endpoints use 443, 80 or 1024-65535); admit it with --allow-port if intended", e.Port)
}

// ParsePorts parses --allow-port values: a port (8443) or a range (1-1023).
func ParsePorts(values []string) ([]PortRange, error) {
	out := make([]PortRange, 0, len(values))
	for _, v := range values {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(v), "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.ParseUint(lo, 10, 16)
		h, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil || l == 0 || l > h {
			return nil, fmt.Errorf("%q is not a port such as 8443 or a range such as 1-1023", v)
		}
		out = append(out, PortRange{uint16(l), uint16(h)})
	}
	return out, nil
}

// WithPortRule makes g refuse destination ports outside DefaultPorts and
// extra; a guard without it (the proxy's) checks addresses only.
func (g *Guard) WithPortRule(extra ...PortRange) *Guard {
	g.ports = append(append([]PortRange(nil), DefaultPorts...), extra...)
	return g
}

// CheckPort is the verdict on a destination port: nil, or a *PortError.
func (g *Guard) CheckPort(port uint16) error {
	if g.ports == nil {
		return nil
	}
	for _, r := range g.ports {
		if r.Lo <= port && port <= r.Hi {
			return nil
		}
	}
	return &PortError{Port: port}
}
