package endpoint

import (
	"strings"
	"time"
)

// Fields are an endpoint's settable fields in the registry, as the API and
// the CLI take them. Nil leaves a field as it is on Update, and at its
// default on Create (where url and events are required).
type Fields struct {
	URL           *string
	Events        *[]string
	Description   *string
	Timeout       *string // a duration such as 15s
	RetrySchedule *[]string
	Enabled       *bool
	// Circuit changes the circuit breaker's settings it names.
	Circuit *RawCircuit
	// TraceContext: attempts carry the W3C traceparent header.
	TraceContext *bool
	// MaxInFlight and RateLimit bound the endpoint's share of the fleet.
	MaxInFlight *int
	RateLimit   *float64
}

// Entry is a registered endpoint as management calls return it: its
// configuration, without secrets, and when it was created and last changed.
type Entry struct {
	Endpoint
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Page is one page of a registry's List.
type Page struct {
	Entries []Entry
	// NextCursor continues the listing; "" on the last page.
	NextCursor string
}

// Rotated is the answer to a registry's RotateSecret.
type Rotated struct {
	// Secret is the new signing secret, whsec_...: shown here only.
	Secret string
	// PreviousExpiresAt is when the replaced secret stops signing; nil when
	// it was dropped at once.
	PreviousExpiresAt *time.Time
}

// View is an endpoint as the HTTP API and `starter endpoint --output json`
// show it. Secret is set only in the answer to its creation.
type View struct {
	ID            string     `json:"id"`
	AccountID     string     `json:"account_id"`
	URL           string     `json:"url"`
	Events        []string   `json:"events"`
	Description   string     `json:"description"`
	Timeout       string     `json:"timeout"`
	RetrySchedule []string   `json:"retry_schedule"`
	Enabled       bool       `json:"enabled"`
	Circuit       RawCircuit `json:"circuit"`
	TraceContext  bool       `json:"trace_context"`
	MaxInFlight   int        `json:"max_in_flight"`
	RateLimit     float64    `json:"rate_limit"`
	CreatedAt     *time.Time `json:"created_at,omitempty"`
	UpdatedAt     *time.Time `json:"updated_at,omitempty"`
	Secret        string     `json:"secret,omitempty"`
}

// View is e as shown, without secrets.
func (e Entry) View() View {
	v := View{ID: e.ID, AccountID: e.AccountID, URL: e.URL.String(), Events: e.Events, Description: e.Description,
		Timeout: formatDuration(e.Timeout), RetrySchedule: make([]string, len(e.RetrySchedule)), Enabled: e.Enabled,
		TraceContext: e.TraceContext, MaxInFlight: e.EffectiveMaxInFlight(), RateLimit: e.RateLimit}
	for i, d := range e.RetrySchedule {
		v.RetrySchedule[i] = formatDuration(d)
	}
	c := e.Circuit
	disable, park := formatDuration(c.DisableAfter), formatDuration(c.ParkLimit)
	v.Circuit = RawCircuit{OpenAfter: &c.OpenAfter, DrainPerSecond: &c.DrainPerSecond, DisableAfter: &disable, ParkLimit: &park,
		ProbeEvery: make([]string, len(c.ProbeEvery))}
	for i, d := range c.ProbeEvery {
		v.Circuit.ProbeEvery[i] = formatDuration(d)
	}
	if !e.CreatedAt.IsZero() { // a file's endpoints have no times
		v.CreatedAt, v.UpdatedAt = &e.CreatedAt, &e.UpdatedAt
	}
	return v
}

// formatDuration writes 5m and 2h rather than 5m0s and 2h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
