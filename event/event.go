// Package event holds the mail delivery-status event: its names, its
// validation, and the identity that makes resubmitting it harmless.
package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The event names the mail service emits.
const (
	Delivered        = "api_mail_log_delivered"
	TemporaryFailure = "api_mail_log_temporary_failure"
	PermanentFailure = "api_mail_log_permanent_failure"
	Opened           = "api_mail_log_opened"
)

// Names lists every known event name.
var Names = []string{Delivered, TemporaryFailure, PermanentFailure, Opened}

// Known reports whether name is one of Names.
func Known(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}

// MaxBodyBytes caps a submitted event.
const MaxBodyBytes = 256 << 10

var (
	idPattern        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
)

// CheckAccountID refuses an account id that is not 1 to 128 characters of
// A-Z a-z 0-9 . _ : -.
func CheckAccountID(id string) error {
	if !accountIDPattern.MatchString(id) {
		return errors.New("must be 1 to 128 characters of A-Z a-z 0-9 . _ : -")
	}
	return nil
}

// Event is one validated status event. Payload is kept as submitted
// (compacted) so the customer receives exactly the fields the mail service sent.
type Event struct {
	ID string `json:"event_id"`
	// AccountID is the customer the event belongs to; it reaches only that
	// account's endpoints. "" reaches only endpoints without an account.
	AccountID string          `json:"account_id,omitempty"`
	Name      string          `json:"event_name"`
	MailLogID int64           `json:"mail_log_id"`
	Time      time.Time       `json:"time"`
	Payload   json.RawMessage `json:"payload"`

	// parsed is the payload as Parse checked it: while Payload is still
	// that slice, Validate need not scan it again.
	parsed json.RawMessage
}

// FieldError is a refusal that names the offending field.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Parse validates one submitted event, {"event_name", "payload", "event_id"?}.
// Without event_id the id is derived from event_name, payload.id and payload.time.
func Parse(data []byte) (Event, error) {
	if len(data) > MaxBodyBytes {
		return Event{}, fieldErr("body", "is %d bytes, over the %d byte limit", len(data), MaxBodyBytes)
	}
	if err := CheckUTF8("body", data); err != nil {
		return Event{}, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return Event{}, fieldErr("body", "is not a JSON object: %v", err)
	}
	if fields == nil {
		return Event{}, fieldErr("body", "is not a JSON object")
	}
	if path, dup := DuplicateKey(data); dup {
		return Event{}, duplicateErr(path)
	}
	return FromObject(fields)
}

// topLevelFields are the keys an event may hold.
var topLevelFields = []string{"account_id", "event_id", "event_name", "payload"}

// FromObject is Parse for an event whose top level the caller has already
// decoded (an HTTP API telling one event from a batch), so its bytes are
// not decoded again. A decoded map has lost any repeated top-level key: the
// caller checks the document for those (DuplicateKey, CheckUTF8); FromObject
// checks the payload.
func FromObject(fields map[string]json.RawMessage) (Event, error) {
	var unknown []string
	for k := range fields {
		if !slices.Contains(topLevelFields, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Event{}, fieldErr(unknown[0], "is not a known field; an event holds event_name, payload and optionally event_id and account_id")
	}

	var ev Event
	name, err := stringField(fields, "event_name")
	switch {
	case err != nil:
		return Event{}, err
	case name == nil:
		return Event{}, fieldErr("event_name", "is required")
	case !Known(*name):
		return Event{}, fieldErr("event_name", "unknown event %q, want one of %s", *name, strings.Join(Names, ", "))
	}
	ev.Name = *name

	raw := fields["payload"]
	if len(raw) == 0 || string(raw) == "null" {
		return Event{}, fieldErr("payload", "is required")
	}
	if raw[0] != '{' {
		return Event{}, fieldErr("payload", "must be a JSON object")
	}
	if err := checkStrict("payload", "payload", raw); err != nil {
		return Event{}, err
	}
	var compact bytes.Buffer
	compact.Grow(len(raw))
	if err := json.Compact(&compact, raw); err != nil {
		return Event{}, fieldErr("payload", "is not valid JSON")
	}
	ev.Payload = compact.Bytes()
	// By exact key, as receivers read them: a struct would also take "ID" or "Time".
	var known map[string]json.RawMessage
	if err := json.Unmarshal(ev.Payload, &known); err != nil {
		return Event{}, fieldErr("payload", "must be a JSON object")
	}
	if ev.MailLogID, err = parseMailLogID(known["id"]); err != nil {
		return Event{}, err
	}
	if ev.Time, err = parseTime(known["time"]); err != nil {
		return Event{}, err
	}
	ev.parsed = ev.Payload

	account, err := stringField(fields, "account_id")
	switch {
	case err != nil:
		return Event{}, err
	case account != nil:
		if err := CheckAccountID(*account); err != nil {
			return Event{}, fieldErr("account_id", "%v", err)
		}
		ev.AccountID = *account
	}

	id, err := stringField(fields, "event_id")
	switch {
	case err != nil:
		return Event{}, err
	case id == nil:
		ev.ID = DeriveID(ev.AccountID, ev.Name, ev.MailLogID, ev.Time)
	case !idPattern.MatchString(*id):
		return Event{}, fieldErr("event_id", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit")
	default:
		ev.ID = *id
	}
	return ev, nil
}

// stringField reads an optional string field: nil when absent or null.
func stringField(fields map[string]json.RawMessage, name string) (*string, error) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fieldErr(name, "must be a JSON string")
	}
	return &s, nil
}

// Validate checks an Event built in Go rather than by Parse, so a hand-made
// event with a missing id or an unknown name is refused before anything
// starts. For an event from Parse it skips the scan of the payload Parse did.
func (e Event) Validate() error {
	if err := e.validateFields(); err != nil {
		return err
	}
	switch {
	case len(e.Payload) > 0 && len(e.Payload) == len(e.parsed) && &e.Payload[0] == &e.parsed[0]:
		return nil // Parse checked these very bytes
	case len(e.Payload) == 0 || !json.Valid(e.Payload) || bytes.TrimSpace(e.Payload)[0] != '{':
		return fieldErr("payload", "must be a JSON object")
	case len(e.Payload) > MaxBodyBytes:
		return fieldErr("payload", "is %d bytes, over the %d byte limit", len(e.Payload), MaxBodyBytes)
	}
	return checkStrict("payload", "payload", e.Payload)
}

func (e Event) validateFields() error {
	if e.AccountID != "" {
		if err := CheckAccountID(e.AccountID); err != nil {
			return fieldErr("account_id", "%v", err)
		}
	}
	switch {
	case !Known(e.Name):
		return fieldErr("event_name", "unknown event %q, want one of %s", e.Name, strings.Join(Names, ", "))
	case !idPattern.MatchString(e.ID):
		return fieldErr("event_id", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit (Parse derives one)")
	case e.MailLogID <= 0:
		return fieldErr("payload.id", "must be a positive integer")
	}
	return nil
}

func parseMailLogID(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, fieldErr("payload.id", "is required")
	}
	id, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || id <= 0 {
		return 0, fieldErr("payload.id", "must be a positive integer, got %s", truncate(string(raw), 40))
	}
	return id, nil
}

func parseTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, fieldErr("payload.time", "is required")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, fieldErr("payload.time", "must be an RFC 3339 timestamp string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fieldErr("payload.time", "must be an RFC 3339 timestamp such as 2026-04-18T20:27:25.379Z")
	}
	return t.UTC(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// DeriveID is the event id used when the producer gives none: a hash of the
// fields that tell events apart (account, event name, mail log id, time),
// and of nothing personal, so the id may appear in workflow IDs and logs.
// Without an account it is the hash it always was, so events of
// single-customer deployments keep their ids.
func DeriveID(accountID, name string, mailLogID int64, t time.Time) string {
	var in string
	if accountID == "" {
		in = fmt.Sprintf("hookrelay-event-v1\n%s\n%d\n%s", name, mailLogID, t.UTC().Format(time.RFC3339Nano))
	} else {
		in = fmt.Sprintf("hookrelay-event-v2\n%s\n%s\n%d\n%s", accountID, name, mailLogID, t.UTC().Format(time.RFC3339Nano))
	}
	sum := sha256.Sum256([]byte(in))
	return "evt_" + hex.EncodeToString(sum[:16])
}

// Body is what the customer's endpoint receives: {"event_name", "payload"}.
func (e Event) Body() []byte {
	name, _ := json.Marshal(e.Name)
	var b bytes.Buffer
	b.Grow(len(e.Payload) + len(name) + 28)
	b.WriteString(`{"event_name":`)
	b.Write(name)
	b.WriteString(`,"payload":`)
	b.Write(e.Payload)
	b.WriteByte('}')
	return b.Bytes()
}
