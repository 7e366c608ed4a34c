package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
)

// CreateKey makes an API key of accountID from f and returns it with the
// key itself, which is not stored and not shown again. f is checked first
// (*event.FieldError naming the field); an account may hold at most
// apikey.MaxPerAccount usable keys, checked here (creations racing one
// another may each see room for one more).
func (r *Registry) CreateKey(ctx context.Context, accountID string, f apikey.Fields) (apikey.Key, string, error) {
	if err := checkAccount(accountID); err != nil {
		return apikey.Key{}, "", err
	}
	now := r.now().UTC().Truncate(time.Millisecond)
	scopes, err := f.Check(now)
	if err != nil {
		return apikey.Key{}, "", err
	}
	var usable int
	err = r.db.QueryRowContext(ctx, r.dialect.rebind(`SELECT COUNT(*) FROM api_keys WHERE account_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`),
		accountID, now.UnixMilli()).Scan(&usable)
	if err != nil {
		return apikey.Key{}, "", fmt.Errorf("count API keys of account %s: %w", accountID, err)
	}
	if usable >= apikey.MaxPerAccount {
		return apikey.Key{}, "", fieldErr("account_id", "the account already has %d usable API keys, the most it may hold; revoke one first", usable)
	}
	id, key, hash, err := apikey.Generate()
	if err != nil {
		return apikey.Key{}, "", err
	}
	k := apikey.Key{ID: id, AccountID: accountID, Name: f.Name, Scopes: scopes, CreatedAt: now}
	var expires sql.NullInt64
	if f.ExpiresAt != nil {
		at := f.ExpiresAt.UTC().Truncate(time.Millisecond)
		k.ExpiresAt, expires = &at, sql.NullInt64{Int64: at.UnixMilli(), Valid: true}
	}
	scopesJSON, err := json.Marshal(scopes)
	if err != nil {
		return apikey.Key{}, "", err
	}
	_, err = r.exec(ctx, `INSERT INTO api_keys (id, account_id, name, scopes, key_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		id, accountID, f.Name, string(scopesJSON), hash, now.UnixMilli(), expires)
	if err != nil {
		return apikey.Key{}, "", fmt.Errorf("create API key of account %s: %w", accountID, err)
	}
	return k, key, nil
}

// ListKeys returns accountID's keys not revoked, expired ones included, in
// id order (at most apikey.MaxPerAccount usable ones, so no paging).
func (r *Registry) ListKeys(ctx context.Context, accountID string) ([]apikey.Key, error) {
	if err := checkAccount(accountID); err != nil {
		return nil, err
	}
	keys, err := r.queryKeys(ctx, `WHERE account_id = ? AND revoked_at IS NULL ORDER BY id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list API keys of account %s: %w", accountID, err)
	}
	return keys, nil
}

// RevokeKey revokes accountID's key id at once in the database; processes
// that cache keys (KeyCache) stop accepting it within their bound. A key of
// another account, or one already revoked, is apikey.ErrNotFound.
func (r *Registry) RevokeKey(ctx context.Context, accountID, id string) error {
	if err := checkAccount(accountID); err != nil {
		return err
	}
	n, err := r.exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND account_id = ? AND revoked_at IS NULL`, r.now().UnixMilli(), id, accountID)
	if err != nil {
		return fmt.Errorf("revoke API key %q of account %s: %w", id, accountID, err)
	}
	if n == 0 {
		return fmt.Errorf("account %s has no API key %q: %w", accountID, id, apikey.ErrNotFound)
	}
	return nil
}

// LookupKey returns key id, whatever its account, with its hash and its
// revoked_at, for authentication: the caller checks the hash (apikey.Verify)
// and whether it is usable.
// A portal session's id (apikey.IsSessionID) answers the session, as a key.
func (r *Registry) LookupKey(ctx context.Context, id string) (apikey.Key, error) {
	if apikey.IsSessionID(id) {
		return r.lookupSession(ctx, id)
	}
	keys, err := r.queryKeys(ctx, `WHERE id = ?`, id)
	switch {
	case err != nil:
		return apikey.Key{}, fmt.Errorf("look up API key %q: %w", id, err)
	case len(keys) == 0:
		return apikey.Key{}, fmt.Errorf("API key %q: %w", id, apikey.ErrNotFound)
	}
	return keys[0], nil
}

func (r *Registry) queryKeys(ctx context.Context, where string, args ...any) ([]apikey.Key, error) {
	rs, err := r.db.QueryContext(ctx, r.dialect.rebind(`SELECT id, account_id, name, scopes, key_hash, created_at, expires_at, revoked_at FROM api_keys `+where), args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []apikey.Key
	for rs.Next() {
		var (
			k                apikey.Key
			scopes           string
			created          int64
			expires, revoked sql.NullInt64
		)
		if err := rs.Scan(&k.ID, &k.AccountID, &k.Name, &scopes, &k.Hash, &created, &expires, &revoked); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
			return nil, fmt.Errorf("API key %q: stored scopes: %w", k.ID, err)
		}
		k.CreatedAt = time.UnixMilli(created).UTC()
		k.ExpiresAt, k.RevokedAt = millis(expires), millis(revoked)
		out = append(out, k)
	}
	return out, rs.Err()
}

func millis(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMilli(v.Int64).UTC()
	return &t
}

// KeyCache answers LookupKey from memory for up to TTL, like Cache does
// endpoints: a key revoked in the database stops being accepted by every
// process within TTL, and at once by the process that revoked it through
// the cache. An unknown id is cached too, so a made-up key sent again costs
// no query within TTL; errors are not cached.
type KeyCache struct {
	*Registry
	ttl time.Duration
	// Now is the clock; tests set a fake one.
	Now func() time.Time

	mu   sync.Mutex
	gen  uint64
	keys map[string]cached[apikey.Key]
}

// NewKeyCache caches r's key lookups for ttl (0: DefaultCacheTTL).
func NewKeyCache(r *Registry, ttl time.Duration) *KeyCache {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &KeyCache{Registry: r, ttl: ttl, Now: time.Now, keys: map[string]cached[apikey.Key]{}}
}

// TTL is the staleness bound.
func (c *KeyCache) TTL() time.Duration { return c.ttl }

// LookupKey is the registry's LookupKey, at most TTL old.
func (c *KeyCache) LookupKey(ctx context.Context, id string) (apikey.Key, error) {
	c.mu.Lock()
	hit, ok := c.keys[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && c.Now().Sub(hit.fetched) < c.ttl {
		return hit.v, hit.err
	}
	fetched := c.Now()
	k, err := c.Registry.LookupKey(ctx, id)
	if err != nil && !errors.Is(err, apikey.ErrNotFound) {
		return k, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		if len(c.keys) >= maxCached {
			c.keys = sweep(c.keys, func(v cached[apikey.Key]) bool { return c.Now().Sub(v.fetched) < c.ttl })
		}
		c.keys[id] = cached[apikey.Key]{v: k, err: err, fetched: fetched}
	}
	return k, err
}

// RevokeKey revokes the key and forgets it at once in this process.
func (c *KeyCache) RevokeKey(ctx context.Context, accountID, id string) error {
	err := c.Registry.RevokeKey(ctx, accountID, id)
	c.mu.Lock()
	c.gen++
	delete(c.keys, id)
	c.mu.Unlock()
	return err
}
