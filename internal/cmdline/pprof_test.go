package cmdline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
)

// The profiling listener binds loopback only.
func TestPProfListenIsLoopbackOnly(t *testing.T) {
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:6060", true},
		{"127.0.0.1:0", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{"0.0.0.0:6060", false},
		{":6060", false},
		{"10.0.0.5:6060", false},
		{"example.com:6060", false},
		{"127.0.0.1", false},
	} {
		err := PProf{Listen: c.addr}.Check()
		if c.ok != (err == nil) || err != nil && !errors.Is(err, ErrUsage) {
			t.Errorf("--pprof-listen %q: %v, want ok=%v (a usage error otherwise)", c.addr, err, c.ok)
		}
	}
}

// Serve logs where it listens and answers the pprof index there.
func TestPProfServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log bytes.Buffer
	if err := (PProf{Listen: "127.0.0.1:0"}).Serve(ctx, slog.New(slog.NewJSONHandler(&log, nil))); err != nil {
		t.Fatal(err)
	}
	var line struct{ Msg, Addr string }
	if err := json.Unmarshal(log.Bytes(), &line); err != nil || line.Msg != PProfServing || line.Addr == "" {
		t.Fatalf("log %q: want one %q line with addr (%v)", log.String(), PProfServing, err)
	}
	resp, err := http.Get("http://" + line.Addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("goroutine")) {
		t.Fatalf("GET /debug/pprof/: %d %.200s", resp.StatusCode, body)
	}
}
