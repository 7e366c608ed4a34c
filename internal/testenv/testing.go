package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/codec"
)

// The helpers for tests: each fails t where the core returns an error, and
// registers what must happen at t's cleanup.

// StartT starts s for t and, at t's cleanup, stops it with SIGTERM and
// expects exit status 0. Without a LogDir, it logs into a directory of t's.
func StartT(t testing.TB, s Spec) *Process {
	t.Helper()
	if s.LogDir == "" {
		s.LogDir = t.TempDir()
	}
	p, err := Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(30 * time.Second); err != nil {
			t.Errorf("%v\n%s", err, p.Log())
		}
	})
	return p
}

// NewCodecT is a payload codec with one fresh key named keyID.
func NewCodecT(t testing.TB, keyID string) *codec.Codec {
	t.Helper()
	c, err := codec.Parse([]byte(CodecKeyLine(keyID)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewReceiverT starts a receiver for t, closed at t's cleanup.
func NewReceiverT(t testing.TB, o ReceiverOptions) *Receiver {
	t.Helper()
	rc, err := NewReceiver(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	return rc
}

// FreeAddrT is FreeAddr for t.
func FreeAddrT(t testing.TB) string {
	t.Helper()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

var errNotYet = errors.New("not yet")

// Eventually polls cond until it holds, and fails t if timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := Wait(context.Background(), timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// NewCollectorT is NewCollector, closed when t ends.
func NewCollectorT(t testing.TB) *Collector {
	t.Helper()
	c, err := NewCollector()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
