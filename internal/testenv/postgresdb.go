package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgres names the PostgreSQL server the tests create their databases
// on; unset, DefaultPostgres (the local server this kind of machine runs).
const EnvPostgres = "HOOKRELAY_TEST_POSTGRES"

// DefaultPostgres is the test server when EnvPostgres is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresServer is the server URL the tests use.
func PostgresServer() string {
	if v := os.Getenv(EnvPostgres); v != "" {
		return v
	}
	return DefaultPostgres
}

// FreshPostgres creates an empty database on the test server and returns
// its URL and a function that drops it.
func FreshPostgres(ctx context.Context) (dsn string, drop func() error, err error) {
	server := PostgresServer()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL at %s (%s): %w", redacted(server), EnvPostgres, err)
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	rand.Read(b)
	name := "hookrelay_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", EnvPostgres, err)
	}
	u.Path = "/" + name
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		return err
	}
	return u.String(), drop, nil
}

// PostgresT is FreshPostgres for t, dropped at t's cleanup. Where no
// PostgreSQL answers, t skips saying so; in CI (CI=true) it fails instead,
// so CI never passes without having exercised PostgreSQL.
func PostgresT(t testing.TB) string {
	t.Helper()
	dsn, drop, err := FreshPostgres(context.Background())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("skipping the PostgreSQL run: %v (set %s to a server URL)", err, EnvPostgres)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return dsn
}

func redacted(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(an unparseable URL)"
}
