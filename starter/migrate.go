package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/auditstore"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/sqldb"
)

// migrate brings the endpoint registry's, the delivery log's and the audit
// trail's schemas in one database to this build's versions, as the
// database's owner role, and with --grant-to grants the run-time role what
// processes started with --migrate=false need.
func migrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("starter migrate", pflag.ContinueOnError)
	var dsn, role string
	cmdline.String(fs, &dsn, "db", "HOOKRELAY_MIGRATE_DB", "", "the database to migrate, as its owner role: postgres://... or sqlite:PATH")
	cmdline.String(fs, &role, "grant-to", "HOOKRELAY_RUNTIME_ROLE", "", "PostgreSQL: after migrating, grant this run-time role SELECT, INSERT, UPDATE and DELETE on the tables (and on attempt partitions created later), and nothing more")
	if err := cmdline.Parse(fs, args, 0); err != nil {
		return err
	}
	if dsn == "" {
		return cmdline.Usagef("--db: required (or set HOOKRELAY_MIGRATE_DB)")
	}
	if err := sqldb.CheckDSN("--db", dsn); err != nil {
		return cmdline.Usage(err)
	}
	if role != "" {
		if err := sqldb.CheckRole("--grant-to", role); err != nil {
			return cmdline.Usage(err)
		}
	}
	steps := []struct {
		what string
		run  func() error
	}{
		{"endpoint registry", func() error { return registry.Migrate(ctx, dsn) }},
		{"delivery log", func() error { return deliverylog.Migrate(ctx, dsn, time.Now()) }},
		{"audit trail", func() error { return auditstore.Migrate(ctx, dsn) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: schema current\n", s.what)
	}
	if role == "" {
		return nil
	}
	if err := sqldb.GrantRuntime(ctx, dsn, role, registry.MigrationsTable, deliverylog.MigrationsTable, auditstore.MigrationsTable); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "granted %s the run-time privileges\n", role)
	return nil
}
