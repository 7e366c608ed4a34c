package registry

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// refusedIDs are the endpoints a RouteError names.
func refusedIDs(t *testing.T, err error) []string {
	t.Helper()
	var partial *endpoint.RouteError
	if !errors.As(err, &partial) {
		t.Fatalf("Route error %v, want a *endpoint.RouteError", err)
	}
	var out []string
	for _, r := range partial.Refused {
		out = append(out, r.ID)
	}
	return out
}

// A row whose URL, account or events were changed by SQL, or whose MAC was
// removed, is refused, that endpoint alone, with an error naming it: the
// account's other endpoint still routes. Update refuses to MAC it; reseal
// too, unless --accept names it.
func TestRegistryRowEditedInDatabaseIsRefused(t *testing.T) {
	edits := map[string]string{
		"url":     `UPDATE endpoints SET url = 'https://other.example.com/steal' WHERE id = ?`,
		"account": `UPDATE endpoints SET account_id = 'acct_2' WHERE id = ?`,
		"events":  `UPDATE endpoints SET events = '["*"]' WHERE id = ?`,
		"no mac":  `UPDATE endpoints SET mac = NULL WHERE id = ?`,
	}
	eachStore(t, func(t *testing.T, dsn string) {
		keys := newCodec(t, testenv.CodecKeyLine("k1"))
		for name, edit := range edits {
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				r := open(t, dsn, Options{Codec: keys})
				account := "acct_" + strings.ReplaceAll(name, " ", "_")
				a, _ := create(t, r, account, fields("https://hooks.example.com/a", event.Delivered))
				b, _ := create(t, r, account, fields("https://hooks.example.com/b", event.Delivered))
				if _, err := r.exec(ctx, edit, a.ID); err != nil {
					t.Fatal(err)
				}
				_, err := r.Resolve(ctx, a.ID)
				if !errors.Is(err, ErrRowRefused) || !strings.Contains(err.Error(), a.ID) {
					t.Fatalf("Resolve of the edited row: %v, want ErrRowRefused naming %s", err, a.ID)
				}
				if _, err := r.Resolve(ctx, b.ID); err != nil {
					t.Fatalf("Resolve of the account's other endpoint: %v", err)
				}
				if name != "account" {
					eps, err := r.Route(ctx, account, event.Delivered)
					if got := ids(eps); !slices.Equal(got, []string{b.ID}) || !slices.Equal(refusedIDs(t, err), []string{a.ID}) {
						t.Fatalf("Route = %v, %v; want %s routed and %s refused", got, err, b.ID, a.ID)
					}
				}
				if _, err := r.Update(ctx, account, a.ID, Fields{Description: ptr("fake")}); !errors.Is(err, ErrRowRefused) && !errors.Is(err, endpoint.ErrNotFound) {
					t.Fatalf("Update of the edited row: %v, want it refused", err)
				}
				rep, err := r.Reseal(ctx, nil)
				if err != nil || len(rep.Failed) != 1 || rep.Failed[0].ID != a.ID || !errors.Is(rep.Failed[0].Err, ErrRowRefused) {
					t.Fatalf("Reseal: %+v, %v; want %s failed, refused", rep, err, a.ID)
				}
				if _, err := r.Resolve(ctx, a.ID); !errors.Is(err, ErrRowRefused) {
					t.Fatalf("after a reseal without --accept: %v, want still refused", err)
				}
				if rep, err := r.Reseal(ctx, []string{a.ID}); err != nil || len(rep.Failed) != 0 || rep.Resealed != 1 {
					t.Fatalf("Reseal accepting %s: %+v, %v", a.ID, rep, err)
				}
				if _, err := r.Resolve(ctx, a.ID); err != nil {
					t.Fatalf("after the row was accepted: %v", err)
				}
			})
		}
	})
}

// An endpoint whose secrets were sealed under a key later removed from the
// key file fails alone: the account's other endpoint routes. Reseal with
// the key back moves it to the current key, a second run changes nothing,
// and after that the old key may go.
func TestRegistryResealRemovedKeyBreaksOneEndpoint(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		k1, k2 := testenv.CodecKeyLine("k1"), testenv.CodecKeyLine("k2")
		a, _ := create(t, open(t, dsn, Options{Codec: newCodec(t, k1)}), "acct_1", fields("https://hooks.example.com/a", event.Delivered))
		b, _ := create(t, open(t, dsn, Options{Codec: newCodec(t, k1, k2)}), "acct_1", fields("https://hooks.example.com/b", "*"))

		withoutK1 := open(t, dsn, Options{Codec: newCodec(t, k2)})
		eps, err := withoutK1.Route(ctx, "acct_1", event.Delivered)
		if got := ids(eps); !slices.Equal(got, []string{b.ID}) || !slices.Equal(refusedIDs(t, err), []string{a.ID}) {
			t.Fatalf("Route without k1 = %v, %v; want %s routed, %s refused", got, err, b.ID, a.ID)
		}
		if !errors.Is(err, codec.ErrUnknownKey) || !strings.Contains(err.Error(), a.ID) {
			t.Fatalf("the refusal %v does not name the endpoint and the missing key", err)
		}
		rep, err := withoutK1.Reseal(ctx, nil)
		if err != nil || rep.Current != 1 || len(rep.Failed) != 1 || rep.Failed[0].ID != a.ID {
			t.Fatalf("Reseal without k1: %+v, %v; want %s current, %s failed", rep, err, b.ID, a.ID)
		}

		both := open(t, dsn, Options{Codec: newCodec(t, k1, k2)})
		if rep, err := both.Reseal(ctx, nil); err != nil || rep.Resealed != 1 || rep.Current != 1 || len(rep.Failed) != 0 {
			t.Fatalf("Reseal with k1 and k2: %+v, %v; want 1 resealed, 1 current", rep, err)
		}
		if rep, err := both.Reseal(ctx, nil); err != nil || rep.Resealed != 0 || rep.Current != 2 || len(rep.Failed) != 0 {
			t.Fatalf("Reseal again: %+v, %v; want nothing to do", rep, err)
		}
		eps, err = withoutK1.Route(ctx, "acct_1", event.Delivered)
		if got := ids(eps); err != nil || len(got) != 2 {
			t.Fatalf("Route without k1 after the reseal = %v, %v; want both", got, err)
		}
	})
}

// legacySeal seals as the registry did before keys were derived per
// purpose: version 1, with the key file's key as it is.
func legacySeal(t *testing.T, keyLine string, plain, ad []byte) []byte {
	t.Helper()
	id, encoded, _ := strings.Cut(keyLine, ":")
	key, _ := base64.StdEncoding.DecodeString(encoded)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out := append([]byte{1, byte(len(id))}, id...)
	out = append(out, nonce...)
	fullAD := append(append([]byte("seal"), byte(len(id))), id...)
	return aead.Seal(out, nonce, plain, append(fullAD, ad...))
}

// Rows from before row MACs and per-purpose keys: secrets sealed with the
// key file's key as it is still open, the first open after the migration
// MACs the rows without one (once: later, a row without a MAC is refused),
// and reseal moves the secrets to the endpoint-secrets key.
func TestRegistryRowsFromBeforeStillServe(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		k1 := testenv.CodecKeyLine("k1")
		r := open(t, dsn, Options{Codec: newCodec(t, k1)})
		a, secret := create(t, r, "acct_1", fields("https://hooks.example.com/a", "*"))
		old := legacySeal(t, k1, []byte(`{"current":"`+secret+`"}`), secretsAD(a.ID))
		if _, err := r.exec(ctx, `UPDATE endpoints SET secrets = ?, mac = NULL WHERE id = ?`, old, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := r.exec(ctx, `UPDATE row_mac_backfill SET pending = ?`, true); err != nil {
			t.Fatal(err)
		}
		upgraded := open(t, dsn, Options{Codec: newCodec(t, k1)})
		ep, err := upgraded.Resolve(ctx, a.ID)
		if err != nil {
			t.Fatalf("a row from before, after the first open: %v", err)
		}
		want, _ := endpoint.ParseSecret(secret)
		if s, _ := ep.Secrets(); len(s) != 1 || s[0].KeyID() != want.KeyID() {
			t.Fatalf("the legacy sealed secret opened as %v, want %v", s, want)
		}
		if rep, err := upgraded.Reseal(ctx, nil); err != nil || rep.Resealed != 1 {
			t.Fatalf("Reseal: %+v, %v; want the legacy secrets resealed", rep, err)
		}
		rows, _ := upgraded.query(ctx, `SELECT `+columns+` FROM endpoints WHERE id = ?`, a.ID)
		if id, current := upgraded.secrets.SealedKeyID(rows[0].secrets); rows[0].secrets[0] != 2 || !current || id != "k1" {
			t.Fatalf("after reseal the secrets are version %d under %q", rows[0].secrets[0], id)
		}
		if _, err := upgraded.exec(ctx, `UPDATE endpoints SET mac = NULL WHERE id = ?`, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := open(t, dsn, Options{Codec: newCodec(t, k1)}).Resolve(ctx, a.ID); !errors.Is(err, ErrRowRefused) {
			t.Fatalf("a MAC removed after the backfill: %v, want refused", err)
		}
	})
}
