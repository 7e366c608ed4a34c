// Package codec encrypts every payload hookrelay hands to Temporal with
// AES-256-GCM, so event contents (health information) are stored only as
// ciphertext. Keys come from a key file, one KEY_ID:BASE64 per line: the
// last line's key encrypts, every key decrypts, so keys rotate without
// downtime. Each encrypted payload's metadata names the key that sealed it.
// The key file's keys are not used as they are: each purpose (payloads,
// endpoint secrets, row MACs, response excerpts) seals under keys derived
// from them, so a key of one purpose opens nothing of another's.
package codec

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Payload metadata written by Encode.
const (
	// EncodingEncrypted is the payload's "encoding": the value Temporal's own
	// encryption samples use, so tools recognise an encrypted payload.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that sealed the payload.
	MetadataKeyID = "encryption-key-id"
	// MetadataKeyPurpose names the purpose whose key, derived from the key
	// file's, sealed the payload; a payload without it was sealed with the
	// key file's key as it is, before keys were derived per purpose.
	MetadataKeyPurpose = "encryption-key-purpose"
)

// KeyBytes is the length of an AES-256 key.
const KeyBytes = 32

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Codec is a converter.PayloadCodec that seals payloads with the newest key
// and opens them with whichever key their metadata names. Its keys are one
// purpose's (Parse's are Payloads'); For gives another purpose's.
type Codec struct {
	purpose Purpose
	current string
	// keys are this purpose's, derived from the key file's; raw holds the
	// same keys' bytes (row MACs are HMAC, not AES-GCM).
	keys map[string]cipher.AEAD
	raw  map[string][]byte
	// sealed counts this process's encryptions per key id.
	sealed map[string]*atomic.Uint64
	file   *keyFile
}

// keyFile is what a key file holds, shared by every purpose's Codec.
type keyFile struct {
	current string
	master  map[string][]byte
	// legacy are the key file's keys used as they are: data sealed before
	// keys were derived per purpose opens under them.
	legacy  map[string]cipher.AEAD
	monitor Monitor

	mu      sync.Mutex
	derived map[Purpose]*Codec
}

// WarnEncryptions is the default count of encryptions with one key at which
// a process warns. AES-GCM with random 96-bit nonces is safe for 2^32
// encryptions per key (NIST SP 800-38D); a fleet sums its processes' counts,
// and each process counts only since it started, so the warning comes at
// 2^28, sixteen times below the limit.
const WarnEncryptions = 1 << 28

// Monitor watches a codec's key use. Set it before the codec is used.
type Monitor struct {
	// Threshold is the count at which Overused is called (WarnEncryptions if 0).
	Threshold uint64
	// Sealed, if set, is called for each payload sealed, with the key id.
	Sealed func(keyID string)
	// Overused, if set, is called once per key, when this process's
	// encryptions with it reach Threshold.
	Overused func(keyID string, count uint64)
}

// Watch sets the codec's monitor.
func (c *Codec) Watch(m Monitor) {
	if m.Threshold == 0 {
		m.Threshold = WarnEncryptions
	}
	c.file.monitor = m
}

// Encryptions is how many payloads this process has sealed with key id.
func (c *Codec) Encryptions(id string) uint64 {
	if n, ok := c.sealed[id]; ok {
		return n.Load()
	}
	return 0
}

var _ converter.PayloadCodec = (*Codec)(nil)

// Load reads a key file.
func Load(path string) (*Codec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("codec key file: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("codec key file %s: %w", path, err)
	}
	return c, nil
}

// Parse reads key file contents: one KEY_ID:BASE64 per line, where BASE64
// holds 32 random bytes; blank lines and lines starting with # are ignored.
// Errors name the line but never echo it, since it may hold a key.
func Parse(data []byte) (*Codec, error) {
	f := &keyFile{master: map[string][]byte{}, legacy: map[string]cipher.AEAD{}, monitor: Monitor{Threshold: WarnEncryptions},
		derived: map[Purpose]*Codec{}}
	firstLine := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, key, err := parseLine(n, line)
		if err != nil {
			return nil, err
		}
		if first, dup := firstLine[id]; dup {
			return nil, fmt.Errorf("line %d: key id %q repeats line %d", n, id, first)
		}
		aead, err := newAEAD(key)
		if err != nil {
			return nil, fmt.Errorf("line %d: key %q: %w", n, id, err)
		}
		f.master[id], f.legacy[id], firstLine[id], f.current = key, aead, n, id
	}
	if f.current == "" {
		return nil, fmt.Errorf("no keys: add a line KEY_ID:BASE64 of %d random bytes", KeyBytes)
	}
	return f.derive(Payloads)
}

// parseLine reads one KEY_ID:BASE64 line.
func parseLine(n int, line string) (string, []byte, error) {
	id, encoded, ok := strings.Cut(line, ":")
	id, encoded = strings.TrimSpace(id), strings.TrimSpace(encoded)
	if !ok {
		return "", nil, fmt.Errorf("line %d: want KEY_ID:BASE64 (base64 of %d random bytes)", n, KeyBytes)
	}
	if !keyIDPattern.MatchString(id) {
		return "", nil, fmt.Errorf("line %d: key id must be 1 to 64 characters of A-Z a-z 0-9 . _ -", n)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return "", nil, fmt.Errorf("line %d: key %q is not valid base64", n, id)
	}
	if len(key) != KeyBytes {
		return "", nil, fmt.Errorf("line %d: key %q is %d bytes, want %d (AES-256)", n, id, len(key), KeyBytes)
	}
	return id, key, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// KeyID names the key Encode seals with: the key file's last.
func (c *Codec) KeyID() string { return c.current }

// Encode seals each payload, whole (metadata and data), under the current
// key. The key id is also the GCM additional data, so a payload relabelled
// with another key id fails to open.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.keys[c.current]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec: marshal payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(c.current),
				MetadataKeyPurpose:         []byte(c.purpose),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.current)),
		}
		c.count()
	}
	return out, nil
}

// count records one encryption with the current key.
func (c *Codec) count() {
	n := c.sealed[c.current].Add(1)
	m := c.file.monitor
	if m.Sealed != nil {
		m.Sealed(c.current)
	}
	if n == m.Threshold && m.Overused != nil {
		m.Overused(c.current, n)
	}
}

// Decode opens encrypted payloads and passes others through unchanged, so
// histories written before encryption was turned on still read.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if !bytes.Equal(p.GetMetadata()[converter.MetadataEncoding], []byte(EncodingEncrypted)) {
			out[i] = p
			continue
		}
		plain, err := c.open(p)
		if err != nil {
			return payloads, err
		}
		var decoded commonpb.Payload
		if err := proto.Unmarshal(plain, &decoded); err != nil {
			return payloads, fmt.Errorf("codec: decrypted payload is not a payload: %w", err)
		}
		out[i] = &decoded
	}
	return out, nil
}

// Sealed reports whether p is sealed by a key of this key file: encrypted,
// naming a key it holds, and opening under it.
func (c *Codec) Sealed(p *commonpb.Payload) bool {
	if !bytes.Equal(p.GetMetadata()[converter.MetadataEncoding], []byte(EncodingEncrypted)) {
		return false
	}
	_, err := c.open(p)
	return err == nil
}

// ErrUnknownKey means a payload names a key id the key file lacks: a key
// was removed while payloads it sealed are still in retained histories.
var ErrUnknownKey = errors.New("key id not in the key file")

func (c *Codec) open(p *commonpb.Payload) ([]byte, error) {
	id := string(p.GetMetadata()[MetadataKeyID])
	keys := c.keys
	switch purpose := Purpose(p.GetMetadata()[MetadataKeyPurpose]); purpose {
	case c.purpose:
	case "":
		keys = c.file.legacy
	default:
		return nil, fmt.Errorf("codec: payload sealed with a %s key, not a %s key", purpose, c.purpose)
	}
	aead, ok := keys[id]
	if !ok {
		return nil, fmt.Errorf("codec: payload sealed with key %q: %w", id, ErrUnknownKey)
	}
	data := p.GetData()
	if len(data) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("codec: payload sealed with key %q is too short to be ciphertext", id)
	}
	plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("codec: payload sealed with key %q does not open: the key differs or the data was altered", id)
	}
	return plain, nil
}

// Sealed bytes (Seal's output) are a version byte, the key id's length and
// the key id, then the GCM nonce and ciphertext: the key that sealed them is
// recorded beside the ciphertext, so appending a key to the file keeps
// everything sealed before readable. Version 2 is sealed with the Codec's
// purpose's key; version 1, still opened, with the key file's key as it is.
const (
	sealedLegacy  = 1
	sealedVersion = 2
)

// Seal encrypts plain with the newest key. additionalData (an endpoint's id,
// say) is authenticated but not stored: Open needs the same, so sealed bytes
// moved to another record do not open there.
func (c *Codec) Seal(plain, additionalData []byte) ([]byte, error) {
	aead := c.keys[c.current]
	out := make([]byte, 0, 2+len(c.current)+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, sealedVersion, byte(len(c.current)))
	out = append(out, c.current...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("codec: nonce: %w", err)
	}
	out = append(out, nonce...)
	c.count() // the same key and nonce space as Encode's
	return aead.Seal(out, nonce, plain, sealedAD(c.current, additionalData)), nil
}

// SealedKeyID names the key sealed bytes were sealed with, and whether it
// is this Codec's current one under its purpose (false: Reseal would change them).
func (c *Codec) SealedKeyID(sealed []byte) (string, bool) {
	if len(sealed) < 2 || len(sealed) < 2+int(sealed[1]) {
		return "", false
	}
	id := string(sealed[2 : 2+int(sealed[1])])
	return id, sealed[0] == sealedVersion && id == c.current
}

// Open decrypts what Seal sealed, with whichever key sealed it.
func (c *Codec) Open(sealed, additionalData []byte) ([]byte, error) {
	if len(sealed) < 2 || (sealed[0] != sealedVersion && sealed[0] != sealedLegacy) || len(sealed) < 2+int(sealed[1]) {
		return nil, errors.New("codec: not sealed bytes")
	}
	id := string(sealed[2 : 2+int(sealed[1])])
	keys := c.keys
	if sealed[0] == sealedLegacy {
		keys = c.file.legacy
	}
	aead, ok := keys[id]
	if !ok {
		return nil, fmt.Errorf("codec: sealed with key %q: %w", id, ErrUnknownKey)
	}
	rest := sealed[2+len(id):]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("codec: sealed with key %q: too short to be ciphertext", id)
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], sealedAD(id, additionalData))
	if err != nil {
		return nil, fmt.Errorf("codec: sealed with key %q: does not open: the key or the record differs, or the data was altered", id)
	}
	return plain, nil
}

// sealedAD binds the key id and the caller's additional data, each
// length-prefixed so no two pairs give the same bytes.
func sealedAD(keyID string, additional []byte) []byte {
	ad := make([]byte, 0, 8+len(keyID)+len(additional))
	ad = append(ad, "seal"...)
	ad = append(ad, byte(len(keyID)))
	ad = append(ad, keyID...)
	return append(ad, additional...)
}
