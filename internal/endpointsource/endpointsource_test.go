package endpointsource

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// The registry needs the payload keys, --insecure-plaintext or not; a
// process opening it says so, as a command-line mistake.
func TestOpenRegistryNeedsKeys(t *testing.T) {
	src := cmdline.Endpoints{DB: "sqlite:" + filepath.Join(t.TempDir(), "e.db")}
	_, err := Open(context.Background(), src, &temporalclient.Options{InsecurePlaintext: true}, Rules{}, false, nil)
	if !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), "--codec-key-file") {
		t.Fatalf("without a key file: %v", err)
	}

	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "codec.key")
	os.WriteFile(keyFile, []byte("k1:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	conn := &temporalclient.Options{CodecKeyFile: keyFile}
	eps, err := Open(context.Background(), src, conn, Rules{AllowCIDRs: []string{"127.0.0.0/8"}}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eps.Close()
	if eps.Registry == nil || eps.File != nil || eps.Source == nil || !strings.Contains(eps.Count(), "sqlite") {
		t.Fatalf("opened %+v", eps)
	}
	// The guard at registration admits what --allow-cidr admits.
	url, events := "http://127.0.0.1:9000/hook", []string{"*"}
	if _, _, err := eps.Registry.Create(context.Background(), "acct", registryFields(&url, &events)); err != nil {
		t.Fatalf("an admitted loopback URL: %v", err)
	}
	if _, err := conn.DataConverter(); err != nil {
		t.Fatalf("the data converter reuses the loaded keys: %v", err)
	}
}

func registryFields(url *string, events *[]string) registry.Fields {
	return registry.Fields{URL: url, Events: events}
}

// A signing secret's file that group or others may read is warned about at
// start, naming the endpoint, as the payload key file is; one only its
// owner reads is not.
func TestWarnsOnAnEndpointSecretFileOthersMayRead(t *testing.T) {
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	for name, mode := range map[string]os.FileMode{"open.secret": 0o644, "closed.secret": 0o600} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("whsec_"+base64.StdEncoding.EncodeToString(secret)), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, mode) // past the umask
	}
	file := filepath.Join(dir, "endpoints.yaml")
	yaml := "endpoints:\n" +
		"  - {id: open, url: \"https://hooks.example.com/a\", events: [\"*\"], secret_file: open.secret}\n" +
		"  - {id: closed, url: \"https://hooks.example.com/b\", events: [\"*\"], secret_file: closed.secret}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := openFile(file, Rules{}, true, logger); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `flag="secret_file of endpoint open"`) {
		t.Errorf("no warning for the endpoint whose secret file others may read:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "endpoint closed") {
		t.Errorf("a warning for the endpoint whose secret file only its owner reads:\n%s", logs.String())
	}
}

// A bound flag narrows its bound, for the endpoints file and at
// registration alike; a value past the built-in bound is a usage mistake
// naming the flag (as is a --min-rate-limit above --max-rate-limit); an
// endpoints file outside a bound is refused, naming the entry and the field.
func TestBoundFlagsNarrowNeverWiden(t *testing.T) {
	parse := func(args ...string) (endpoint.Bounds, error) {
		var b endpoint.Bounds
		fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
		AddBoundsFlags(fs, &b)
		if err := cmdline.Parse(fs, args, 0); err != nil {
			return b, err
		}
		return b, CheckBounds(b)
	}
	if b, err := parse(); err != nil || b != endpoint.DefaultBounds() {
		t.Fatalf("no flags: %+v %v, want the built-in bounds", b, err)
	}
	for _, c := range []struct{ flag, value string }{
		{"max-attempt-timeout", "31s"}, {"min-probe-every", "4s"}, {"min-drain-per-second", "0.05"},
		{"max-open-after", "1001"}, {"max-park-limit", "721h"}, {"max-retry-steps", "31"}, {"max-retry-total", "721h"},
		{"max-in-flight-limit", "101"}, {"max-in-flight-limit", "0"}, {"min-rate-limit", "0.05"}, {"max-rate-limit", "1001"},
	} {
		_, err := parse("--"+c.flag, c.value)
		if !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), "--"+c.flag+":") || !strings.Contains(err.Error(), "only narrow") {
			t.Errorf("--%s %s widens its bound: %v, want a usage error naming the flag", c.flag, c.value, err)
		}
	}
	// The endpoint quota may be raised, up to its ceiling.
	if b, err := parse("--max-endpoints-per-account", "200"); err != nil || b.MaxEndpointsPerAccount != 200 {
		t.Errorf("--max-endpoints-per-account 200: %+v %v, want it raised", b, err)
	}
	for _, v := range []string{"0", "1001"} {
		if _, err := parse("--max-endpoints-per-account", v); !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), "--max-endpoints-per-account: "+v+" must be 1 to 1000") {
			t.Errorf("--max-endpoints-per-account %s: %v, want a usage error naming the flag and its range", v, err)
		}
	}
	t.Setenv("HOOKRELAY_MAX_OPEN_AFTER", "2000")
	if _, err := parse(); !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), "--max-open-after") {
		t.Errorf("HOOKRELAY_MAX_OPEN_AFTER=2000: %v, want a usage error naming --max-open-after", err)
	}
	t.Setenv("HOOKRELAY_MAX_OPEN_AFTER", "")
	t.Setenv("HOOKRELAY_MAX_RATE_LIMIT", "2000")
	if _, err := parse(); !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), "--max-rate-limit: 2000 must be at least 0.1 and at most 1000") {
		t.Errorf("HOOKRELAY_MAX_RATE_LIMIT=2000: %v, want a usage error naming --max-rate-limit and its bound", err)
	}
	t.Setenv("HOOKRELAY_MAX_RATE_LIMIT", "")
	if _, err := parse("--min-rate-limit", "20", "--max-rate-limit", "10"); !errors.Is(err, cmdline.ErrUsage) ||
		!strings.Contains(err.Error(), "--min-rate-limit: 20 is above --max-rate-limit 10") {
		t.Errorf("--min-rate-limit above --max-rate-limit: %v, want a usage error naming both", err)
	}
	b, err := parse("--max-attempt-timeout", "10s", "--min-drain-per-second", "1", "--max-in-flight-limit", "5", "--min-rate-limit", "1", "--max-rate-limit", "50")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	file := filepath.Join(dir, "endpoints.yaml")
	write := func(timeout string) {
		yaml := "endpoints:\n  - {id: slow, url: \"https://hooks.example.com/a\", events: [\"*\"], timeout: " + timeout +
			", secret: whsec_" + base64.StdEncoding.EncodeToString(secret) + "}\n"
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("20s")
	if _, err := openFile(file, Rules{}, true, nil); err != nil {
		t.Fatalf("20s under the built-in bound: %v", err)
	}
	_, err = openFile(file, Rules{Bounds: b}, true, nil)
	if err == nil || !strings.Contains(err.Error(), `endpoint "slow"`) || !strings.Contains(err.Error(), "timeout: 20s is over the 10s maximum") {
		t.Fatalf("20s under --max-attempt-timeout 10s: %v, want the entry and field named", err)
	}

	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(dir, "codec.key")
	os.WriteFile(keyFile, []byte("k1:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	r, err := OpenRegistry(context.Background(), "sqlite:"+filepath.Join(dir, "e.db"), &temporalclient.Options{CodecKeyFile: keyFile},
		Rules{AllowCIDRs: []string{"127.0.0.0/8"}, Bounds: b})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	url, events, timeout, drain := "http://127.0.0.1:9000/hook", []string{"*"}, "20s", 0.5
	f := registryFields(&url, &events)
	f.Timeout = &timeout
	var fe *event.FieldError
	if _, _, err := r.Create(context.Background(), "acct", f); !errors.As(err, &fe) || fe.Field != "timeout" || !strings.Contains(fe.Problem, "10s") {
		t.Fatalf("registration of 20s under --max-attempt-timeout 10s: %v", err)
	}
	f.Timeout, f.Circuit = nil, &endpoint.RawCircuit{DrainPerSecond: &drain}
	if _, _, err := r.Create(context.Background(), "acct", f); !errors.As(err, &fe) || fe.Field != "circuit.drain_per_second" {
		t.Fatalf("registration of drain 0.5 under --min-drain-per-second 1: %v", err)
	}
	f.Circuit = nil
	inFlight, rate := 6, 0.5
	f.MaxInFlight = &inFlight
	if _, _, err := r.Create(context.Background(), "acct", f); !errors.As(err, &fe) || fe.Field != "max_in_flight" || !strings.Contains(fe.Problem, "1 to 5") {
		t.Fatalf("registration of max_in_flight 6 under --max-in-flight-limit 5: %v", err)
	}
	f.MaxInFlight, f.RateLimit = nil, &rate
	if _, _, err := r.Create(context.Background(), "acct", f); !errors.As(err, &fe) || fe.Field != "rate_limit" || !strings.Contains(fe.Problem, "1 to 50") {
		t.Fatalf("registration of rate_limit 0.5 under --min-rate-limit 1: %v", err)
	}
	f.RateLimit = nil
	e, _, err := r.Create(context.Background(), "acct", f)
	if err != nil || e.Timeout != 10*time.Second || e.MaxInFlight != 5 {
		t.Fatalf("the defaults under --max-attempt-timeout 10s and --max-in-flight-limit 5: timeout %s, max_in_flight %d, %v; want 10s and 5", e.Timeout, e.MaxInFlight, err)
	}
}
