package tests

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/auditstore"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// noTLSServer is the test PostgreSQL as a server without TLS (ssl = off)
// answers: a relay on loopback that refuses every TLS request ('N') and
// passes the rest through.
func noTLSServer(t *testing.T, upstream string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { relayRefusingTLS(c, upstream) })
		}
	})
	return ln.Addr().String()
}

func relayRefusingTLS(c net.Conn, upstream string) {
	defer c.Close()
	head := make([]byte, 8)
	for {
		if _, err := io.ReadFull(c, head); err != nil {
			return
		}
		// SSLRequest and GSSENCRequest: length 8, then their codes.
		if code := binary.BigEndian.Uint32(head[4:]); binary.BigEndian.Uint32(head) != 8 || (code != 80877103 && code != 80877104) {
			break
		}
		if _, err := c.Write([]byte("N")); err != nil {
			return
		}
	}
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := up.Write(head); err != nil {
		return
	}
	go io.Copy(up, c)
	io.Copy(c, up)
}

// withSSLMode is dsn at host with sslmode set.
func withSSLMode(t *testing.T, dsn, host, mode string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		u.Host = host
	}
	q := u.Query()
	q.Set("sslmode", mode)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestDatabaseSSLMode: every store honours the DSN's sslmode. Against a
// server without TLS, sslmode=require fails, saying TLS was required,
// rather than falling back to plaintext; sslmode=disable connects. Against
// the local server (TLS on, a certificate no one trusts) sslmode=require
// connects encrypted and verify-full refuses the certificate. An sslmode
// PostgreSQL does not know is a usage mistake before any connection.
func TestDatabaseSSLMode(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.PostgresT(t)
	u, _ := url.Parse(dsn)
	plain := noTLSServer(t, u.Host)
	keys, err := codec.Load(codecKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	opens := map[string]func(dsn string) (io.Closer, error){
		"endpoint registry": func(dsn string) (io.Closer, error) { return registry.Open(ctx, dsn, registry.Options{Codec: keys}) },
		"delivery log": func(dsn string) (io.Closer, error) {
			return deliverylog.Open(ctx, dsn, deliverylog.Options{Codec: keys})
		},
		"audit trail": func(dsn string) (io.Closer, error) { return auditstore.Open(ctx, dsn, auditstore.Options{}) },
	}
	for what, open := range opens {
		_, err := open(withSSLMode(t, dsn, plain, "require"))
		if err == nil || !strings.Contains(err.Error(), what) || !strings.Contains(err.Error(), "sslmode=require: only a TLS connection is accepted") ||
			!strings.Contains(err.Error(), "refused TLS") {
			t.Errorf("%s, sslmode=require, a server without TLS: %v; want a refusal naming sslmode=require", what, err)
		}
		s, err := open(withSSLMode(t, dsn, plain, "disable"))
		if err != nil {
			t.Errorf("%s, sslmode=disable, a server without TLS: %v", what, err)
			continue
		}
		s.Close()
	}

	// The local server offers TLS: require encrypts; verify-full checks the
	// certificate, which no root here signs.
	c, err := pgx.Connect(ctx, withSSLMode(t, dsn, "", "require"))
	if err != nil {
		t.Fatalf("sslmode=require to the local server: %v", err)
	}
	var encrypted bool
	if err := c.QueryRow(ctx, `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&encrypted); err != nil || !encrypted {
		t.Errorf("sslmode=require: connection encrypted %v (%v); want true", encrypted, err)
	}
	c.Close(ctx)
	if _, err := opens["endpoint registry"](withSSLMode(t, dsn, "", "verify-full")); err == nil || !strings.Contains(err.Error(), "sslmode=verify-full") {
		t.Errorf("sslmode=verify-full, an untrusted certificate: %v; want a refusal naming sslmode=verify-full", err)
	}

	out, errOut, code := starter(t, "", "migrate", "--db", withSSLMode(t, dsn, "", "requir"))
	if code != 2 || !strings.Contains(errOut, "--db") || !strings.Contains(errOut, "sslmode=requir is not one of") {
		t.Errorf("starter migrate with sslmode=requir: exit %d, want 2 naming --db and the sslmode\n%s%s", code, out, errOut)
	}
	out, errOut, code = starter(t, "", "migrate", "--db", withSSLMode(t, dsn, plain, "require"))
	if code != 1 || !strings.Contains(errOut, "sslmode=require") {
		t.Errorf("starter migrate, sslmode=require, a server without TLS: exit %d, want 1 naming sslmode=require\n%s%s", code, out, errOut)
	}
}
