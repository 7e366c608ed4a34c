package testenv

import (
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/event"
)

// FakeEventTime is the payload.time of FakeEvent's events unless a run gives its own.
var FakeEventTime = time.Date(2026, 4, 18, 20, 27, 25, 379_000_000, time.UTC)

// FakeEvent is an event's body as the mail service sends it, with fake
// data only (example.com addresses, a made-up subject): name, payload.id
// mailLogID, payload.time at, and account_id when account is not empty.
func FakeEvent(account, name string, mailLogID int, at time.Time) string {
	accountField := ""
	if account != "" {
		accountField = fmt.Sprintf(`"account_id":%q,`, account)
	}
	return fmt.Sprintf(`{`+accountField+`"event_name":%q,"payload":{"id":%d,"subject":"Fake subject %d","time":%q,"from":"clinic@sender.example.com","to":"patient%d@recipient.example.com","custom_headers":{"X-Custom-Header":"fake"}}}`,
		name, mailLogID, mailLogID, at.UTC().Format(time.RFC3339Nano), mailLogID)
}

// Event is one fake event: the id hookrelay derives from it, the body
// POSTed to /v1/events, and what an endpoint receives.
type Event struct {
	ID   string
	Body []byte
	Sent []byte
}

// FakeEvents are n distinct events of account (none if empty), cycling
// through the event names, their mail log ids counting from firstID and
// their times from base, one millisecond apart (the index order is the
// event-time order).
func FakeEvents(account string, n, firstID int, base time.Time) ([]Event, error) {
	out := make([]Event, n)
	for i := range out {
		body := FakeEvent(account, event.Names[i%len(event.Names)], firstID+i, base.Add(time.Duration(i)*time.Millisecond))
		ev, err := event.Parse([]byte(body))
		if err != nil {
			return nil, fmt.Errorf("fake event %d: %w", i, err)
		}
		out[i] = Event{ID: ev.ID, Body: []byte(body), Sent: ev.Body()}
	}
	return out, nil
}
