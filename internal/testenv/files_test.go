package testenv

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/codec"
)

// What WriteEndpoints writes is an endpoints file the worker accepts, as meant.
func TestWriteEndpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.yaml")
	secret := NewSecret()
	err := WriteEndpoints(path,
		Endpoint{ID: "acme", URL: "https://hooks.acme.example/mail", Secret: secret, Timeout: 5 * time.Second, RetrySchedule: []time.Duration{200 * time.Millisecond, time.Hour}},
		Endpoint{ID: "billing", URL: "https://billing.example/hooks", Events: []string{"api_mail_log_delivered", "api_mail_log_opened"}, Secret: secret, RetrySchedule: []time.Duration{}},
		Endpoint{ID: "archive", URL: "https://archive.example/hooks", Secret: secret, Extra: "    enabled: false\n"},
	)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := endpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := cfg.Lookup("acme")
	billing, _ := cfg.Lookup("billing")
	archive, ok := cfg.Lookup("archive")
	switch {
	case acme.Timeout != 5*time.Second || len(acme.RetrySchedule) != 2 || acme.RetrySchedule[1] != time.Hour || !acme.Subscribes("api_mail_log_opened"):
		t.Fatalf("acme: %+v", acme)
	case len(billing.RetrySchedule) != 0 || billing.Subscribes("api_mail_log_permanent_failure") || !billing.Subscribes("api_mail_log_opened"):
		t.Fatalf("billing: %+v", billing)
	case !ok || archive.Enabled:
		t.Fatalf("archive: %+v", archive)
	}
}

func TestWriteCodecKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "codec.key")
	if err := WriteCodecKey(path, "tests"); err != nil {
		t.Fatal(err)
	}
	c, err := codec.Load(path)
	if err != nil || c.KeyID() != "tests" {
		t.Fatalf("codec.Load: %v, %v", c, err)
	}
	if NewSecret() == NewSecret() || NewToken() == NewToken() || !strings.HasPrefix(NewSecret(), "whsec_") {
		t.Fatal("secrets and tokens are not fresh")
	}
}

func TestFreeAddr(t *testing.T) {
	addr := FreeAddrT(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the free address %s: %v", addr, err)
	}
	ln.Close()
}

// Wait polls until the condition holds, and otherwise says what it waited
// for and the condition's last word.
func TestWait(t *testing.T) {
	calls := 0
	if err := Wait(context.Background(), time.Minute, "the third call", func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("Wait = %v after %d calls", err, calls)
	}
	err := Wait(context.Background(), 100*time.Millisecond, "a namespace", func() error { return errors.New("namespace not found") })
	if err == nil || !strings.Contains(err.Error(), "waiting for a namespace: namespace not found") {
		t.Fatalf("Wait = %v", err)
	}
}
