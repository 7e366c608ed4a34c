// Package audit is the audit trail's record: who changed what, when, in
// which account, as hookrelay's HTTP API lists it (GET /v1/audit) and its
// store (internal/auditstore) keeps it. A record names the credential that
// acted (an id, never its secret) and the fields a change set (names,
// never values); Check refuses one that could carry more.
package audit

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// The actions a record may name.
const (
	EndpointCreate       = "endpoint.create"
	EndpointUpdate       = "endpoint.update"
	EndpointDelete       = "endpoint.delete"
	EndpointRotateSecret = "endpoint.rotate_secret"
	EndpointRevealSecret = "endpoint.reveal_secret"
	APIKeyCreate         = "api_key.create"
	APIKeyRevoke         = "api_key.revoke"
	PortalSessionCreate  = "portal_session.create"
	PortalSessionRevoke  = "portal_session.revoke"
	DeliveryResend       = "delivery.resend"
	DeliveryCancel       = "delivery.cancel"
	DeliveryRetryNow     = "delivery.retry_now"
	EndpointRecover      = "endpoint.recover"
	EndpointTest         = "endpoint.test"
	// PayloadDecode is the codec server opening payloads; its account is
	// AllAccounts and its target how many payloads.
	PayloadDecode = "payload.decode"
)

// Actions lists every action, in the order above.
var Actions = []string{EndpointCreate, EndpointUpdate, EndpointDelete, EndpointRotateSecret, EndpointRevealSecret,
	APIKeyCreate, APIKeyRevoke, PortalSessionCreate, PortalSessionRevoke, DeliveryResend, DeliveryCancel,
	DeliveryRetryNow, EndpointRecover, EndpointTest, PayloadDecode}

// AllAccounts is the account of a record about no one account: a decode
// may open any account's payloads.
const AllAccounts = "*"

// Bounds of a record's strings: ids, not content.
const (
	maxID      = 1024
	maxChanges = 64
)

// fieldName is what a change may hold: a field's name (url, circuit.open_after),
// never a value.
var fieldName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// Record is one entry of the trail.
type Record struct {
	At         time.Time `json:"at"`
	AccountID  string    `json:"account_id"`
	Credential string    `json:"credential"`
	Action     string    `json:"action"`
	Target     string    `json:"target"`
	Changes    []string  `json:"changes"`
}

// FieldError is bad input, naming the field (as the HTTP API spells it).
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Check refuses a record that could carry more than ids and field names.
func (r Record) Check() error {
	switch {
	case !slices.Contains(Actions, r.Action):
		return fmt.Errorf("audit: unknown action %q", r.Action)
	case r.Credential == "" || len(r.Credential) > maxID:
		return errors.New("audit: a record needs the credential that acted (an id of at most 1024 bytes)")
	case r.AccountID == "" || len(r.AccountID) > maxID || len(r.Target) > maxID:
		return errors.New("audit: a record needs an account (or *) and a target of at most 1024 bytes")
	case len(r.Changes) > maxChanges:
		return fmt.Errorf("audit: %d changed fields, at most %d", len(r.Changes), maxChanges)
	}
	for _, c := range r.Changes {
		if !fieldName.MatchString(c) {
			return errors.New("audit: a change must be a field name such as url or circuit.open_after")
		}
	}
	return nil
}

// Limits of a page of records.
const (
	DefaultLimit = 100
	MaxLimit     = 500
)

// Query selects records, oldest first.
type Query struct {
	// AccountID keeps one account's records; "" keeps every account's
	// (AllAccounts selects the decodes).
	AccountID string
	// Since keeps records at or after it; zero keeps all.
	Since time.Time
	// Limit is the page size, 1 to MaxLimit; 0 is DefaultLimit.
	Limit int
	// Cursor is a previous page's Next; "" is the first page.
	Cursor string
}

// Page is one page of records.
type Page struct {
	Records []Record
	// Next is the cursor of the following page; "" on the last page.
	Next string
}
