package codec

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
)

// Purpose names what a key protects. Each purpose's keys are derived from
// the key file's with HKDF-SHA256 (the purpose and key id as info), so one
// purpose's key, leaked alone, opens nothing of another's; every purpose
// rotates with the key file, its last line's key sealing.
type Purpose string

// The purposes.
const (
	// Payloads seal what hookrelay hands to Temporal (the codec server's).
	Payloads Purpose = "payloads"
	// EndpointSecrets seal endpoints' signing secrets in the registry.
	EndpointSecrets Purpose = "endpoint-secrets"
	// RowMACs authenticate endpoint rows (id, account, URL, events).
	RowMACs Purpose = "row-macs"
	// ResponseExcerpts seal the delivery log's response excerpts.
	ResponseExcerpts Purpose = "response-excerpts"
)

// derivationInfo is HKDF's info for a purpose's key id: distinct for every
// pair, and naming the scheme so a later one cannot collide with it.
func derivationInfo(p Purpose, keyID string) string {
	return "hookrelay key v1\x00" + string(p) + "\x00" + keyID
}

// For is the Codec of purpose p on the same key file.
func (c *Codec) For(p Purpose) *Codec {
	c.file.mu.Lock()
	defer c.file.mu.Unlock()
	if d, ok := c.file.derived[p]; ok {
		return d
	}
	d, err := c.file.deriveLocked(p)
	if err != nil { // HKDF-SHA256 fails only past 255*32 bytes of output
		panic(err)
	}
	return d
}

// Purpose is the purpose c's keys serve.
func (c *Codec) Purpose() Purpose { return c.purpose }

func (f *keyFile) derive(p Purpose) (*Codec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deriveLocked(p)
}

func (f *keyFile) deriveLocked(p Purpose) (*Codec, error) {
	c := &Codec{purpose: p, current: f.current, keys: map[string]cipher.AEAD{}, raw: map[string][]byte{},
		sealed: map[string]*atomic.Uint64{}, file: f}
	for id, master := range f.master {
		key, err := hkdf.Key(sha256.New, master, nil, derivationInfo(p, id), KeyBytes)
		if err != nil {
			return nil, fmt.Errorf("derive the %s key %q: %w", p, id, err)
		}
		aead, err := newAEAD(key)
		if err != nil {
			return nil, fmt.Errorf("derive the %s key %q: %w", p, id, err)
		}
		c.keys[id], c.raw[id], c.sealed[id] = aead, key, new(atomic.Uint64)
	}
	f.derived[p] = c
	return c, nil
}

// A MAC (MAC's output) is a version byte, the key id's length and the key
// id, then HMAC-SHA256 of the message under the purpose's key of that id.
const macVersion = 1

// MAC authenticates msg under the current key.
func (c *Codec) MAC(msg []byte) []byte {
	out := append([]byte{macVersion, byte(len(c.current))}, c.current...)
	return append(out, c.sum(c.raw[c.current], msg)...)
}

func (c *Codec) sum(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(c.purpose))
	h.Write([]byte{0})
	h.Write(msg)
	return h.Sum(nil)
}

// ErrMACMismatch means a MAC does not match its message: the message, or
// the MAC, was changed by something without the key.
var ErrMACMismatch = errors.New("MAC does not match: changed by something without the key")

// CheckMAC verifies mac (MAC's output) over msg, under whichever key made
// it: ErrUnknownKey if the key file lacks it, ErrMACMismatch if it does
// not match. It also says whether the current key made it.
func (c *Codec) CheckMAC(mac, msg []byte) (current bool, err error) {
	if len(mac) < 2 || mac[0] != macVersion || len(mac) != 2+int(mac[1])+sha256.Size {
		return false, fmt.Errorf("codec: not a MAC: %w", ErrMACMismatch)
	}
	id := string(mac[2 : 2+int(mac[1])])
	key, ok := c.raw[id]
	if !ok {
		return false, fmt.Errorf("codec: MAC made with key %q: %w", id, ErrUnknownKey)
	}
	if !hmac.Equal(mac[2+len(id):], c.sum(key, msg)) {
		return false, fmt.Errorf("codec: MAC made with key %q: %w", id, ErrMACMismatch)
	}
	return id == c.current, nil
}
