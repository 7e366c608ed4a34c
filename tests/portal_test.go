package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
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
