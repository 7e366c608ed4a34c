package httpapi

import (
	"context"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/workflows"
)

func TestCancelAndResend(t *testing.T) {
	f := &fakeDeliveries{}
	var gotReason string
	f.cancel = func(ctx context.Context, id, reason string) (workflows.DeliveryState, error) {
		gotReason = reason
		if err := deliveryFailure(id); err != nil {
			return workflows.DeliveryState{}, err
		}
		return workflows.DeliveryState{DeliveryID: id, Status: workflows.StatusCanceled, Attempts: []workflows.Attempt{},
			Actions: []workflows.Action{{Name: workflows.CancelSignal, Reason: reason}}}, nil
	}
	h := newTestServer(t, f, nil).Handler()

	w := do(t, h, "POST", "/v1/deliveries/crm:evt_1/cancel", `{"reason":"endpoint retired"}`)
	st := decode[workflows.DeliveryState](t, w)
	if w.Code != 200 || st.Status != workflows.StatusCanceled || gotReason != "endpoint retired" {
		t.Fatalf("cancel: %d %+v (reason %q)", w.Code, st, gotReason)
	}
	if w := do(t, h, "POST", "/v1/deliveries/crm:evt_1/cancel", "", "Content-Type", ""); w.Code != 200 || gotReason != "" {
		t.Fatalf("cancel without a body: %d %s (reason %q)", w.Code, w.Body, gotReason)
	}

	w = do(t, h, "POST", "/v1/deliveries/crm:evt_1/resend", "")
	started := decode[delivery](t, w)
	if w.Code != 202 || started.DeliveryID != "crm:evt_1" || started.EndpointID != "crm" || started.EventID != "evt_1" {
		t.Fatalf("resend: %d %+v", w.Code, started)
	}

	for _, tt := range []struct {
		method, path, body string
		headers            []string
		code               int
		field              string
	}{
		{"POST", "/v1/deliveries/crm:done/cancel", "", nil, 409, "delivery_id"},
		{"POST", "/v1/deliveries/crm:missing/cancel", "", nil, 404, "delivery_id"},
		{"POST", "/v1/deliveries/crm:plaintext/resend", "", nil, 409, "delivery_id"},
		{"POST", "/v1/deliveries/crm:down/cancel", "", nil, 503, ""},
		{"POST", "/v1/deliveries/no-colon/cancel", "", nil, 400, "delivery_id"},
		{"POST", "/v1/deliveries/crm:evt_1/cancel", `{"reason":7}`, nil, 422, "reason"},
		{"POST", "/v1/deliveries/crm:evt_1/cancel", `{"why":"x"}`, nil, 422, "reason"},
		{"POST", "/v1/deliveries/crm:evt_1/cancel", `{"reason":"` + strings.Repeat("x", 501) + `"}`, nil, 422, "reason"},
		{"POST", "/v1/deliveries/crm:evt_1/cancel", `{"reason":"x"}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"POST", "/v1/deliveries/crm:evt_1/cancel", "", []string{"Authorization", ""}, 401, "Authorization"},
		{"GET", "/v1/deliveries/crm:evt_1/cancel", "", nil, 405, ""},
		{"GET", "/v1/deliveries/crm:evt_1/resend", "", nil, 405, ""},
	} {
		w := do(t, h, tt.method, tt.path, tt.body, tt.headers...)
		e := decode[apiError](t, w)
		if w.Code != tt.code || e.Field != tt.field || e.Error == "" {
			t.Errorf("%s %s %.30s: %d %+v, want %d field %q", tt.method, tt.path, tt.body, w.Code, e, tt.code, tt.field)
		}
		if strings.Contains(tt.path, "plaintext") && !strings.Contains(e.Error, "did not arrive sealed") {
			t.Errorf("resend of a plaintext start: %q does not name the reason", e.Error)
		}
	}
}

// A resend past the delivery's bound answers 429 on delivery_id, with
// Retry-After the seconds until the next is accepted, naming the limit.
func TestResendOverTheBoundAnswers429(t *testing.T) {
	h := newTestServer(t, &fakeDeliveries{}, nil).Handler()
	w := do(t, h, "POST", "/v1/deliveries/crm:limited/resend", "")
	e := decode[apiError](t, w)
	if w.Code != 429 || e.Field != "delivery_id" || !strings.Contains(e.Error, "5 resends and retry-nows in the last hour") {
		t.Fatalf("resend over the bound: %d %+v", w.Code, e)
	}
	if got := w.Header().Get("Retry-After"); got != "2463" {
		t.Fatalf("Retry-After = %q, want 2463", got)
	}
}
