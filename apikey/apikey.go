// Package apikey is the model of account API keys: credentials that act
// for one account only, within their scopes, until they expire or are
// revoked. A key is "hrk_" followed by its id's random part and 32 random
// bytes; only its SHA-256 is stored, and a presented key is compared with
// it in constant time. The HTTP API takes keys as bearer tokens; the
// endpoint registry stores them (internal/registry).
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/event"
)

// Scope is one capability a key holds on its account.
type Scope string

// The scopes, each a capability on the key's own account.
const (
	// DeliveriesRead reads the account's deliveries.
	DeliveriesRead Scope = "deliveries:read"
	// DeliveriesWrite resends, cancels, retries now, recovers and tests.
	DeliveriesWrite Scope = "deliveries:write"
	// EndpointsRead reads the account's endpoints (never a secret).
	EndpointsRead Scope = "endpoints:read"
	// EndpointsWrite creates, updates, deletes endpoints and rotates or
	// reveals their secrets.
	EndpointsWrite Scope = "endpoints:write"
)

// Scopes are every scope, in the order the documentation lists them.
var Scopes = []Scope{DeliveriesRead, DeliveriesWrite, EndpointsRead, EndpointsWrite}

// Bounds of a key's settable fields and of an account's keys.
const (
	// MaxNameLength bounds a key's name, in characters.
	MaxNameLength = 100
	// MinLifetime and MaxLifetime bound expires_at when it is given: a
	// key without it lives until revoked.
	MinLifetime = time.Minute
	MaxLifetime = 366 * 24 * time.Hour
	// MaxPerAccount bounds an account's usable keys (neither revoked nor
	// expired) at creation.
	MaxPerAccount = 50
)

const (
	// Prefix starts every key, so scanners and people recognise one.
	Prefix = "hrk_"
	// IDPrefix starts every key id.
	IDPrefix    = "key_"
	idChars     = 26 // 16 random bytes in base32
	secretChars = 52 // 32 random bytes in base32
)

// Errors of a key presented or looked up.
var (
	// ErrNotFound: no key has this id (in this account).
	ErrNotFound = errors.New("no such API key")
	// ErrExpired: the key's expires_at has passed.
	ErrExpired = errors.New("the API key has expired")
	// ErrRevoked: the key was revoked.
	ErrRevoked = errors.New("the API key was revoked")
)

// Key is an API key as stored, without its secret.
type Key struct {
	ID        string
	AccountID string
	Name      string
	Scopes    []Scope
	ExpiresAt *time.Time // nil: until revoked
	CreatedAt time.Time
	RevokedAt *time.Time
	// Hash is SHA-256 of the key; only LookupKey's answers carry it.
	Hash []byte
}

// Has reports whether the key holds scope s.
func (k Key) Has(s Scope) bool { return slices.Contains(k.Scopes, s) }

// Usable is nil for a key that may act at now, else ErrRevoked or ErrExpired.
func (k Key) Usable(now time.Time) error {
	switch {
	case k.RevokedAt != nil:
		return ErrRevoked
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return ErrExpired
	}
	return nil
}

// View is a key as the HTTP API shows it: Key only in the answer to create.
type View struct {
	ID        string     `json:"id"`
	Key       string     `json:"key,omitempty"`
	Name      string     `json:"name"`
	Scopes    []Scope    `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at"`
	CreatedAt time.Time  `json:"created_at"`
}

// View is k as the API shows it.
func (k Key) View() View {
	return View{ID: k.ID, Name: k.Name, Scopes: append([]Scope{}, k.Scopes...), ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt}
}

// Fields are what a request sets on a new key.
type Fields struct {
	Name      string
	Scopes    []string
	ExpiresAt *time.Time
}

// Check checks f at now, naming the first field at fault
// (*event.FieldError), and returns its scopes in the documented order.
func (f Fields) Check(now time.Time) ([]Scope, error) {
	n := utf8.RuneCountInString(f.Name)
	switch {
	case strings.TrimSpace(f.Name) == "":
		return nil, fieldErr("name", "is required: say who or what uses the key")
	case n > MaxNameLength:
		return nil, fieldErr("name", "is %d characters, over the %d allowed", n, MaxNameLength)
	case strings.ContainsFunc(f.Name, unicode.IsControl) || !utf8.ValidString(f.Name):
		return nil, fieldErr("name", "must be printable text, without control characters")
	}
	out, err := checkScopes(f.Scopes)
	if err != nil {
		return nil, err
	}
	if f.ExpiresAt != nil {
		switch d := f.ExpiresAt.Sub(now); {
		case d < MinLifetime:
			return nil, fieldErr("expires_at", "must be at least %s in the future", MinLifetime)
		case d > MaxLifetime:
			return nil, fieldErr("expires_at", "must be at most %d days ahead; leave it out for a key that lives until revoked", int(MaxLifetime.Hours()/24))
		}
	}
	return out, nil
}

// checkScopes checks a list of scope names, at least one, and returns them
// without repeats in the documented order.
func checkScopes(scopes []string) ([]Scope, error) {
	if len(scopes) == 0 {
		return nil, fieldErr("scopes", "is required: give at least one of %s", scopeList())
	}
	var out []Scope
	for i, s := range scopes {
		if !slices.Contains(Scopes, Scope(s)) {
			return nil, fieldErr(fmt.Sprintf("scopes[%d]", i), "%q is not a scope; the scopes are %s", s, scopeList())
		}
		if !slices.Contains(out, Scope(s)) {
			out = append(out, Scope(s))
		}
	}
	slices.SortFunc(out, func(a, b Scope) int { return slices.Index(Scopes, a) - slices.Index(Scopes, b) })
	return out, nil
}

func scopeList() string {
	s := make([]string, len(Scopes))
	for i, sc := range Scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ", ")
}

func fieldErr(field, format string, args ...any) error {
	return &event.FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Generate makes a new key: its id, the key itself (shown once) and the
// key's hash (stored).
func Generate() (id, key string, hash []byte, err error) {
	b := make([]byte, 16+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", nil, fmt.Errorf("api key: %w", err)
	}
	idPart := strings.ToLower(b32.EncodeToString(b[:16]))
	key = Prefix + idPart + "_" + strings.ToLower(b32.EncodeToString(b[16:]))
	h := Hash(key)
	return IDPrefix + idPart, key, h, nil
}

// IsKey reports whether a bearer token is shaped as an API key or a portal
// session token, rather than an admin token.
func IsKey(token string) bool {
	return strings.HasPrefix(token, Prefix) || strings.HasPrefix(token, SessionPrefix)
}

// IDOf is the id of the key or portal session a presented token claims to
// be, if it is shaped as one; the caller still checks its hash (Verify).
func IDOf(token string) (string, bool) {
	idPrefix := IDPrefix
	rest, ok := strings.CutPrefix(token, Prefix)
	if !ok {
		rest, ok = strings.CutPrefix(token, SessionPrefix)
		idPrefix = SessionIDPrefix
	}
	if !ok || len(rest) != idChars+1+secretChars || rest[idChars] != '_' {
		return "", false
	}
	idPart := rest[:idChars]
	if strings.IndexFunc(idPart, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') }) >= 0 {
		return "", false
	}
	return idPrefix + idPart, true
}

// Hash is what is stored of a key: SHA-256, enough for a key of 32 random
// bytes (no password hashing is needed against guessing).
func Hash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// Verify reports in constant time whether token is the key hash was made from.
func Verify(token string, hash []byte) bool {
	return subtle.ConstantTimeCompare(Hash(token), hash) == 1
}
