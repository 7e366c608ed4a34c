package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hookrelay/hookrelay/event"
)

// The portal on a real `starter serve` (SQLite registry, hosted worker, the
// Temporal dev server) in headless Chromium: A's session URL shows A's
// endpoint and not B's, resends A's delivery from the Actions view; once the
// admin ends A's sessions the page shows the expired page; serve's page
// carries the CSP of --portal-frame-ancestors, and serve's log holds no
// session token.
func TestPortalOnServe(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not on PATH: .ci/run installs it")
		}
		t.Skip("chromium is not on PATH: apt-get install chromium")
	}
	srv := startServeWith(t, hookrelay(t), "--endpoints-db", registryDSN(t, "sqlite"), "--worker", "--allow-cidr", "127.0.0.0/8",
		"--portal-frame-ancestors", "https://mail.example.com")
	deliveryOf := map[string]string{}
	for i, account := range []string{"acct-portal-a", "acct-portal-b"} {
		if _, err := srv.createEndpoint(account, map[string]any{"url": "https://127.0.0.1:9009/" + account, "events": []string{"*"}}); err != nil {
			t.Fatal(err)
		}
		r, err := srv.post(accountEvent(account, event.Delivered, 7200+i))
		var acc apiAccepted
		if err != nil || r.code != http.StatusAccepted || json.Unmarshal(r.body, &acc) != nil || len(acc.Deliveries) != 1 {
			t.Fatalf("post for %s: %v %d %s", account, err, r.code, r.body)
		}
		deliveryOf[account] = acc.Deliveries[0].DeliveryID
	}
	r, err := srv.do(http.MethodPost, "/v1/accounts/acct-portal-a/portal-sessions", strings.NewReader(`{"expires_in":600}`), nil)
	var session struct{ URL string }
	if err != nil || r.code != http.StatusCreated || json.Unmarshal(r.body, &session) != nil || !strings.HasPrefix(session.URL, srv.url+"/portal/#token=hrs_") {
		t.Fatalf("portal session: %v %d %s", err, r.code, r.body)
	}
	token := session.URL[strings.Index(session.URL, "hrs_"):strings.Index(session.URL, "&")]

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelT := context.WithTimeout(bctx, 90*time.Second)
	defer cancelT()
	err = chromedp.Do(ctx,
		chromedp.Navigate(session.URL),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="ready"] #endpoints-table tbody tr`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	table, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#endpoints-table tbody`)))
	if err != nil || !strings.Contains(table, "/acct-portal-a") || strings.Contains(table, "acct-portal-b") {
		t.Fatalf("A's portal shows %q (%v)", table, err)
	}

	// Resend A's delivery from the Actions view.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#tabs button[data-view="actions"]`)),
		chromedp.SendKeys(chromedp.CSS(`#resend-id`), deliveryOf["acct-portal-a"]),
		chromedp.Click(chromedp.CSS(`#resend-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="status" and contains(., "Delivery resent.")]`)),
	)
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
		t.Fatalf("resend: %v (status line %q)", err, status)
	}
	result, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#action-result`)))
	if err != nil || !strings.Contains(result, deliveryOf["acct-portal-a"]) {
		t.Fatalf("resend answer %q (%v)", result, err)
	}

	// The admin ends A's sessions: the next load shows the expired page.
	if r, err := srv.do(http.MethodDelete, "/v1/accounts/acct-portal-a/portal-sessions", nil, nil); err != nil || r.code != http.StatusNoContent {
		t.Fatalf("end sessions: %v %d %s", err, r.code, r.body)
	}
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`body[data-state="expired"] #expired`))); err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil || strings.Contains(body, "acct-portal-a/") {
		t.Fatalf("expired page shows %q (%v)", body, err)
	}

	res, err := http.Get(srv.url + "/portal/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); res.StatusCode != 200 || !strings.HasSuffix(csp, "frame-ancestors https://mail.example.com") {
		t.Fatalf("GET /portal/: %d, CSP %q", res.StatusCode, csp)
	}
	log := srv.Log()
	if strings.Contains(log, token) || strings.Contains(log, token[len(token)-30:]) {
		t.Errorf("serve's log holds the session token")
	}
	if !strings.Contains(log, `"credential":"session:ses_`) {
		t.Errorf("serve's log does not name the session by id")
	}
}

// portalBrowser starts headless Chromium for one test; the context is
// bounded by d.
func portalBrowser(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not on PATH: .ci/run installs it")
		}
		t.Skip("chromium is not on PATH: apt-get install chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelT := context.WithTimeout(bctx, d)
	t.Cleanup(cancelT)
	return ctx
}

// logStatus is a delivery's status in the delivery log, as the admin reads it.
func logStatus(srv *ingestServer, account, id string) string {
	r, err := srv.do(http.MethodGet, "/v1/accounts/"+account+"/deliveries/"+id, nil, nil)
	var d struct{ Status string }
	if err != nil || r.code != http.StatusOK || json.Unmarshal(r.body, &d) != nil {
		return ""
	}
	return d.Status
}

// waitLogStatus waits until the log holds the delivery with status.
func waitLogStatus(t *testing.T, srv *ingestServer, account, id, status string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for logStatus(srv, account, id) != status {
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s: %q in the log after 90s, want %s", id, logStatus(srv, account, id), status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hitsOf counts the POSTs with webhook-id id.
func (rc *multiReceiver) hitsOf(id string) int {
	n := 0
	for _, h := range rc.all() {
		if h.deliveryID == id && h.verifyErr == nil {
			n++
		}
	}
	return n
}

// The portal's deliveries on a real `starter serve` (PostgreSQL registry
// and delivery log, hosted worker, the Temporal dev server) in headless
// Chromium, for account A: the log shows A's deliveries and none of B's,
// filtered by endpoint, status and event; a delivery's attempts show their
// time, status code, duration and response excerpt, opened by keyboard; a
// test event sent from the page arrives at the receiver and is watched to
// delivered; a resend from the list reaches the receiver again; a recovery
// of a window resends what failed in it; each is in the audit trail with
// the session that made it; the page stays 320 px wide.
func TestPortalDeliveries(t *testing.T) {
	ctx := portalBrowser(t, 4*time.Minute)
	rc := newMultiReceiver(t)
	srv := startServeWith(t, hookrelay(t), "--https-only=false", "--endpoints-db", registryDSN(t, "postgres"), "--worker",
		"--allow-cidr", "127.0.0.0/8", "--request-timeout", "60s")
	const a, b = "acct-pdel-a", "acct-pdel-b"
	endpointOf := map[string]string{}
	for _, ep := range []struct{ account, path, events string }{{a, "/a1", "*"}, {a, "/a2", event.Delivered}, {b, "/b1", "*"}} {
		e, err := srv.createEndpoint(ep.account, map[string]any{"url": rc.url + ep.path, "events": []string{ep.events},
			"retry_schedule": []string{"200ms"}, "circuit": map[string]any{"open_after": 1000}})
		if err != nil {
			t.Fatal(err)
		}
		endpointOf[ep.path] = e.ID
		if ep.path != "/a2" { // a2 is down (401) until the recovery
			if err := rc.register(ep.path, e.Secret); err != nil {
				t.Fatal(err)
			}
		}
		endpointOf[ep.path+"-secret"] = e.Secret
	}
	post := func(account, name string, id int) []string {
		r, err := srv.post(accountEvent(account, name, id))
		var acc apiAccepted
		if err != nil || r.code != http.StatusAccepted || json.Unmarshal(r.body, &acc) != nil {
			t.Fatalf("post for %s: %v %d %s", account, err, r.code, r.body)
		}
		var ids []string
		for _, d := range acc.Deliveries {
			ids = append(ids, d.DeliveryID)
		}
		return ids
	}
	windowStart := time.Now()
	delivered := post(a, event.Delivered, 8101) // to a1 and a2
	opened := post(a, event.Opened, 8102)
	other := post(b, event.Delivered, 8103)
	var a1Delivered, a1Opened, a2Failed string
	for _, id := range delivered {
		if strings.HasPrefix(id, endpointOf["/a1"]+":") {
			a1Delivered = id
		} else {
			a2Failed = id
		}
	}
	for _, id := range opened {
		if strings.HasPrefix(id, endpointOf["/a1"]+":") {
			a1Opened = id
		}
	}
	waitLogStatus(t, srv, a, a1Delivered, "delivered")
	waitLogStatus(t, srv, a, a1Opened, "delivered")
	waitLogStatus(t, srv, a, a2Failed, "failed")
	waitLogStatus(t, srv, b, other[0], "delivered")

	r, err := srv.do(http.MethodPost, "/v1/accounts/"+a+"/portal-sessions", strings.NewReader(`{"expires_in":900}`), nil)
	var session struct{ URL string }
	if err != nil || r.code != http.StatusCreated || json.Unmarshal(r.body, &session) != nil {
		t.Fatalf("portal session: %v %d %s", err, r.code, r.body)
	}
	portalDeliveries(t, ctx, srv, rc, session.URL, portalIDs{a1: endpointOf["/a1"], a2: endpointOf["/a2"], a1Delivered: a1Delivered,
		a1Opened: a1Opened, a2Failed: a2Failed, other: other[0]})

	// Recover the window: a2 is healed, its failed delivery resent.
	if err := rc.register("/a2", endpointOf["/a2-secret"]); err != nil {
		t.Fatal(err)
	}
	since := windowStart.Add(-time.Minute)
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#tabs button[data-view="actions"]`)),
		setValues(map[string]string{"recover-endpoint": endpointOf["/a2"]}),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const d = new Date(%d); d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
			document.getElementById("recover-since").value = d.toISOString().slice(0, 16); })()`, since.UnixMilli())),
		chromedp.Click(chromedp.CSS(`#recover-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="status" and contains(., "Recovery started.")]`)),
	)
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
		t.Fatalf("recover: %v (status line %q)", err, status)
	}
	if result, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#action-result`))); !strings.Contains(result, "recover_id") {
		t.Fatalf("recover answer %q", result)
	}
	waitLogStatus(t, srv, a, a2Failed, "delivered")
	if n := rc.hitsOf(a2Failed); n != 1 {
		t.Errorf("the recovered delivery reached the healed receiver %d times, want 1", n)
	}
	if n := rc.hitsOf(other[0]); n != 1 {
		t.Errorf("B's delivery was POSTed %d times, want 1 (nothing of B resent)", n)
	}

	// The audit trail names the session for each change it made.
	r, err = srv.do(http.MethodGet, "/v1/audit?account_id="+a, nil, nil)
	if err != nil || r.code != http.StatusOK {
		t.Fatalf("audit: %v %d %s", err, r.code, r.body)
	}
	for _, action := range []string{"endpoint.test", "delivery.resend", "endpoint.recover"} {
		if !strings.Contains(string(r.body), `"credential":"session:ses_`) || !strings.Contains(string(r.body), `"action":"`+action+`"`) {
			t.Errorf("the audit trail lacks %s by the session: %s", action, r.body)
		}
	}
}

// setValues sets form controls' values by id, as a user's typing would.
func setValues(values map[string]string) chromedp.Action[chromedp.Void] {
	js, _ := json.Marshal(values)
	return chromedp.Evaluate[chromedp.Void](`(() => { for (const [id, v] of Object.entries(` + string(js) + `)) document.getElementById(id).value = v; })()`)
}

// portalIDs are the endpoints and deliveries TestPortalDeliveries made.
type portalIDs struct{ a1, a2, a1Delivered, a1Opened, a2Failed, other string }

// portalDeliveries drives the Deliveries and Actions views: filters,
// attempts, a test event, a resend.
func portalDeliveries(t *testing.T, ctx context.Context, srv *ingestServer, rc *multiReceiver, url string, ids portalIDs) {
	t.Helper()
	rows := func() string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#deliveries-table tbody`)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="ready"] #endpoints-table tbody tr`)),
		chromedp.Click(chromedp.CSS(`#tabs button[data-view="deliveries"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#deliveries-table tbody tr[data-delivery="`+ids.a2Failed+`"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	// The endpoint list's Parked column is counted in the dev server's visibility.
	if parked, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#endpoints-table td.parked")].map((c) => c.textContent)`)); err != nil ||
		!slices.Equal(parked, []string{"0", "0"}) {
		t.Errorf("Parked column %q (%v), want 0 for both of A's endpoints", parked, err)
	}
	all := rows()
	for _, id := range []string{ids.a1Delivered, ids.a1Opened, ids.a2Failed} {
		if !strings.Contains(all, id) {
			t.Errorf("A's deliveries lack %s: %q", id, all)
		}
	}
	if strings.Contains(all, ids.other) || strings.Contains(all, "acct-pdel-b") {
		t.Errorf("A's deliveries show B's: %q", all)
	}
	// Filters: each narrows the list to what it names.
	for _, f := range []struct {
		name, endpoint, status, event string
		want                          []string
	}{
		{"status failed", "", "failed", "", []string{ids.a2Failed}},
		{"event opened", "", "", "api_mail_log_opened", []string{ids.a1Opened}},
		{"endpoint a1, delivered", ids.a1, "delivered", "api_mail_log_delivered", []string{ids.a1Delivered}},
	} {
		err := chromedp.Do(ctx,
			setValues(map[string]string{"f-endpoint": f.endpoint, "f-status": f.status, "f-event": f.event}),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("deliveries-table").tBodies[0].replaceChildren()`),
			chromedp.Click(chromedp.CSS(`#delivery-filters button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#deliveries-table tbody tr[data-delivery="`+f.want[0]+`"]`)),
		)
		if err != nil {
			t.Fatalf("filter %s: %v", f.name, err)
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#deliveries-table tbody tr")].map((r) => r.dataset.delivery)`))
		if err != nil || !slices.Equal(got, f.want) {
			t.Errorf("filter %s: rows %q, want %q (%v)", f.name, got, f.want, err)
		}
	}
	// Attempts of the delivered one, opened by keyboard.
	err = chromedp.Do(ctx,
		chromedp.Focus(chromedp.CSS(`#deliveries-table tr[data-delivery="`+ids.a1Delivered+`"] button[aria-label^="Show attempts"]`)),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS(`#attempts-table tbody tr[data-attempt="1"]`)),
	)
	if err != nil {
		t.Fatalf("attempts: %v", err)
	}
	cells, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#attempts-table tbody tr:first-child td")].map((c) => c.textContent)`))
	if err != nil || len(cells) != 4 || !strings.HasPrefix(cells[0], time.Now().UTC().Format("2006-")) || cells[1] != "200" ||
		!strings.HasSuffix(cells[2], " ms") || cells[3] != `{"received":true}` {
		t.Errorf("attempt cells %q (%v): want time, 200, duration, the receiver's answer", cells, err)
	}
	if focused, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`)); focused != "attempts-title" {
		t.Errorf("after opening attempts the focus is on %q, want the attempts heading", focused)
	}

	// A test event from the Actions view: watched until delivered, and the
	// receiver has it.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#tabs button[data-view="actions"]`)),
		setValues(map[string]string{"test-endpoint": ids.a1, "test-event": "api_mail_log_opened"}),
		chromedp.Click(chromedp.CSS(`#test-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#watch[data-status="delivered"]`)),
	)
	if err != nil {
		w, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("watch").textContent + " / " + document.getElementById("status").textContent`))
		t.Fatalf("test event: %v (%q)", err, w)
	}
	watched, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#watch`)))
	testID := strings.TrimSuffix(strings.TrimPrefix(watched, "Delivery "), ": delivered")
	if !strings.HasPrefix(testID, ids.a1+":test_") || rc.hitsOf(testID) != 1 {
		t.Errorf("watched %q; the receiver got it %d times, want once", watched, rc.hitsOf(testID))
	}

	// Resend from the list: the receiver gets the delivery again. The tab
	// reloads the list: emptied first, the row waited for is the reloaded
	// one, not one the reload is about to replace under the click.
	err = chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("deliveries-table").tBodies[0].replaceChildren()`),
		chromedp.Click(chromedp.CSS(`#tabs button[data-view="deliveries"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#deliveries-table tr[data-delivery="`+ids.a1Delivered+`"]`)),
		chromedp.Click(chromedp.CSS(`#deliveries-table tr[data-delivery="`+ids.a1Delivered+`"] button[aria-label^="Resend"]`)),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="status" and contains(., "resent.")]`)),
	)
	if err != nil {
		t.Fatalf("resend: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for rc.hitsOf(ids.a1Delivered) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := rc.hitsOf(ids.a1Delivered); n != 2 {
		t.Errorf("the resent delivery reached the receiver %d times, want 2", n)
	}

	// Readable at 320 px, the deliveries view included.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(320, 640)); err != nil {
		t.Fatal(err)
	}
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || w > 320 {
		t.Errorf("at 320 px wide the deliveries view is %d px wide (%v)", w, err)
	}
}
