// Package endpoint holds the customer endpoints: whose they are (the
// account), where each one's events go, how they are signed, and how failed
// attempts are retried. It reads the endpoints YAML file, which both worker
// and starter load, and defines the Source every store of endpoints (the
// file, or the registry database) offers them through.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/redact"
)

// Defaults applied when a field is absent.
var (
	DefaultTimeout       = 15 * time.Second
	DefaultRetrySchedule = []time.Duration{
		5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
		10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
	}
)

// Bounds on configured values (DefaultBounds holds the rest, and operators
// may narrow these too).
const (
	MaxTimeout        = 30 * time.Second
	MaxRetryDelay     = 7 * 24 * time.Hour
	MaxRetryAttempts  = 30
	maxIDLength       = 64
	allEventsWildcard = "*"
)

var (
	idPattern      = regexp.MustCompile(`^[a-z0-9-]+$`)
	envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Source is where endpoints come from: the endpoints file or the registry
// database. Resolve finds one by id at attempt time; Route finds the
// endpoints an event goes to. Both are exact on the account: an endpoint of
// account X serves only events of account X, one without an account only
// events without one.
type Source interface {
	// Resolve returns the endpoint with this id, or an error wrapping
	// ErrNotFound (absent now, perhaps added later) or ErrDeleted (removed
	// for good from a registry).
	Resolve(ctx context.Context, id string) (Endpoint, error)
	// Route returns the enabled endpoints of accountID subscribed to eventName.
	// When some of them cannot be served (a registry row refused), it
	// returns the others with a *RouteError naming those.
	Route(ctx context.Context, accountID, eventName string) ([]Endpoint, error)
}

// RouteError is Route's error when some endpoints an event goes to cannot
// be served; Route still returns the others, which the event reaches.
type RouteError struct {
	Refused []Refused
}

// Refused is one endpoint Route could not serve, and why.
type Refused struct {
	ID  string
	Err error
}

func (e *RouteError) Error() string {
	msgs := make([]string, len(e.Refused))
	for i, r := range e.Refused {
		msgs[i] = r.Err.Error()
	}
	return fmt.Sprintf("%d endpoint(s) refused: %s", len(e.Refused), strings.Join(msgs, "; "))
}

// Unwrap is each refusal's error, for errors.Is and errors.As.
func (e *RouteError) Unwrap() []error {
	errs := make([]error, len(e.Refused))
	for i, r := range e.Refused {
		errs[i] = r.Err
	}
	return errs
}

// Errors of Source.Resolve.
var (
	ErrNotFound = errors.New("endpoint not found")
	ErrDeleted  = errors.New("endpoint deleted")
)

// Endpoint is one customer destination.
type Endpoint struct {
	ID string
	// AccountID is the customer the endpoint belongs to; "" for a
	// single-customer file without accounts.
	AccountID     string
	Description   string
	URL           *url.URL
	Events        []string // event names, or ["*"]
	Timeout       time.Duration
	RetrySchedule []time.Duration // delay after each failed attempt
	Enabled       bool
	// Circuit is the endpoint's circuit breaker (see workflows' endpoint health).
	Circuit Circuit
	// TraceContext sends the attempt's W3C traceparent (never tracestate)
	// header when tracing is on; off by default, since it tells the
	// customer the sender's trace ids.
	TraceContext bool
	// MaxInFlight bounds the attempts to the endpoint that one worker runs
	// at once (DefaultMaxInFlight when not set); the rest wait their turn.
	MaxInFlight int
	// RateLimit is at most this many requests a second to the endpoint,
	// across every worker; 0: none.
	RateLimit float64

	secret          secretSource
	previousSecrets []Secret
}

// SetSecrets gives an endpoint built outside this package (by a registry)
// its signing secrets: the current one, then those still signed with
// during a rotation.
func (e *Endpoint) SetSecrets(current Secret, previous ...Secret) {
	e.secret = secretSource{inline: &current}
	e.previousSecrets = previous
}

// Subscribes reports whether the endpoint wants events named name.
func (e Endpoint) Subscribes(name string) bool {
	return slices.Contains(e.Events, allEventsWildcard) || slices.Contains(e.Events, name)
}

// Secrets resolves the signing secrets now, current first, then previous
// ones. Environment and file secrets are read on every call, so a rotated
// secret applies to the next attempt without a restart.
func (e Endpoint) Secrets() ([]Secret, error) {
	cur, err := e.secret.resolve()
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", e.ID, err)
	}
	return append([]Secret{cur}, e.previousSecrets...), nil
}

// secretSource is exactly one of an inline secret, an environment variable
// or a file, resolved at attempt time.
type secretSource struct {
	inline  *Secret
	envName string
	file    string
}

func (s secretSource) resolve() (Secret, error) {
	switch {
	case s.inline != nil:
		return *s.inline, nil
	case s.envName != "":
		v, ok := os.LookupEnv(s.envName)
		if !ok || v == "" {
			return Secret{}, fmt.Errorf("secret_env: environment variable %s is not set", s.envName)
		}
		sec, err := ParseSecret(v)
		if err != nil {
			return Secret{}, fmt.Errorf("secret_env: %s: %w", s.envName, err)
		}
		return sec, nil
	default:
		data, err := os.ReadFile(s.file)
		if err != nil {
			return Secret{}, fmt.Errorf("secret_file: %w", err)
		}
		sec, err := ParseSecret(string(data))
		if err != nil {
			return Secret{}, fmt.Errorf("secret_file: %s: %w", s.file, err)
		}
		return sec, nil
	}
}

// Config is a validated endpoints file.
type Config struct {
	Endpoints []Endpoint
}

// Lookup finds an endpoint by id.
func (c *Config) Lookup(id string) (Endpoint, bool) {
	for _, e := range c.Endpoints {
		if e.ID == id {
			return e, true
		}
	}
	return Endpoint{}, false
}

// Subscribed returns the enabled endpoints of accountID that want events
// named name, in file order. The account must match exactly.
func (c *Config) Subscribed(accountID, name string) []Endpoint {
	var out []Endpoint
	for _, e := range c.Endpoints {
		if e.Enabled && e.AccountID == accountID && e.Subscribes(name) {
			out = append(out, e)
		}
	}
	return out
}

// Resolve is Lookup as a Source.
func (c *Config) Resolve(_ context.Context, id string) (Endpoint, error) {
	if e, ok := c.Lookup(id); ok {
		return e, nil
	}
	return Endpoint{}, fmt.Errorf("endpoint %q is not in the endpoints file: %w", id, ErrNotFound)
}

// Route is Subscribed as a Source.
func (c *Config) Route(_ context.Context, accountID, eventName string) ([]Endpoint, error) {
	return c.Subscribed(accountID, eventName), nil
}

// CheckSecrets resolves every enabled endpoint's secrets once, so a worker
// refuses to start with a secret it could not sign with.
func (c *Config) CheckSecrets() error {
	var errs []error
	for _, e := range c.Endpoints {
		if !e.Enabled {
			continue
		}
		if _, err := e.Secrets(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SecretFile is the file an endpoint's secret is read from (secret_file,
// anchored to the endpoints file's folder), or "" when it comes from
// elsewhere.
func (e Endpoint) SecretFile() string { return e.secret.file }

// validate turns one raw entry into an Endpoint; baseDir anchors relative secret_file paths.
func (r rawEndpoint) validate(baseDir string, b Bounds) (Endpoint, error) {
	e := Endpoint{ID: r.ID, Enabled: true, TraceContext: r.TraceContext}
	if r.Enabled != nil {
		e.Enabled = *r.Enabled
	}
	switch {
	case r.ID == "":
		return e, errors.New("id: is required")
	case len(r.ID) > maxIDLength || !idPattern.MatchString(r.ID):
		return e, fmt.Errorf("id: %q must be 1 to %d characters of a-z, 0-9 and -", r.ID, maxIDLength)
	}
	if r.AccountID != nil {
		if err := event.CheckAccountID(*r.AccountID); err != nil {
			return e, fmt.Errorf("account_id: %w", err)
		}
		e.AccountID = *r.AccountID
	}
	if err := CheckDescription(r.Description); err != nil {
		return e, fmt.Errorf("description: %w", err)
	}
	e.Description = r.Description

	u, err := ParseURL(r.URL)
	if err != nil {
		return e, fmt.Errorf("url: %w", err)
	}
	e.URL = u

	if err := CheckEvents(r.Events); err != nil {
		return e, fmt.Errorf("events: %w", err)
	}
	e.Events = r.Events

	if e.secret, err = r.secretSource(baseDir); err != nil {
		return e, err
	}
	for i, s := range r.PreviousSecrets {
		sec, err := ParseSecret(s)
		if err != nil {
			return e, fmt.Errorf("previous_secrets[%d]: %w", i, err)
		}
		e.previousSecrets = append(e.previousSecrets, sec)
	}

	if err := r.settings(&e, b); err != nil {
		return e, err
	}
	return e, nil
}

// settings parses the timeout, circuit, retry schedule, max_in_flight and
// rate_limit over the defaults (brought within b) and checks them against b.
func (r rawEndpoint) settings(e *Endpoint, b Bounds) error {
	d := b.Within(Endpoint{Timeout: DefaultTimeout, RetrySchedule: DefaultRetrySchedule, Circuit: DefaultCircuit(), MaxInFlight: DefaultMaxInFlight})
	e.Timeout, e.RetrySchedule, e.MaxInFlight = d.Timeout, d.RetrySchedule, d.MaxInFlight
	if r.MaxInFlight != nil {
		if err := b.CheckMaxInFlight(*r.MaxInFlight); err != nil {
			return err
		}
		e.MaxInFlight = *r.MaxInFlight
	}
	if r.RateLimit != nil {
		if err := b.CheckRateLimit(*r.RateLimit); err != nil {
			return err
		}
		e.RateLimit = *r.RateLimit
	}
	var err error
	if r.Timeout != nil {
		if e.Timeout, err = ParseTimeout(*r.Timeout); err != nil {
			return fmt.Errorf("timeout: %w", err)
		}
	}
	if e.Circuit, err = r.Circuit.Parse(d.Circuit); err != nil {
		return err
	}
	if r.RetrySchedule != nil {
		if e.RetrySchedule, err = ParseRetrySchedule(*r.RetrySchedule); err != nil {
			return err
		}
	}
	return b.Check(*e)
}

// Circuit is an endpoint's circuit breaker: when it opens, how it probes,
// how fast it drains, when it disables the endpoint, and how long a
// delivery may stay parked.
type Circuit struct {
	// OpenAfter consecutive failed attempts (of any deliveries) open the circuit.
	OpenAfter int `json:"open_after"`
	// ProbeEvery is the backoff between probes while open; the last repeats.
	ProbeEvery []time.Duration `json:"probe_every"`
	// DrainPerSecond releases parked deliveries at this rate, fleet-wide.
	DrainPerSecond float64 `json:"drain_per_second"`
	// DisableAfter continuously open disables the endpoint.
	DisableAfter time.Duration `json:"disable_after"`
	// ParkLimit: a delivery parked longer fails with endpoint_unavailable.
	ParkLimit time.Duration `json:"park_limit"`
}

// DefaultCircuit is every endpoint's circuit unless its config says otherwise.
func DefaultCircuit() Circuit {
	return Circuit{
		OpenAfter:      10,
		ProbeEvery:     []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour},
		DrainPerSecond: 10,
		DisableAfter:   120 * time.Hour,
		ParkLimit:      168 * time.Hour,
	}
}

// Bounds on circuit settings.
const (
	MaxOpenAfter      = 1000
	MaxProbeSteps     = 20
	MaxDrainPerSecond = 10000
	maxCircuitPeriod  = 365 * 24 * time.Hour
	maxProbeDelay     = 24 * time.Hour
)

// RawCircuit is a circuit as written in a file or an API request: any field
// left out takes its default.
type RawCircuit struct {
	OpenAfter      *int     `yaml:"open_after" json:"open_after,omitempty"`
	ProbeEvery     []string `yaml:"probe_every" json:"probe_every,omitempty"`
	DrainPerSecond *float64 `yaml:"drain_per_second" json:"drain_per_second,omitempty"`
	DisableAfter   *string  `yaml:"disable_after" json:"disable_after,omitempty"`
	ParkLimit      *string  `yaml:"park_limit" json:"park_limit,omitempty"`
}

// Parse validates a circuit over base (the defaults, or the current one
// for a patch); an error names the field, as circuit.open_after.
func (r RawCircuit) Parse(base Circuit) (Circuit, error) {
	c := base
	if r.OpenAfter != nil {
		if *r.OpenAfter < 1 || *r.OpenAfter > MaxOpenAfter {
			return c, fmt.Errorf("circuit.open_after: %d must be 1 to %d", *r.OpenAfter, MaxOpenAfter)
		}
		c.OpenAfter = *r.OpenAfter
	}
	if r.ProbeEvery != nil {
		if len(r.ProbeEvery) == 0 || len(r.ProbeEvery) > MaxProbeSteps {
			return c, fmt.Errorf("circuit.probe_every: %d delays, want 1 to %d", len(r.ProbeEvery), MaxProbeSteps)
		}
		c.ProbeEvery = make([]time.Duration, 0, len(r.ProbeEvery))
		for i, s := range r.ProbeEvery {
			d, err := parseDuration(s, maxProbeDelay)
			if err != nil {
				return c, fmt.Errorf("circuit.probe_every[%d]: %w", i, err)
			}
			c.ProbeEvery = append(c.ProbeEvery, d)
		}
	}
	if r.DrainPerSecond != nil {
		if *r.DrainPerSecond <= 0 || *r.DrainPerSecond > MaxDrainPerSecond {
			return c, fmt.Errorf("circuit.drain_per_second: %g must be above 0 and at most %d", *r.DrainPerSecond, MaxDrainPerSecond)
		}
		c.DrainPerSecond = *r.DrainPerSecond
	}
	var err error
	if r.DisableAfter != nil {
		if c.DisableAfter, err = parseDuration(*r.DisableAfter, maxCircuitPeriod); err != nil {
			return c, fmt.Errorf("circuit.disable_after: %w", err)
		}
	}
	if r.ParkLimit != nil {
		if c.ParkLimit, err = parseDuration(*r.ParkLimit, maxCircuitPeriod); err != nil {
			return c, fmt.Errorf("circuit.park_limit: %w", err)
		}
	}
	return c, nil
}

// MaxDescriptionLength caps an endpoint's description.
const MaxDescriptionLength = 500

// CheckDescription refuses a description too long, or with control characters.
func CheckDescription(s string) error {
	switch {
	case utf8.RuneCountInString(s) > MaxDescriptionLength:
		return fmt.Errorf("is longer than %d characters", MaxDescriptionLength)
	case strings.ContainsFunc(s, unicode.IsControl):
		return errors.New("must not hold control characters such as newlines")
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	}
	return nil
}

// CheckEvents checks an endpoint's subscriptions: known event names, or ["*"].
func CheckEvents(names []string) error {
	if len(names) == 0 {
		return errors.New(`is required: list event names, or ["*"] for all`)
	}
	for _, name := range names {
		if name != allEventsWildcard && !event.Known(name) {
			return fmt.Errorf("unknown event %q, want one of %s or \"*\"", name, strings.Join(event.Names, ", "))
		}
	}
	return nil
}

// ParseTimeout reads a per-attempt timeout such as 15s.
func ParseTimeout(s string) (time.Duration, error) { return parseDuration(s, MaxTimeout) }

// ParseRetrySchedule reads a retry schedule; an error names the field, as
// retry_schedule or retry_schedule[2].
func ParseRetrySchedule(delays []string) ([]time.Duration, error) {
	if len(delays) > MaxRetryAttempts {
		return nil, fmt.Errorf("retry_schedule: %d delays, at most %d", len(delays), MaxRetryAttempts)
	}
	out := make([]time.Duration, 0, len(delays))
	for i, s := range delays {
		d, err := parseDuration(s, MaxRetryDelay)
		if err != nil {
			return nil, fmt.Errorf("retry_schedule[%d]: %w", i, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func (r rawEndpoint) secretSource(baseDir string) (secretSource, error) {
	set := 0
	for _, v := range []string{r.Secret, r.SecretEnv, r.SecretFile} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return secretSource{}, errors.New("secret: set exactly one of secret, secret_env or secret_file")
	}
	switch {
	case r.Secret != "":
		sec, err := ParseSecret(r.Secret)
		if err != nil {
			return secretSource{}, fmt.Errorf("secret: %w", err)
		}
		return secretSource{inline: &sec}, nil
	case r.SecretEnv != "":
		if !envNamePattern.MatchString(r.SecretEnv) {
			return secretSource{}, fmt.Errorf("secret_env: %q is not an environment variable name", r.SecretEnv)
		}
		return secretSource{envName: r.SecretEnv}, nil
	default:
		path := r.SecretFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		return secretSource{file: path}, nil
	}
}

// ParseURL checks an endpoint URL: http or https, a host, no credentials,
// no fragment. Its errors show the URL without query or fragment (which may
// carry a customer's token), since they reach logs when a reload fails.
func ParseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("is required")
	}
	shown := redact.URL(s)
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", shown)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q must use http or https", shown)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%q has no host", shown)
	case u.User != nil:
		return nil, errors.New("must not hold credentials; receivers authenticate deliveries by their signature")
	case u.Fragment != "":
		return nil, fmt.Errorf("%q must not have a #fragment", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port must be 1 to 65535", shown)
		}
	}
	return u, nil
}

func parseDuration(s string, max time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration such as 15s, 5m or 2h", s)
	case d <= 0:
		return 0, fmt.Errorf("%q must be positive", s)
	case d > max:
		return 0, fmt.Errorf("%q is over the %s maximum", s, max)
	}
	return d, nil
}
