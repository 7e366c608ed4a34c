package testenv

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// A PostgreSQL server of a test's own starts on a port of 127.0.0.1, comes
// back on it after being killed, and leaves nothing behind.
func TestPostgresKilledAndRestarted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx, PostgresOptions{LogDir: t.TempDir()})
	if errors.Is(err, ErrNoPostgresBinaries) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			pg.Stop()
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.Port()))
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("ready, but %s refuses: %v", addr, err)
	}
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err == nil {
		t.Fatalf("%s still answers after the kill", addr)
	}
	began := time.Now()
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("back after %v", time.Since(began).Round(time.Millisecond))
	if err := dial(); err != nil {
		t.Fatalf("restarted, but %s refuses: %v", addr, err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, err := os.Stat(pg.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data directory %s after Stop: %v", pg.dir, err)
	}
}
