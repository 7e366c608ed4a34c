package testenv

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/hookrelay/hookrelay/internal/temporalcluster"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// SearchAttributes are hookrelay's search attributes by name and type
// (workflows.SearchAttributes), as a server registers them.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	m := map[string]enumspb.IndexedValueType{}
	for _, k := range workflows.SearchAttributes {
		m[k.GetName()] = k.GetValueType()
	}
	return m
}

// StartPostgresCluster starts a Temporal server on PostgreSQL, its services
// as processes, with fresh databases and hookrelay's search attributes
// registered in its namespace (added to any opts.SearchAttributes). Stop
// ends its processes and drops its databases. Without the binaries the error
// wraps temporalcluster.ErrNoBinaries; without PostgreSQL, ErrNoPostgres.
func StartPostgresCluster(ctx context.Context, opts temporalcluster.Options) (*temporalcluster.Cluster, error) {
	attrs := SearchAttributes()
	for k, v := range opts.SearchAttributes {
		attrs[k] = v
	}
	opts.SearchAttributes = attrs
	c, err := temporalcluster.Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("Temporal cluster on PostgreSQL: %w", err)
	}
	return c, nil
}

// ClusterSecurity is how hookrelay's processes reach c's frontend: mutual
// TLS with the run's client certificate, verifying the frontend by the
// cluster's CA.
func ClusterSecurity(c *temporalcluster.Cluster) temporalclient.Security {
	f := c.TLS()
	return temporalclient.Security{TLSCert: f.Client, TLSKey: f.ClientKey, TLSCA: f.CA, TLSServerName: temporalcluster.FrontendServerName}
}

// ServerSecurity is how a run's processes reach s when s says so itself (a
// Temporal cluster on PostgreSQL started for the run: its client
// certificate); ok is false for a server reached as the caller chooses.
func ServerSecurity(s Server) (sec temporalclient.Security, ok bool) {
	if c, isCluster := s.(*temporalcluster.Cluster); isCluster {
		return ClusterSecurity(c), true
	}
	return temporalclient.Security{}, false
}

// CLIConnArgs are the Temporal CLI's flags that reach address in namespace
// with sec's TLS settings (its API key is not passed).
func CLIConnArgs(address, namespace string, sec temporalclient.Security) []string {
	args := []string{"--address", address, "--namespace", namespace}
	for _, f := range []struct{ flag, value string }{
		{"--tls-cert-path", sec.TLSCert}, {"--tls-key-path", sec.TLSKey},
		{"--tls-ca-path", sec.TLSCA}, {"--tls-server-name", sec.TLSServerName},
	} {
		if f.value != "" {
			args = append(args, f.flag, f.value)
		}
	}
	if sec.TLS && len(args) == 4 {
		args = append(args, "--tls")
	}
	return args
}
