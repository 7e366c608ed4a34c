package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
)

// sessionRetention is how long a session's row outlives its expiry, so the
// credential an audit record names stays known; older rows are pruned when
// the account makes a new session.
const sessionRetention = 30 * 24 * time.Hour

// CreateSession makes a portal session of accountID from f and returns it,
// as an apikey.Key named "portal session", with its token, which is not
// stored and not shown again. f is checked first (*event.FieldError naming
// the field); an account may hold at most apikey.MaxSessionsPerAccount
// usable sessions.
func (r *Registry) CreateSession(ctx context.Context, accountID string, f apikey.SessionFields) (apikey.Key, string, error) {
	if err := checkAccount(accountID); err != nil {
		return apikey.Key{}, "", err
	}
	scopes, life, err := f.Check()
	if err != nil {
		return apikey.Key{}, "", err
	}
	now := r.now().UTC().Truncate(time.Millisecond)
	if _, err := r.exec(ctx, `DELETE FROM portal_sessions WHERE account_id = ? AND expires_at < ?`, accountID, now.Add(-sessionRetention).UnixMilli()); err != nil {
		return apikey.Key{}, "", fmt.Errorf("prune portal sessions of account %s: %w", accountID, err)
	}
	var usable int
	err = r.db.QueryRowContext(ctx, r.dialect.rebind(`SELECT COUNT(*) FROM portal_sessions WHERE account_id = ? AND revoked_at IS NULL AND expires_at > ?`),
		accountID, now.UnixMilli()).Scan(&usable)
	if err != nil {
		return apikey.Key{}, "", fmt.Errorf("count portal sessions of account %s: %w", accountID, err)
	}
	if usable >= apikey.MaxSessionsPerAccount {
		return apikey.Key{}, "", fieldErr("account_id", "the account already has %d live portal sessions, the most it may hold; end them first", usable)
	}
	id, token, hash, err := apikey.GenerateSession()
	if err != nil {
		return apikey.Key{}, "", err
	}
	expires := now.Add(life)
	k := apikey.Key{ID: id, AccountID: accountID, Name: "portal session", Scopes: scopes, CreatedAt: now, ExpiresAt: &expires}
	scopesJSON, err := json.Marshal(scopes)
	if err != nil {
		return apikey.Key{}, "", err
	}
	_, err = r.exec(ctx, `INSERT INTO portal_sessions (id, account_id, scopes, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, accountID, string(scopesJSON), hash, now.UnixMilli(), expires.UnixMilli())
	if err != nil {
		return apikey.Key{}, "", fmt.Errorf("create portal session of account %s: %w", accountID, err)
	}
	return k, token, nil
}

// RevokeSessions ends every live portal session of accountID at once in the
// database, and reports how many; processes that cache credentials
// (KeyCache) stop accepting them within their bound.
func (r *Registry) RevokeSessions(ctx context.Context, accountID string) (int64, error) {
	if err := checkAccount(accountID); err != nil {
		return 0, err
	}
	now := r.now().UnixMilli()
	n, err := r.exec(ctx, `UPDATE portal_sessions SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL AND expires_at > ?`, now, accountID, now)
	if err != nil {
		return 0, fmt.Errorf("end portal sessions of account %s: %w", accountID, err)
	}
	return n, nil
}

// lookupSession is LookupKey for a session id.
func (r *Registry) lookupSession(ctx context.Context, id string) (apikey.Key, error) {
	var (
		k               apikey.Key
		scopes          string
		created, expire int64
		revoked         sql.NullInt64
	)
	err := r.db.QueryRowContext(ctx, r.dialect.rebind(`SELECT id, account_id, scopes, token_hash, created_at, expires_at, revoked_at FROM portal_sessions WHERE id = ?`), id).
		Scan(&k.ID, &k.AccountID, &scopes, &k.Hash, &created, &expire, &revoked)
	switch {
	case err == sql.ErrNoRows:
		return apikey.Key{}, fmt.Errorf("portal session %q: %w", id, apikey.ErrNotFound)
	case err != nil:
		return apikey.Key{}, fmt.Errorf("look up portal session %q: %w", id, err)
	}
	if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
		return apikey.Key{}, fmt.Errorf("portal session %q: stored scopes: %w", id, err)
	}
	k.Name = "portal session"
	k.CreatedAt = time.UnixMilli(created).UTC()
	k.ExpiresAt = millis(sql.NullInt64{Int64: expire, Valid: true})
	k.RevokedAt = millis(revoked)
	return k, nil
}

// RevokeSessions ends the account's sessions and forgets them at once in
// this process.
func (c *KeyCache) RevokeSessions(ctx context.Context, accountID string) (int64, error) {
	n, err := c.Registry.RevokeSessions(ctx, accountID)
	c.mu.Lock()
	c.gen++
	for id, hit := range c.keys {
		if apikey.IsSessionID(id) && hit.v.AccountID == accountID {
			delete(c.keys, id)
		}
	}
	c.mu.Unlock()
	return n, err
}
