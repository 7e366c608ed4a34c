package signing

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The published Standard Webhooks test vector.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorUnix   = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustSecret(t *testing.T, s string) Secret {
	t.Helper()
	sec, err := ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret(%q): %v", s, err)
	}
	return sec
}

func TestSignMatchesSpecVector(t *testing.T) {
	got := Sign(vectorID, time.Unix(vectorUnix, 0), []byte(vectorBody), mustSecret(t, vectorSecret))
	if got != vectorSig {
		t.Fatalf("Sign = %q, want %q", got, vectorSig)
	}
}

func TestSignWithSeveralSecretsIsSpaceSeparated(t *testing.T) {
	cur := mustSecret(t, vectorSecret)
	prev := mustSecret(t, "whsec_"+strings.Repeat("A", 32))
	got := Sign(vectorID, time.Unix(vectorUnix, 0), []byte(vectorBody), cur, prev)
	parts := strings.Split(got, " ")
	if len(parts) != 2 || parts[0] != vectorSig || !strings.HasPrefix(parts[1], "v1,") || parts[1] == vectorSig {
		t.Fatalf("Sign with two secrets = %q", got)
	}
}

func TestVerifyRoundTrip(t *testing.T) {
	cur := mustSecret(t, vectorSecret)
	prev := mustSecret(t, "whsec_"+strings.Repeat("B", 32))
	other := mustSecret(t, "whsec_"+strings.Repeat("C", 32))
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event_name":"api_mail_log_delivered","payload":{"id":1}}`)

	signed := func(secrets ...Secret) http.Header {
		h := http.Header{}
		Headers(h, "acme:evt_1", now, body, secrets...)
		return h
	}
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		now     time.Time
		secrets []Secret
		want    error
	}{
		{"current secret", signed(cur), body, now, []Secret{cur}, nil},
		{"receiver still on previous secret", signed(cur, prev), body, now, []Secret{prev}, nil},
		{"receiver holds both", signed(cur), body, now, []Secret{other, cur}, nil},
		{"wrong secret", signed(cur), body, now, []Secret{other}, ErrNoMatchingSecret},
		{"tampered body", signed(cur), []byte(`{"x":1}`), now, []Secret{cur}, ErrNoMatchingSecret},
		{"too old", signed(cur), body, now.Add(6 * time.Minute), []Secret{cur}, ErrTimestampSkew},
		{"from the future", signed(cur), body, now.Add(-6 * time.Minute), []Secret{cur}, ErrTimestampSkew},
		{"missing id", func() http.Header { h := signed(cur); h.Del(HeaderID); return h }(), body, now, []Secret{cur}, ErrMissingHeader},
		{"missing signature", func() http.Header { h := signed(cur); h.Del(HeaderSignature); return h }(), body, now, []Secret{cur}, ErrMissingHeader},
		{"bad timestamp", func() http.Header { h := signed(cur); h.Set(HeaderTimestamp, "yesterday"); return h }(), body, now, []Secret{cur}, ErrBadTimestamp},
		{"id changed", func() http.Header { h := signed(cur); h.Set(HeaderID, "acme:evt_2"); return h }(), body, now, []Secret{cur}, ErrNoMatchingSecret},
		{"unknown version ignored", func() http.Header {
			h := signed(cur)
			h.Set(HeaderSignature, "v2,"+strings.TrimPrefix(h.Get(HeaderSignature), "v1,"))
			return h
		}(), body, now, []Secret{cur}, ErrNoMatchingSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.header, tt.body, tt.now, 0, tt.secrets...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{vectorSecret, ""},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with"},
		{"whsec_not base64!", "not valid base64"},
		{"whsec_" + "AAAA", "3 bytes"},
		{"whsec_" + strings.Repeat("A", 88), "66 bytes"},
	}
	for _, tt := range tests {
		_, err := ParseSecret(tt.in)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ParseSecret(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestSecretNeverPrintsKey(t *testing.T) {
	s := mustSecret(t, vectorSecret)
	if strings.Contains(s.String(), "MfKQ9r8") || !strings.HasPrefix(s.KeyID(), "key_") || len(s.KeyID()) != 12 {
		t.Fatalf("String() = %q, KeyID() = %q", s.String(), s.KeyID())
	}
}
