package signing

import (
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
