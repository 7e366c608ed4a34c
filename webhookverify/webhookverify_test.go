package webhookverify_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/signing"
	"github.com/hookrelay/hookrelay/webhookverify"
)

// The Standard Webhooks specification's published test vector.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorUnix   = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// Obviously fake test secrets.
var (
	secretB = "whsec_" + strings.Repeat("B", 32)
	secretC = "whsec_" + strings.Repeat("C", 32)
)

func headers(id string, unix int64, sig string) http.Header {
	h := http.Header{}
	h.Set(webhookverify.HeaderID, id)
	h.Set(webhookverify.HeaderTimestamp, strconv.FormatInt(unix, 10))
	h.Set(webhookverify.HeaderSignature, sig)
	return h
}

func verifier(t testing.TB, now time.Time, secrets ...string) *webhookverify.Verifier {
	t.Helper()
	v, err := webhookverify.New(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	v.Now = func() time.Time { return now }
	return v
}

func TestSpecVector(t *testing.T) {
	v := verifier(t, time.Unix(vectorUnix, 0), vectorSecret)
	if err := v.Verify(headers(vectorID, vectorUnix, vectorSig), []byte(vectorBody)); err != nil {
		t.Fatalf("the published vector does not verify: %v", err)
	}
	// The secret without its prefix is the same key.
	bare := verifier(t, time.Unix(vectorUnix, 0), strings.TrimPrefix(vectorSecret, "whsec_"))
	if err := bare.Verify(headers(vectorID, vectorUnix, vectorSig), []byte(vectorBody)); err != nil {
		t.Fatalf("unprefixed secret: %v", err)
	}
	// One byte of the body changed.
	if err := v.Verify(headers(vectorID, vectorUnix, vectorSig), []byte(`{"test": 2432232315}`)); !errors.Is(err, webhookverify.ErrBadSignature) {
		t.Fatalf("altered body: %v, want ErrBadSignature", err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event_name":"api_mail_log_delivered","payload":{"id":1}}`)
	parse := func(s string) signing.Secret {
		sec, err := signing.ParseSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		return sec
	}
	cur, prev := parse(vectorSecret), parse(secretB)
	// Headers as hookrelay's sender writes them: the two packages agree.
	signed := func(at time.Time, secrets ...signing.Secret) http.Header {
		h := http.Header{}
		signing.Headers(h, "acme:evt_1", at, body, secrets...)
		return h
	}
	without := func(name string) http.Header { h := signed(now, cur); h.Del(name); return h }
	with := func(name, value string) http.Header { h := signed(now, cur); h.Set(name, value); return h }
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		secrets []string
		want    error
	}{
		{"current secret", signed(now, cur), body, []string{vectorSecret}, nil},
		{"receiver still on the previous secret", signed(now, cur, prev), body, []string{secretB}, nil},
		{"receiver holds both", signed(now, cur), body, []string{secretC, vectorSecret}, nil},
		{"4m59s old", signed(now.Add(-299*time.Second), cur), body, []string{vectorSecret}, nil},
		{"wrong secret", signed(now, cur), body, []string{secretC}, webhookverify.ErrBadSignature},
		{"tampered body", signed(now, cur), []byte(`{"x":1}`), []string{vectorSecret}, webhookverify.ErrBadSignature},
		{"id changed", with(webhookverify.HeaderID, "acme:evt_2"), body, []string{vectorSecret}, webhookverify.ErrBadSignature},
		{"timestamp changed within tolerance", with(webhookverify.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10)), body, []string{vectorSecret}, webhookverify.ErrBadSignature},
		{"unknown version only", with(webhookverify.HeaderSignature, strings.Replace(signed(now, cur).Get(webhookverify.HeaderSignature), "v1,", "v2,", 1)), body, []string{vectorSecret}, webhookverify.ErrBadSignature},
		{"garbage signature", with(webhookverify.HeaderSignature, "v1,not-base64!! ,,, v1"), body, []string{vectorSecret}, webhookverify.ErrBadSignature},
		{"too old", signed(now.Add(-6*time.Minute), cur), body, []string{vectorSecret}, webhookverify.ErrStaleTimestamp},
		{"from the future", signed(now.Add(6*time.Minute), cur), body, []string{vectorSecret}, webhookverify.ErrStaleTimestamp},
		{"far past", with(webhookverify.HeaderTimestamp, "-9223372036854775808"), body, []string{vectorSecret}, webhookverify.ErrStaleTimestamp},
		{"far future", with(webhookverify.HeaderTimestamp, "9223372036854775807"), body, []string{vectorSecret}, webhookverify.ErrStaleTimestamp},
		{"timestamp in milliseconds", with(webhookverify.HeaderTimestamp, strconv.FormatInt(now.UnixMilli(), 10)), body, []string{vectorSecret}, webhookverify.ErrStaleTimestamp},
		{"timestamp not a number", with(webhookverify.HeaderTimestamp, "yesterday"), body, []string{vectorSecret}, webhookverify.ErrInvalidTimestamp},
		{"missing id", without(webhookverify.HeaderID), body, []string{vectorSecret}, webhookverify.ErrMissingHeader},
		{"missing timestamp", without(webhookverify.HeaderTimestamp), body, []string{vectorSecret}, webhookverify.ErrMissingHeader},
		{"missing signature", without(webhookverify.HeaderSignature), body, []string{vectorSecret}, webhookverify.ErrMissingHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifier(t, now, tt.secrets...).Verify(tt.header, tt.body)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTolerance(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := http.Header{}
	sec, _ := signing.ParseSecret(vectorSecret)
	signing.Headers(h, "acme:evt_1", now.Add(-20*time.Minute), []byte("{}"), sec)
	v := verifier(t, now, vectorSecret)
	if err := v.Verify(h, []byte("{}")); !errors.Is(err, webhookverify.ErrStaleTimestamp) {
		t.Fatalf("default tolerance: %v", err)
	}
	v.Tolerance = 30 * time.Minute
	if err := v.Verify(h, []byte("{}")); err != nil {
		t.Fatalf("30m tolerance: %v", err)
	}
}

func TestNewRefusesBadSecrets(t *testing.T) {
	for _, tt := range []struct {
		secrets []string
		want    string
	}{
		{nil, "no secrets"},
		{[]string{"whsec_not base64!"}, "secret 1 is not"},
		{[]string{vectorSecret, "whsec_AAAA"}, "secret 2 is 3 bytes"},
		{[]string{"whsec_" + strings.Repeat("A", 88)}, "66 bytes"},
	} {
		_, err := webhookverify.New(tt.secrets...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q) = %v, want %q", tt.secrets, err, tt.want)
		}
	}
}

func TestParseSignatures(t *testing.T) {
	mac := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	got := webhookverify.ParseSignatures("  v1," + mac + " v1a,AAAA junk ,AAAA v1,!!! v1, v2," + mac + "\t")
	if len(got) != 3 || got[0].Version != "v1" || string(got[0].MAC) != "0123456789abcdef0123456789abcdef" ||
		got[1].Version != "v1a" || got[2].Version != "v2" {
		t.Fatalf("ParseSignatures = %+v", got)
	}
	if got := webhookverify.ParseSignatures(""); len(got) != 0 {
		t.Fatalf("empty header: %+v", got)
	}
}

// FuzzParseSignatures: parsing never panics, keeps only well-formed entries,
// and what it keeps re-parses to the same thing.
func FuzzParseSignatures(f *testing.F) {
	f.Add(vectorSig)
	f.Add(vectorSig + " v1,AAAA v2,=== ,")
	f.Add("v1, v1,,\x00 \t\n")
	f.Fuzz(func(t *testing.T, header string) {
		sigs := webhookverify.ParseSignatures(header)
		var parts []string
		for _, s := range sigs {
			if s.Version == "" || len(s.MAC) == 0 || strings.ContainsAny(s.Version, " \t\n,") {
				t.Fatalf("kept a malformed entry %+v from %q", s, header)
			}
			parts = append(parts, s.Version+","+base64.StdEncoding.EncodeToString(s.MAC))
		}
		again := webhookverify.ParseSignatures(strings.Join(parts, " "))
		if len(again) != len(sigs) {
			t.Fatalf("re-parse of %q: %d entries, want %d", parts, len(again), len(sigs))
		}
	})
}

// FuzzVerify: whatever the headers and body, Verify never panics and accepts
// only what the secret signed: a fuzzed signature header verifies only if it
// carries the genuine signature, and the genuine one always verifies.
func FuzzVerify(f *testing.F) {
	f.Add(vectorID, int64(0), []byte(vectorBody), vectorSig)
	f.Add("", int64(-400), []byte{}, "v1,")
	f.Add("acme:evt_1", int64(299), []byte(`{"event_name":"x"}`), "v1,AAAA v2,"+strings.Repeat("A", 44))
	now := time.Unix(vectorUnix, 0)
	sec, _ := signing.ParseSecret(vectorSecret)
	f.Fuzz(func(t *testing.T, id string, offset int64, body []byte, sigHeader string) {
		v := verifier(t, now, vectorSecret)
		ts := now.Unix() + offset%1000
		h := headers(id, ts, sigHeader)
		genuine := signing.Sign(h.Get(webhookverify.HeaderID), time.Unix(ts, 0), body, sec)
		err := v.Verify(h, body)
		if err == nil {
			found := false
			for _, field := range strings.Fields(h.Get(webhookverify.HeaderSignature)) {
				found = found || field == genuine
			}
			if !found {
				t.Fatalf("accepted signature header %q; the genuine one is %q", sigHeader, genuine)
			}
		}
		h.Set(webhookverify.HeaderSignature, genuine)
		err = v.Verify(h, body)
		inTolerance := offset%1000 >= -300 && offset%1000 <= 300
		switch {
		case h.Get(webhookverify.HeaderID) == "":
			if !errors.Is(err, webhookverify.ErrMissingHeader) {
				t.Fatalf("empty id: %v", err)
			}
		case inTolerance && err != nil:
			t.Fatalf("genuine signature refused: %v", err)
		case !inTolerance && !errors.Is(err, webhookverify.ErrStaleTimestamp):
			t.Fatalf("timestamp %d from now: %v", offset%1000, err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	v, _ := webhookverify.New(vectorSecret)
	v.Now = func() time.Time { return time.Unix(vectorUnix, 0) }
	h := headers(vectorID, vectorUnix, vectorSig)
	for b.Loop() {
		if err := v.Verify(h, []byte(vectorBody)); err != nil {
			b.Fatal(err)
		}
	}
}
