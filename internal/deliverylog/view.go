package deliverylog

import (
	"strings"
	"time"
)

// DeliveryView is a delivery as the HTTP API and `starter deliveries` show
// it. What is not known yet (no attempt, no HTTP answer, no next attempt)
// is null.
type DeliveryView struct {
	DeliveryID     string     `json:"delivery_id"`
	EndpointID     string     `json:"endpoint_id"`
	EventID        string     `json:"event_id"`
	EventName      string     `json:"event_name"`
	MailLogID      string     `json:"mail_log_id"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	CreatedAt      time.Time  `json:"created_at"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	LastStatusCode *int       `json:"last_status_code"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
}

// View is d as the API shows it.
func (d Delivery) View() DeliveryView {
	return DeliveryView{
		DeliveryID: d.DeliveryID, EndpointID: d.EndpointID, EventID: d.EventID, EventName: d.EventName,
		MailLogID: d.MailLogID, Status: d.Status, Attempts: d.Attempts, CreatedAt: d.CreatedAt.UTC(),
		LastAttemptAt: timeOrNil(d.LastAttemptAt), LastStatusCode: codeOrNil(d.LastStatusCode),
		NextAttemptAt: timeOrNil(d.NextAttemptAt),
	}
}

// AttemptView is an attempt as the HTTP API and `starter deliveries
// attempts` show it. StatusCode is null when no HTTP answer came, Error
// when the attempt has no error class, ResponseExcerpt when there was no
// body or content retention has blanked it.
type AttemptView struct {
	Attempt    int       `json:"attempt"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	StatusCode *int      `json:"status_code"`
	Outcome    string    `json:"outcome"`
	Error      *string   `json:"error"`
	// ResponseExcerpt is the first KiB of the receiver's answer as text:
	// each run of bytes that is not UTF-8 (a binary body, a character cut
	// at the 1 KiB mark) is one U+FFFD.
	ResponseExcerpt *string `json:"response_excerpt"`
}

// View is a as the API shows it.
func (a Attempt) View() AttemptView {
	v := AttemptView{
		Attempt: a.Attempt, StartedAt: a.StartedAt.UTC(), DurationMS: a.Duration.Milliseconds(),
		StatusCode: codeOrNil(a.StatusCode), Outcome: a.Outcome,
	}
	if a.ErrorClass != "" {
		v.Error = &a.ErrorClass
	}
	if a.ResponseExcerpt != nil {
		text := ExcerptText(a.ResponseExcerpt)
		v.ResponseExcerpt = &text
	}
	return v
}

// ExcerptText is a response excerpt as text: each run of bytes that is not
// UTF-8 becomes one U+FFFD.
func ExcerptText(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func codeOrNil(code int) *int {
	if code == 0 {
		return nil
	}
	return &code
}
