package sqldb

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func schemaOf(versions ...string) fstest.MapFS {
	fs := fstest.MapFS{}
	for _, v := range versions {
		fs["sqlite/"+v+"_t.up.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE t" + v + " (id INTEGER);")}
		fs["sqlite/"+v+"_t.down.sql"] = &fstest.MapFile{Data: []byte("DROP TABLE t" + v + ";")}
	}
	return fs
}

// A check-only open migrates nothing: on a fresh database, and on one a
// release behind, it refuses, naming the versions and the migrate command;
// once migrated it opens; a newer schema than the build's is accepted.
func TestCheckOnlyRefusesASchemaBehind(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "x.db")
	one, two := Schema{What: "test store", Migrations: schemaOf("1"), Table: "test_versions"}, Schema{What: "test store", Migrations: schemaOf("1", "2"), Table: "test_versions"}

	check := func(s Schema) error {
		s.CheckOnly = true
		db, _, err := Open(ctx, dsn, s)
		if err == nil {
			db.Close()
		}
		return err
	}
	var behind *BehindError
	err := check(two)
	if !errors.As(err, &behind) || behind.Have != 0 || behind.Want != 2 ||
		!strings.Contains(err.Error(), "test store") || !strings.Contains(err.Error(), "the schema is not created") || !strings.Contains(err.Error(), `"starter migrate --db DSN"`) {
		t.Fatalf("fresh database, check only: %v", err)
	}
	db, _, err := Open(ctx, dsn, one) // migrates to 1
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	err = check(two)
	if !errors.As(err, &behind) || behind.Have != 1 || !strings.Contains(err.Error(), "the schema is at version 1, this build needs 2 (table test_versions)") {
		t.Fatalf("a release behind, check only: %v", err)
	}
	if db, _, err = Open(ctx, dsn, two); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := check(two); err != nil {
		t.Errorf("current schema, check only: %v", err)
	}
	if err := check(one); err != nil {
		t.Errorf("a schema newer than the build's, check only: %v", err)
	}
}

// An sslmode PostgreSQL does not know is refused before any connection,
// naming it; every known mode passes, and a failed TLS-only connection says
// which mode asked for TLS.
func TestSSLMode(t *testing.T) {
	for _, m := range SSLModes {
		if err := CheckDSN("--endpoints-db", "postgres://u:fake-pw@db.example.com/hookrelay?sslmode="+m); err != nil {
			t.Errorf("sslmode=%s: %v", m, err)
		}
	}
	err := CheckDSN("--endpoints-db", "postgres://u:fake-pw@db.example.com/hookrelay?sslmode=requir")
	if err == nil || !strings.Contains(err.Error(), "--endpoints-db") || !strings.Contains(err.Error(), "sslmode=requir is not one of") || strings.Contains(err.Error(), "fake-pw") {
		t.Errorf("sslmode=requir: %v", err)
	}
	refused := errors.New("server refused TLS connection")
	for dsn, want := range map[string]string{
		"postgres://db.example.com/h?sslmode=verify-full": "sslmode=verify-full: only a TLS connection is accepted",
		"postgres://db.example.com/h?sslmode=require":     "sslmode=require: only a TLS connection is accepted",
		"postgres://db.example.com/h?sslmode=disable":     "server refused TLS connection",
		"postgres://db.example.com/h":                     "server refused TLS connection",
	} {
		if err := connectHint(dsn, refused); !errors.Is(err, refused) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want it to start with %q", dsn, err, want)
		}
	}
}
