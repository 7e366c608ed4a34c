package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hookrelay/hookrelay/internal/testenv"
)

// The codec server as the compose stack's SSO variant runs it: besides its
// token, it opens payloads for a user the UI signed in, whose access token
// an OIDC issuer (here one on loopback) signed for its audience, and for no
// one else.
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

	token := strings.TrimRight(base64.URLEncoding.EncodeToString([]byte("integration-test-token-not-secret-0123")), "=")
	spec := hookrelay(t).Spec("codec-server", "worker", "codec-server", "--listen", "127.0.0.1:0",
		"--codec-key-file", codecKeyFile, "--token-file", writeFile(t, "codec-token", token+"\n"), "--ui-origin", "http://127.0.0.1:8233")
	spec.Env = append(spec.Env, "HOOKRELAY_OIDC_ISSUER="+issuerURL, "HOOKRELAY_OIDC_AUDIENCE=hookrelay-codec")
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
	accessToken := func(audience string) string {
		tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: issuerURL, Audience: jwt.Audience{audience}, Subject: "operator-fake",
			Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	decode := func(bearer string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/decode", strings.NewReader(`{"payloads":[]}`))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Origin", "http://127.0.0.1:8233") // as the UI in a browser sends it
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := decode(accessToken("hookrelay-codec")); code != http.StatusOK {
		t.Fatalf("a signed-in user's access token: %d", code)
	}
	if code := decode(accessToken("another-api")); code != http.StatusUnauthorized {
		t.Fatalf("an access token for another audience: %d", code)
	}
	if code := decode(token); code != http.StatusOK {
		t.Fatalf("the codec token: %d", code)
	}
	if !strings.Contains(p.Log(), `"sub":"operator-fake"`) || strings.Contains(p.Log(), "eyJ") {
		t.Errorf("the log should name who decoded, and hold no token:\n%s", p.Log())
	}
}
