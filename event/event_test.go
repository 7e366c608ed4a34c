package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

const sample = `{
  "event_name": "api_mail_log_permanent_failure",
  "payload": {
    "id": 5555555555,
    "subject": "Test subject (fake)",
    "time": "2026-04-18T20:27:25.379Z",
    "from": "sender@sender.example.com",
    "to": "someone@recipient.example.com",
    "custom_headers": {"X-Custom-Header": "value"}
  }
}`

func TestParseSample(t *testing.T) {
	ev, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Name != PermanentFailure || ev.MailLogID != 5555555555 || ev.Time.Format("2006-01-02T15:04:05.000Z") != "2026-04-18T20:27:25.379Z" {
		t.Fatalf("parsed %+v", ev)
	}
	if !strings.HasPrefix(ev.ID, "evt_") || len(ev.ID) != 36 {
		t.Fatalf("derived id %q", ev.ID)
	}
	var body struct {
		EventName string                     `json:"event_name"`
		Payload   map[string]json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(ev.Body(), &body); err != nil {
		t.Fatalf("Body() is not JSON: %v: %s", err, ev.Body())
	}
	if body.EventName != PermanentFailure || string(body.Payload["id"]) != "5555555555" || string(body.Payload["to"]) != `"someone@recipient.example.com"` {
		t.Fatalf("Body() = %s", ev.Body())
	}
}

func TestDerivedIDIdentity(t *testing.T) {
	base, _ := Parse([]byte(sample))
	same := `{"payload":{"time":"2026-04-18T22:27:25.379+02:00","id":5555555555,"subject":"Test subject (fake)"},"event_name":"api_mail_log_permanent_failure"}`
	laterTime := strings.Replace(sample, "25.379Z", "26.379Z", 1)
	otherName := strings.Replace(sample, PermanentFailure, Delivered, 1)
	otherLog := strings.Replace(sample, "5555555555", "5555555556", 1)
	tests := []struct {
		name   string
		in     string
		sameID bool
	}{
		{"same event, other key order, whitespace and time zone", same, true},
		{"different time", laterTime, false},
		{"different event_name", otherName, false},
		{"different mail log id", otherLog, false},
	}
	for _, tt := range tests {
		ev, err := Parse([]byte(tt.in))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if (ev.ID == base.ID) != tt.sameID {
			t.Errorf("%s: id %s vs base %s, want same=%v", tt.name, ev.ID, base.ID, tt.sameID)
		}
	}
}

func TestExplicitEventIDWins(t *testing.T) {
	ev, err := Parse([]byte(`{"event_id":"msg-42.a","event_name":"api_mail_log_opened","payload":{"id":1,"time":"2026-01-01T00:00:00Z"}}`))
	if err != nil || ev.ID != "msg-42.a" {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
}

func TestParseRefusesBadInput(t *testing.T) {
	ok := `"payload":{"id":1,"time":"2026-01-01T00:00:00Z"}`
	tests := []struct {
		name, in, field string
	}{
		{"not JSON", `hello`, "body"},
		{"JSON array", `[1,2]`, "body"},
		{"empty", ``, "body"},
		{"two values", `{"event_name":"api_mail_log_opened",` + ok + `} {}`, "body"},
		{"missing event_name", `{` + ok + `}`, "event_name"},
		{"unknown event_name", `{"event_name":"api_mail_log_clicked",` + ok + `}`, "event_name"},
		{"event_name not a string", `{"event_name":5,` + ok + `}`, "event_name"},
		{"unknown top-level field", `{"event_name":"api_mail_log_opened","eventid":"x",` + ok + `}`, "eventid"},
		{"missing payload", `{"event_name":"api_mail_log_opened"}`, "payload"},
		{"null payload", `{"event_name":"api_mail_log_opened","payload":null}`, "payload"},
		{"payload not an object", `{"event_name":"api_mail_log_opened","payload":[1]}`, "payload"},
		{"missing payload.id", `{"event_name":"api_mail_log_opened","payload":{"time":"2026-01-01T00:00:00Z"}}`, "payload.id"},
		{"string payload.id", `{"event_name":"api_mail_log_opened","payload":{"id":"abc","time":"2026-01-01T00:00:00Z"}}`, "payload.id"},
		{"fractional payload.id", `{"event_name":"api_mail_log_opened","payload":{"id":1.5,"time":"2026-01-01T00:00:00Z"}}`, "payload.id"},
		{"negative payload.id", `{"event_name":"api_mail_log_opened","payload":{"id":-3,"time":"2026-01-01T00:00:00Z"}}`, "payload.id"},
		{"missing payload.time", `{"event_name":"api_mail_log_opened","payload":{"id":1}}`, "payload.time"},
		{"numeric payload.time", `{"event_name":"api_mail_log_opened","payload":{"id":1,"time":1700000000}}`, "payload.time"},
		{"unparseable payload.time", `{"event_name":"api_mail_log_opened","payload":{"id":1,"time":"yesterday"}}`, "payload.time"},
		{"bad event_id", `{"event_id":"has space","event_name":"api_mail_log_opened",` + ok + `}`, "event_id"},
		{"event_id not a string", `{"event_id":7,"event_name":"api_mail_log_opened",` + ok + `}`, "event_id"},
		{"over 256 KiB", `{"event_name":"api_mail_log_opened","payload":{"id":1,"time":"2026-01-01T00:00:00Z","subject":"` + strings.Repeat("x", MaxBodyBytes) + `"}}`, "body"},
		// Strict JSON: a repeated key anywhere, named by its path, and bytes that are not UTF-8.
		{"duplicate top-level key", `{"event_name":"api_mail_log_opened","event_name":"api_mail_log_delivered",` + ok + `}`, "event_name"},
		{"duplicate payload.id", `{"event_name":"api_mail_log_opened","payload":{"id":1,"id":2,"time":"2026-01-01T00:00:00Z"}}`, "payload.id"},
		{"duplicate by escape", `{"event_name":"api_mail_log_opened","payload":{"id":1,"\u0069d":2,"time":"2026-01-01T00:00:00Z"}}`, "payload.id"},
		{"duplicate deep in an array", `{"event_name":"api_mail_log_opened","payload":{"id":1,"time":"2026-01-01T00:00:00Z","to":[{"a":1},{"b":1,"b":2}]}}`, "payload.to[1].b"},
		{"payload.ID is not payload.id", `{"event_name":"api_mail_log_opened","payload":{"ID":1,"time":"2026-01-01T00:00:00Z"}}`, "payload.id"},
		{"invalid UTF-8", "{\"event_name\":\"api_mail_log_opened\",\"payload\":{\"id\":1,\"time\":\"2026-01-01T00:00:00Z\",\"subject\":\"\xff\xfe\"}}", "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || fe.Problem == "" {
				t.Fatalf("Parse error field %q (%v), want field %q", fe.Field, err, tt.field)
			}
		})
	}
}

// Events built in Go instead of parsed: Validate refuses what Parse would.
func TestValidate(t *testing.T) {
	good, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("a parsed event does not validate: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Event)
		field string
	}{
		{"no id", func(e *Event) { e.ID = "" }, "event_id"},
		{"id with a space", func(e *Event) { e.ID = "a b" }, "event_id"},
		{"unknown name", func(e *Event) { e.Name = "api_mail_log_clicked" }, "event_name"},
		{"no mail log id", func(e *Event) { e.MailLogID = 0 }, "payload.id"},
		{"no payload", func(e *Event) { e.Payload = nil }, "payload"},
		{"payload not an object", func(e *Event) { e.Payload = json.RawMessage(`[1]`) }, "payload"},
		{"payload not JSON", func(e *Event) { e.Payload = json.RawMessage(`{"id":`) }, "payload"},
		{"duplicate key", func(e *Event) { e.Payload = json.RawMessage(`{"id":1,"to":"a","to":"b"}`) }, "payload.to"},
		{"payload not UTF-8", func(e *Event) { e.Payload = json.RawMessage("{\"id\":1,\"to\":\"\xff\"}") }, "payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := good
			tt.edit(&ev)
			var fe *FieldError
			if err := ev.Validate(); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate = %v, want a *FieldError on %s", err, tt.field)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"event_name":"api_mail_log_opened","payload":{"id":1,"time":"2026-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"event_name":"api_mail_log_opened","payload":{"id":1,"id":2,"time":"2026-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"event_name":"api_mail_log_opened","payload":{"id":1,"\u0069d":2,"time":"2026-01-01T00:00:00Z","x":[{"a":"\"}"},{"a":1,"a":2}]}}`))
	f.Add([]byte("{\"event_name\":\"api_mail_log_opened\",\"payload\":{\"id\":1,\"time\":\"2026-01-01T00:00:00Z\",\"s\":\"\xed\xa0\x80\"}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fast duplicate scan agrees with a decoder-based one on every valid document.
		if json.Valid(data) {
			_, got := DuplicateKey(data)
			if want := hasDuplicateKey(t, data); got != want {
				t.Fatalf("DuplicateKey = %t, the decoder finds %t, in %q", got, want, data)
			}
		}
		ev, err := Parse(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
			return
		}
		if !json.Valid(ev.Body()) || ev.ID == "" {
			t.Fatalf("accepted event has invalid body or id: %+v", ev)
		}
		if !utf8.Valid(ev.Body()) {
			t.Fatalf("accepted event's body is not UTF-8: %q", ev.Body())
		}
		if _, dup := DuplicateKey(data); dup {
			t.Fatalf("accepted an event with a duplicate key: %q", data)
		}
	})
}

// hasDuplicateKey is DuplicateKey the slow, obvious way: json.Decoder tokens.
func hasDuplicateKey(t *testing.T, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("token of a valid document: %v", err)
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			dup := false
			for dec.More() {
				k, _ := dec.Token()
				key := k.(string)
				dup = dup || seen[key]
				seen[key] = true
				dup = walk() || dup
			}
			dec.Token()
			return dup
		case json.Delim('['):
			dup := false
			for dec.More() {
				dup = walk() || dup
			}
			dec.Token()
			return dup
		}
		return false
	}
	return walk()
}

func TestDuplicateKeyPaths(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1,"b":{"c":[1,{"d":1,"d":2}]}}`: "b.c[1].d",
		`{"a":1,"a":2}`:                       "a",
		`[{"x":1},{"x":1,"x":1}]`:             "[1].x",
		`{"we ird":{"k":1,"k":2}}`:            `"we ird".k`,
		`{"a":"\"{\"a\":1,\"a\":2}","b":1}`:   "",
		`{"a":{"x":1},"b":{"x":1}}`:           "",
	} {
		got, found := DuplicateKey([]byte(in))
		if got != want || found != (want != "") {
			t.Errorf("DuplicateKey(%s) = %q, %t; want %q", in, got, found, want)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	data := []byte(sample)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// An event may name its account; the derived id then covers it, so the same
// mail log in two accounts makes two events. Without an account the id is
// the one it always was (the sample's id is in docs and recorded histories).
func TestAccountID(t *testing.T) {
	delivered, err := os.ReadFile("../examples/events/delivered.json")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Parse(delivered)
	if err != nil || plain.ID != "evt_257fe6b1f89e4e1a3b6e373ecf8e917d" || plain.AccountID != "" {
		t.Fatalf("without an account: %+v %v, want the id derived before accounts existed", plain.ID, err)
	}
	withAccount := func(account string) []byte {
		return []byte(strings.Replace(string(delivered), "{", `{"account_id":`+account+",", 1))
	}
	a, err := Parse(withAccount(`"acct_42:clinic-7"`))
	if err != nil || a.AccountID != "acct_42:clinic-7" || a.ID == plain.ID {
		t.Fatalf("with an account: %+v %v", a, err)
	}
	b, _ := Parse(withAccount(`"acct_43"`))
	if b.ID == a.ID {
		t.Fatal("two accounts derive the same event id")
	}
	if !bytes.Equal(a.Body(), plain.Body()) {
		t.Fatalf("the account reached the receiver's body: %s", a.Body())
	}
	for _, bad := range []string{`""`, `"has space"`, `"` + strings.Repeat("a", 129) + `"`, `7`, `"ünicode"`} {
		_, err := Parse(withAccount(bad))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "account_id" {
			t.Errorf("account_id %s: %v, want a FieldError on account_id", bad, err)
		}
	}
	hand := a
	hand.AccountID = "bad account"
	if err := hand.Validate(); err == nil {
		t.Error("Validate accepts a malformed account id")
	}
}
