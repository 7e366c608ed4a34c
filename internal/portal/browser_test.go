package portal_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/httpapi"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/portal"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

const (
	adminToken = "portal-test-admin-token-0123456789"
	acctA      = "acct_a"
	acctB      = "acct_b"
	// ScreenshotEnv, set to a path, has TestPortalInChromium write the
	// endpoints view there as a PNG (docs/portal.png).
	screenshotEnv = "HOOKRELAY_PORTAL_SCREENSHOT"
)

// noDeliveries answers the delivery routes as if Temporal were down: the
// endpoint views need no Temporal.
type noDeliveries struct{}

var errNoTemporal = errors.New("no Temporal in this test")

func (noDeliveries) Publish(context.Context, event.Event) ([]deliveries.Started, error) {
	return nil, errNoTemporal
}
func (noDeliveries) Status(context.Context, string) (workflows.DeliveryState, error) {
	return workflows.DeliveryState{}, errNoTemporal
}
func (noDeliveries) Cancel(context.Context, string, string) (workflows.DeliveryState, error) {
	return workflows.DeliveryState{}, errNoTemporal
}
func (noDeliveries) Resend(context.Context, string) (deliveries.Started, error) {
	return deliveries.Started{}, errNoTemporal
}
func (noDeliveries) RetryNow(context.Context, string) (workflows.DeliveryState, error) {
	return workflows.DeliveryState{}, errNoTemporal
}
func (noDeliveries) Account(context.Context, string) (string, error) { return "", errNoTemporal }
func (noDeliveries) Ready(context.Context) error                     { return errNoTemporal }

// ParkedCounts answers no parked delivery for each endpoint, as visibility
// does for endpoints whose deliveries all went through.
func (noDeliveries) ParkedCounts(_ context.Context, _ string, ids []string) (map[string]int, error) {
	out := map[string]int{}
	for _, id := range ids {
		out[id] = 0
	}
	return out, nil
}

// portalEnv is the API and the portal on a SQLite registry, as `starter
// serve --endpoints-db sqlite:...` wires them, on a loopback listener.
type portalEnv struct {
	reg   *registry.Registry
	keys  *registry.KeyCache
	srv   *httptest.Server
	mu    sync.Mutex
	clock time.Time
}

func newPortalEnv(t *testing.T) *portalEnv {
	e := &portalEnv{clock: time.Now()}
	g := netguard.New()
	g.Lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	now := func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.clock }
	reg, err := registry.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "r.db"),
		registry.Options{Codec: testenv.NewCodecT(t, "k1"), Guard: g, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	e.reg, e.keys = reg, registry.NewKeyCache(reg, time.Second)
	ph, err := portal.Handler(portal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Deliveries: noDeliveries{}, Endpoints: reg, Keys: e.keys, Token: adminToken, Portal: ph})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(api.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *portalEnv) endpoint(t *testing.T, account, url string) {
	if _, _, err := e.reg.Create(context.Background(), account, endpoint.Fields{URL: &url, Events: &[]string{"*"}}); err != nil {
		t.Fatal(err)
	}
}

// session asks the API for a portal session of account, as the mail service does.
func (e *portalEnv) session(t *testing.T, account, body string) string {
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/accounts/"+account+"/portal-sessions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct{ URL string }
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || res.StatusCode != 201 {
		t.Fatalf("portal session: %d %v", res.StatusCode, err)
	}
	return v.URL
}

// browser starts headless Chromium (Debian's chromium package, on PATH).
func browser(t *testing.T) context.Context {
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not on PATH: .ci/run installs it (apt-get install chromium)")
		}
		t.Skip("chromium is not on PATH: apt-get install chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1100, 800))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelCtx)
	// The first call starts the browser, on a context without a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	return ctx
}

// The portal in a real browser: a session URL of account A shows A's
// endpoints and nothing of B's, takes the token out of the address bar,
// creates an endpoint; an ended or expired session shows the expired page
// and no data.
func TestPortalInChromium(t *testing.T) {
	e := newPortalEnv(t)
	ctx := browser(t)
	e.endpoint(t, acctA, "https://hooks.example.com/a-orders")
	e.endpoint(t, acctB, "https://hooks.example.com/b-private")

	var csp string
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.session(t, acctA, "")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="ready"] #endpoints-table tbody tr`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	table := run(t, ctx, chromedp.Text(chromedp.CSS(`#endpoints-table tbody`)))
	hash := run(t, ctx, chromedp.Evaluate[string](`location.hash`))
	stored := run(t, ctx, chromedp.Evaluate[string](`sessionStorage.getItem("hookrelay.portal.token") || ""`))
	parked := run(t, ctx, chromedp.Text(chromedp.CSS(`#endpoints-table tbody td.parked`)))
	if parked != "0" {
		t.Errorf("the Parked cell says %q, want 0", parked)
	}
	if !strings.Contains(table, "https://hooks.example.com/a-orders") || strings.Contains(table, "b-private") {
		t.Fatalf("A's session shows %q", table)
	}
	if hash != "" || !strings.HasPrefix(stored, "hrs_") {
		t.Fatalf("after load: hash %q, token kept %t", hash, strings.HasPrefix(stored, "hrs_"))
	}

	// Create an endpoint through the form.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#ep-url`), "https://hooks.example.com/a-new"),
		chromedp.SendKeys(chromedp.CSS(`#ep-description`), "made in the portal"),
		chromedp.Click(chromedp.CSS(`#ep-save`)),
		chromedp.WaitVisible(chromedp.CSS(`#secret-box`)),
		chromedp.WaitVisible(chromedp.Search(`//td[contains(., "https://hooks.example.com/a-new")]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	secret := run(t, ctx, chromedp.Value(chromedp.CSS(`#secret-value`)))
	page, err := e.reg.List(context.Background(), acctA, registry.MaxListLimit, "")
	if err != nil || len(page.Entries) != 2 || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("after create: %d endpoints of A (%v), secret shown %t", len(page.Entries), err, strings.HasPrefix(secret, "whsec_"))
	}
	// Reveal answers the same secret, shown with its note.
	err = chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("secret-value").value = ""`),
		chromedp.Click(chromedp.Search(`//tr[contains(., "a-new")]//button[text()="Reveal secret"]`)),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="status" and contains(., "revealed")]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, ctx, chromedp.Value(chromedp.CSS(`#secret-value`))); got != secret {
		t.Fatalf("revealed secret is the created one: %t", got == secret)
	}
	if path := os.Getenv(screenshotEnv); path != "" {
		// The screenshot shows no secret, not even a test's.
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("secret-box").hidden = true`)); err != nil {
			t.Fatal(err)
		}
		png := run(t, ctx, chromedp.FullScreenshot(100))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A read-only session shows no control that needs endpoints:write or
	// deliveries:write.
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.session(t, acctA, `{"scopes":["endpoints:read","deliveries:read"]}`)),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="ready"] #endpoints-table tbody tr`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	shown := run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("button, form")].filter((b) => b.offsetParent !== null).map((b) => b.textContent || b.id)`))
	for _, c := range shown {
		if strings.Contains(c, "secret") || strings.Contains(c, "Edit") || strings.Contains(c, "Disable") || c == "Actions" || strings.Contains(c, "Add endpoint") {
			t.Errorf("a read-only session shows %q (all: %q)", c, shown)
		}
	}
	if !slices.Contains(shown, "Deliveries") {
		t.Errorf("a read-only session lacks the Deliveries tab: %q", shown)
	}

	// Readable at 320 px: nothing wider than the window.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(320, 640)); err != nil {
		t.Fatal(err)
	}
	if w := run(t, ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 320 {
		t.Errorf("at 320 px wide the page is %d px wide", w)
	}
	// The admin ends A's sessions: a reload shows the expired page, no data.
	req, _ := http.NewRequest("DELETE", e.srv.URL+"/v1/accounts/"+acctA+"/portal-sessions", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 204 {
		t.Fatalf("end sessions: %v %v", res, err)
	}
	expiredPage(t, ctx, chromedp.Reload())

	// A session that expired: made two hours ago for one.
	e.mu.Lock()
	e.clock = time.Now().Add(-2 * time.Hour)
	e.mu.Unlock()
	old := e.session(t, acctA, `{"expires_in":3600}`)
	e.mu.Lock()
	e.clock = time.Now()
	e.mu.Unlock()
	expiredPage(t, ctx, chromedp.Navigate(old))

	// The page itself carries the CSP.
	res, err := http.Get(e.srv.URL + "/portal/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp = res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
}

// expiredPage runs open, then checks the page shows the expired page and
// none of the account's data.
func expiredPage(t *testing.T, ctx context.Context, open chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, open, chromedp.WaitVisible(chromedp.CSS(`body[data-state="expired"] #expired`))); err != nil {
		t.Fatal(err)
	}
	body := run(t, ctx, chromedp.Evaluate[string](`document.body.innerText`))
	stored := run(t, ctx, chromedp.Evaluate[bool](`sessionStorage.getItem("hookrelay.portal.token") !== null`))
	if !strings.Contains(body, "Session expired") || strings.Contains(body, "hooks.example.com") || stored {
		t.Fatalf("expired page: token kept %t, shows %q", stored, body)
	}
}

// run runs one action that answers a value.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
