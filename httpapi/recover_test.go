package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/workflows"
)

// fakeRecoveries knows one endpoint, "ep-a" of account "acct-a".
type fakeRecoveries struct {
	started []string // "since until" of each Recover
}

func (f *fakeRecoveries) Recover(_ context.Context, account, ep string, since, until time.Time) (string, error) {
	if account != "acct-a" || ep != "ep-a" {
		return "", endpoint.ErrNotFound
	}
	f.started = append(f.started, since.Format(time.RFC3339)+" "+until.Format(time.RFC3339))
	return workflows.RecoverID(account, ep, since, until), nil
}

func (f *fakeRecoveries) Recovery(_ context.Context, account, id string) (workflows.RecoverState, error) {
	if account != "acct-a" {
		return workflows.RecoverState{}, deliveries.ErrRecoveryNotFound
	}
	return workflows.RecoverState{RecoverID: id, AccountID: account, EndpointID: "ep-a", State: workflows.RecoverDone, Matched: 3, Resent: 2,
		Skipped: 1, SkippedDeliveries: []workflows.Skipped{{DeliveryID: "ep-a:evt_1", Reason: workflows.SkipUnsealedInput}}}, nil
}

func (f *fakeRecoveries) SendTest(_ context.Context, account, ep, name string) (deliveries.Started, error) {
	if account != "acct-a" || ep != "ep-a" {
		return deliveries.Started{}, endpoint.ErrNotFound
	}
	return deliveries.Started{DeliveryID: "ep-a:test_1", EndpointID: ep, EventID: "test_1"}, nil
}

// Bad windows and bad event names are 422 naming the field, and start
// nothing; another account's endpoint or recovery is 404.
func TestRecoverRoutesRefuse(t *testing.T) {
	rec := &fakeRecoveries{}
	h := newTestServer(t, &fakeDeliveries{}, func(c *Config) { c.Recoveries = rec }).Handler()
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		path, body string
		code       int
		field      string
	}{
		{"/v1/accounts/acct-a/endpoints/ep-a/recover", `{}`, 422, "since"},
		{"/v1/accounts/acct-a/endpoints/ep-a/recover", `{"since": "yesterday"}`, 422, "since"},
		{"/v1/accounts/acct-a/endpoints/ep-a/recover", `{"since": "` + future + `"}`, 422, "since"},
		{"/v1/accounts/acct-a/endpoints/ep-a/recover", `{"since": 5}`, 422, "since"},
		{"/v1/accounts/acct-a/endpoints/ep-a/recover", `{"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}`, 422, "until"},
		{"/v1/accounts/acct-a/endpoints/ep-a/recover", `{"since": "2026-01-02T00:00:00Z", "until": "2026-01-02T00:00:00Z"}`, 422, "until"},
		{"/v1/accounts/acct-a/endpoints/ep-a/recover", `{"since": "2026-01-02T00:00:00Z", "until": "soon"}`, 422, "until"},
		{"/v1/accounts/acct-a/endpoints/ep-a/recover", `{"since": "2026-01-02T00:00:00Z", "limit": 3}`, 422, "body"},
		{"/v1/accounts/acct-a/endpoints/ep-a/recover", ``, 400, "body"},
		{"/v1/accounts/acct-b/endpoints/ep-a/recover", `{"since": "2026-01-02T00:00:00Z"}`, 404, "endpoint_id"},
		{"/v1/accounts/acct-a/endpoints/ep-a/test", `{"event_name": "api_mail_log_bounced"}`, 422, "event_name"},
		{"/v1/accounts/acct-a/endpoints/ep-a/test", `{}`, 422, "event_name"},
		{"/v1/accounts/acct-b/endpoints/ep-a/test", `{"event_name": "api_mail_log_opened"}`, 404, "endpoint_id"},
	} {
		w := do(t, h, "POST", c.path, c.body)
		var e apiError
		json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != c.code || e.Field != c.field {
			t.Errorf("POST %s %s: %d field %q (%s); want %d field %q", c.path, c.body, w.Code, e.Field, e.Error, c.code, c.field)
		}
	}
	if len(rec.started) != 0 {
		t.Errorf("refused requests started recoveries: %v", rec.started)
	}
	id := workflows.RecoverID("acct-a", "ep-a", time.Unix(0, 0), time.Time{})
	if w := do(t, h, "GET", "/v1/accounts/acct-b/recoveries/"+id, ""); w.Code != 404 {
		t.Errorf("another account's recovery: %d %s; want 404", w.Code, w.Body)
	}
}

// A recovery answers its id; the same window twice is the same id; GET
// shows its counts; a test answers the delivery it started.
func TestRecoverRoutesAnswer(t *testing.T) {
	rec := &fakeRecoveries{}
	h := newTestServer(t, &fakeDeliveries{}, func(c *Config) { c.Recoveries = rec }).Handler()
	var ids []string
	for range 2 {
		w := do(t, h, "POST", "/v1/accounts/acct-a/endpoints/ep-a/recover", `{"since": "2026-01-02T00:00:00Z", "until": "2026-01-03T00:00:00Z"}`)
		var got struct {
			RecoverID string `json:"recover_id"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != http.StatusAccepted || err != nil {
			t.Fatalf("recover: %d %s", w.Code, w.Body)
		}
		ids = append(ids, got.RecoverID)
	}
	if ids[0] != ids[1] || !workflows.ValidRecoverID(ids[0]) {
		t.Errorf("the same window twice: ids %v; want one valid id", ids)
	}
	w := do(t, h, "GET", "/v1/accounts/acct-a/recoveries/"+ids[0], "")
	var st recoveryView
	if err := json.Unmarshal(w.Body.Bytes(), &st); w.Code != 200 || err != nil || st.Matched != 3 || st.Resent != 2 || st.Skipped != 1 || st.State != "done" {
		t.Errorf("GET recovery: %d %s", w.Code, w.Body)
	}
	w = do(t, h, "POST", "/v1/accounts/acct-a/endpoints/ep-a/test", `{"event_name": "api_mail_log_opened"}`)
	if w.Code != http.StatusAccepted || !json.Valid(w.Body.Bytes()) {
		t.Errorf("test: %d %s", w.Code, w.Body)
	}
}

// Without a delivery log the routes answer 404 and say why.
func TestRecoverRoutesWithoutLog(t *testing.T) {
	h := newTestServer(t, &fakeDeliveries{}, nil).Handler()
	for _, path := range []string{"/v1/accounts/acct-a/endpoints/ep-a/recover", "/v1/accounts/acct-a/endpoints/ep-a/test"} {
		body := `{"since": "2026-01-02T00:00:00Z"}`
		if path[len(path)-4:] == "test" {
			body = `{"event_name": "api_mail_log_opened"}`
		}
		if w := do(t, h, "POST", path, body); w.Code != 404 {
			t.Errorf("POST %s without a log: %d; want 404", path, w.Code)
		}
	}
}
