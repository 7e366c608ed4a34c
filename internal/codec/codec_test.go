package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// newKey returns a fresh key file line; keys are generated, never committed.
func newKey(t testing.TB, id string) string {
	t.Helper()
	k := make([]byte, KeyBytes)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(k)
}

func mustParse(t testing.TB, lines ...string) *Codec {
	t.Helper()
	c, err := Parse([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func jsonPayload(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	c := mustParse(t, "# test keys", "", newKey(t, "old"), newKey(t, "k2"))
	if c.KeyID() != "k2" {
		t.Fatalf("KeyID = %q, want the last line's k2", c.KeyID())
	}
	plain := jsonPayload(t, map[string]string{"subject": "Fake subject for codec test"})
	enc, err := c.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	got := enc[0]
	if string(got.Metadata[converter.MetadataEncoding]) != EncodingEncrypted || string(got.Metadata[MetadataKeyID]) != "k2" {
		t.Fatalf("metadata = %q", got.Metadata)
	}
	if bytes.Contains(got.Data, []byte("Fake subject")) || bytes.Contains(got.Data, []byte("json/plain")) {
		t.Fatal("ciphertext holds the plaintext")
	}
	again, _ := c.Encode([]*commonpb.Payload{plain})
	if bytes.Equal(again[0].Data, got.Data) {
		t.Fatal("two encryptions of one payload are identical: nonce reused")
	}
	dec, err := c.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(dec[0], plain) {
		t.Fatalf("decoded %v, want %v", dec[0], plain)
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	before := mustParse(t, k1)
	after := mustParse(t, k1, k2) // k2 appended: encrypts; k1 still decrypts
	p := jsonPayload(t, "written before the rotation")

	old, _ := before.Encode([]*commonpb.Payload{p})
	if dec, err := after.Decode(old); err != nil || !proto.Equal(dec[0], p) {
		t.Fatalf("new key file cannot read a payload sealed with k1: %v", err)
	}
	fresh, _ := after.Encode([]*commonpb.Payload{p})
	if id := string(fresh[0].Metadata[MetadataKeyID]); id != "k2" {
		t.Fatalf("sealed with %q, want k2", id)
	}
	_, err := before.Decode(fresh)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k2"`) {
		t.Fatalf("old key file on a k2 payload: %v, want ErrUnknownKey naming k2", err)
	}
}

// Encryptions are counted per key, and the monitor hears once when a key
// reaches its threshold, from many goroutines at once.
func TestCountsEncryptionsPerKey(t *testing.T) {
	if WarnEncryptions > 1<<30 {
		t.Fatalf("WarnEncryptions %d is not well below GCM's 2^32", WarnEncryptions)
	}
	c := mustParse(t, newKey(t, "k1"))
	var mu sync.Mutex
	var sealed int
	var overused []string
	c.Watch(Monitor{Threshold: 100,
		Sealed: func(id string) { mu.Lock(); sealed++; mu.Unlock() },
		Overused: func(id string, n uint64) {
			mu.Lock()
			overused = append(overused, fmt.Sprintf("%s at %d", id, n))
			mu.Unlock()
		}})
	p := jsonPayload(t, "fake")
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 15 {
				if _, err := c.Encode([]*commonpb.Payload{p}); err != nil {
					t.Error(err)
				}
				// Seal (the registry's secrets) draws on the same key's nonces.
				if _, err := c.Seal([]byte("fake"), []byte("ep_fake")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if c.Encryptions("k1") != 300 || sealed != 300 {
		t.Fatalf("Encryptions = %d, monitor heard %d; want 300", c.Encryptions("k1"), sealed)
	}
	if len(overused) != 1 || overused[0] != "k1 at 100" {
		t.Fatalf("overused reported %v, want once, at 100", overused)
	}
	// After a rotation the new key counts from zero; decrypting counts nothing.
	rotated := mustParse(t, newKey(t, "k1"), newKey(t, "k2"))
	enc, _ := rotated.Encode([]*commonpb.Payload{p})
	rotated.Decode(enc)
	sealedBytes, _ := rotated.Seal([]byte("fake"), nil)
	rotated.Open(sealedBytes, nil)
	if rotated.Encryptions("k2") != 2 {
		t.Fatalf("after a Seal and an Open: k2 %d, want 2", rotated.Encryptions("k2"))
	}
	rotated = mustParse(t, newKey(t, "k1"), newKey(t, "k2"))
	enc, _ = rotated.Encode([]*commonpb.Payload{p})
	rotated.Decode(enc)
	if rotated.Encryptions("k2") != 1 || rotated.Encryptions("k1") != 0 {
		t.Fatalf("after rotation: k1 %d, k2 %d", rotated.Encryptions("k1"), rotated.Encryptions("k2"))
	}
}

func TestDecodeRefusesAlteredPayloads(t *testing.T) {
	c := mustParse(t, newKey(t, "k1"), newKey(t, "k2"))
	sealed := func() *commonpb.Payload {
		enc, err := c.Encode([]*commonpb.Payload{jsonPayload(t, "x")})
		if err != nil {
			t.Fatal(err)
		}
		return enc[0]
	}
	sameIDOtherKey := mustParse(t, newKey(t, "k2"))
	tests := map[string]func(*commonpb.Payload) *Codec{
		"flipped byte":         func(p *commonpb.Payload) *Codec { p.Data[len(p.Data)-1] ^= 1; return c },
		"relabelled key id":    func(p *commonpb.Payload) *Codec { p.Metadata[MetadataKeyID] = []byte("k1"); return c },
		"truncated":            func(p *commonpb.Payload) *Codec { p.Data = p.Data[:5]; return c },
		"same id, another key": func(p *commonpb.Payload) *Codec { return sameIDOtherKey },
		"key id missing":       func(p *commonpb.Payload) *Codec { delete(p.Metadata, MetadataKeyID); return c },
		"ciphertext, no nonce": func(p *commonpb.Payload) *Codec { p.Data = p.Data[12:]; return c },
	}
	for name, alter := range tests {
		t.Run(name, func(t *testing.T) {
			p := sealed()
			codec := alter(p)
			if _, err := codec.Decode([]*commonpb.Payload{p}); err == nil {
				t.Fatal("Decode accepted an altered payload")
			}
		})
	}
}

func TestDecodePassesPlainPayloads(t *testing.T) {
	c := mustParse(t, newKey(t, "k1"))
	p := jsonPayload(t, "recorded before encryption")
	dec, err := c.Decode([]*commonpb.Payload{p})
	if err != nil || dec[0] != p {
		t.Fatalf("Decode(plain) = %v, %v", dec, err)
	}
}

func TestWithDataConverter(t *testing.T) {
	c := mustParse(t, newKey(t, "k1"))
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
	type in struct{ To string }
	p, err := dc.ToPayload(in{To: "patient@recipient.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Data, []byte("recipient.example.com")) {
		t.Fatal("the data converter stored plaintext")
	}
	var got in
	if err := dc.FromPayload(p, &got); err != nil || got.To != "patient@recipient.example.com" {
		t.Fatalf("FromPayload = %+v, %v", got, err)
	}
}

func TestParseRefusesBadKeyFiles(t *testing.T) {
	good := newKey(t, "good")
	secretPart := strings.SplitN(good, ":", 2)[1]
	short := "short:" + base64.StdEncoding.EncodeToString(make([]byte, 16))
	long := "long:" + base64.StdEncoding.EncodeToString(make([]byte, 33))
	tests := []struct {
		name string
		file string
		want []string
	}{
		{"empty", "", []string{"no keys"}},
		{"comments only", "# nothing yet\n\n", []string{"no keys"}},
		{"no colon", "# keys\n" + secretPart, []string{"line 2", "KEY_ID:BASE64"}},
		{"empty id", ":" + secretPart, []string{"line 1", "key id"}},
		{"bad id", good + "\nbad id!:" + secretPart, []string{"line 2", "key id"}},
		{"reversed", secretPart + ":k1", []string{"line 1", "key id"}},
		{"not base64", "k1:not*base64", []string{"line 1", `"k1"`, "base64"}},
		{"16 bytes", "\n\n" + short, []string{"line 3", "16 bytes", "want 32"}},
		{"33 bytes", long, []string{"line 1", "33 bytes"}},
		{"duplicate id", good + "\n" + strings.Replace(newKey(t, "x"), "x:", "good:", 1), []string{"line 2", `"good"`, "repeats line 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file))
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.file)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secretPart) || strings.Contains(err.Error(), secretPart[:12]) {
				t.Errorf("error %q echoes key material", err)
			}
		})
	}
}

func TestParseAcceptsCommentsBlankLinesAndCRLF(t *testing.T) {
	file := fmt.Sprintf("# hookrelay payload keys\r\n\r\n  %s  \r\n# rotated in 2026-11\r\n%s\r\n", newKey(t, "2026-10"), newKey(t, "2026-11"))
	c, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyID() != "2026-11" || len(c.keys) != 2 {
		t.Fatalf("KeyID %q, %d keys", c.KeyID(), len(c.keys))
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	if _, err := Load("/nonexistent/codec.key"); err == nil || !strings.Contains(err.Error(), "/nonexistent/codec.key") {
		t.Fatalf("Load(missing) = %v", err)
	}
}

// FuzzParse: any input either fails with a line-numbered or "no keys" error,
// or yields a codec whose round trip works.
func FuzzParse(f *testing.F) {
	f.Add([]byte("# keys\nk1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"))
	f.Add([]byte("k1:AAAA\n"))
	f.Add([]byte("a:b:c\n\n#x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") && !strings.HasPrefix(err.Error(), "no keys") {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		p := &commonpb.Payload{Data: data}
		enc, err := c.Encode([]*commonpb.Payload{p})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := c.Decode(enc)
		if err != nil || !proto.Equal(dec[0], p) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// Seal and Open: the newest key seals, every key opens, the key id travels
// with the ciphertext, and the additional data binds it to its record.
func TestSealOpen(t *testing.T) {
	oldKey := newKey(t, "old")
	before := mustParse(t, oldKey)
	plain := []byte("fake-secret-bytes-for-a-seal-test")
	sealedOld, err := before.Seal(plain, []byte("ep_1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealedOld, plain) {
		t.Fatal("sealed bytes hold the plaintext")
	}
	after := mustParse(t, oldKey, newKey(t, "new"))
	sealedNew, err := after.Seal(plain, []byte("ep_1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(sealedNew[:8], []byte("new")) || !bytes.Contains(sealedOld[:8], []byte("old")) {
		t.Fatalf("the key id is not recorded with the ciphertext: %q %q", sealedOld[:8], sealedNew[:8])
	}
	for name, sealed := range map[string][]byte{"old key": sealedOld, "new key": sealedNew} {
		got, err := after.Open(sealed, []byte("ep_1"))
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: Open = %q, %v", name, got, err)
		}
	}
	if _, err := before.Open(sealedNew, []byte("ep_1")); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a key file without the sealing key: %v, want ErrUnknownKey", err)
	}
	if _, err := after.Open(sealedNew, []byte("ep_2")); err == nil {
		t.Error("opened with another record's additional data")
	}
	tampered := append([]byte(nil), sealedNew...)
	tampered[len(tampered)-1] ^= 1
	for name, bad := range map[string][]byte{"tampered": tampered, "empty": nil, "short": sealedNew[:5], "wrong version": append([]byte{9}, sealedNew[1:]...)} {
		if _, err := after.Open(bad, []byte("ep_1")); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}
