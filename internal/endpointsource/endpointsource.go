// Package endpointsource opens where a process reads endpoints from: the
// endpoints file, or the registry database through its cache. The worker,
// `starter serve` and the starter's commands all open it here, under the
// same rules (--https-only, and at registration --allow-cidr's ranges).
package endpointsource

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/secretfile"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// Rules are the checks endpoint URLs pass: the network guard's admitted
// ranges (--allow-cidr) and --https-only. A registry applies both at
// registration; the endpoints file applies --https-only when loaded.
type Rules struct {
	AllowCIDRs []string
	// AllowPorts admits ports beyond netguard.DefaultPorts (--allow-port).
	AllowPorts []string
	HTTPSOnly  bool
	// Bounds hold endpoint values, at registration and in the endpoints
	// file (AddBoundsFlags); the zero value is endpoint.DefaultBounds.
	Bounds endpoint.Bounds
}

// Endpoints is an opened source: the endpoints file, or the registry
// through its cache.
type Endpoints struct {
	// Source routes events and resolves attempts.
	Source endpoint.Source
	// File is the endpoints file; nil with a registry.
	File *endpoint.File
	// Registry is the registry, for management; nil with a file.
	Registry *registry.Registry
}

// Close closes the registry's database, if any.
func (e Endpoints) Close() {
	if e.Registry != nil {
		e.Registry.Close()
	}
}

// Count describes the source for a start-up log line.
func (e Endpoints) Count() string {
	if e.File != nil {
		return fmt.Sprintf("%d in the endpoints file", len(e.File.Config().Endpoints))
	}
	return "endpoint registry (" + e.Registry.Dialect() + ")"
}

// Open opens what src names under rules. The registry seals secrets with
// the payload keys, so it needs conn's key file. With a file and
// checkSecrets, every enabled endpoint's secret must resolve, so a worker
// never starts unable to sign. A logger (may be nil) hears of a file's
// failed reloads and of secret files others may read.
func Open(ctx context.Context, src cmdline.Endpoints, conn *temporalclient.Options, rules Rules, checkSecrets bool, logger *slog.Logger) (Endpoints, error) {
	if src.DB == "" {
		f, err := openFile(src.File, rules, checkSecrets, logger)
		return Endpoints{Source: f, File: f}, err
	}
	ro, err := RegistryOptions(conn, rules)
	if err != nil {
		return Endpoints{}, err
	}
	ro.NoMigrate = src.NoMigrate
	r, cache, err := registry.OpenCached(ctx, src.DB, src.CacheTTL, ro)
	if err != nil {
		return Endpoints{}, fmt.Errorf("--endpoints-db: %w", err)
	}
	return Endpoints{Source: cache, Registry: r}, nil
}

// OpenRegistry opens the registry in dsn (--endpoints-db) for management,
// without a cache.
func OpenRegistry(ctx context.Context, dsn string, conn *temporalclient.Options, rules Rules) (*registry.Registry, error) {
	ro, err := RegistryOptions(conn, rules)
	if err != nil {
		return nil, err
	}
	r, err := registry.Open(ctx, dsn, ro)
	if err != nil {
		return nil, fmt.Errorf("--endpoints-db: %w", err)
	}
	return r, nil
}

// RegistryOptions are the registry's options under rules: the payload
// keys from conn, and at registration the network guard with the admitted
// ranges and --https-only, as attempts have them.
func RegistryOptions(conn *temporalclient.Options, rules Rules) (registry.Options, error) {
	if conn.CodecKeyFile == "" {
		return registry.Options{}, cmdline.Usagef("--endpoints-db: endpoint secrets are stored encrypted with the payload keys: give --codec-key-file (or set %s); --insecure-plaintext does not cover them", temporalclient.EnvCodecKeyFile)
	}
	c, err := conn.Codec()
	if err != nil {
		return registry.Options{}, err
	}
	keys, ok := c.(registry.Keys)
	if !ok {
		return registry.Options{}, fmt.Errorf("--endpoints-db: keys of type %T derive no endpoint-secrets or row-MAC keys", c)
	}
	allow, err := netguard.ParseCIDRs(rules.AllowCIDRs)
	if err != nil {
		return registry.Options{}, cmdline.Usagef("--allow-cidr: %w", err)
	}
	ports, err := netguard.ParsePorts(rules.AllowPorts)
	if err != nil {
		return registry.Options{}, cmdline.Usagef("--allow-port: %w", err)
	}
	return registry.Options{Codec: keys, Guard: netguard.New(allow...).WithPortRule(ports...), HTTPSOnly: rules.HTTPSOnly, Bounds: rules.Bounds}, nil
}

func openFile(path string, rules Rules, checkSecrets bool, logger *slog.Logger) (*endpoint.File, error) {
	opts := []endpoint.Option{endpoint.WithBounds(rules.Bounds)}
	if rules.HTTPSOnly {
		opts = append(opts, endpoint.HTTPSOnly())
	}
	endpoints, err := endpoint.OpenFile(path, opts...)
	if err != nil {
		return nil, err
	}
	if checkSecrets {
		if err := endpoints.Config().CheckSecrets(); err != nil {
			return nil, fmt.Errorf("endpoints file %s: %w", path, err)
		}
	}
	if logger != nil {
		endpoints.OnError = func(err error) { logger.Error("endpoints file reload failed", "error", err.Error()) }
		for _, e := range endpoints.Config().Endpoints {
			secretfile.Warn(logger, "secret_file of endpoint "+e.ID, e.SecretFile())
		}
	}
	return endpoints, nil
}
