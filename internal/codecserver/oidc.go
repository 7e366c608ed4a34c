package codecserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hookrelay/hookrelay/internal/redact"
)

// OIDC verifies the access tokens the Temporal UI passes when it signs its
// users in (TEMPORAL_CODEC_PASS_ACCESS_TOKEN): JWTs signed by the issuer's
// keys, issued by Issuer for Audience, unexpired, signed with an algorithm
// of the allow-list. Keys come from the issuer's JWKS, found through its
// discovery document unless JWKSURL names it; they are cached, and fetched
// again when a token names a key id the cache lacks (the issuer rotated),
// at most once per MinRefresh, so tokens with made-up key ids cannot make
// the codec server hammer the issuer. A valid token must also carry
// RequiredClaim: issuer and audience alone often admit a whole realm.
type OIDC struct {
	// Issuer is the "iss" every token must carry, exactly: the issuer URL.
	Issuer string
	// Audience must be among the token's "aud": the API the UI's tokens are
	// for (for ID tokens, the UI's client id).
	Audience string
	// RequiredClaim is the claim every token must carry, such as a group
	// or role: required.
	RequiredClaim Claim
	// Algorithms is the allow-list of signature algorithms (DefaultAlgorithms if empty).
	Algorithms []string
	// JWKSURL is the issuer's key set; "" reads jwks_uri from
	// Issuer/.well-known/openid-configuration.
	JWKSURL string
	// MinRefresh bounds how often keys are fetched for an unknown key id
	// (DefaultMinRefresh if zero; negative: no bound, for tests).
	MinRefresh time.Duration
	// Client fetches discovery and keys (a client with a 10s timeout if nil).
	Client *http.Client
	// Now is the clock tokens are checked by (time.Now if nil).
	Now func() time.Time

	mu        sync.Mutex
	keys      jose.JSONWebKeySet
	fetchedAt time.Time
	jwksURL   string
	fetches   int
	inflight  chan struct{} // closed when the fetch under way ends
}

// Defaults of OIDC.
var DefaultAlgorithms = []string{"RS256", "ES256"}

const (
	DefaultMinRefresh = 5 * time.Second
	// leeway absorbs clock skew between the issuer and this server.
	leeway = 30 * time.Second
	// maxDocument bounds a discovery document or key set.
	maxDocument = 1 << 20
)

// asymmetric lists the algorithms a key set's public keys verify. A shared
// secret (HS256) would let anyone holding it mint tokens, and is refused.
var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Check names the first unusable setting.
func (o *OIDC) Check() error {
	if err := checkFetchURL("--oidc-issuer", o.Issuer); err != nil {
		return err
	}
	if strings.TrimSpace(o.Audience) == "" {
		return errors.New("--oidc-audience: required with --oidc-issuer: the audience the UI's access tokens are issued for")
	}
	if o.JWKSURL != "" {
		if err := checkFetchURL("--oidc-jwks-url", o.JWKSURL); err != nil {
			return err
		}
	}
	for _, a := range o.algorithms() {
		if !slices.Contains(asymmetric, a) {
			return fmt.Errorf("--oidc-algorithms: %q is not one of %s", a, strings.Join(asymmetric, ", "))
		}
	}
	if o.RequiredClaim.Name == "" || o.RequiredClaim.Value == "" {
		return errors.New("--oidc-required-claim: required with --oidc-issuer: NAME=VALUE, a group or role only the codec's users have (groups=hookrelay-codec); " +
			"issuer and audience alone admit every user of the realm")
	}
	return nil
}

// checkFetchURL admits https URLs, and plain http on loopback only.
func checkFetchURL(flag, s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s: %q is not an https URL without query", flag, redact.URL(s))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("%s: %q must be https (plain http only on loopback)", flag, redact.URL(s))
}

func (o *OIDC) algorithms() []string {
	if len(o.Algorithms) == 0 {
		return DefaultAlgorithms
	}
	return o.Algorithms
}

// Verify checks token and returns its subject.
func (o *OIDC) Verify(ctx context.Context, token string) (string, error) {
	var algs []jose.SignatureAlgorithm
	for _, a := range o.algorithms() {
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	tok, err := jwt.ParseSigned(token, algs)
	if err != nil {
		return "", fmt.Errorf("not a JWT signed with an allowed algorithm (%s): %w", strings.Join(o.algorithms(), ", "), err)
	}
	if len(tok.Headers) != 1 {
		return "", errors.New("want exactly one signature")
	}
	h := tok.Headers[0]
	key, err := o.key(ctx, h.KeyID, h.Algorithm)
	if err != nil {
		return "", err
	}
	var claims jwt.Claims
	var all map[string]any
	if err := tok.Claims(key.Key, &claims, &all); err != nil {
		return "", fmt.Errorf("signature: %w", err)
	}
	if claims.Expiry == nil {
		return "", errors.New("the token has no expiry (exp)")
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: o.Issuer, AnyAudience: jwt.Audience{o.Audience}, Time: now()}, leeway); err != nil {
		return "", err
	}
	if o.RequiredClaim.Name != "" && !o.RequiredClaim.heldBy(all) {
		return claims.Subject, fmt.Errorf("%w (%s)", ErrMissingClaim, o.RequiredClaim.Name)
	}
	return claims.Subject, nil
}

// key finds the key a token names, fetching the key set when it lacks it.
// The fetch runs outside o.mu, so tokens whose key is cached never wait for
// a slow issuer; callers that need a fetch already under way wait for it.
func (o *OIDC) key(ctx context.Context, kid, alg string) (jose.JSONWebKey, error) {
	o.mu.Lock()
	if k, ok := o.lookup(kid, alg); ok {
		o.mu.Unlock()
		return k, nil
	}
	if wait := o.inflight; wait != nil {
		o.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return jose.JSONWebKey{}, ctx.Err()
		}
		return o.cached(kid, alg)
	}
	minRefresh := o.MinRefresh
	if minRefresh == 0 {
		minRefresh = DefaultMinRefresh
	}
	if !o.fetchedAt.IsZero() && time.Since(o.fetchedAt) < minRefresh {
		ago := time.Since(o.fetchedAt).Round(time.Second)
		o.mu.Unlock()
		return jose.JSONWebKey{}, fmt.Errorf("no key %q in the issuer's key set (fetched %s ago)", kid, ago)
	}
	o.fetchedAt = time.Now()
	o.fetches++
	done := make(chan struct{})
	o.inflight = done
	jwksURL := o.jwksURL
	o.mu.Unlock()

	set, jwksURL, err := o.fetch(ctx, jwksURL)
	o.mu.Lock()
	if err == nil {
		o.keys, o.jwksURL = set, jwksURL
	}
	o.inflight = nil
	close(done)
	o.mu.Unlock()
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	return o.cached(kid, alg)
}

// cached looks kid up in the key set as it is now.
func (o *OIDC) cached(kid, alg string) (jose.JSONWebKey, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, ok := o.lookup(kid, alg); ok {
		return k, nil
	}
	return jose.JSONWebKey{}, fmt.Errorf("no key %q for %s in the issuer's key set", kid, alg)
}

// lookup finds the cached public signing key for kid and alg; a token
// without a key id may use the key set's only key.
func (o *OIDC) lookup(kid, alg string) (jose.JSONWebKey, bool) {
	var found []jose.JSONWebKey
	for _, k := range o.keys.Keys {
		if kid != "" && k.KeyID != kid || k.Use != "" && k.Use != "sig" || k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		return jose.JSONWebKey{}, false
	}
	return found[0], true
}

// fetch reads the key set (and first the discovery document, if jwksURL
// is still unknown), returning it and the key set's URL. It does not touch
// o's mutable fields: the caller does not hold o.mu while it runs.
func (o *OIDC) fetch(ctx context.Context, jwksURL string) (jose.JSONWebKeySet, string, error) {
	if jwksURL == "" {
		jwksURL = o.JWKSURL
	}
	if jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		discovery := strings.TrimSuffix(o.Issuer, "/") + "/.well-known/openid-configuration"
		if err := o.getJSON(ctx, discovery, &doc); err != nil {
			return jose.JSONWebKeySet{}, "", fmt.Errorf("OIDC discovery: %w", err)
		}
		if doc.Issuer != o.Issuer {
			return jose.JSONWebKeySet{}, "", fmt.Errorf("OIDC discovery: the document's issuer %q is not --oidc-issuer %q", redact.URL(doc.Issuer), redact.URL(o.Issuer))
		}
		if err := checkFetchURL("jwks_uri", doc.JWKSURI); err != nil {
			return jose.JSONWebKeySet{}, "", fmt.Errorf("OIDC discovery: %w", err)
		}
		jwksURL = doc.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := o.getJSON(ctx, jwksURL, &set); err != nil {
		return jose.JSONWebKeySet{}, "", fmt.Errorf("OIDC key set: %w", err)
	}
	return set, jwksURL, nil
}

func (o *OIDC) getJSON(ctx context.Context, u string, v any) error {
	c := o.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", redact.URL(u), err)
	}
	resp, err := c.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return fmt.Errorf("GET %s: %w", redact.URL(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", redact.URL(u), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument))
	if err != nil {
		return fmt.Errorf("GET %s: %w", redact.URL(u), err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("GET %s: not JSON of the expected shape: %w", redact.URL(u), err)
	}
	return nil
}

// Fetches counts key set fetches, for tests and logs.
func (o *OIDC) Fetches() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches
}
