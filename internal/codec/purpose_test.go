package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

var allPurposes = []Purpose{Payloads, EndpointSecrets, RowMACs, ResponseExcerpts}

// legacySeal seals as Seal did before keys were derived per purpose: with
// the key file's key as it is, version 1.
func legacySeal(t *testing.T, c *Codec, plain, ad []byte) []byte {
	t.Helper()
	aead := c.file.legacy[c.current]
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out := append([]byte{sealedLegacy, byte(len(c.current))}, c.current...)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, sealedAD(c.current, ad))
}

// Each purpose seals under a key of its own: what one seals, another does
// not open, and a payload key leaked alone (written into a key file of its
// own) opens no endpoint secret, response excerpt or row MAC.
func TestEncryptionKeysPerPurpose(t *testing.T) {
	c := mustParse(t, newKey(t, "k1"))
	if c.Purpose() != Payloads || c.For(Payloads) != c {
		t.Fatalf("Parse's codec is %q's, want the payloads'", c.Purpose())
	}
	plain, ad := []byte("whsec_fake-secret-for-a-purpose-test"), []byte("ep_1")
	sealed := map[Purpose][]byte{}
	for _, p := range allPurposes {
		b, err := c.For(p).Seal(plain, ad)
		if err != nil {
			t.Fatal(err)
		}
		sealed[p] = b
	}
	for _, p := range allPurposes {
		for _, q := range allPurposes {
			_, err := c.For(q).Open(sealed[p], ad)
			if (err == nil) != (p == q) {
				t.Errorf("sealed for %s, opened for %s: %v", p, q, err)
			}
		}
	}
	leaked := mustParse(t, "k1:"+base64.StdEncoding.EncodeToString(c.raw["k1"]))
	msg := []byte("row")
	for _, q := range allPurposes {
		for _, p := range []Purpose{EndpointSecrets, ResponseExcerpts} {
			if _, err := leaked.For(q).Open(sealed[p], ad); err == nil {
				t.Errorf("the leaked payload key, as a key file, opened a %s seal as %s", p, q)
			}
		}
		if _, err := leaked.For(q).CheckMAC(c.For(RowMACs).MAC(msg), msg); err == nil {
			t.Errorf("the leaked payload key, as a key file, made a row MAC as %s", q)
		}
	}
	enc, err := c.Encode([]*commonpb.Payload{jsonPayload(t, "fake")})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(enc[0].Metadata[MetadataKeyPurpose]); got != string(Payloads) {
		t.Fatalf("payload metadata names purpose %q", got)
	}
	if _, err := c.For(EndpointSecrets).Decode(enc); err == nil {
		t.Error("an endpoint-secrets codec decoded a payload")
	}
}

// Data sealed before keys were derived per purpose (with the key file's
// key as it is) still opens, whatever the purpose; new data is sealed
// under the purpose's key (version 2).
func TestEncryptionLegacyFormatStillOpens(t *testing.T) {
	k1 := newKey(t, "k1")
	c := mustParse(t, k1)
	plain, ad := []byte("whsec_fake-old-secret"), []byte("ep_1")
	old := legacySeal(t, c, plain, ad)
	rotated := mustParse(t, k1, newKey(t, "k2"))
	for _, p := range []Purpose{EndpointSecrets, ResponseExcerpts} {
		got, err := rotated.For(p).Open(old, ad)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: legacy sealed bytes: %q, %v", p, got, err)
		}
		if id, current := rotated.For(p).SealedKeyID(old); id != "k1" || current {
			t.Errorf("%s: SealedKeyID of legacy bytes = %q, %v", p, id, current)
		}
	}
	fresh, _ := rotated.For(EndpointSecrets).Seal(plain, ad)
	if fresh[0] != sealedVersion {
		t.Fatalf("new sealed bytes are version %d", fresh[0])
	}
	if id, current := rotated.For(EndpointSecrets).SealedKeyID(fresh); id != "k2" || !current {
		t.Errorf("SealedKeyID of fresh bytes = %q, %v", id, current)
	}
	// A payload sealed before: no purpose in its metadata, the key as it is.
	p := jsonPayload(t, "fake old payload")
	data, _ := proto.Marshal(p)
	aead := c.file.legacy["k1"]
	nonce := make([]byte, aead.NonceSize())
	legacyPayload := &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte(EncodingEncrypted), MetadataKeyID: []byte("k1")},
		Data: aead.Seal(append([]byte(nil), nonce...), nonce, data, []byte("k1"))}
	dec, err := rotated.Decode([]*commonpb.Payload{legacyPayload})
	if err != nil || !proto.Equal(dec[0], p) {
		t.Fatalf("legacy payload: %v, %v", dec, err)
	}
}

// A MAC checks under the key that made it, while the key file holds it;
// a changed message, a removed key and another purpose's key fail.
func TestEncryptionRowMAC(t *testing.T) {
	k1 := newKey(t, "k1")
	before := mustParse(t, k1).For(RowMACs)
	msg := []byte("ep_1|acct_1|https://hooks.example.com/|[\"*\"]")
	mac := before.MAC(msg)
	if current, err := before.CheckMAC(mac, msg); err != nil || !current {
		t.Fatalf("CheckMAC = %v, %v", current, err)
	}
	if _, err := before.CheckMAC(mac, append(msg, 'x')); !errors.Is(err, ErrMACMismatch) {
		t.Errorf("changed message: %v, want ErrMACMismatch", err)
	}
	k2 := newKey(t, "k2")
	rotated := mustParse(t, k1, k2).For(RowMACs)
	if current, err := rotated.CheckMAC(mac, msg); err != nil || current {
		t.Errorf("after rotation: %v, %v; want valid, not current", current, err)
	}
	if _, err := mustParse(t, k2).For(RowMACs).CheckMAC(mac, msg); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("key removed: %v, want ErrUnknownKey", err)
	}
	if _, err := mustParse(t, k1).For(Payloads).CheckMAC(mac, msg); !errors.Is(err, ErrMACMismatch) {
		t.Errorf("another purpose's key: %v, want ErrMACMismatch", err)
	}
	for _, bad := range [][]byte{nil, mac[:10], append([]byte{9}, mac[1:]...)} {
		if _, err := rotated.CheckMAC(bad, msg); err == nil {
			t.Errorf("%x checked", bad)
		}
	}
}
