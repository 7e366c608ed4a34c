package endpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// rawEndpoint is one entry as written in the file.
type rawEndpoint struct {
	ID              string     `yaml:"id"`
	AccountID       *string    `yaml:"account_id"`
	Description     string     `yaml:"description"`
	URL             string     `yaml:"url"`
	Events          []string   `yaml:"events"`
	Secret          string     `yaml:"secret"`
	SecretEnv       string     `yaml:"secret_env"`
	SecretFile      string     `yaml:"secret_file"`
	PreviousSecrets []string   `yaml:"previous_secrets"`
	Timeout         *string    `yaml:"timeout"`
	RetrySchedule   *[]string  `yaml:"retry_schedule"`
	Enabled         *bool      `yaml:"enabled"`
	Circuit         RawCircuit `yaml:"circuit"`
	TraceContext    bool       `yaml:"trace_context"`
	MaxInFlight     *int       `yaml:"max_in_flight"`
	RateLimit       *float64   `yaml:"rate_limit"`
}

var endpointKeys = []string{"id", "account_id", "description", "url", "events", "secret", "secret_env", "secret_file", "previous_secrets", "timeout", "retry_schedule", "enabled", "circuit", "trace_context", "max_in_flight", "rate_limit"}

// Option tightens validation.
type Option func(*rules)

type rules struct {
	httpsOnly bool
	bounds    Bounds
}

// HTTPSOnly refuses endpoints whose URL is plain http (the worker's --https-only).
func HTTPSOnly() Option { return func(r *rules) { r.httpsOnly = true } }

// WithBounds checks every endpoint against b (DefaultBounds without it).
func WithBounds(b Bounds) Option { return func(r *rules) { r.bounds = b } }

// Load reads and validates an endpoints file.
func Load(path string, opts ...Option) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("endpoints file: %w", err)
	}
	cfg, err := Parse(data, filepath.Dir(path), opts...)
	if err != nil {
		return nil, fmt.Errorf("endpoints file %s: %w", path, err)
	}
	return cfg, nil
}

// Parse validates an endpoints document; baseDir anchors relative secret_file paths.
// Errors name the endpoint (its id, or its index when the id is unusable) and the field.
func Parse(data []byte, baseDir string, opts ...Option) (*Config, error) {
	var r rules
	for _, o := range opts {
		o(&r)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("must be a mapping with an endpoints list")
	}
	root := doc.Content[0]
	var list *yaml.Node
	for i := 0; i < len(root.Content); i += 2 {
		key := root.Content[i]
		if key.Value != "endpoints" {
			return nil, fmt.Errorf("line %d: unknown key %q (the file holds only endpoints)", key.Line, key.Value)
		}
		list = root.Content[i+1]
	}
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil, errors.New("endpoints: must be a list")
	}

	cfg := &Config{}
	seen := map[string]int{}
	perAccount := map[string]int{}
	for i, node := range list.Content {
		where := fmt.Sprintf("endpoints[%d]", i)
		if node.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s (line %d): must be a mapping", where, node.Line)
		}
		if id := mappingValue(node, "id"); id != "" {
			where = fmt.Sprintf("endpoint %q (endpoints[%d])", id, i)
		}
		for k := 0; k < len(node.Content); k += 2 {
			key := node.Content[k]
			if !contains(endpointKeys, key.Value) {
				return nil, fmt.Errorf("%s: line %d: unknown key %q, want one of %s", where, key.Line, key.Value, strings.Join(endpointKeys, ", "))
			}
			if key.Value == "circuit" && k+1 < len(node.Content) {
				if err := checkKeys(node.Content[k+1], "circuit", circuitKeys); err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
			}
		}
		var raw rawEndpoint
		if err := node.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %w", where, typeError(err))
		}
		e, err := raw.validate(baseDir, r.bounds)
		if err == nil && r.httpsOnly && e.URL.Scheme != "https" {
			// The URL is not quoted: it may carry a customer's token.
			err = errors.New("url: plain http is refused by --https-only; use an https URL")
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if first, dup := seen[e.ID]; dup {
			return nil, fmt.Errorf("%s: id: duplicate of endpoints[%d]", where, first)
		}
		seen[e.ID] = i
		perAccount[e.AccountID]++
		if err := r.bounds.CheckEndpointCount(e.AccountID, perAccount[e.AccountID]); err != nil {
			return nil, fmt.Errorf("%s: account_id: %w", where, err)
		}
		cfg.Endpoints = append(cfg.Endpoints, e)
	}
	return cfg, nil
}

var circuitKeys = []string{"open_after", "probe_every", "drain_per_second", "disable_after", "park_limit"}

// checkKeys refuses a mapping's unknown keys, naming the field.
func checkKeys(node *yaml.Node, field string, known []string) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: line %d: must be a mapping of %s", field, node.Line, strings.Join(known, ", "))
	}
	for k := 0; k < len(node.Content); k += 2 {
		if key := node.Content[k]; !contains(known, key.Value) {
			return fmt.Errorf("%s: line %d: unknown key %q, want one of %s", field, key.Line, key.Value, strings.Join(known, ", "))
		}
	}
	return nil
}

func mappingValue(node *yaml.Node, key string) string {
	for k := 0; k+1 < len(node.Content); k += 2 {
		if node.Content[k].Value == key && node.Content[k+1].Kind == yaml.ScalarNode {
			return node.Content[k+1].Value
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// typeError shortens yaml's type errors, which name Go types, to the line and problem.
func typeError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return err
}

// File is an endpoints file that reloads itself when it changes, so an
// attempt always uses the current URL and secret. A reload that fails
// validation keeps the last good config and reports the error through OnError.
type File struct {
	path    string
	opts    []Option
	OnError func(error)

	mu      sync.Mutex
	cfg     *Config
	modTime time.Time
	size    int64
}

// OpenFile loads path once and fails if it is invalid; reloads apply the same options.
func OpenFile(path string, opts ...Option) (*File, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("endpoints file: %w", err)
	}
	cfg, err := Load(path, opts...)
	if err != nil {
		return nil, err
	}
	return &File{path: path, opts: opts, cfg: cfg, modTime: info.ModTime(), size: info.Size()}, nil
}

// Config returns the current config, reloading the file first if it changed.
func (f *File) Config() *Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, err := os.Stat(f.path)
	if err != nil {
		f.report(fmt.Errorf("endpoints file: %w (keeping the last good config)", err))
		return f.cfg
	}
	if info.ModTime().Equal(f.modTime) && info.Size() == f.size {
		return f.cfg
	}
	cfg, err := Load(f.path, f.opts...)
	f.modTime, f.size = info.ModTime(), info.Size()
	if err != nil {
		f.report(fmt.Errorf("%w (keeping the last good config)", err))
		return f.cfg
	}
	f.cfg = cfg
	return cfg
}

// Resolve finds an endpoint in the current config.
func (f *File) Resolve(ctx context.Context, id string) (Endpoint, error) {
	return f.Config().Resolve(ctx, id)
}

// Route returns the enabled endpoints of the current config that serve the
// account and want the event, so a long-running publisher follows edits to the file.
func (f *File) Route(ctx context.Context, accountID, eventName string) ([]Endpoint, error) {
	return f.Config().Route(ctx, accountID, eventName)
}

func (f *File) report(err error) {
	if f.OnError != nil {
		f.OnError(err)
	}
}
