package codecserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	commonpb "go.temporal.io/api/common/v1"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/internal/auditstore"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// realm is an issuer with one key, and tokens for its users.
type realm struct {
	is  *issuer
	key signingKey
}

func newRealm(t *testing.T) realm {
	is := newIssuer(t)
	k := newSigningKey(t, "k1", jose.ES256)
	is.publish(k)
	return realm{is: is, key: k}
}

// token signs a valid access token for sub with extra claims.
func (rl realm) token(t *testing.T, sub string, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{"iss": rl.is.url, "aud": "hookrelay-codec", "sub": sub, "exp": time.Now().Add(5 * time.Minute).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	return sign(t, rl.key, claims)
}

func (rl realm) oidc(claim Claim) *OIDC {
	return &OIDC{Issuer: rl.is.url, Audience: "hookrelay-codec", RequiredClaim: claim, MinRefresh: -1}
}

func call(t *testing.T, url, path, bearer string, body []byte) (int, string) {
	t.Helper()
	resp := request(t, http.MethodPost, url+path, map[string]string{"Authorization": "Bearer " + bearer, "Origin": uiOrigin}, body)
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A user of the realm whose token is valid but lacks the required claim
// gets 403 with a generic message; the claim may be a string, among a list
// of strings, or nested (Keycloak's realm_access.roles).
func TestOIDCRequiredClaim(t *testing.T) {
	rl := newRealm(t)
	for _, tc := range []struct {
		name   string
		claim  Claim
		extra  map[string]any
		status int
	}{
		{"no such claim", codecGroup, nil, http.StatusForbidden},
		{"another group", codecGroup, map[string]any{"groups": []string{"staff", "billing"}}, http.StatusForbidden},
		{"the value as a prefix", codecGroup, map[string]any{"groups": []string{"hookrelay-codec-readers"}}, http.StatusForbidden},
		{"a number, not a string", Claim{Name: "level", Value: "3"}, map[string]any{"level": 3}, http.StatusForbidden},
		{"among a list", codecGroup, map[string]any{"groups": []string{"staff", "hookrelay-codec"}}, http.StatusOK},
		{"a string", Claim{Name: "role", Value: "codec-reader"}, map[string]any{"role": "codec-reader"}, http.StatusOK},
		{"nested", Claim{Name: "realm_access.roles", Value: "codec-reader"}, map[string]any{"realm_access": map[string]any{"roles": []string{"codec-reader"}}}, http.StatusOK},
		{"a namespaced name", Claim{Name: "https://hookrelay.example.com/roles", Value: "codec-reader"}, map[string]any{"https://hookrelay.example.com/roles": []string{"codec-reader"}}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := serve(t, testenv.NewCodecT(t, "t1"), Options{Origin: uiOrigin, Token: token, OIDC: rl.oidc(tc.claim)})
			status, body := call(t, url, "/decode", rl.token(t, "operator-7741", tc.extra), []byte(`{"payloads":[]}`))
			if status != tc.status {
				t.Fatalf("%d %s, want %d", status, body, tc.status)
			}
			if status == http.StatusForbidden && (strings.Contains(body, tc.claim.Name) || strings.Contains(body, tc.claim.Value)) {
				t.Errorf("the refusal names the claim: %s", body)
			}
		})
	}
	for _, bad := range []string{"", "groups", "=x", "groups=", " = "} {
		if _, err := ParseClaim(bad); err == nil || !strings.Contains(err.Error(), "--oidc-required-claim") {
			t.Errorf("ParseClaim(%q): %v", bad, err)
		}
	}
	if c, err := ParseClaim("realm_access.roles=codec=reader"); err != nil || c != (Claim{"realm_access.roles", "codec=reader"}) {
		t.Errorf("ParseClaim: %+v %v", c, err)
	}
}

// /encode seals input a worker would sign: only the static token (the
// CLI's) may call it, never a signed-in user, claim or not.
func TestEncodeOnlyWithTheStaticToken(t *testing.T) {
	rl := newRealm(t)
	url := serve(t, testenv.NewCodecT(t, "t1"), Options{Origin: uiOrigin, Token: token, OIDC: rl.oidc(codecGroup)})
	user := rl.token(t, "operator-7741", map[string]any{"groups": []string{"hookrelay-codec"}})
	plain := payloadsJSON(t, &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`{"to":"patient@example.com"}`)})
	if status, body := call(t, url, "/encode", user, plain); status != http.StatusForbidden || strings.Contains(body, "binary/encrypted") {
		t.Fatalf("a user's token on /encode: %d %s, want 403 and nothing sealed", status, body)
	}
	if status, body := call(t, url, "/decode", user, []byte(`{"payloads":[]}`)); status != http.StatusOK {
		t.Fatalf("the same user on /decode: %d %s", status, body)
	}
	if status, body := call(t, url, "/encode", token, plain); status != http.StatusOK || !strings.Contains(body, "payloads") {
		t.Fatalf("the static token on /encode: %d %s", status, body)
	}
}

// failingAuditor is an audit trail that cannot write.
type failingAuditor struct{}

func (failingAuditor) Record(context.Context, audit.Record) (int64, error) {
	return 0, errors.New("database unavailable")
}

// Every decode is recorded in the audit trail before it is made: who (the
// user's subject, or the static token), when, how many payloads, and never
// a payload. A decode that cannot be recorded is not made. Without an
// audit trail, each decode is a log line.
func TestDecodesAreRecorded(t *testing.T) {
	c := testenv.NewCodecT(t, "t1")
	ctx := context.Background()
	at := time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)
	store, err := auditstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "audit.db"), auditstore.Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rl := newRealm(t)
	url := serve(t, c, Options{Origin: uiOrigin, Token: token, OIDC: rl.oidc(codecGroup), Audit: store})

	sealed, err := c.Encode([]*commonpb.Payload{
		{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`{"to":"patient-one@example.com"}`)},
		{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`{"to":"patient-two@example.com"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := payloadsJSON(t, sealed...)
	user := rl.token(t, "operator-7741", map[string]any{"groups": []string{"hookrelay-codec"}})
	if status, body := call(t, url, "/decode", user, batch); status != http.StatusOK || !strings.Contains(body, `"anNvbi9wbGFpbg=="`) { // json/plain: opened
		t.Fatalf("decode as a user: %d %s", status, body)
	}
	if status, _ := call(t, url, "/decode", token, payloadsJSON(t, sealed[0])); status != http.StatusOK {
		t.Fatalf("decode with the token: %d", status)
	}
	if status, _ := call(t, url, "/decode", token, []byte(`not json`)); status == http.StatusOK {
		t.Fatalf("a body that is not payloads was decoded")
	}
	page, err := store.List(ctx, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range page.Records {
		got = append(got, r.AccountID+" "+r.Credential+" "+r.Action+" "+r.Target)
		if !r.At.Equal(at) {
			t.Errorf("record at %s, want %s", r.At, at)
		}
	}
	want := []string{"* oidc:operator-7741 payload.decode 2", "* static token payload.decode 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("records:\n got %q\nwant %q", got, want)
	}

	// A trail that cannot write refuses the decode.
	url = serve(t, c, Options{Origin: uiOrigin, Token: token, Audit: failingAuditor{}})
	if status, body := call(t, url, "/decode", token, batch); status != http.StatusServiceUnavailable || strings.Contains(body, "patient") {
		t.Fatalf("decode with the trail down: %d %s, want 503 and nothing decoded", status, body)
	}

	// No trail: one log line per decode, without the payloads.
	var logs bytes.Buffer
	url = serve(t, c, Options{Origin: uiOrigin, Token: token, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if status, _ := call(t, url, "/decode", token, batch); status != http.StatusOK {
		t.Fatalf("decode without a trail: %d", status)
	}
	if !strings.Contains(logs.String(), `"msg":"payloads decoded","credential":"static token","payloads":2`) || strings.Contains(logs.String(), "patient") {
		t.Errorf("the decode's log line:\n%s", logs.String())
	}
}
