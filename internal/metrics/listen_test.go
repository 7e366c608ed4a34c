package metrics

import (
	"net/netip"
	"strings"
	"testing"
)

func TestCheckListen(t *testing.T) {
	customers := []netip.Prefix{netip.MustParsePrefix("172.30.89.0/24")}
	for _, c := range []struct {
		addr     string
		admitted []netip.Prefix
		warn     bool
		err      string
	}{
		{"127.0.0.1:9090", customers, false, ""},
		{"127.0.0.1:9090", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, false, ""},
		{"[::1]:9090", []netip.Prefix{netip.MustParsePrefix("::1/128")}, false, ""},
		{"10.1.2.3:9090", customers, false, ""},
		{"172.30.89.7:9090", customers, false, "172.30.89.7 is in 172.30.89.0/24"},
		{"[::ffff:172.30.89.7]:9090", customers, false, "is in 172.30.89.0/24"},
		{"0.0.0.0:9090", customers, true, ""},
		{":9090", customers, true, ""},
		{"[::]:9090", customers, true, ""},
		{"0.0.0.0:9090", nil, false, ""},
		{"9090", customers, false, "not host:port"},
	} {
		warn, err := CheckListen(c.addr, c.admitted)
		if (warn != "") != c.warn || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("CheckListen(%q) = %q, %v; want warning %t, error %q", c.addr, warn, err, c.warn, c.err)
		}
	}
}
