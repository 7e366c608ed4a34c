// Package circuit is package health's former name, kept while bench/
// imports it.
//
// Deprecated: use internal/health, and workflows.HealthStartOptions.
package circuit

import (
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/health"
	"github.com/hookrelay/hookrelay/workflows"
)

// Watcher is health.Watcher.
//
// Deprecated: use health.Watcher.
type Watcher = health.Watcher

// DefaultRefresh is health.DefaultRefresh.
//
// Deprecated: use health.DefaultRefresh.
const DefaultRefresh = health.DefaultRefresh

// StartOptions is workflows.HealthStartOptions.
//
// Deprecated: use workflows.HealthStartOptions.
func StartOptions(ep endpoint.Endpoint, taskQueue string) client.StartWorkflowOptions {
	return workflows.HealthStartOptions(ep, taskQueue)
}
