package testenv

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/hookrelay/hookrelay/internal/temporalcluster"
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
