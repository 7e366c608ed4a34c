package apikey

import (
	"strings"
	"testing"
)

// A session token is shaped as a key under its own prefixes: IDOf finds
// its session id, never a key id, and the credential names it as a session.
func TestSessionFormat(t *testing.T) {
	id, token, hash, err := GenerateSession()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := IDOf(token)
	if !ok || got != id || !strings.HasPrefix(id, SessionIDPrefix) || !IsKey(token) || !IsSessionID(id) || !Verify(token, hash) {
		t.Fatalf("token %q id %q: IDOf %q %t", token, id, got, ok)
	}
	if k := (Key{ID: id}); k.CredentialID() != "session:"+id {
		t.Fatalf("credential %q", k.CredentialID())
	}
	if k := (Key{ID: "key_abc"}); k.CredentialID() != "key:key_abc" || IsSessionID(k.ID) {
		t.Fatalf("key credential %q", k.CredentialID())
	}
	// A key's id part under the session prefix is a session id, not the key's.
	_, key, _, _ := Generate()
	keyID, _ := IDOf(key)
	if asSession, ok := IDOf(SessionPrefix + strings.TrimPrefix(key, Prefix)); !ok || asSession == keyID || !IsSessionID(asSession) {
		t.Fatalf("a key under the session prefix reads as %q", asSession)
	}
	if _, ok := IDOf("hrs_short"); ok {
		t.Fatal("a short session token parsed")
	}
}
