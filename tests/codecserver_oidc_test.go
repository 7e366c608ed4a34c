package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/internal/auditstore"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// The codec server as the compose stack's SSO variant runs it: besides its
// token, it opens payloads for a user the UI signed in, whose access token
// an OIDC issuer (here one on loopback) signed for its audience with the
// required claim, for /decode only, and for no one else.
func TestCodecServerAcceptsSignedInUsers(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	private := jose.JSONWebKey{Key: key, KeyID: "sso-1", Algorithm: "ES256", Use: "sig"}
	var issuerURL string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": issuerURL, "jwks_uri": issuerURL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{private.Public()}})
	})
	issuer := httptest.NewServer(mux)
	defer issuer.Close()
	issuerURL = issuer.URL

	auditDB := "sqlite:" + filepath.Join(t.TempDir(), "audit.db")
	token := strings.TrimRight(base64.URLEncoding.EncodeToString([]byte("integration-test-token-not-secret-0123")), "=")
	spec := hookrelay(t).Spec("codec-server", "worker", "codec-server", "--listen", "127.0.0.1:0",
		"--codec-key-file", codecKeyFile, "--token-file", writeFile(t, "codec-token", token+"\n"), "--ui-origin", "http://127.0.0.1:8233",
		"--audit-db", auditDB)
	spec.Env = append(spec.Env, "HOOKRELAY_OIDC_ISSUER="+issuerURL, "HOOKRELAY_OIDC_AUDIENCE=hookrelay-codec",
		"HOOKRELAY_OIDC_REQUIRED_CLAIM=groups=hookrelay-codec")
	spec.Ready = `"msg":"codec server listening"`
	p := testenv.StartT(t, spec)
	addr, err := p.LoggedAddr("codec server listening")
	if err != nil {
		t.Fatal(err)
	}

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: private}, nil)
	if err != nil {
		t.Fatal(err)
	}
	accessToken := func(audience string, groups ...string) string {
		tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: issuerURL, Audience: jwt.Audience{audience}, Subject: "operator-fake",
			Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}).Claims(map[string]any{"groups": groups}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	post := func(path, bearer string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(`{"payloads":[]}`))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Origin", "http://127.0.0.1:8233") // as the UI in a browser sends it
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	decode := func(bearer string) int { return post("/decode", bearer) }
	if code := decode(accessToken("hookrelay-codec", "staff", "hookrelay-codec")); code != http.StatusOK {
		t.Fatalf("a signed-in user's access token: %d", code)
	}
	if code := decode(accessToken("hookrelay-codec", "staff")); code != http.StatusForbidden {
		t.Fatalf("a user of the realm outside the required group: %d, want 403", code)
	}
	if code := post("/encode", accessToken("hookrelay-codec", "hookrelay-codec")); code != http.StatusForbidden {
		t.Fatalf("a signed-in user's token on /encode: %d, want 403", code)
	}
	if code := decode(accessToken("another-api", "hookrelay-codec")); code != http.StatusUnauthorized {
		t.Fatalf("an access token for another audience: %d", code)
	}
	if code := decode(token); code != http.StatusOK {
		t.Fatalf("the codec token: %d", code)
	}
	if !strings.Contains(p.Log(), `"sub":"operator-fake"`) || strings.Contains(p.Log(), "eyJ") {
		t.Errorf("the log should name who decoded, and hold no token:\n%s", p.Log())
	}
	// The decodes made, and only those, are in the audit trail.
	trail, err := auditstore.Open(t.Context(), auditDB, auditstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer trail.Close()
	page, err := trail.List(t.Context(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range page.Records {
		got = append(got, r.AccountID+" "+r.Credential+" "+r.Action+" "+r.Target)
	}
	if want := []string{"* oidc:operator-fake payload.decode 0", "* static token payload.decode 0"}; !slices.Equal(got, want) {
		t.Errorf("audit records:\n got %q\nwant %q", got, want)
	}
}
