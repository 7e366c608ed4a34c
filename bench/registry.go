package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// benchAccount is the account of the throughput mode's endpoint when it is
// in the registry, which scopes every endpoint to an account.
const benchAccount = "bench-account"

// benchRegistry is a fresh endpoint registry holding the throughput mode's
// one endpoint (--endpoints-db): a SQLite file in the run's temporary
// directory, or a PostgreSQL database created on HOOKRELAY_TEST_POSTGRES
// and dropped at the end. Workers and serve open it with --endpoints-db,
// as a fleet does.
type benchRegistry struct {
	dsn    string
	where  string // dsn without its password, for the output
	id     string // the endpoint's generated id
	secret string // its generated signing secret; never printed
	reg    *registry.Registry
	drop   func() error // drops the PostgreSQL database; nil for SQLite
}

// newBenchRegistry creates the database and registers the endpoint (every
// event, the YAML mode's timeout and retry schedule) with a placeholder
// URL: the registry generates the secret the receiver verifies with, so
// the receiver starts after it, and pointAt then gives the endpoint its URL.
func newBenchRegistry(ctx context.Context, kind, tmp, codecKeyFile string) (_ *benchRegistry, err error) {
	r := &benchRegistry{}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.close())
		}
	}()
	switch kind {
	case "sqlite":
		r.dsn = "sqlite:" + filepath.Join(tmp, "endpoints.db")
	case "postgres":
		if r.dsn, r.drop, err = testenv.FreshPostgres(ctx); err != nil {
			return r, fmt.Errorf("--endpoints-db postgres: %w", err)
		}
	default:
		return r, usagef("--endpoints-db: %q is neither sqlite nor postgres", kind)
	}
	r.where = registry.Redact(r.dsn)
	keys, err := codec.Load(codecKeyFile)
	if err != nil {
		return r, err
	}
	// The receiver is on loopback, as the workers' --allow-cidr admits.
	guard := netguard.New(netip.MustParsePrefix("127.0.0.0/8"))
	if r.reg, err = registry.Open(ctx, r.dsn, registry.Options{Codec: keys, Guard: guard}); err != nil {
		return r, err
	}
	url, events, timeout := "http://127.0.0.1:9/", []string{"*"}, "15s"
	schedule := []string{"5s", "1m"} // as throughput.go's endpoints file
	entry, secret, err := r.reg.Create(ctx, benchAccount, registry.Fields{URL: &url, Events: &events, Timeout: &timeout, RetrySchedule: &schedule})
	if err != nil {
		return r, fmt.Errorf("register the bench endpoint: %w", err)
	}
	r.id, r.secret = entry.ID, secret
	return r, nil
}

// pointAt gives the endpoint the receiver's URL.
func (r *benchRegistry) pointAt(ctx context.Context, url string) error {
	if _, err := r.reg.Update(ctx, benchAccount, r.id, registry.Fields{URL: &url}); err != nil {
		return fmt.Errorf("point the bench endpoint at %s: %w", url, err)
	}
	return nil
}

// close closes the bench's connection and drops a PostgreSQL database.
func (r *benchRegistry) close() error {
	var errs []error
	if r.reg != nil {
		errs = append(errs, r.reg.Close())
		r.reg = nil
	}
	if r.drop != nil {
		if err := r.drop(); err != nil {
			errs = append(errs, fmt.Errorf("drop the registry database %s: %w", r.where, err))
		}
		r.drop = nil
	}
	return errors.Join(errs...)
}

// endpointsFlag is how worker and serve find the endpoints: a registry's
// database URL, or an endpoints file.
func endpointsFlag(endpoints string) []string {
	if strings.HasPrefix(endpoints, "sqlite:") || strings.HasPrefix(endpoints, "postgres://") {
		return []string{"--endpoints-db", endpoints}
	}
	return []string{"--endpoints", endpoints}
}

// endpointsOf is what the throughput mode's processes read their endpoint
// from, and the endpoint's id and account: the registry's when
// --endpoints-db, else the YAML file at file with id.
func (h *harness) endpointsOf(file, id string) (endpoints, endpointID, account string) {
	if h.registry != nil {
		return h.registry.dsn, h.registry.id, benchAccount
	}
	return file, id, ""
}
