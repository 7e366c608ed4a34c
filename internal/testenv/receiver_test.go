package testenv

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/signing"
)

// post sends body as webhook-id id, signed with secret.
func post(t *testing.T, rc *Receiver, id, secret, body string) int {
	t.Helper()
	s, err := signing.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, rc.URL+"/hooks", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	signing.Headers(req.Header, id, time.Now(), []byte(body), s)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Each verified request is answered as Answer says, by webhook-id and its
// count; one signed with another secret is refused 401 without asking Answer.
func TestReceiverVerifiesAndCounts(t *testing.T) {
	secret, other := NewSecret(), NewSecret()
	var asked []string
	rc := NewReceiverT(t, ReceiverOptions{Secret: secret, KeepRequests: true, Answer: func(id string, n int, w http.ResponseWriter) int {
		asked = append(asked, id)
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}})

	for i, c := range []struct {
		id, secret string
		want       int
	}{
		{"acme:evt_1", secret, 503},
		{"acme:evt_1", secret, 200},
		{"acme:evt_1", secret, 200}, // a duplicate delivery
		{"acme:evt_2", other, 401},  // a bad signature counts as a request of its id
		{"acme:evt_2", secret, 200},
	} {
		if got := post(t, rc, c.id, c.secret, fmt.Sprintf(`{"n":%d}`, i)); got != c.want {
			t.Fatalf("request %d (%s): status %d, want %d", i+1, c.id, got, c.want)
		}
	}
	if strings.Join(asked, " ") != "acme:evt_1 acme:evt_1 acme:evt_1 acme:evt_2" {
		t.Fatalf("Answer was asked for %v: never for the bad signature", asked)
	}
	reqs := rc.Requests()
	if len(reqs) != 5 || reqs[3].VerifyErr == nil || reqs[3].Status != 401 || reqs[4].N != 2 || string(reqs[4].Body) != `{"n":4}` || reqs[4].Header.Get("webhook-id") != "acme:evt_2" {
		t.Fatalf("requests: %+v", reqs)
	}
	st := rc.Stats()
	if st.Requests != 5 || st.Rejected != 1 || st.Duplicates != 1 || st.ByStatus[200] != 3 || st.ByStatus[503] != 1 {
		t.Fatalf("stats %+v", st)
	}
	if rc.Count("acme:evt_1") != 3 || rc.Count("acme:evt_3") != 0 {
		t.Fatalf("counts %d, %d", rc.Count("acme:evt_1"), rc.Count("acme:evt_3"))
	}
	at, n := rc.Accepted([]string{"acme:evt_1", "acme:evt_3", "acme:evt_2"})
	if n != 2 || at[0].IsZero() || !at[1].IsZero() || at[2].Before(at[0]) {
		t.Fatalf("accepted %v, %d", at, n)
	}
	if err := rc.Verified(); err == nil || !strings.Contains(err.Error(), "1 requests failed signature verification") {
		t.Fatalf("Verified = %v", err)
	}
}

// Without KeepRequests nothing of the requests is kept but the counts.
func TestReceiverKeepsOnlyCounts(t *testing.T) {
	secret := NewSecret()
	rc := NewReceiverT(t, ReceiverOptions{Secret: secret})
	if got := post(t, rc, "acme:evt_1", secret, `{}`); got != 200 {
		t.Fatalf("status %d", got)
	}
	if len(rc.Requests()) != 0 || rc.Stats().Requests != 1 || rc.Verified() != nil {
		t.Fatalf("requests %v, stats %+v, verified %v", rc.Requests(), rc.Stats(), rc.Verified())
	}
}

func TestReceiverRefusesABadSecret(t *testing.T) {
	if _, err := NewReceiver(ReceiverOptions{Secret: "not-a-secret"}); err == nil {
		t.Fatal("a receiver with a malformed secret")
	}
}
