package httpapi

import (
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/event"
)

// FuzzParseEvents: any body is refused with a status and a field, or gives
// events that are valid UTF-8, hold no repeated key, and parse alone as they
// did in the body. Bodies that are not UTF-8 are always 400.
func FuzzParseEvents(f *testing.F) {
	one := `{"event_name":"api_mail_log_opened","payload":{"id":1,"time":"2026-01-01T00:00:00Z"}}`
	f.Add([]byte(one))
	f.Add([]byte(`{"events":[` + one + `,` + one + `]}`))
	f.Add([]byte(`{"event_name":"api_mail_log_opened","payload":{"id":1,"id":2,"time":"2026-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"events":[` + one + `],"events":[]}`))
	f.Add([]byte("{\"event_name\":\"api_mail_log_opened\",\"payload\":{\"id\":1,\"time\":\"2026-01-01T00:00:00Z\",\"s\":\"\xff\"}}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, _, ref := parseEvents(body)
		if ref != nil {
			if ref.status < 400 || ref.status > 499 || ref.body.Error == "" {
				t.Fatalf("refusal %d %+v", ref.status, ref.body)
			}
			if !utf8.Valid(body) && ref.status != http.StatusBadRequest {
				t.Fatalf("a body that is not UTF-8 refused with %d, want 400", ref.status)
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not UTF-8: %q", body)
		}
		if _, dup := event.DuplicateKey(body); dup {
			t.Fatalf("accepted a body with a repeated key: %q", body)
		}
		for _, ev := range evs {
			if err := ev.Validate(); err != nil {
				t.Fatalf("accepted event does not validate: %v", err)
			}
		}
	})
}
