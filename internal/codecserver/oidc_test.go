package codecserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hookrelay/hookrelay/internal/testenv"
)

// issuer is an OIDC issuer the test runs on loopback: a discovery document
// and a key set it can rotate, counting how often the key set is fetched.
type issuer struct {
	url     string
	mu      sync.Mutex
	keys    []jose.JSONWebKey // public
	fetches atomic.Int32
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": is.url, "jwks_uri": is.url + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: is.keys})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	is.url = srv.URL
	return is
}

// signingKey is a private key and the id the issuer publishes it under.
type signingKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key any
}

func newSigningKey(t *testing.T, kid string, alg jose.SignatureAlgorithm) signingKey {
	t.Helper()
	var key any
	var err error
	switch alg {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, alg: alg, key: key}
}

// publish adds k's public key to the issuer's key set.
func (is *issuer) publish(k signingKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	priv := jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
	is.keys = append(is.keys, priv.Public())
}

// sign makes a token with claims, signed by k (a header kid of k's unless kid is set).
func sign(t *testing.T, k signingKey, claims any, kid ...string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	id := k.kid
	if len(kid) > 0 {
		id = kid[0]
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.key, KeyID: id}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// The UI's users' access tokens open the codec when the issuer signed them,
// for this audience, unexpired, with an allowed algorithm; anything else is
// 401. Keys are fetched once and cached, fetched again for a key id the
// cache lacks (a rotation), and not for every made-up key id.
func TestOIDCAccessTokens(t *testing.T) {
	is := newIssuer(t)
	k1 := newSigningKey(t, "k1", jose.ES256)
	rs := newSigningKey(t, "rs1", jose.RS256)
	is.publish(k1)
	is.publish(rs)
	var logs bytes.Buffer
	oidc := &OIDC{Issuer: is.url, Audience: "hookrelay-codec", RequiredClaim: codecGroup, MinRefresh: -1}
	url := serve(t, testenv.NewCodecT(t, "t1"), Options{Origin: uiOrigin, Token: token, OIDC: oidc,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	decode := func(bearer string) int {
		resp := request(t, "POST", url+"/decode", map[string]string{"Authorization": "Bearer " + bearer, "Origin": uiOrigin}, []byte(`{"payloads":[]}`))
		resp.Body.Close()
		return resp.StatusCode
	}
	now := time.Now()
	good := jwt.Claims{Issuer: is.url, Audience: jwt.Audience{"temporal-ui", "hookrelay-codec"}, Subject: "operator-7741",
		Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now)}
	member := userClaims{Claims: good, Groups: []string{"staff", "hookrelay-codec"}}

	if code := decode(sign(t, k1, member)); code != http.StatusOK {
		t.Fatalf("a valid ES256 access token: %d", code)
	}
	if code := decode(sign(t, rs, member)); code != http.StatusOK {
		t.Fatalf("a valid RS256 access token: %d", code)
	}
	if code := decode(token); code != http.StatusOK {
		t.Fatalf("the codec token still works beside OIDC: %d", code)
	}
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("key set fetched %d times for three requests, want once (cached)", n)
	}

	edit := func(f func(*jwt.Claims)) jwt.Claims { c := good; f(&c); return c }
	stranger := newSigningKey(t, "k1", jose.ES256) // claims k1's id, but not its key
	hs := signingKey{kid: "k1", alg: jose.HS256, key: []byte("a shared secret anyone could mint with")}
	for name, tok := range map[string]string{
		"another issuer":       sign(t, k1, edit(func(c *jwt.Claims) { c.Issuer = "https://issuer.example.com" })),
		"another audience":     sign(t, k1, edit(func(c *jwt.Claims) { c.Audience = jwt.Audience{"temporal-ui"} })),
		"expired":              sign(t, k1, edit(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-time.Hour)) })),
		"no expiry":            sign(t, k1, edit(func(c *jwt.Claims) { c.Expiry = nil })),
		"not yet valid":        sign(t, k1, edit(func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })),
		"signed by a stranger": sign(t, stranger, good),
		"HS256":                sign(t, hs, good),
		"alg none":             unsigned(t, good),
		"garbage":              "a.b.c",
	} {
		if code := decode(tok); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	if strings.Contains(logs.String(), "eyJ") {
		t.Errorf("the log holds a token:\n%s", logs.String())
	}

	// The issuer rotates: a token with the new key id is accepted after one fetch.
	before := is.fetches.Load()
	k2 := newSigningKey(t, "k2", jose.ES256)
	is.publish(k2)
	if code := decode(sign(t, k2, member)); code != http.StatusOK || is.fetches.Load() != before+1 {
		t.Fatalf("after a rotation: %d with %d fetches, want 200 after one more", code, is.fetches.Load()-before)
	}

	// With the default bound, made-up key ids cost at most one fetch.
	bounded := &OIDC{Issuer: is.url, Audience: "hookrelay-codec", RequiredClaim: codecGroup}
	url = serve(t, testenv.NewCodecT(t, "t1"), Options{Origin: uiOrigin, Token: token, OIDC: bounded})
	before = is.fetches.Load()
	for i := range 20 {
		resp := request(t, "POST", url+"/decode", map[string]string{"Authorization": "Bearer " + sign(t, k1, good, "made-up-"+string(rune('a'+i)))}, []byte(`{"payloads":[]}`))
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("an unknown key id: %d", resp.StatusCode)
		}
	}
	if n := is.fetches.Load() - before; n != 1 {
		t.Fatalf("20 tokens with unknown key ids caused %d fetches, want 1", n)
	}
}

// codecGroup is the tests' required claim.
var codecGroup = Claim{Name: "groups", Value: "hookrelay-codec"}

// userClaims are an access token's claims with the groups its user is in.
type userClaims struct {
	jwt.Claims
	Groups []string `json:"groups,omitempty"`
}

// unsigned is a token with "alg":"none".
func unsigned(t *testing.T, claims jwt.Claims) string {
	t.Helper()
	head := base64URL([]byte(`{"alg":"none","kid":"k1"}`))
	body, _ := json.Marshal(claims)
	return head + "." + base64URL(body) + "."
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestOIDCSettingsAreChecked(t *testing.T) {
	for _, o := range []*OIDC{
		{Issuer: "http://issuer.example.com", Audience: "a"},
		{Issuer: "https://issuer.example.com/?token=fake", Audience: "a"},
		{Issuer: "https://issuer.example.com"},
		{Issuer: "https://issuer.example.com", Audience: "a", Algorithms: []string{"HS256"}},
		{Issuer: "https://issuer.example.com", Audience: "a", Algorithms: []string{"none"}},
		{Issuer: "https://issuer.example.com", Audience: "a", JWKSURL: "http://keys.example.com/jwks"},
		{Issuer: "https://issuer.example.com", Audience: "a"}, // no required claim
	} {
		if _, err := Handler(testenv.NewCodecT(t, "t1"), Options{Origin: uiOrigin, Token: token, OIDC: o}); err == nil || strings.Contains(err.Error(), "fake") {
			t.Errorf("OIDC %s %s: %v, want an error without the query", o.Issuer, o.Algorithms, err)
		}
	}
	for _, o := range []*OIDC{
		{Issuer: "https://issuer.example.com/realms/ops", Audience: "hookrelay-codec", RequiredClaim: codecGroup},
		{Issuer: "http://127.0.0.1:9999", Audience: "a", Algorithms: []string{"RS256", "EdDSA"}, RequiredClaim: codecGroup},
	} {
		if _, err := Handler(testenv.NewCodecT(t, "t1"), Options{Origin: uiOrigin, Token: token, OIDC: o}); err != nil {
			t.Errorf("OIDC %s: %v", o.Issuer, err)
		}
	}
}

// A key set fetch for an unknown key id does not hold up tokens whose key
// is cached: the issuer may be slow (up to the client's timeout), and every
// UI user's decode would wait behind it.
func TestOIDCFetchOutsideTheLock(t *testing.T) {
	k1 := newSigningKey(t, "k1", jose.ES256)
	pub := jose.JSONWebKey{Key: k1.key, KeyID: k1.kid, Algorithm: string(k1.alg), Use: "sig"}
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 {
			close(entered)
			<-release
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub.Public()}})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	oidc := &OIDC{Issuer: "https://issuer.example.com", Audience: "a", JWKSURL: srv.URL, MinRefresh: -1}
	now := time.Now()
	claims := jwt.Claims{Issuer: oidc.Issuer, Audience: jwt.Audience{"a"}, Subject: "operator-7741",
		Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}
	ctx := t.Context()
	if _, err := oidc.Verify(ctx, sign(t, k1, claims)); err != nil {
		t.Fatalf("first token: %v", err)
	}
	unknown := make(chan error, 1)
	go func() {
		_, err := oidc.Verify(ctx, sign(t, k1, claims, "k-rotated"))
		unknown <- err
	}()
	<-entered // the fetch for k-rotated is in flight

	cached := make(chan error, 1)
	go func() {
		_, err := oidc.Verify(ctx, sign(t, k1, claims))
		cached <- err
	}()
	select {
	case err := <-cached:
		if err != nil {
			t.Fatalf("a cached key's token during a fetch: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a token with a cached key waited for another token's key set fetch")
	}
	close(release)
	if err := <-unknown; err == nil {
		t.Fatal("a token with an unknown key id was accepted")
	}
}
