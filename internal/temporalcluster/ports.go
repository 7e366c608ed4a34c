package temporalcluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// Service is one of the Temporal server's services, each run as a process.
type Service string

const (
	Frontend Service = "frontend"
	History  Service = "history"
	Matching Service = "matching"
	Worker   Service = "worker"
)

// Services are the four services, in the order Start starts them.
var Services = []Service{Frontend, History, Matching, Worker}

// FrontendHealthPath is where the frontend's HTTP API answers the cluster's
// info, read from its database: compose's health check of the frontend asks
// it, on the HTTP port, as every other service's asks its metrics port's
// /metrics.
const FrontendHealthPath = "/api/v1/cluster-info"

// Ports are what one service's process binds, all on 127.0.0.1.
type Ports struct {
	GRPC       int // the worker service serves only gRPC health on it
	Membership int // ringpop, between the services
	HTTP       int // frontend only: the HTTP API; 0 elsewhere
	Metrics    int // Prometheus, at /metrics
	PProf      int // net/http/pprof, at /debug/pprof/
}

func (p Ports) address() string { return net.JoinHostPort(host, strconv.Itoa(p.GRPC)) }

const host = "127.0.0.1"

// Ports are drawn from [portLow, portHigh], below Linux's ephemeral range
// (32768-60999) rather than by binding 127.0.0.1:0, for two reasons:
// PostgreSQL's cluster_membership.rpc_port, where each service registers its
// membership port, is a SMALLINT (at most 32767), so a port the kernel picks
// for :0 there makes the service exit at start; and while a killed service
// is down, an outgoing connection of any process could be given one of its
// ports from the ephemeral range, and the restart would fail to bind it.
const (
	portLow  = 20000
	portHigh = 32767
)

// freePorts picks every port of every service, each one free on 127.0.0.1
// when picked: it binds each candidate and holds all the listeners until
// every service has its ports, so no two are the same. Another program could
// take one between here and the server's bind; the process would then exit
// and Start report it.
func freePorts() (map[Service]Ports, error) {
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	next := func() (int, error) {
		l, err := listenLow()
		if err != nil {
			return 0, err
		}
		listeners = append(listeners, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	ports := map[Service]Ports{}
	for _, s := range Services {
		var p Ports
		fields := []*int{&p.GRPC, &p.Membership, &p.Metrics, &p.PProf}
		if s == Frontend {
			fields = append(fields, &p.HTTP)
		}
		for _, f := range fields {
			n, err := next()
			if err != nil {
				return nil, err
			}
			*f = n
		}
		ports[s] = p
	}
	return ports, nil
}

// listenLow listens on a free port of 127.0.0.1 in [portLow, portHigh].
func listenLow() (net.Listener, error) {
	for range 1000 {
		port := portLow + rand.IntN(portHigh-portLow+1)
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no free port on %s in %d-%d after 1000 tries", host, portLow, portHigh)
}

// FreePort is a port of 127.0.0.1 free now, from the range the cluster's
// own ports come from: for a server that must come back on the same port
// after a restart (PostgreSQL under a cluster), since below the ephemeral
// range no outgoing connection is given it while the server is down.
func FreePort() (int, error) {
	l, err := listenLow()
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
