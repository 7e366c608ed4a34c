package apikey

import (
	"fmt"
	"strings"
	"time"
)

// Portal sessions are short-lived credentials of one account, made by the
// admin for a customer's browser: a session token acts like an API key of
// the session's scopes, and ends when it expires or when the admin ends the
// account's sessions. A token is "hrs_" followed by its id's random part and
// 32 random bytes; only its SHA-256 is stored, as for keys.
const (
	// SessionPrefix starts every portal session token.
	SessionPrefix = "hrs_"
	// SessionIDPrefix starts every portal session id.
	SessionIDPrefix = "ses_"
	// DefaultSessionLifetime is a session's lifetime when expires_in is not given.
	DefaultSessionLifetime = time.Hour
	// MinSessionLifetime and MaxSessionLifetime bound expires_in.
	MinSessionLifetime = time.Minute
	MaxSessionLifetime = 7 * 24 * time.Hour
	// MaxSessionsPerAccount bounds an account's usable sessions at creation.
	MaxSessionsPerAccount = 1000
)

// SessionFields are what a request sets on a new portal session.
type SessionFields struct {
	// Scopes: nil for every scope.
	Scopes []string
	// ExpiresIn: nil for DefaultSessionLifetime.
	ExpiresIn *time.Duration
}

// Check checks f, naming the first field at fault (*event.FieldError), and
// returns its scopes in the documented order and its lifetime.
func (f SessionFields) Check() ([]Scope, time.Duration, error) {
	scopes := Scopes
	if f.Scopes != nil {
		var err error
		if scopes, err = checkScopes(f.Scopes); err != nil {
			return nil, 0, err
		}
	}
	life := DefaultSessionLifetime
	if f.ExpiresIn != nil {
		life = *f.ExpiresIn
		switch {
		case life < MinSessionLifetime:
			return nil, 0, fieldErr("expires_in", "must be at least %d seconds", int(MinSessionLifetime.Seconds()))
		case life > MaxSessionLifetime:
			return nil, 0, fieldErr("expires_in", "must be at most %d seconds (%d days)", int(MaxSessionLifetime.Seconds()), int(MaxSessionLifetime.Hours()/24))
		}
	}
	return append([]Scope{}, scopes...), life, nil
}

// GenerateSession makes a new portal session: its id, its token (put in
// the portal URL, not stored) and the token's hash (stored).
func GenerateSession() (id, token string, hash []byte, err error) {
	id, key, _, err := Generate()
	if err != nil {
		return "", "", nil, fmt.Errorf("portal session: %w", err)
	}
	token = SessionPrefix + strings.TrimPrefix(key, Prefix)
	return SessionIDPrefix + strings.TrimPrefix(id, IDPrefix), token, Hash(token), nil
}

// IsSessionID reports whether id is a portal session's, not a key's.
func IsSessionID(id string) bool { return strings.HasPrefix(id, SessionIDPrefix) }

// CredentialID is how requests made with k are named in logs and audit
// records: "key:<id>" or "session:<id>".
func (k Key) CredentialID() string {
	if IsSessionID(k.ID) {
		return "session:" + k.ID
	}
	return "key:" + k.ID
}
