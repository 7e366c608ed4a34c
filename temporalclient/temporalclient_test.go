package temporalclient

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/pflag"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"

	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/metrics"
)

func TestFlagsFallBackToEnvironment(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "temporal.example.com:7233")
	t.Setenv("TEMPORAL_NAMESPACE", "mail")
	t.Setenv("HOOKRELAY_TASK_QUEUE", "")
	t.Setenv(EnvCodecKeyFile, "/etc/hookrelay/codec.key")
	var o Options
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if o.Address != "temporal.example.com:7233" || o.Namespace != "mail" || o.TaskQueue != DefaultTaskQueue ||
		o.CodecKeyFile != "/etc/hookrelay/codec.key" || o.InsecurePlaintext {
		t.Fatalf("from environment: %+v", o)
	}
	if err := fs.Parse([]string{"--namespace", "other", "--codec-key-file", "k"}); err != nil || o.Namespace != "other" || o.CodecKeyFile != "k" {
		t.Fatalf("a flag must win over the environment: %+v, %v", o, err)
	}
}

func TestValidate(t *testing.T) {
	ok := Options{Address: DefaultAddress, Namespace: "default", TaskQueue: "webhooks", CodecKeyFile: "codec.key"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	plain := ok
	plain.CodecKeyFile, plain.InsecurePlaintext = "", true
	if err := plain.Validate(); err != nil {
		t.Fatal(err)
	}
	for flag, o := range map[string]Options{
		"--temporal-address":   {Address: "localhost", Namespace: "default", TaskQueue: "webhooks", CodecKeyFile: "k"},
		"--namespace":          {Address: DefaultAddress, Namespace: " ", TaskQueue: "webhooks", CodecKeyFile: "k"},
		"--task-queue":         {Address: DefaultAddress, Namespace: "default", CodecKeyFile: "k"},
		"--codec-key-file":     {Address: DefaultAddress, Namespace: "default", TaskQueue: "webhooks"},
		"--insecure-plaintext": {Address: DefaultAddress, Namespace: "default", TaskQueue: "webhooks", CodecKeyFile: "k", InsecurePlaintext: true},
	} {
		if err := o.Validate(); err == nil || !strings.HasPrefix(err.Error(), flag) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", o, err, flag)
		}
	}
}

// writeKeyFile writes a payload key file with one fresh key, t1, and
// returns its path.
func writeKeyFile(t *testing.T) string {
	t.Helper()
	key := make([]byte, codec.KeyBytes)
	rand.Read(key)
	path := filepath.Join(t.TempDir(), "codec.key")
	if err := os.WriteFile(path, []byte("# test\nt1:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDataConverterEncryptsWithTheKeyFile(t *testing.T) {
	dc, err := Options{CodecKeyFile: writeKeyFile(t)}.DataConverter()
	if err != nil {
		t.Fatal(err)
	}
	p, err := dc.ToPayload("Fake subject")
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Metadata[codec.MetadataKeyID]) != "t1" || bytes.Contains(p.Data, []byte("Fake subject")) {
		t.Fatalf("payload not encrypted with t1: %v", p)
	}
	var back string
	if err := dc.FromPayload(p, &back); err != nil || back != "Fake subject" {
		t.Fatalf("FromPayload = %q, %v", back, err)
	}

	plain, err := Options{InsecurePlaintext: true}.DataConverter()
	if err != nil || plain != converter.GetDefaultDataConverter() {
		t.Fatalf("--insecure-plaintext converter = %v, %v", plain, err)
	}

	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("# test\nt1:QUFB\n"), 0o600)
	_, err = Options{CodecKeyFile: bad}.DataConverter()
	if err == nil || !strings.HasPrefix(err.Error(), "--codec-key-file:") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad key file: %v, want an error naming the flag and line 2", err)
	}
}

// A key file others may read still works, with a warning naming the flag.
func TestWarnsOnAKeyFileOthersMayRead(t *testing.T) {
	path := writeKeyFile(t)
	os.Chmod(path, 0o644) // others may read it
	var logs bytes.Buffer
	c, err := ConnectLazy(Options{Address: "127.0.0.1:1", Namespace: "default", TaskQueue: "q", CodecKeyFile: path}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "--codec-key-file") || !strings.Contains(logs.String(), "0644") {
		t.Fatalf("logs %q: want a warning naming --codec-key-file and its mode", logs.String())
	}
	os.Chmod(path, 0o600)
	logs.Reset()
	if c, err = ConnectLazy(Options{Address: "127.0.0.1:1", Namespace: "default", TaskQueue: "q", CodecKeyFile: path}, slog.New(slog.NewJSONHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if strings.Contains(logs.String(), "WARN") {
		t.Fatalf("a 0600 key file warned: %q", logs.String())
	}
}

// fakeMetrics records counter increments and gauge values by name and tags.
type fakeMetrics struct {
	mu     *sync.Mutex
	tags   string
	values map[string]float64
}

func newFakeMetrics() *fakeMetrics {
	return &fakeMetrics{mu: &sync.Mutex{}, values: map[string]float64{}}
}

func (f *fakeMetrics) WithTags(tags map[string]string) client.MetricsHandler {
	keys := make([]string, 0, len(tags))
	for k, v := range tags {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return &fakeMetrics{mu: f.mu, tags: f.tags + "{" + strings.Join(keys, ",") + "}", values: f.values}
}
func (f *fakeMetrics) Counter(name string) client.MetricsCounter {
	return fakeInstrument{f, name, true}
}
func (f *fakeMetrics) Gauge(name string) client.MetricsGauge { return fakeInstrument{f, name, false} }
func (f *fakeMetrics) Timer(name string) client.MetricsTimer {
	return client.MetricsNopHandler.Timer(name)
}
func (f *fakeMetrics) get(key string) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.values[key]
}

type fakeInstrument struct {
	f       *fakeMetrics
	name    string
	counter bool
}

func (i fakeInstrument) Inc(n int64) { i.Update(float64(n)) }
func (i fakeInstrument) Update(v float64) {
	i.f.mu.Lock()
	defer i.f.mu.Unlock()
	if i.counter {
		i.f.values[i.name+i.f.tags] += v
	} else {
		i.f.values[i.name+i.f.tags] = v
	}
}

// Every payload a client seals is counted per key; past the threshold the
// process warns in its log and in a gauge.
func TestKeyMonitorCountsAndWarns(t *testing.T) {
	c, err := codec.Parse([]byte("k9:" + base64.StdEncoding.EncodeToString(make([]byte, codec.KeyBytes))))
	if err != nil {
		t.Fatal(err)
	}
	m := newFakeMetrics()
	var logs bytes.Buffer
	mon := metrics.KeyMonitor(slog.New(slog.NewJSONHandler(&logs, nil)), m)
	mon.Threshold = 3
	c.Watch(mon)
	dc := NewDataConverter(c)
	for i := range 4 {
		if _, err := dc.ToPayload(i); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.get("hookrelay_codec_encryptions{key_id=k9}"); got != 4 {
		t.Errorf("encryptions counted %v, want 4", got)
	}
	if got := m.get("hookrelay_codec_key_overused{key_id=k9}"); got != 1 {
		t.Errorf("overused gauge %v, want 1", got)
	}
	if strings.Count(logs.String(), `"level":"WARN"`) != 1 || !strings.Contains(logs.String(), `"key_id":"k9"`) || !strings.Contains(logs.String(), "rotate") {
		t.Errorf("logs %q: want one warning naming k9 and rotation", logs.String())
	}
}

// Tracing adds the SDK's tracing interceptor; off, the client has none.
func TestTracingInterceptorOnlyWhenOn(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	o := Options{Address: DefaultAddress, Namespace: DefaultNamespace, TaskQueue: DefaultTaskQueue, InsecurePlaintext: true}
	off, err := clientOptions(o, logger)
	if err != nil || len(off.Interceptors) != 0 {
		t.Fatalf("tracing off: %d interceptors, %v", len(off.Interceptors), err)
	}
	o.TracerProvider = sdktrace.NewTracerProvider()
	on, err := clientOptions(o, logger)
	if err != nil || len(on.Interceptors) != 1 {
		t.Fatalf("tracing on: %d interceptors, %v", len(on.Interceptors), err)
	}
	if _, ok := on.Interceptors[0].(interceptor.WorkerInterceptor); !ok {
		t.Fatal("the tracing interceptor does not also intercept workers")
	}
}
